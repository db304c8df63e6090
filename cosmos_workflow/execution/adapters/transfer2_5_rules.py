"""What Cosmos-Transfer2.5's ``examples/inference.py`` accepts, checked by manifest key path.

The rules were read from nvidia-cosmos/cosmos-transfer2.5 (docs/models.md names
the file of each): the set-up flags and the sample model in
``cosmos_transfer2/config.py``, what a checkpoint ignores in
``cosmos_transfer2/inference.py``, and what ends the program during generation
in the inference pipeline. Any sample the program refuses ends the whole
invocation (``sys.exit(1)``, every run of the job), so each rule is checked
here, before any GPU time. A value the program would ignore in a mode is
refused too, so runs that differ only in it are never "different" runs.
"""

from __future__ import annotations

import math

from cosmos_workflow.errors import Problem
from cosmos_workflow.execution.adapters.base import (
    active_controls,
    control_settings,
    option_problems,
    run_options,
)
from cosmos_workflow.manifest.specs import InputFile, RunSpec

VARIANTS = ("edge", "depth", "seg", "vis", "edge/distilled")
DISTILLED = "edge/distilled"
# The controls Transfer2.5 has (keypoint, hdmap and lidar are Transfer1's).
CONTROLS = ("edge", "vis", "depth", "seg")
# The keys of VIDEO_RES_SIZE_INFO: any other resolution ends the program mid-batch.
RESOLUTIONS = ("256", "480", "480p", "512", "720", "720p", "720robocasa", "1024", "1080")
THRESHOLDS = ("very_low", "low", "medium", "high", "very_high")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_GUIDANCE = 7
# The sample model's default guidance; the distilled checkpoint ignores guidance.
DEFAULT_GUIDANCE = 3
MAX_CONTROL_WEIGHT = 1.0
MAX_SIGMA = 200.0
CONDITIONAL_FRAMES = (0, 1, 2)
DEFAULT_CONDITIONAL_FRAMES = 1
# Options that go into each sample, with the JSON type the program expects.
SAMPLE_OPTIONS: dict[str, type] = {
    "resolution": str,
    "max_frames": int,
    "num_conditional_frames": int,
    "num_video_frames_per_chunk": int,
    "keep_input_resolution": bool,
}
# Options that are set-up flags of the whole invocation, spelled as the program does.
SETUP_OPTIONS: dict[str, str] = {
    "checkpoint_path": "--checkpoint-path",
    "experiment": "--experiment",
    "config_file": "--config-file",
}
OPTIONS: dict[str, type] = {
    **SAMPLE_OPTIONS,
    **dict.fromkeys(SETUP_OPTIONS, str),
    "model": str,
    "disable_guardrails": bool,
}
# Transfer1 parameters that Transfer2.5 does not have: they must stay null.
NOT_PARAMETERS = ("fps", "blur_strength", "canny_threshold")
# model.controls.KEY.SETTING: the choices of each setting (None: any non-empty text).
CONTROL_SETTINGS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "edge": {"mask_prompt": None, "preset_edge_threshold": THRESHOLDS},
    "vis": {"mask_prompt": None, "preset_blur_strength": THRESHOLDS},
    "depth": {"mask_prompt": None},
    "seg": {"mask_prompt": None, "control_prompt": None},
}
# Settings used only when the program computes the control from the input video.
COMPUTED_ONLY = frozenset({"preset_edge_threshold", "preset_blur_strength", "control_prompt"})


def checkpoint(run: RunSpec) -> str | None:
    """The ``--model`` checkpoint: the option, else the run's only control, else the default."""
    chosen = run_options(run).get("model")
    if chosen is not None:
        return str(chosen)
    controls = list(active_controls(run))
    return controls[0] if len(controls) == 1 else None


def problems(run: RunSpec) -> list[Problem]:
    """Everything about ``run`` that examples/inference.py would refuse or ignore."""
    found = option_problems(run, OPTIONS)
    return [
        *found,
        *_checkpoint_problems(run),
        *_option_range_problems(run, {p.key_path for p in found}),
        *_scalar_problems(run),
        *_control_problems(run),
        *_input_problems(run),
        *_setting_problems(run),
    ]


def _checkpoint_problems(run: RunSpec) -> list[Problem]:
    """model.options.model: a checkpoint the program offers, for the run's one control."""
    chosen = run_options(run).get("model")
    if chosen is None or not isinstance(chosen, str):
        return []
    if chosen not in VARIANTS:
        return [Problem("model.options.model", f"must be one of {', '.join(VARIANTS)}")]
    control = chosen.split("/", 1)[0]
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


def _option_range_problems(run: RunSpec, mistyped: set[str]) -> list[Problem]:
    """The ranges of the sample and set-up options (those of the right type)."""
    options = {
        key: value
        for key, value in run_options(run).items()
        if key in OPTIONS and f"model.options.{key}" not in mistyped
    }
    found = []

    def refuse(key: str, message: str) -> None:
        """Note a problem of ``model.options.KEY``."""
        found.append(Problem(f"model.options.{key}", message))

    if options.get("resolution", RESOLUTIONS[0]) not in RESOLUTIONS:
        refuse("resolution", f"must be one of {', '.join(RESOLUTIONS)} (a string)")
    if options.get("max_frames", 2) < 2:
        refuse("max_frames", "must be 2 or more (1 makes a still image, NAME.jpg, not a video)")
    conditional = options.get("num_conditional_frames", DEFAULT_CONDITIONAL_FRAMES)
    if conditional not in CONDITIONAL_FRAMES:
        refuse("num_conditional_frames", "must be 0, 1 or 2")
        conditional = DEFAULT_CONDITIONAL_FRAMES
    chunk = options.get("num_video_frames_per_chunk")
    if chunk is not None and chunk < max(2, conditional + 1):
        refuse(
            "num_video_frames_per_chunk",
            f"must be at least 2 and more than num_conditional_frames ({conditional}): "
            "1 makes a still image, fewer frames than the conditioning ones end the program",
        )
    several = len(active_controls(run)) > 1
    for key in SETUP_OPTIONS:
        value = options.get(key)
        if value is None:
            continue
        if not value.strip():
            refuse(key, "must not be empty (null: the checkpoint's own)")
        elif several and key != "config_file":
            refuse(
                key,
                "is ignored when a run uses several controls (the program then loads its "
                "multicontrol checkpoints): use one control, or leave it null",
            )
    path = options.get("checkpoint_path")
    if isinstance(path, str) and "://" in path and not _is_hf_file(path):
        refuse(
            "checkpoint_path",
            "must be a path in the image (relative to the workspace) or hf://ORG/REPO/FILE",
        )
    return found


def _is_hf_file(uri: str) -> bool:
    """True for hf://ORG/REPO/FILE (a file of a Hugging Face repository)."""
    parts = uri.removeprefix("hf://").strip("/").split("/")
    return uri.startswith("hf://") and len(parts) >= 3 and all(parts)


def _scalar_problems(run: RunSpec) -> list[Problem]:
    """Transfer1-only parameters, guidance, sigma_max, and what the distilled checkpoint ignores."""
    found = [
        Problem(
            f"model.{key}",
            "is not a Transfer2.5 parameter; set it to null (model=transfer2.5 does)",
        )
        for key in NOT_PARAMETERS
        if run.model.get(key) is not None
    ]
    distilled = checkpoint(run) == DISTILLED
    guidance = float(run.model["guidance"])
    if not (math.isfinite(guidance) and guidance.is_integer() and 0 <= guidance <= MAX_GUIDANCE):
        found.append(
            Problem("model.guidance", f"Transfer2.5 takes a whole number from 0 to {MAX_GUIDANCE}")
        )
    elif distilled and guidance != DEFAULT_GUIDANCE:
        found.append(
            Problem(
                "model.guidance",
                f"the {DISTILLED} checkpoint ignores guidance: leave it at {DEFAULT_GUIDANCE}",
            )
        )
    sigma_max = run.model.get("sigma_max")
    if sigma_max is not None:
        if distilled:
            found.append(
                Problem("model.sigma_max", f"the {DISTILLED} checkpoint fails on it: set null")
            )
        elif run_options(run).get("experiment") is None:
            found.append(
                Problem(
                    "model.sigma_max",
                    "NVIDIA's Transfer2.5 checkpoints (rectified flow) ignore it: set null, "
                    "or name the experiment that uses it in model.options.experiment",
                )
            )
        elif sigma_max > MAX_SIGMA:
            found.append(Problem("model.sigma_max", f"must be 0 to {MAX_SIGMA:g}"))
    if distilled and run.prompt.negative is not None:
        found.append(
            Problem(
                f"prompts.{run.prompt.name}.negative",
                f"the {DISTILLED} checkpoint ignores the negative prompt: remove it",
            )
        )
    return found


def _control_problems(run: RunSpec) -> list[Problem]:
    """At least one control, each of Transfer2.5's, each weight at most its maximum."""
    controls = active_controls(run)
    if not controls:
        return [Problem("model.weights", "set at least one control weight")]
    found = []
    for key, weight in controls.items():
        if key not in CONTROLS:
            found.append(Problem(f"model.weights.{key}", _not_a_control(key)))
        elif weight > MAX_CONTROL_WEIGHT:
            found.append(
                Problem(f"model.weights.{key}", f"Transfer2.5 takes at most {MAX_CONTROL_WEIGHT:g}")
            )
    return found


def _not_a_control(key: str) -> str:
    """Why ``key`` is refused: a Transfer1 control."""
    return f"{key} is a Transfer1 control; Transfer2.5 has {', '.join(CONTROLS)}"


def _input_problems(run: RunSpec) -> list[Problem]:
    """The prompt's input files: a video, Transfer2.5's controls and masks, an image context."""
    inputs = run.prompt.inputs
    base = f"prompts.{run.prompt.name}.inputs"
    found = []
    if inputs.video is None:
        found.append(Problem(f"{base}.video", "Transfer2.5 needs an input video"))
    elif _suffix(inputs.video) not in VIDEO_SUFFIXES:
        found.append(
            Problem(
                f"{base}.video",
                f"must be a video ({', '.join(VIDEO_SUFFIXES)}): the program fails on others "
                "and makes a still image of a picture",
            )
        )
    for role in ("controls", "masks"):
        found += [
            Problem(f"{base}.{role}.{key}", _not_a_control(key))
            for key in getattr(inputs, role)
            if key not in CONTROLS
        ]
    found += [
        Problem(
            f"{base}.weight_maps.{key}",
            "weight maps are Transfer1's; Transfer2.5 takes a mask video (inputs.masks)",
        )
        for key in inputs.weight_maps
    ]
    context = inputs.image_context
    if context is not None:
        if _suffix(context) not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            found.append(
                Problem(
                    f"{base}.image_context",
                    f"must be an image or video ({', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)})",
                )
            )
        if "vis" in active_controls(run):
            found.append(
                Problem(
                    f"{base}.image_context",
                    "the program refuses an image context together with the vis control",
                )
            )
    return found


def _suffix(item: InputFile) -> str:
    """The input file's suffix, in lower case."""
    return item.path.suffix.lower()


def _setting_problems(run: RunSpec) -> list[Problem]:
    """model.controls.KEY: known settings, their values, and where the program uses them."""
    inputs = run.prompt.inputs
    found = []
    for key in run.model.get("controls", {}):
        if key not in CONTROLS:
            found.append(Problem(f"model.controls.{key}", _not_a_control(key)))
            continue
        allowed = CONTROL_SETTINGS[key]
        for name, value in control_settings(run, key).items():
            where = f"model.controls.{key}.{name}"
            if name not in allowed:
                found.append(
                    Problem(where, f"the {key} control's settings are {', '.join(allowed)}")
                )
            elif not isinstance(value, str) or not value.strip():
                found.append(Problem(where, "must be a non-empty string"))
            elif allowed[name] is not None and value not in allowed[name]:
                found.append(Problem(where, f"must be one of {', '.join(allowed[name])}"))
            elif name in COMPUTED_ONLY and key in inputs.controls:
                found.append(
                    Problem(
                        where,
                        f"is ignored when a {key} control video is given "
                        f"(prompts.{run.prompt.name}.inputs.controls.{key}): remove one",
                    )
                )
            elif name == "mask_prompt" and key in inputs.masks:
                found.append(
                    Problem(
                        where,
                        f"is ignored when a mask video is given "
                        f"(prompts.{run.prompt.name}.inputs.masks.{key}): remove one",
                    )
                )
    return found
