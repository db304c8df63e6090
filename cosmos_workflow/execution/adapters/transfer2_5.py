"""The ``transfer2.5`` adapter: NVIDIA Cosmos-Transfer2.5's ``examples/inference.py``.

Every run is one sample JSON file named after its run id; several samples
given to one invocation share one model load and run one after another. Each
sample carries all its own parameters, so runs may share an invocation
whenever they need the same checkpoint (``options.model``) and GPU count.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

from cosmos_workflow.config.settings import Transfer25Settings
from cosmos_workflow.errors import Problem
from cosmos_workflow.execution.adapters import transfer1_spec
from cosmos_workflow.execution.adapters.base import (
    Invocation,
    JobLayout,
    ModelAdapter,
    RunOutputs,
    input_name,
)
from cosmos_workflow.execution.adapters.transfer1 import shadowing_problems
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
# Transfer1 parameters that Transfer2.5 does not have: they must stay null.
NOT_PARAMETERS = ("fps", "blur_strength", "canny_threshold")
OWN_FLAGS = frozenset(
    {
        "i",
        "o",
        "input_files",
        "output_dir",
        "model",
        "name",
        "prompt",
        "prompt_path",
        "video_path",
        "negative_prompt",
        "seed",
        "guidance",
        "num_steps",
        "sigma_max",
        *SAMPLE_OPTIONS,
    }
)


def _option_problems(options: dict[str, Any]) -> list[Problem]:
    problems = []
    for key, value in options.items():
        if value is None:
            continue
        where = f"model.options.{key}"
        if key == "model":
            if value not in VARIANTS:
                problems.append(Problem(where, f"must be one of {', '.join(VARIANTS)}"))
        elif key not in SAMPLE_OPTIONS:
            known = ", ".join(["model", *SAMPLE_OPTIONS])
            problems.append(Problem(where, f"is not a Transfer2.5 option ({known})"))
        elif type(value) is not SAMPLE_OPTIONS[key]:
            problems.append(Problem(where, f"must be a {SAMPLE_OPTIONS[key].__name__}"))
    return problems


def _parameter_problems(run: RunSpec) -> list[Problem]:
    problems = [
        Problem(f"model.{key}", "is not a Transfer2.5 parameter; set it to null")
        for key in NOT_PARAMETERS
        if run.model.get(key) is not None
    ]
    guidance = run.model["guidance"]
    if guidance != int(guidance) or not 0 <= guidance <= MAX_GUIDANCE:
        problems.append(
            Problem("model.guidance", f"Transfer2.5 takes a whole number from 0 to {MAX_GUIDANCE}")
        )
    controls = transfer1_spec.active_controls(run)
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
    options = run.model.get("options", {})
    data.update({k: options[k] for k in SAMPLE_OPTIONS if options.get(k) is not None})
    for key, weight in transfer1_spec.active_controls(run).items():
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
        self._setting_problems = shadowing_problems(
            settings.extra_args, OWN_FLAGS, "adapters.transfer2_5.extra_args"
        )

    def validate(self, run: RunSpec) -> list[Problem]:
        """What examples/inference.py would refuse in ``run``."""
        return [
            *self._setting_problems,
            *_option_problems(run.model.get("options", {})),
            *_parameter_problems(run),
        ]

    def batch_key(self, run: RunSpec) -> Hashable:
        """Samples carry their own parameters: only the checkpoint and GPUs are shared."""
        return (
            run.adapter,
            run.model["version"],
            run.model.get("image"),
            run.model["num_gpus"],
            run.model.get("options", {}).get("model"),
        )

    def render(self, job_id: str, runs: list[RunSpec], layout: JobLayout) -> Invocation:
        """One sample file per run, all given to one ``examples/inference.py``."""
        files: dict[str, bytes] = {}
        specs: dict[str, dict[str, Any]] = {}
        paths = []
        for run in runs:
            relative = f"{SAMPLES_DIR}/{run.id}.json"
            specs[run.id] = sample(run, layout)
            files[relative] = (
                json.dumps(specs[run.id], indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            ).encode("utf-8")
            paths.append(layout.path(relative))
        gpus = runs[0].model["num_gpus"]
        if gpus > 1:
            argv = ["torchrun", "--standalone", "--nnodes=1", f"--nproc_per_node={gpus}", PROGRAM]
        else:
            argv = [layout.python, PROGRAM]
        argv += ["-i", *paths, "-o", layout.path(OUTPUT_DIR)]
        variant = runs[0].model.get("options", {}).get("model")
        if variant is not None:
            argv.append(f"--model={variant}")
        argv += self._settings.extra_args
        outputs = {
            run.id: RunOutputs(
                f"{OUTPUT_DIR}/{run.id}.mp4", {"prompt": f"{OUTPUT_DIR}/{run.id}.txt"}
            )
            for run in runs
        }
        return Invocation(
            job_id=job_id,
            argv=argv,
            files=files,
            inputs=transfer1_spec.inputs_of(runs),
            outputs=outputs,
            run_specs=specs,
            workdir=self._settings.workspace,
        )
