"""What Cosmos-Transfer1's ``transfer.py`` refuses, or ignores, in a run.

Every rule was read in nvidia-cosmos/cosmos-transfer1 (docs/models.md names
the file of each). A run the program would refuse is refused here, before
any GPU time; so is a value the program would silently not use in the run's
mode, because it would make runs with equal outputs look different.
"""

from __future__ import annotations

from typing import Any

from cosmos_workflow.errors import Problem
from cosmos_workflow.execution.adapters.base import (
    active_controls,
    control_settings,
    option_problems,
    run_options,
)
from cosmos_workflow.manifest.models import ModelConfig
from cosmos_workflow.manifest.specs import RunSpec

# transfer.py arguments a manifest may set under model.options.
OPTIONS: dict[str, type] = {"num_input_frames": int, "upsample_prompt": bool, "use_distilled": bool}
# Settings of one control block besides its weight and video (model.controls.KEY).
CONTROL_SETTINGS = ("ckpt_path", "control_weight_prompt", "input_control_prompt")
# Controls transfer.py computes from the input video when no control video is
# given (preprocessors.py); hdmap and lidar it cannot compute.
COMPUTED_CONTROLS = ("vis", "edge", "depth", "seg", "keypoint")
# Controls of the Sample-AV model (transfer.py --is_av_sample).
AV_CONTROLS = ("hdmap", "lidar")
# The prompt upsampler inside transfer.py reads a vis or edge control first,
# else depth or seg (world_generation_pipeline.py, _init_prompt_upsampler).
UPSAMPLER_VIS = ("vis", "edge")
UPSAMPLER_OTHER = ("depth", "seg")
# set_random_seed seeds numpy with it (utils/misc.py): 0 <= seed < 2**32.
MAX_SEED = 2**32 - 1
# Without an input video transfer.py needs sigma_max >= 80, then starts from pure
# noise without using it (inference_utils.py, world_generation_pipeline.py).
NO_VIDEO_SIGMA_MAX = 80.0
# transfer.py's defaults; ModelConfig's defaults are the same values.
DEFAULTS: dict[str, Any] = {
    name: ModelConfig.model_fields[name].default for name in ("guidance", "num_steps", "sigma_max")
}
DEFAULT_STRENGTH = "medium"
# The one control the distilled checkpoint exists for (inference_utils.py).
DISTILLED_CONTROL = "edge"


def is_av(run: RunSpec) -> bool:
    """Whether the run uses the Sample-AV model (its controls are hdmap or lidar)."""
    return any(key in AV_CONTROLS for key in active_controls(run))


def upsampler_control(run: RunSpec) -> str | None:
    """The control whose video transfer.py's prompt upsampler reads (None: no upsampling).

    vis, else edge; without them depth, else seg (the first in the spec's key
    order, and spec files are written with sorted keys).
    """
    if not run_options(run).get("upsample_prompt"):
        return None
    controls = active_controls(run)
    for key in (*UPSAMPLER_VIS, *UPSAMPLER_OTHER):
        if key in controls:
            return key
    return None


def transfer1_problems(run: RunSpec) -> list[Problem]:
    """What Cosmos-Transfer1 would refuse or ignore in ``run``, found before any GPU time."""
    problems = option_problems(run, OPTIONS)
    if not active_controls(run):
        keys = ", ".join(k for k in run.model["weights"] if k != "upscale")
        return [*problems, Problem("model.weights", f"set at least one control weight ({keys})")]
    for check in (
        _option_values,
        _inputs,
        _av_controls,
        _no_video,
        _numbers,
        _settings,
        _distilled,
        _upsampler,
        _strengths,
    ):
        problems += check(run)
    return problems


def _option_values(run: RunSpec) -> list[Problem]:
    """num_input_frames: transfer.py takes only 1."""
    frames = run_options(run).get("num_input_frames")
    if frames is None or frames == 1 or isinstance(frames, bool):
        return []
    return [
        Problem(
            "model.options.num_input_frames",
            f"transfer.py takes only 1 (its --num_input_frames has choices [1]), got {frames!r}",
        )
    ]


def _inputs(run: RunSpec) -> list[Problem]:
    """Inputs Transfer1 has no use for, and weight maps it would not read as maps."""
    inputs, where = run.prompt.inputs, f"prompts.{run.prompt.name}.inputs"
    problems = [
        Problem(f"{where}.masks.{key}", "Transfer1 takes no masks (a Transfer2.5 input)")
        for key in inputs.masks
    ]
    if inputs.image_context is not None:
        problems.append(
            Problem(f"{where}.image_context", "Transfer1 takes no image context (Transfer2.5)")
        )
    problems += [
        Problem(
            f"{where}.weight_maps.{key}",
            "must be a .pt file: transfer.py reads a control_weight as a weight map only "
            "when it ends in .pt (a tensor of T x H x W or H x W weights)",
        )
        for key, item in inputs.weight_maps.items()
        if item.path.suffix.lower() != ".pt"
    ]
    return problems


def _av_controls(run: RunSpec) -> list[Problem]:
    """hdmap and lidar: the Sample-AV model's, alone, each with its control video."""
    controls = active_controls(run)
    av = [key for key in controls if key in AV_CONTROLS]
    if not av:
        return []
    problems = []
    others = [key for key in controls if key not in AV_CONTROLS]
    if others:
        problems.append(
            Problem(
                "model.weights",
                f"{' and '.join(av)} are controls of the Sample-AV model (transfer.py "
                f"--is_av_sample) and cannot be mixed with {', '.join(others)}",
            )
        )
    problems += [
        Problem(
            f"prompts.{run.prompt.name}.inputs.controls.{key}",
            f"transfer.py cannot compute a {key} control video: give one",
        )
        for key in av
        if key not in run.prompt.inputs.controls
    ]
    return problems


def _no_video(run: RunSpec) -> list[Problem]:
    """Without an input video: sigma_max exactly 80 and a video for every control."""
    if run.prompt.inputs.video is not None:
        return []
    name = run.prompt.name
    problems = []
    sigma_max = run.model.get("sigma_max")
    if sigma_max != NO_VIDEO_SIGMA_MAX:
        shown = DEFAULTS["sigma_max"] if sigma_max is None else sigma_max
        problems.append(
            Problem(
                "model.sigma_max",
                f"must be {NO_VIDEO_SIGMA_MAX:g} for prompt {name!r}, which has no input video "
                f"(got {shown:g}): transfer.py needs at least 80 then, and with no video to "
                "start from it does not use the value",
            )
        )
    problems += [
        Problem(
            f"prompts.{name}.inputs.controls.{key}",
            "a control video is required when the prompt has no input video",
        )
        for key in active_controls(run)
        if key not in run.prompt.inputs.controls and key not in AV_CONTROLS  # (_av_controls)
    ]
    return problems


def _numbers(run: RunSpec) -> list[Problem]:
    """The seed's range, and weights the program would divide by their sum."""
    problems = []
    seed = run.model.get("seed")
    if seed is not None and seed > MAX_SEED:
        problems.append(
            Problem("model.seed", f"must be at most {MAX_SEED} (numpy's seed range), got {seed}")
        )
    if run.prompt.inputs.weight_maps:
        # Maps are normalised per location: no sum rule holds.
        return problems + _zero_beside_maps(run)
    problems += weight_sum_problems(active_controls(run))
    return problems


def _zero_beside_maps(run: RunSpec) -> list[Problem]:
    """A weight of 0 where a control of the run has a weight map: transfer.py runs it at 1.

    load_spatial_temporal_weights reads a weight that is not truthy as none
    given and makes it a map of ones once any control has a map.
    """
    controls, maps = active_controls(run), run.prompt.inputs.weight_maps
    mapped = ", ".join(key for key in controls if key in maps)
    if not mapped:
        return []
    return [
        Problem(
            f"model.weights.{key}",
            f"is 0 while {mapped} has a weight map: transfer.py then runs {key} at weight 1 "
            "(it reads 0 as no weight given); use null to turn a control off",
        )
        for key, weight in controls.items()
        if weight == 0 and key not in maps
    ]


def weight_sum_problems(weights: dict[str, float]) -> list[Problem]:
    """Weights above a sum of 1, which transfer.py divides by their sum.

    So weights summing to more than 1 give the output of smaller ones: a
    single weight of 2 runs as 1, and 0.6 + 0.6 as 0.5 + 0.5.
    """
    total = sum(weights.values())
    if total <= 1 + 1e-9:
        return []
    scaled = ", ".join(f"{key} {weight / total:.3g}" for key, weight in weights.items())
    return [
        Problem(
            "model.weights",
            f"sum to {total:g}: transfer.py divides control weights by their sum when it is "
            f"above 1, so this run would be {scaled}; give weights that sum to at most 1",
        )
    ]


def _settings(run: RunSpec) -> list[Problem]:
    """model.controls.KEY: known settings, text values, and where each is used."""
    problems = []
    for key in run.model.get("controls") or {}:
        for setting, value in control_settings(run, key).items():
            where = f"model.controls.{key}.{setting}"
            if setting not in CONTROL_SETTINGS:
                known = ", ".join(CONTROL_SETTINGS)
                problems.append(Problem(where, f"is not a Transfer1 control setting ({known})"))
            elif not isinstance(value, str) or not value.strip():
                problems.append(Problem(where, "must be a non-empty text"))
            else:
                problems += _setting_use(run, key, setting)
    return problems


def _setting_use(run: RunSpec, key: str, setting: str) -> list[Problem]:
    """Settings transfer.py would not use for this control or prompt."""
    where, inputs, name = f"model.controls.{key}.{setting}", run.prompt.inputs, run.prompt.name
    if setting == "ckpt_path":
        return []
    if key != "seg":
        return [Problem(where, f"transfer.py uses {setting} for seg only, not for {key}")]
    if setting == "input_control_prompt" and "seg" in inputs.controls:
        return [
            Problem(
                where,
                f"prompt {name!r} gives a seg control video, so transfer.py computes none and "
                "never reads this prompt: remove one of them",
            )
        ]
    if setting == "control_weight_prompt":
        if inputs.video is None:
            return [Problem(where, f"segments the input video: prompt {name!r} has none")]
        if "seg" in inputs.weight_maps:
            return [
                Problem(
                    f"prompts.{name}.inputs.weight_maps.seg",
                    "model.controls.seg.control_weight_prompt makes transfer.py replace this "
                    "weight map with its own: give one of them",
                )
            ]
    return []


def _distilled(run: RunSpec) -> list[Problem]:
    """The distilled model: edge alone, one step, no guidance or negative prompt."""
    if not run_options(run).get("use_distilled"):
        return []
    controls = list(active_controls(run))
    if controls != [DISTILLED_CONTROL]:
        return [
            Problem(
                "model.options.use_distilled",
                f"transfer.py has a distilled model for the edge control alone, not for "
                f"{' + '.join(controls)}",
            )
        ]
    problems = []
    for name in ("guidance", "num_steps"):
        if run.model.get(name) != DEFAULTS[name]:
            problems.append(
                Problem(
                    f"model.{name}",
                    f"the distilled model makes a video in one step and does not use {name}: "
                    f"leave it at {DEFAULTS[name]:g}",
                )
            )
    sigma_max = run.model.get("sigma_max")
    if run.prompt.inputs.video is not None and sigma_max not in (None, DEFAULTS["sigma_max"]):
        problems.append(
            Problem(
                "model.sigma_max",
                f"the distilled model does not use sigma_max: leave it at "
                f"{DEFAULTS['sigma_max']:g} (or null)",
            )
        )
    if run.prompt.negative is not None:
        problems.append(
            Problem(
                f"prompts.{run.prompt.name}.negative",
                "the distilled model does not use a negative prompt: remove it for this model",
            )
        )
    return problems


def _upsampler(run: RunSpec) -> list[Problem]:
    """upsample_prompt needs a control the upsampler reads, and a video of depth or seg."""
    if not run_options(run).get("upsample_prompt"):
        return []
    key = upsampler_control(run)
    if key is None:
        controls = ", ".join(active_controls(run))
        return [
            Problem(
                "model.options.upsample_prompt",
                f"transfer.py's prompt upsampler reads a vis, edge, depth or seg control; "
                f"with {controls} it keeps the prompt as it is: remove upsample_prompt",
            )
        ]
    if key in UPSAMPLER_OTHER and key not in run.prompt.inputs.controls:
        return [
            Problem(
                f"prompts.{run.prompt.name}.inputs.controls.{key}",
                f"upsample_prompt reads the {key} control video before transfer.py computes "
                f"one (it would crash): give the {key} control video or drop upsample_prompt",
            )
        ]
    return []


def _strengths(run: RunSpec) -> list[Problem]:
    """blur_strength and canny_threshold change only a vis or edge video the program makes."""
    problems = []
    for name, key in (("blur_strength", "vis"), ("canny_threshold", "edge")):
        value = run.model.get(name)
        if value in (None, DEFAULT_STRENGTH):
            continue
        if key not in active_controls(run):
            why = f"this run has no {key} control"
        elif key in run.prompt.inputs.controls:
            why = f"prompt {run.prompt.name!r} gives the {key} control video"
        else:
            continue
        problems.append(
            Problem(
                f"model.{name}",
                f"changes only a {key} control that transfer.py computes from the input video, "
                f"and {why}: leave it at {DEFAULT_STRENGTH}",
            )
        )
    return problems
