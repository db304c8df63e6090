"""The ``transfer2.5`` adapter: NVIDIA Cosmos-Transfer2.5's ``examples/inference.py``.

Every run is one sample JSON file named after its run id; several samples
given to one invocation share one model load and run one after another. Each
sample carries all its own parameters, so runs may share an invocation
whenever they need the same checkpoint (``--model``), guardrail setting and
GPU count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable
from typing import Any

from cosmos_workflow.config.settings import Transfer25Settings
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
    setup_flag_problems,
)
from cosmos_workflow.manifest.specs import RunSpec

PROGRAM = "examples/inference.py"
OUTPUT_DIR = "out"
SAMPLES_DIR = "samples"
VARIANTS = ("edge", "depth", "seg", "vis", "edge/distilled")
MAX_GUIDANCE = 7
MAX_CONTROL_WEIGHT = 1.0
# Options that go into each sample, with the JSON type the program expects.
SAMPLE_OPTIONS: dict[str, type] = {
    "resolution": str,
    "max_frames": int,
    "num_conditional_frames": int,
    "num_video_frames_per_chunk": int,
    "keep_input_resolution": bool,
}
# Options that are command-line flags shared by the whole invocation.
OPTIONS: dict[str, type] = {**SAMPLE_OPTIONS, "model": str, "disable_guardrails": bool}
# Transfer1 parameters that Transfer2.5 does not have: they must stay null.
NOT_PARAMETERS = ("fps", "blur_strength", "canny_threshold")
# Flags that change memory use, timing or error handling, never an output.
SETUP_FLAGS = frozenset(
    {
        "--offload-guardrail-models",
        "--keep-going",
        "--no-keep-going",
        "--profile",
        "--benchmark",
        "--compile-tokenizer",
    }
)


def checkpoint(run: RunSpec) -> str | None:
    """The ``--model`` checkpoint: the option, else the run's only control, else the default."""
    chosen = run_options(run).get("model")
    if chosen is not None:
        return str(chosen)
    controls = list(active_controls(run))
    return controls[0] if len(controls) == 1 else None


def _checkpoint_problems(run: RunSpec) -> list[Problem]:
    chosen = run_options(run).get("model")
    if chosen is None:
        return []
    if chosen not in VARIANTS:
        return [Problem("model.options.model", f"must be one of {', '.join(VARIANTS)}")]
    control = str(chosen).split("/", 1)[0]
    used = sorted(active_controls(run))
    if used and used != [control]:
        return [
            Problem(
                "model.options.model",
                f"checkpoint {chosen!r} takes the {control} control only, but the run uses "
                f"{', '.join(used)} (leave it null for several controls)",
            )
        ]
    return []


def _parameter_problems(run: RunSpec) -> list[Problem]:
    problems = [
        Problem(
            f"model.{key}",
            "is not a Transfer2.5 parameter; set it to null (model=transfer2.5 does)",
        )
        for key in NOT_PARAMETERS
        if run.model.get(key) is not None
    ]
    guidance = float(run.model["guidance"])
    if not (math.isfinite(guidance) and guidance.is_integer() and 0 <= guidance <= MAX_GUIDANCE):
        problems.append(
            Problem("model.guidance", f"Transfer2.5 takes a whole number from 0 to {MAX_GUIDANCE}")
        )
    controls = active_controls(run)
    if not controls:
        problems.append(Problem("model.weights", "set at least one control weight"))
    for key, weight in controls.items():
        if weight > MAX_CONTROL_WEIGHT:
            problems.append(
                Problem(f"model.weights.{key}", f"Transfer2.5 takes at most {MAX_CONTROL_WEIGHT:g}")
            )
    if run.prompt.inputs.video is None:
        problems.append(
            Problem(f"prompts.{run.prompt.name}.inputs.video", "Transfer2.5 needs an input video")
        )
    return problems


def sample(run: RunSpec, layout: JobLayout) -> dict[str, Any]:
    """The sample JSON of one run: every parameter it asked for, nothing else."""
    data: dict[str, Any] = {"name": run.id, "prompt": run.prompt.text}
    if run.prompt.inputs.video is not None:
        data["video_path"] = layout.path(input_name(run.prompt.inputs.video))
    if run.prompt.negative is not None:
        data["negative_prompt"] = run.prompt.negative
    data["seed"] = run.model["seed"]
    data["guidance"] = int(run.model["guidance"])
    data["num_steps"] = run.model["num_steps"]
    if run.model.get("sigma_max") is not None:
        data["sigma_max"] = run.model["sigma_max"]
    options = run_options(run)
    data.update({k: options[k] for k in SAMPLE_OPTIONS if k in options})
    for key, weight in active_controls(run).items():
        block: dict[str, Any] = {"control_weight": weight}
        control = run.prompt.inputs.controls.get(key)
        if control is not None:
            block["control_path"] = layout.path(input_name(control))
        data[key] = block
    return data


class Transfer25Adapter(ModelAdapter):
    """Renders Cosmos-Transfer2.5 sample files and the inference command.

    Args:
        settings: Where Transfer2.5 is in the image, batch size, set-up flags.
    """

    name = "transfer2.5"

    def __init__(self, settings: Transfer25Settings) -> None:
        self._settings = settings
        self.max_batch_size = settings.max_batch_size
        self._setting_problems = setup_flag_problems(
            settings.extra_args, SETUP_FLAGS, "adapters.transfer2_5.extra_args"
        )

    def validate(self, run: RunSpec) -> list[Problem]:
        """What examples/inference.py would refuse in ``run``."""
        return [
            *self._setting_problems,
            *option_problems(run, OPTIONS),
            *_checkpoint_problems(run),
            *_parameter_problems(run),
        ]

    def batch_key(self, run: RunSpec) -> Hashable:
        """Samples carry their own parameters: only the command line is shared."""
        return (
            run.adapter,
            run.model["version"],
            run.model.get("image"),
            run.model["num_gpus"],
            checkpoint(run),
            bool(run_options(run).get("disable_guardrails")),
        )

    def render(self, job_id: str, runs: list[RunSpec], layout: JobLayout) -> Invocation:
        """One sample file per run, all given to one ``examples/inference.py``."""
        files: dict[str, bytes] = {}
        specs: dict[str, dict[str, Any]] = {}
        for run in runs:
            specs[run.id] = sample(run, layout)
            files[f"{SAMPLES_DIR}/{run.id}.json"] = (
                json.dumps(specs[run.id], indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            ).encode("utf-8")
        return Invocation(
            job_id=job_id,
            argv=self._argv(runs, layout, [layout.path(name) for name in files]),
            files=files,
            inputs=inputs_of(runs),
            outputs={
                run.id: RunOutputs(
                    f"{OUTPUT_DIR}/{run.id}.mp4", {"prompt": f"{OUTPUT_DIR}/{run.id}.txt"}
                )
                for run in runs
            },
            run_specs=specs,
            workdir=self._settings.workspace,
        )

    def _argv(self, runs: list[RunSpec], layout: JobLayout, samples: list[str]) -> list[str]:
        first = runs[0]
        gpus = first.model["num_gpus"]
        if gpus > 1:
            argv = ["torchrun", "--standalone", "--nnodes=1", f"--nproc_per_node={gpus}", PROGRAM]
        else:
            argv = [layout.python, PROGRAM]
        argv += ["-i", *samples, "-o", layout.path(OUTPUT_DIR)]
        variant = checkpoint(first)
        if variant is not None:
            argv.append(f"--model={variant}")
        if run_options(first).get("disable_guardrails"):
            argv.append("--disable-guardrails")
        return argv + self._settings.extra_args
