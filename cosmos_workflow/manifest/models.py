"""Pydantic models of a manifest: prompt sets, model parameters, sweep block.

Every model forbids extra keys, so a typo is an error that names its key path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# Re-exported: defined beside the specs, which need no pydantic.
from cosmos_workflow.manifest.specs import CONTROL_KEYS as CONTROL_KEYS

ControlKey = Literal["vis", "edge", "depth", "seg", "keypoint", "hdmap", "lidar"]
# A value of an adapter-checked setting: null means "the program's default".
OptionValue = str | int | float | bool | None
Strength = Literal["very_low", "low", "medium", "high", "very_high"]


def _not_a_boolean(value: Any) -> Any:
    """Refuse true/false where a number is meant (lax mode would read true as 1)."""
    if isinstance(value, bool):
        raise ValueError(f"a boolean ({str(value).lower()}) is not a number: write the number")
    return value


# Numbers of the manifest: ints and floats as pydantic's lax mode takes them
# (5 and 5.0 are the same guidance), but never a boolean.
Int = Annotated[int, BeforeValidator(_not_a_boolean)]
Float = Annotated[float, BeforeValidator(_not_a_boolean)]


class Strict(BaseModel):
    """Base: unknown keys are errors; numbers are finite."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=False, allow_inf_nan=False)


class PromptInputs(Strict):
    """Input videos of a prompt. Paths are relative to the project directory."""

    video: str | None = None
    controls: dict[ControlKey, str] = Field(default_factory=dict)
    # Spatio-temporal control weights (.pt files), used instead of the control's scalar weight.
    weight_maps: dict[ControlKey, str] = Field(default_factory=dict)
    # Mask videos: where a control applies.
    masks: dict[ControlKey, str] = Field(default_factory=dict)
    # An image the model takes as context.
    image_context: str | None = None


class PromptSpec(Strict):
    """One prompt of a prompt set. ``text`` may be a jinja2 template."""

    text: str = Field(min_length=1)
    negative: str | None = None
    inputs: PromptInputs = Field(default_factory=PromptInputs)


class ControlWeights(Strict):
    """Control weight per modality; null means the control is not used."""

    vis: Float | None = Field(default=None, ge=0)
    edge: Float | None = Field(default=None, ge=0)
    depth: Float | None = Field(default=None, ge=0)
    seg: Float | None = Field(default=None, ge=0)
    keypoint: Float | None = Field(default=None, ge=0)
    hdmap: Float | None = Field(default=None, ge=0)
    lidar: Float | None = Field(default=None, ge=0)

    def active(self) -> dict[str, float]:
        """Return the modalities that have a weight, in canonical order."""
        values = self.model_dump()
        return {key: values[key] for key in CONTROL_KEYS if values[key] is not None}


class ModelConfig(Strict):
    """The model adapter and every parameter that reaches it."""

    adapter: str = Field(min_length=1)
    version: str = Field(min_length=1)
    image: str | None = None
    seed: Int = Field(default=1, ge=0)
    num_steps: Int = Field(default=35, ge=1)
    guidance: Float = Field(default=5.0, ge=0)
    sigma_max: Float | None = Field(default=70.0, ge=0)
    fps: Int | None = Field(default=24, ge=1)
    blur_strength: Strength | None = "medium"
    canny_threshold: Strength | None = "medium"
    num_gpus: Int = Field(default=1, ge=1)
    weights: ControlWeights = Field(default_factory=ControlWeights)
    # Parameters only one adapter knows (checked by that adapter), e.g. Transfer2.5's
    # resolution. Null means "the program's default".
    options: dict[str, OptionValue] = Field(default_factory=dict)
    # Per-control settings besides the weight (checked by the adapter), e.g.
    # Transfer1's ckpt_path or Transfer2.5's mask_prompt: controls.seg.mask_prompt.
    controls: dict[ControlKey, dict[str, OptionValue]] = Field(default_factory=dict)


class SweepBlock(Strict):
    """A grid (cartesian product) and a zip (values that vary together)."""

    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)


class UpscaleStage(Strict):
    """4K-upscale every succeeded output of the sweep, after it."""

    weight: Float = Field(default=0.5, ge=0)
    prompt: str | None = Field(default=None, min_length=1)


class Stages(Strict):
    """Work before and after a sweep's runs.

    Attributes:
        enhance: Rewrite every prompt with the prompt upsampler first; the
            sweep runs the enhanced prompts.
        upscale: Upscale every succeeded output to 4K afterwards (null: no).
    """

    enhance: bool = False
    upscale: UpscaleStage | None = None


class Manifest(Strict):
    """A whole experiment: what to run, with which model, over which sweep."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    vars: dict[str, Any] = Field(default_factory=dict)
    prompts: dict[str, PromptSpec] = Field(min_length=1)
    model: ModelConfig
    sweep: SweepBlock = Field(default_factory=SweepBlock)
    stages: Stages = Field(default_factory=Stages)
