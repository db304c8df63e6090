"""The ``transfer2.5`` adapter: NVIDIA Cosmos-Transfer2.5's ``examples/inference.py``.

Every run is one sample JSON file named after its run id; several samples
given to one invocation share one model load and run one after another. Each
sample carries all its own parameters; the command line carries what the
whole invocation shares (the checkpoint, guardrails, a post-trained
checkpoint, experiment or config file), and the program picks one model for
the union of the samples' controls, so runs share an invocation only when all
of these and their set of controls are the same. The rules of what the
program accepts are in ``transfer2_5_rules``.
"""

from __future__ import annotations

import json
import re
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
    control_settings,
    input_name,
    inputs_of,
    run_options,
    setup_flag_problems,
)
from cosmos_workflow.execution.adapters.transfer2_5_rules import (
    DISTILLED,
    SAMPLE_OPTIONS,
    SETUP_OPTIONS,
    checkpoint,
    problems,
)
from cosmos_workflow.manifest.specs import RunSpec

PROGRAM = "examples/inference.py"
OUTPUT_DIR = "out"
SAMPLES_DIR = "samples"
# The program reads samples and writes NAME.json and NAME.txt with the locale's
# encoding: UTF-8 mode makes that UTF-8 whatever the image's locale is.
UTF8_ENV = {"PYTHONUTF8": "1"}
# tyro offers --model=edge/distilled only when this is true.
EXPERIMENTAL_ENV = {"COSMOS_EXPERIMENTAL_CHECKPOINTS": "1"}
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


def sample(run: RunSpec, layout: JobLayout) -> dict[str, Any]:
    """The sample JSON of one run: every parameter it asked for, nothing else."""
    inputs = run.prompt.inputs
    data: dict[str, Any] = {"name": run.id, "prompt": run.prompt.text}
    if inputs.video is not None:
        data["video_path"] = layout.path(input_name(inputs.video))
    if inputs.image_context is not None:
        data["image_context_path"] = layout.path(input_name(inputs.image_context))
    if run.prompt.negative is not None:
        data["negative_prompt"] = run.prompt.negative
    data["seed"] = run.model["seed"]
    data["guidance"] = int(run.model["guidance"])
    data["num_steps"] = run.model["num_steps"]
    if run.model.get("sigma_max") is not None:
        # A string in the sample model (the program converts it with float()).
        data["sigma_max"] = str(float(run.model["sigma_max"]))
    options = run_options(run)
    data.update({k: options[k] for k in SAMPLE_OPTIONS if k in options})
    for key, weight in active_controls(run).items():
        block: dict[str, Any] = {"control_weight": weight}
        if key in inputs.controls:
            block["control_path"] = layout.path(input_name(inputs.controls[key]))
        if key in inputs.masks:
            block["mask_path"] = layout.path(input_name(inputs.masks[key]))
        block.update(control_settings(run, key))
        data[key] = block
    return data


def sample_bytes(data: dict[str, Any]) -> bytes:
    """A sample file: ASCII only (\\u escapes), readable whatever the locale's encoding."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def outputs(run: RunSpec) -> RunOutputs:
    """NAME.mp4, NAME.txt (the prompt) and NAME_control_KEY.mp4 of every control."""
    name = f"{OUTPUT_DIR}/{run.id}"
    return RunOutputs(
        f"{name}.mp4",
        {"prompt": f"{name}.txt"},
        controls={key: f"{name}_control_{key}.mp4" for key in active_controls(run)},
    )


# cosmos_transfer2/inference.py logs each sample's start, and a text guardrail
# block ("Guardrail blocked generation. Prompt: ..."), then keeps going; with
# --no-keep-going it raises that message instead, or, for a video its guardrail
# blocked, "Guardrail blocked video2world generation.", and the program ends.
SAMPLE_START = re.compile(r"\[\d+/\d+\] Processing sample (\S+)")
TEXT_BLOCKED = re.compile(r"Guardrail blocked generation\. (Prompt|Negative prompt):")
VIDEO_BLOCKED = "Guardrail blocked video2world generation."


def ended_on_block(log: str) -> str | None:
    """Why examples/inference.py ended on a blocked sample (--no-keep-going), from its log.

    The block must be in the last sample's section: a block the program kept
    going past (an earlier section) does not explain a failure after it.
    """
    starts = list(SAMPLE_START.finditer(log))
    if not starts:
        return None
    last = starts[-1]
    text = TEXT_BLOCKED.search(log, last.end())
    if text:
        what = text.group(1).lower()
    elif VIDEO_BLOCKED in log[last.end() :]:
        what = "generated video"
    else:
        return None
    return f"blocked by the guardrail: the {what} of sample {last.group(1)} was judged unsafe"


def skipped_sample_reason(log: str, name: str) -> str | None:
    """Why examples/inference.py skipped sample ``name``, from its console log."""
    starts = list(SAMPLE_START.finditer(log))
    for index, start in enumerate(starts):
        if start.group(1) != name:
            continue
        end = starts[index + 1].start() if index + 1 < len(starts) else len(log)
        blocked = TEXT_BLOCKED.search(log, start.end(), end)
        if blocked:
            return f"blocked by the guardrail: the {blocked.group(1).lower()} was judged unsafe"
        return (
            "the program skipped it and kept going (a video its guardrail blocked "
            "leaves no line in the console log; see the program's own log in out/)"
        )
    return None


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
        """What examples/inference.py would refuse (or ignore) in ``run``."""
        return [*self._setting_problems, *problems(run)]

    def failure_reason(self, log: str) -> str | None:
        """A sample the guardrail blocked, which ended the program (--no-keep-going)."""
        return ended_on_block(log)

    def skipped_reason(self, log: str, run_id: str) -> str | None:
        """A sample the program kept going past: blocked by the text guardrail, or skipped."""
        return skipped_sample_reason(log, run_id)

    def batch_key(self, run: RunSpec) -> Hashable:
        """Everything one invocation shares: its command line and its model's controls."""
        options = run_options(run)
        return (
            run.adapter,
            run.model["version"],
            run.model.get("image"),
            run.model["num_gpus"],
            checkpoint(run),
            bool(options.get("disable_guardrails")),
            tuple(active_controls(run)),
            tuple(options.get(key) for key in SETUP_OPTIONS),
        )

    def render(self, job_id: str, runs: list[RunSpec], layout: JobLayout) -> Invocation:
        """One sample file per run, all given to one ``examples/inference.py``."""
        files: dict[str, bytes] = {}
        specs: dict[str, dict[str, Any]] = {}
        for run in runs:
            specs[run.id] = sample(run, layout)
            files[f"{SAMPLES_DIR}/{run.id}.json"] = sample_bytes(specs[run.id])
        env = dict(UTF8_ENV)
        if checkpoint(runs[0]) == DISTILLED:
            env.update(EXPERIMENTAL_ENV)
        return Invocation(
            job_id=job_id,
            argv=self._argv(runs, layout, [layout.path(name) for name in files]),
            files=files,
            inputs=inputs_of(runs),
            outputs={run.id: outputs(run) for run in runs},
            run_specs=specs,
            workdir=self._settings.workspace,
            env=env,
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
        options = run_options(first)
        if options.get("disable_guardrails"):
            argv.append("--disable-guardrails")
        argv += [f"{flag}={options[key]}" for key, flag in SETUP_OPTIONS.items() if key in options]
        return argv + self._settings.extra_args
