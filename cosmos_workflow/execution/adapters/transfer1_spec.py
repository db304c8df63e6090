"""Cosmos-Transfer1 controlnet specs and batch JSONL, shared by the
``transfer1`` and ``simulated`` adapters.

One source per parameter: every scalar that changes the output goes into the
spec JSON; the command line carries only set-up flags (paths, batch size,
number of GPUs), so no JSON value is ever shadowed by a flag.
"""

from __future__ import annotations

import copy
import json
from abc import abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from cosmos_workflow.errors import Problem
from cosmos_workflow.execution.adapters.base import (
    Invocation,
    JobLayout,
    ModelAdapter,
    RunOutputs,
    active_controls,
    input_name,
    inputs_of,
    option_problems,
    run_options,
)
from cosmos_workflow.manifest.specs import RunSpec

SCALAR_FIELDS = (
    "seed",
    "guidance",
    "num_steps",
    "sigma_max",
    "fps",
    "blur_strength",
    "canny_threshold",
)
# transfer.py arguments a manifest may set under model.options; they go into
# the spec JSON like every other parameter.
OPTIONS: dict[str, type] = {"num_input_frames": int, "upsample_prompt": bool, "use_distilled": bool}
# Transfer1 refuses a run without input video unless sigma_max is at least this.
NO_VIDEO_MIN_SIGMA = 80.0
# transfer.py's own default, used when the manifest leaves sigma_max null.
DEFAULT_SIGMA_MAX = 70.0
SPEC_FILE = "spec.json"
BATCH_FILE = "batch.jsonl"
OUTPUT_DIR = "out"
# Controls transfer.py computes from the input video when they have no input_control.
COMPUTED_CONTROLS = ("vis", "seg", "edge", "depth", "keypoint")


def transfer1_problems(run: RunSpec) -> list[Problem]:
    """What Cosmos-Transfer1 would refuse in ``run``, found before any GPU time."""
    problems = option_problems(run, OPTIONS)
    controls = active_controls(run)
    name = run.prompt.name
    if not controls:
        problems.append(
            Problem("model.weights", "set at least one control weight (vis, edge, depth or seg)")
        )
    if run.prompt.inputs.video is None:
        sigma_max = run.model.get("sigma_max")
        if (DEFAULT_SIGMA_MAX if sigma_max is None else sigma_max) < NO_VIDEO_MIN_SIGMA:
            problems.append(
                Problem(
                    "model.sigma_max",
                    f"must be at least {NO_VIDEO_MIN_SIGMA:g} for prompt {name!r}, "
                    "which has no input video",
                )
            )
        for key in controls:
            if key not in run.prompt.inputs.controls:
                problems.append(
                    Problem(
                        f"prompts.{name}.inputs.controls.{key}",
                        "a control video is required when the prompt has no input video",
                    )
                )
    return problems


def transfer1_batch_key(run: RunSpec) -> Hashable:
    """Runs may share a batch only if every shared value is the same.

    In batch mode every scalar, the negative prompt and the control blocks
    come from the shared spec, so they are all part of the key; so is whether
    each control has its own video (a line can only override input_control).
    A run without input video always runs alone: every batch line needs a
    visual input.
    """
    if run.prompt.inputs.video is None:
        return ("single", run.id)
    controls = tuple(
        (key, weight, key in run.prompt.inputs.controls)
        for key, weight in active_controls(run).items()
    )
    scalars = tuple(sorted(_scalars(run).items()))
    return (
        run.adapter,
        run.model["version"],
        run.model.get("image"),
        run.model["num_gpus"],
        run.prompt.negative,
        scalars,
        controls,
    )


def _control_block(run: RunSpec, key: str, weight: float, layout: JobLayout) -> dict[str, Any]:
    block: dict[str, Any] = {"control_weight": weight}
    control = run.prompt.inputs.controls.get(key)
    if control is not None:
        block["input_control"] = layout.path(input_name(control))
    return block


def single_spec(run: RunSpec, layout: JobLayout) -> dict[str, Any]:
    """The complete controlnet spec of one run."""
    spec: dict[str, Any] = {"prompt": run.prompt.text}
    if run.prompt.negative is not None:
        spec["negative_prompt"] = run.prompt.negative
    if run.prompt.inputs.video is not None:
        spec["input_video_path"] = layout.path(input_name(run.prompt.inputs.video))
    spec.update(_scalars(run))
    for key, weight in active_controls(run).items():
        spec[key] = _control_block(run, key, weight, layout)
    return spec


def _scalars(run: RunSpec) -> dict[str, Any]:
    """The run's scalar parameters and options; a null one is left to the program's default."""
    scalars = {name: run.model[name] for name in SCALAR_FIELDS if run.model.get(name) is not None}
    return {**scalars, **run_options(run)}


def shared_spec(first: RunSpec, layout: JobLayout) -> dict[str, Any]:
    """The spec shared by a batch: scalars and control weights.

    transfer.py validates the shared spec before it reads any batch line, and
    refuses one without input video when sigma_max is below 80. So it names
    the first run's video; every line's ``visual_input`` replaces it.
    """
    spec: dict[str, Any] = {"input_video_path": layout.path(input_name(first.prompt.inputs.video))}
    if first.prompt.negative is not None:
        spec["negative_prompt"] = first.prompt.negative
    spec.update(_scalars(first))
    for key, weight in active_controls(first).items():
        spec[key] = {"control_weight": weight}
    return spec


def batch_line(run: RunSpec, layout: JobLayout) -> dict[str, Any]:
    """One JSONL line: the run's own video, prompt and control videos."""
    line: dict[str, Any] = {"prompt": run.prompt.text}
    if run.prompt.inputs.video is not None:
        line["visual_input"] = layout.path(input_name(run.prompt.inputs.video))
    overrides = {}
    for key in active_controls(run):
        control = run.prompt.inputs.controls.get(key)
        path = layout.path(input_name(control)) if control is not None else None
        overrides[key] = {"input_control": path}
    if overrides:
        line["control_overrides"] = overrides
    return line


def merge_batch_line(shared: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
    """What Transfer1 reads for one batch line: the line merged onto a copy."""
    spec = copy.deepcopy(shared)
    if "visual_input" in line:
        spec["input_video_path"] = line["visual_input"]
    if "prompt" in line:
        spec["prompt"] = line["prompt"]
    for key, values in line.get("control_overrides", {}).items():
        block = spec.setdefault(key, {})
        for name, value in values.items():
            if value is None:
                block.pop(name, None)
            else:
                block[name] = value
    return spec


def render_transfer1(
    runs: list[RunSpec], layout: JobLayout
) -> tuple[dict[str, bytes], list[str], dict[str, RunOutputs], dict[str, dict[str, Any]]]:
    """Render files, set-up flags, outputs and effective specs for ``runs``.

    Returns:
        (files, flags, outputs, effective specs). ``flags`` are the
        transfer.py arguments after the program path.
    """
    out_dir = layout.path(OUTPUT_DIR)
    files: dict[str, bytes] = {}
    flags = ["--controlnet_specs", layout.path(SPEC_FILE), "--video_save_folder", out_dir]
    if len(runs) == 1:
        run = runs[0]
        spec = single_spec(run, layout)
        files[SPEC_FILE] = _json_bytes(spec)
        flags += ["--video_save_name", "output"]
        outputs = {
            run.id: RunOutputs(
                f"{OUTPUT_DIR}/output.mp4",
                {"prompt": f"{OUTPUT_DIR}/output.txt"},
                controls=computed_controls(run, OUTPUT_DIR),
            )
        }
        return files, flags, outputs, {run.id: spec}
    shared = shared_spec(runs[0], layout)
    lines = [batch_line(run, layout) for run in runs]
    files[SPEC_FILE] = _json_bytes(shared)
    files[BATCH_FILE] = "".join(
        json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n" for line in lines
    ).encode("utf-8")
    # One model load for every line; --batch_size stays 1 (it is the number of
    # videos generated at once, which a GPU's memory cannot take for 720p).
    flags += ["--batch_input_path", layout.path(BATCH_FILE)]
    outputs = {
        run.id: RunOutputs(
            f"{OUTPUT_DIR}/video_{i}/output.mp4",
            {"prompt": f"{OUTPUT_DIR}/video_{i}/prompt.txt"},
            controls=computed_controls(run, f"{OUTPUT_DIR}/video_{i}"),
        )
        for i, run in enumerate(runs)
    }
    effective = {
        run.id: merge_batch_line(shared, line) for run, line in zip(runs, lines, strict=True)
    }
    return files, flags, outputs, effective


def computed_controls(run: RunSpec, folder: str) -> dict[str, str]:
    """Where Transfer1 writes the control videos it computes for ``run``.

    transfer.py's preprocessors make each of these controls that has no
    ``input_control`` from the input video, as
    ``<folder>/<key>_input_control_<LOCAL_RANK>.mp4`` in the run's output
    folder (every rank writes its own; rank 0 always exists).
    """
    return {
        key: f"{folder}/{key}_input_control_0.mp4"
        for key in active_controls(run)
        if key in COMPUTED_CONTROLS and key not in run.prompt.inputs.controls
    }


def _json_bytes(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Launch:
    """How a program that reads Transfer1's spec files is started.

    Attributes:
        argv: The whole command, the spec flags included.
        files: Files the program needs besides the spec files.
        workdir: Its working folder (None: the job folder).
        env: Environment variables it needs.
    """

    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)


class Transfer1SpecAdapter(ModelAdapter):
    """An adapter whose program reads Transfer1's spec JSON and batch JSONL.

    Subclasses say only how the program is started (:meth:`launch`); the
    rules, batching and spec files are Transfer1's.
    """

    def validate(self, run: RunSpec) -> list[Problem]:
        """What Transfer1 would refuse in ``run``."""
        return transfer1_problems(run)

    def batch_key(self, run: RunSpec) -> Hashable:
        """Transfer1's merge rule: shared scalars and the same control set."""
        return transfer1_batch_key(run)

    def render(self, job_id: str, runs: list[RunSpec], layout: JobLayout) -> Invocation:
        """Render the spec files and the program's command for ``runs``."""
        files, flags, outputs, effective = render_transfer1(runs, layout)
        launch = self.launch(runs, layout, flags)
        return Invocation(
            job_id=job_id,
            argv=launch.argv,
            files={**files, **launch.files},
            inputs=inputs_of(runs),
            outputs=outputs,
            run_specs=effective,
            workdir=launch.workdir,
            env=launch.env,
        )

    @abstractmethod
    def launch(self, runs: list[RunSpec], layout: JobLayout, flags: list[str]) -> Launch:
        """The command that runs the program on the spec ``flags`` (paths, batch file)."""
