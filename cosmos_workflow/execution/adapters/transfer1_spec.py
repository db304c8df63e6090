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
    control_settings,
    input_name,
    inputs_of,
    run_options,
)
from cosmos_workflow.execution.adapters.transfer1_rules import (
    COMPUTED_CONTROLS,
    is_av,
    transfer1_problems,
    upsampler_control,
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
SPEC_FILE = "spec.json"
BATCH_FILE = "batch.jsonl"
OUTPUT_DIR = "out"


def transfer1_batch_key(run: RunSpec) -> Hashable:
    """Runs may share a batch only if every shared value is the same.

    In batch mode every scalar, the negative prompt and the control blocks
    (weight, checkpoint, settings) come from the shared spec, so they are all
    part of the key; so is whether each control has its own video and its own
    weight map (a line can override only input_control and control_weight).
    transfer.py's prompt upsampler reads the shared spec's control video, so
    runs that upsample share a batch only with runs of the same such video.
    A run without input video always runs alone: every batch line needs a
    visual input.
    """
    if run.prompt.inputs.video is None:
        return ("single", run.id)
    inputs = run.prompt.inputs
    controls = tuple(
        (
            key,
            "weight map" if key in inputs.weight_maps else weight,
            key in inputs.controls,
            tuple(sorted(control_settings(run, key).items())),
        )
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
        _upsampler_video(run),
    )


def _upsampler_video(run: RunSpec) -> tuple[str, str | None] | None:
    """The control the prompt upsampler reads and the checksum of its video, if any."""
    key = upsampler_control(run)
    if key is None:
        return None
    video = run.prompt.inputs.controls.get(key)
    return key, video.sha256 if video is not None else None


def _control_block(
    run: RunSpec, key: str, weight: float, layout: JobLayout, with_video: bool
) -> dict[str, Any]:
    """One control block: weight (or weight map), settings and, if asked, the control video."""
    inputs = run.prompt.inputs
    weight_map = inputs.weight_maps.get(key)
    block: dict[str, Any] = {
        "control_weight": weight if weight_map is None else layout.path(input_name(weight_map))
    }
    block.update(control_settings(run, key))
    control = inputs.controls.get(key)
    if with_video and control is not None:
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
        spec[key] = _control_block(run, key, weight, layout, with_video=True)
    return spec


def _scalars(run: RunSpec) -> dict[str, Any]:
    """The run's scalar parameters and options; a null one is left to the program's default.

    ``is_av_sample`` follows from the controls: hdmap and lidar are the
    Sample-AV model's.
    """
    scalars = {name: run.model[name] for name in SCALAR_FIELDS if run.model.get(name) is not None}
    if is_av(run):
        scalars["is_av_sample"] = True
    return {**scalars, **run_options(run)}


def shared_spec(first: RunSpec, layout: JobLayout) -> dict[str, Any]:
    """The spec shared by a batch: scalars and control blocks.

    transfer.py validates the shared spec before it reads any batch line, and
    refuses one without input video when sigma_max is below 80. So it names
    the first run's video; every line's ``visual_input`` replaces it. Control
    videos are the lines' own, except the one the prompt upsampler reads: it
    reads the shared spec's (the batch key makes it the same for every line).
    """
    spec: dict[str, Any] = {"input_video_path": layout.path(input_name(first.prompt.inputs.video))}
    if first.prompt.negative is not None:
        spec["negative_prompt"] = first.prompt.negative
    spec.update(_scalars(first))
    upsampled = upsampler_control(first)
    for key, weight in active_controls(first).items():
        spec[key] = _control_block(first, key, weight, layout, with_video=key == upsampled)
    return spec


def batch_line(run: RunSpec, layout: JobLayout) -> dict[str, Any]:
    """One JSONL line: the run's own video, prompt, control videos and weight maps."""
    line: dict[str, Any] = {"prompt": run.prompt.text}
    if run.prompt.inputs.video is not None:
        line["visual_input"] = layout.path(input_name(run.prompt.inputs.video))
    overrides = {}
    for key in active_controls(run):
        control = run.prompt.inputs.controls.get(key)
        override: dict[str, Any] = {
            "input_control": layout.path(input_name(control)) if control is not None else None
        }
        weight_map = run.prompt.inputs.weight_maps.get(key)
        if weight_map is not None:
            override["control_weight"] = layout.path(input_name(weight_map))
        overrides[key] = override
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
        json.dumps(line, ensure_ascii=True, sort_keys=True) + "\n" for line in lines
    ).encode("ascii")
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
    """ASCII JSON (other characters as escapes): transfer.py opens its spec and
    batch files with the locale's encoding, which may be ASCII (LANG=C)."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


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
