"""Runs and prompts made from others: enhanced prompts and 4K upscales.

An enhancement run gives a prompt and its input video to the prompt
upsampler; its output is the text of a NEW prompt, linked to the original.
An upscale run's input video is another run's output; it is linked to that
run. Both use the upsampler or upscaler of the parent's model family, with
the parent's version and image, so their ids follow from content like every
other run's.
"""

from __future__ import annotations

import math
from typing import Any

from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.execution.adapters.base import UPSCALE_CONTROL
from cosmos_workflow.execution.adapters.upscale import UPSCALE_NUM_STEPS
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, ResolvedPrompt, RunSpec

# Model family (a video model's adapter) -> its prompt upsampler and 4K upscaler.
UPSAMPLERS = {"simulated": "simulated_upsampler", "transfer1": "transfer1_upsampler"}
UPSCALERS = {"simulated": "simulated_upscaler", "transfer1": "transfer1_upscaler"}
UPSAMPLER_ADAPTERS = frozenset(UPSAMPLERS.values())
DEFAULT_UPSCALE_WEIGHT = 0.5
ORIGIN_ENHANCED = "enhanced"
ORIGIN_UPSCALE_INPUT = "upscale_input"


def _family_adapter(table: dict[str, str], adapter: str, what: str, where: str) -> str:
    if adapter not in table:
        known = ", ".join(sorted(table))
        raise ValidationFailure(f"{where}: model {adapter!r} has no {what} (ones that do: {known})")
    return table[adapter]


def enhancement_spec(prompt: ResolvedPrompt, model: dict[str, Any], where: str) -> RunSpec:
    """The run that upsamples ``prompt`` with the upsampler of ``model``'s family.

    Args:
        prompt: The prompt to enhance (its input video is the context).
        model: The video model's parameters (adapter, version, image).
        where: What asked for it, for error messages (a key path or command).

    Raises:
        ValidationFailure: the model has no upsampler, or the prompt no input video.
    """
    adapter = _family_adapter(UPSAMPLERS, model["adapter"], "prompt upsampler", where)
    if prompt.inputs.video is None:
        raise ValidationFailure(
            f"{where}: prompt {prompt.id} has no input video; the upsampler needs it as context"
        )
    params = {
        "adapter": adapter,
        "version": model["version"],
        "image": model.get("image"),
        "num_gpus": 1,
    }
    return RunSpec(prompt=prompt, model=params, varying={})


def enhanced_prompt(original: ResolvedPrompt, text: str) -> ResolvedPrompt:
    """The new prompt: the upsampler's text, with the original's inputs and negative text."""
    return ResolvedPrompt(original.name, text, original.negative, original.inputs)


def enhanced_origin(run: RunSpec) -> dict[str, Any]:
    """How an enhanced prompt was made (stored with it)."""
    return {"kind": ORIGIN_ENHANCED, "run": run.id, "adapter": run.adapter}


def upscale_spec(
    parent: RunSpec,
    output: InputFile,
    weight: float = DEFAULT_UPSCALE_WEIGHT,
    text: str | None = None,
) -> RunSpec:
    """The run that upscales ``parent``'s output video to 4K.

    Args:
        parent: The run whose output is upscaled.
        output: That output (path and sha256).
        weight: The upscale control weight (>= 0).
        text: A prompt for the upscaler (default: the parent's prompt).

    Raises:
        ValidationFailure: a bad weight or prompt, or a model without upscaler.
    """
    where = f"upscale of {parent.id}"
    adapter = _family_adapter(UPSCALERS, parent.adapter, "4K upscaler", where)
    if not (math.isfinite(weight) and weight >= 0):
        raise ValidationFailure(f"{where}: the weight must be a number >= 0, got {weight}")
    if text is not None and not text.strip():
        raise ValidationFailure(f"{where}: the prompt text is empty")
    model = parent.model
    params = {
        "adapter": adapter,
        "version": model["version"],
        "image": model.get("image"),
        "seed": model.get("seed"),
        "guidance": model.get("guidance"),
        "fps": model.get("fps"),
        "num_steps": UPSCALE_NUM_STEPS,
        "num_gpus": model.get("num_gpus", 1),
        "weights": {UPSCALE_CONTROL: float(weight)},
    }
    prompt = ResolvedPrompt(
        parent.prompt.name,
        parent.prompt.text if text is None else text,
        parent.prompt.negative,
        PromptInputSet(video=output),
    )
    return RunSpec(prompt=prompt, model=params, varying={})


def upscale_origin(parent_run_id: str) -> dict[str, Any]:
    """How an upscale run's prompt was made (stored with it)."""
    return {"kind": ORIGIN_UPSCALE_INPUT, "run": parent_run_id}
