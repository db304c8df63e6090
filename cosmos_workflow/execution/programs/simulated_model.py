#!/usr/bin/env python3
"""Simulated stand-in for Cosmos-Transfer1's ``transfer.py``.

This program lets the whole cosmos-workflow pipeline run without a GPU. It is
honest about what it is: there is no neural network here. It accepts the same
arguments as ``cosmos_transfer1/diffusion/inference/transfer.py``, applies the
same controlnet-spec merge rules (stricter where that catches bugs), sleeps to
imitate model load and generation time, and writes each "generated" video as
a picture that says what it is (sim_frames.py: SIMULATED, the seed, the
control weights and a prompt hash drawn in, the picture changing with each)
in H.264 (h264_pcm.py), followed by one extra top-level MP4 ``free`` box
whose payload is UTF-8 JSON describing the effective generation parameters.
The same run gives the same bytes.

It uses the Python standard library and its two sibling modules only (shipped
with it), so it can run as ``python3 /path/simulated_model.py ...`` inside
minimal containers, or as
``python -m cosmos_workflow.execution.programs.simulated_model ...``.

Exit codes, like transfer.py's: 0 success, 2 a bad command line (argparse),
1 anything transfer.py would fail on later (a spec it refuses, a file it cannot
read: an exception there; a prompt blocked by the simulated guardrail: an
uncaught ``TypeError`` after the earlier videos were saved); the reason is one
line on stderr starting with ``simulated transfer1: error:`` (a traceback for
the guardrail). 17 is a simulated failure (``--fail_on_seed``).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

if __package__:
    from . import h264_pcm, sim_frames
else:  # a script: its sibling modules are shipped beside it (found even under python -I)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import h264_pcm
    import sim_frames

PROG = "simulated transfer1"
ERROR_PREFIX = PROG + ": error:"
OUT_PREFIX = "[simulated]"
GENERATOR = "cosmos-workflow simulated transfer1"

# Environment variable that makes this simulated host slower (0.5) or faster (2).
SPEED_ENV = "COSMOS_SIMULATOR_SPEED"

EXIT_OK = 0
# An exception in transfer.py (a spec it refuses, a file it cannot read) ends it with 1.
EXIT_FAILED = 1
# argparse ends a bad command line with 2.
EXIT_USAGE = 2
EXIT_SIMULATED_FAILURE = 17

CONTROL_KEYS = ("vis", "seg", "edge", "depth", "keypoint", "upscale", "hdmap", "lidar")
CONTROL_FIELDS = (
    "control_weight",
    "input_control",
    "ckpt_path",
    "control_weight_prompt",
    "input_control_prompt",
)
# Fields of a control block that are texts (paths or prompts), never null.
TEXT_FIELDS = ("ckpt_path", "control_weight_prompt", "input_control_prompt")
# Controls transfer.py's preprocessors compute from the input video when they
# have no input_control; it writes each to the video's output folder as
# <key>_input_control_<LOCAL_RANK>.mp4.
COMPUTED_CONTROLS = ("vis", "edge", "depth", "seg", "keypoint")
# The Sample-AV model's controls (--is_av_sample); transfer.py cannot compute them.
AV_CONTROLS = ("hdmap", "lidar")
# The only control with a default distilled checkpoint.
DISTILLED_CONTROL = "edge"
# numpy's seed range (set_random_seed seeds numpy).
MAX_SEED = 2**32 - 1
DEFAULT_CONTROL_WEIGHT = 0.5
MIN_SIGMA_MAX_WITHOUT_VIDEO = 80.0
LEVELS = ("very_low", "low", "medium", "high", "very_high")
BATCH_LINE_KEYS = ("visual_input", "prompt", "control_overrides")

DEFAULT_PROMPT = "A simulated scene: the SIMULATED Cosmos-Transfer1 stand-in draws its parameters."
DEFAULT_NEGATIVE_PROMPT = "Blurry, distorted, low quality, jittery motion, artifacts."

MAX_BOX_PAYLOAD = 0xFFFFFFFF - 8

# transfer.py's blocklist guardrail reads extra words from files in this folder
# of --checkpoint_dir (Blocklist in cosmos_transfer1/auxiliary/guardrail/blocklist).
BLOCKLIST_DIR = "nvidia/Cosmos-Guardrail1/blocklist/exact_match"


class SimulatorError(Exception):
    """Bad input or an I/O problem: reported as one stderr line.

    Attributes:
        exit_code: 2 for a bad command line (argparse), else 1 (an exception).
    """

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        """Keep the message and the exit code transfer.py would end with."""
        super().__init__(message)
        self.exit_code = exit_code


class SimulatedFailure(Exception):
    """A failure requested with --fail_on_seed: exit code 17."""

    def __init__(self, seed: int, index: int) -> None:
        """Remember which seed and video index triggered the failure.

        Args:
            seed: The effective seed of the failing video.
            index: The 0-based index of the failing video.
        """
        super().__init__(f"simulated failure for seed {seed} (video index {index})")
        self.seed = seed
        self.index = index


@dataclass(frozen=True)
class ArgSpec:
    """One command-line argument of the simulated program.

    Attributes:
        name: Argument name without the leading dashes (also the JSON key).
        kind: One of "str", "int", "float", "choice", "flag".
        default: Default value.
        help: Help text (ASCII, no percent signs).
        in_json: Whether the controlnet spec JSON may set it (transfer.py arguments).
        minimum: Inclusive lower bound for numbers, or None.
        required: Whether the command line must give it.
        maximum: Inclusive upper bound for numbers, or None.
        cli_choices: The only values the command line takes (argparse
            choices; transfer.py does not check JSON values against them).
    """

    name: str
    kind: str
    default: Any
    help: str
    in_json: bool = True
    minimum: float | None = None
    required: bool = False
    maximum: float | None = None
    cli_choices: tuple[Any, ...] = ()


ARG_SPECS: tuple[ArgSpec, ...] = (
    ArgSpec("controlnet_specs", "str", None, "Controlnet spec JSON.", False, required=True),
    ArgSpec("prompt", "str", DEFAULT_PROMPT, "Text prompt."),
    ArgSpec("negative_prompt", "str", DEFAULT_NEGATIVE_PROMPT, "Negative prompt."),
    ArgSpec("input_video_path", "str", "", "Input video (empty: none)."),
    ArgSpec("num_input_frames", "int", 1, "Conditioning frames.", cli_choices=(1,)),
    ArgSpec("sigma_max", "float", 70.0, "Maximum noise level.", minimum=0.0),
    ArgSpec("blur_strength", "choice", "medium", "Blur strength for vis control."),
    ArgSpec("canny_threshold", "choice", "medium", "Canny threshold for edge control."),
    ArgSpec("is_av_sample", "flag", False, "The Sample-AV model (hdmap, lidar controls)."),
    ArgSpec("checkpoint_dir", "str", "checkpoints", "Checkpoint folder (ckpt_path base)."),
    ArgSpec("tokenizer_dir", "str", "Cosmos-Tokenize1-CV8x8x8-720p", "Tokenizer (ignored)."),
    ArgSpec("video_save_name", "str", "output", "Output name in single mode."),
    ArgSpec("video_save_folder", "str", "outputs/", "Output folder."),
    ArgSpec("batch_input_path", "str", None, "Batch JSONL file."),
    ArgSpec("batch_size", "int", 1, "Batch size (accepted, no effect).", minimum=1),
    ArgSpec("num_steps", "int", 35, "Diffusion steps.", minimum=1),
    ArgSpec("guidance", "float", 5.0, "Classifier-free guidance scale.", minimum=0.0),
    ArgSpec("fps", "int", 24, "Output frames per second.", minimum=1),
    ArgSpec("seed", "int", 1, "Random seed.", minimum=0, maximum=MAX_SEED),
    ArgSpec("num_gpus", "int", 1, "GPUs for context parallelism (echoed only).", minimum=1),
    ArgSpec("offload_diffusion_transformer", "flag", False, "Accepted, ignored."),
    ArgSpec("offload_text_encoder_model", "flag", False, "Accepted, ignored."),
    ArgSpec("offload_guardrail_models", "flag", False, "Accepted, ignored."),
    ArgSpec("upsample_prompt", "flag", False, "Simulated prompt upsampling."),
    ArgSpec("offload_prompt_upsampler", "flag", False, "Accepted, ignored."),
    ArgSpec("use_distilled", "flag", False, "Distilled edge model (rules only)."),
    ArgSpec("save_input_noise", "flag", False, "Accepted, ignored."),
    ArgSpec("benchmark", "flag", False, "Accepted, ignored."),
    ArgSpec("model_load_s", "float", 0.2, "SIMULATOR: model load sleep.", False, minimum=0.0),
    ArgSpec("per_video_s", "float", 0.05, "SIMULATOR: sleep per video.", False, minimum=0.0),
    ArgSpec("ledger", "str", None, "SIMULATOR: append one JSON line per video.", False),
    ArgSpec("fail_on_seed", "int", None, "SIMULATOR: exit 17 at this seed.", False),
    ArgSpec("block_prompt", "str", None, "SIMULATOR: the guardrail blocks this text.", False),
)
ARGS_BY_NAME = {spec.name: spec for spec in ARG_SPECS}


@dataclass
class VideoJob:
    """One video to produce.

    Attributes:
        index: 0-based index (the JSONL line index in batch mode, 0 otherwise).
        params: Effective scalar parameters.
        controls: Effective control blocks, in spec order.
        video_path: Where the output video goes.
        prompt_path: Where the final prompt text goes.
    """

    index: int
    params: dict[str, Any]
    controls: dict[str, dict[str, Any]]
    video_path: Path
    prompt_path: Path


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises SimulatorError instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        """Turn an argparse error into a SimulatorError.

        Args:
            message: The argparse error message.

        Raises:
            SimulatorError: Always.
        """
        raise SimulatorError(message, EXIT_USAGE)


def _float_arg(text: str) -> float:
    """Parse a finite float for argparse.

    Args:
        text: The command-line text.

    Returns:
        The parsed value.

    Raises:
        argparse.ArgumentTypeError: If the text is not a finite number.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"number must be finite: {text!r}")
    return value


def build_parser(suppress_defaults: bool = False) -> argparse.ArgumentParser:
    """Build the command-line parser.

    Args:
        suppress_defaults: If true, arguments absent from the command line are
            left out of the namespace (used to find which flags were given).

    Returns:
        The parser.
    """
    parser = _Parser(
        prog=PROG,
        description="SIMULATED Cosmos-Transfer1 transfer.py (no GPU, no neural network).",
        allow_abbrev=False,
        argument_default=argparse.SUPPRESS if suppress_defaults else None,
    )
    for spec in ARG_SPECS:
        flag = "--" + spec.name
        if spec.kind == "flag":
            parser.add_argument(flag, action="store_true", help=spec.help)
            continue
        kwargs: dict[str, Any] = {"help": spec.help, "required": spec.required}
        if not suppress_defaults:
            kwargs["default"] = spec.default
        if spec.kind == "int":
            kwargs["type"] = int
            if spec.cli_choices:
                kwargs["choices"] = spec.cli_choices
        elif spec.kind == "float":
            kwargs["type"] = _float_arg
        elif spec.kind == "choice":
            kwargs["choices"] = LEVELS
        parser.add_argument(flag, **kwargs)
    return parser


def parse_command_line(argv: list[str]) -> tuple[dict[str, Any], set[str]]:
    """Parse the command line.

    Args:
        argv: Arguments without the program name.

    Returns:
        All argument values (defaults filled in) and the names given explicitly.

    Raises:
        SimulatorError: On an invalid command line.
    """
    values = vars(build_parser().parse_args(argv))
    explicit = set(vars(build_parser(suppress_defaults=True).parse_args(argv)))
    return values, explicit


def out(message: str) -> None:
    """Print one progress line on stdout, prefixed and flushed.

    Args:
        message: The line without the prefix.
    """
    print(f"{OUT_PREFIX} {message}", flush=True)


def _type_name(value: Any) -> str:
    """Return a JSON-ish type name for error messages.

    Args:
        value: Any decoded JSON value.

    Returns:
        The name.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_number(value: Any) -> bool:
    """Tell whether a decoded JSON value is a finite number (not a boolean).

    Args:
        value: Any decoded JSON value.

    Returns:
        True for int or finite float.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


def check_scalar(name: str, value: Any, where: str) -> Any:
    """Validate a JSON value for an argument and convert it to the argument's type.

    Args:
        name: Argument name.
        value: Value decoded from JSON.
        where: Description of the value's origin for error messages.

    Returns:
        The converted value.

    Raises:
        SimulatorError: If the value has the wrong type.
    """
    spec = ARGS_BY_NAME[name]
    if value is None and spec.default is None:
        return None
    if spec.kind == "str":
        ok, expected = isinstance(value, str), "a string"
    elif spec.kind == "int":
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif spec.kind == "float":
        ok, expected = _is_number(value), "a number"
    elif spec.kind == "choice":
        ok, expected = value in LEVELS, "one of " + ", ".join(LEVELS)
    else:
        ok, expected = isinstance(value, bool), "true or false"
    if not ok:
        raise SimulatorError(f"{where}: {name!r} must be {expected}, got {value!r}")
    return float(value) if spec.kind == "float" else value


def check_ranges(params: dict[str, Any]) -> None:
    """Check numeric lower bounds of the effective parameters.

    Args:
        params: Effective parameters.

    Raises:
        SimulatorError: If a value is below its minimum.
    """
    for spec in ARG_SPECS:
        value = params.get(spec.name)
        if spec.minimum is not None and value is not None and value < spec.minimum:
            raise SimulatorError(f"{spec.name} must be >= {spec.minimum:g}, got {value!r}")
        if spec.maximum is not None and value is not None and value > spec.maximum:
            raise SimulatorError(f"{spec.name} must be <= {spec.maximum}, got {value!r}")


def check_control_block(key: str, block: Any, where: str) -> dict[str, Any]:
    """Validate one control block, or a batch override of one (same fields).

    Args:
        key: Control key (vis, seg, ...).
        block: The decoded JSON value.
        where: Description of the block's origin for error messages.

    Returns:
        A copy of the block.

    Raises:
        SimulatorError: On an unknown field or a bad value.
    """
    label = f"{where}: control {key!r}"
    if not isinstance(block, dict):
        raise SimulatorError(f"{label} must be an object, got {_type_name(block)}")
    for field, value in block.items():
        if field not in CONTROL_FIELDS:
            allowed = ", ".join(CONTROL_FIELDS)
            raise SimulatorError(f"{label} has unknown field {field!r} (allowed: {allowed})")
        if field == "control_weight":
            _check_weight(label, value)
        elif field == "input_control":
            if value is not None and (not isinstance(value, str) or not value):
                raise SimulatorError(f"{label}: input_control must be a non-empty path or null")
        elif not isinstance(value, str) or not value.strip():
            # transfer.py loads ckpt_path and splits the prompts: a text, never null.
            raise SimulatorError(
                f"{label}: {field} must be a non-empty string, got {_type_name(value)}"
            )
    return dict(block)


def _check_weight(label: str, value: Any) -> None:
    """Validate a control_weight value.

    Args:
        label: Error-message label of the control.
        value: The weight: a number >= 0 or a path string.

    Raises:
        SimulatorError: If the weight is invalid.
    """
    if isinstance(value, str):
        # transfer.py takes a string ending in .pt as a weight map, any other as a number.
        if value.endswith(".pt"):
            return
        try:
            value = float(value)
        except ValueError:
            raise SimulatorError(
                f"{label}: control_weight must be a number >= 0 or a path to a .pt file, "
                f"got {value!r}"
            ) from None
    if not _is_number(value):
        raise SimulatorError(
            f"{label}: control_weight must be a number >= 0 or a path, got {_type_name(value)}"
        )
    if value < 0:
        raise SimulatorError(f"{label}: control_weight must be >= 0, got {value!r}")


def default_missing_weight(key: str, block: dict[str, Any], where: str) -> None:
    """Give a control without control_weight the default weight, with a warning.

    Args:
        key: Control key.
        block: The control block, modified in place.
        where: Description of the block's origin for the warning.
    """
    if "control_weight" not in block:
        block["control_weight"] = DEFAULT_CONTROL_WEIGHT
        weight = DEFAULT_CONTROL_WEIGHT
        out(f"WARNING: {where}: control {key!r} has no control_weight; using {weight}")


def weights_among_maps(controls: dict[str, dict[str, Any]], where: str) -> None:
    """Give a weight of 0 the weight 1 when a control of the video has a weight map.

    transfer.py's load_spatial_temporal_weights (inference_utils.py) reads a
    weight that is not truthy as none given, a map of ones, once any control
    of the video has a .pt map; with numbers alone a 0 stays 0.

    Args:
        controls: The video's control blocks, modified in place.
        where: Description of the video for the warning.
    """
    weights = [block.get("control_weight") for block in controls.values()]
    if not any(isinstance(w, str) and w.endswith(".pt") for w in weights):
        return
    for key, block in controls.items():
        weight = block.get("control_weight")
        if _is_number(weight) and weight == 0:
            block["control_weight"] = 1.0
            out(f"WARNING: {where}: control {key!r} has weight 0 beside a weight map: it runs at 1")


def load_json_file(path: Path, what: str) -> Any:
    """Read and decode a JSON file.

    Args:
        path: The file.
        what: Description for error messages.

    Returns:
        The decoded value.

    Raises:
        SimulatorError: If the file is missing or not valid JSON.
    """
    text = read_text(path, what)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise SimulatorError(f"{what} {path} is not valid JSON: {exc}") from None


def _reject_constant(name: str) -> NoReturn:
    """Reject NaN and Infinity in JSON input.

    Args:
        name: The constant's name.

    Raises:
        ValueError: Always.
    """
    raise ValueError(f"{name} is not allowed")


def read_text(path: Path, what: str) -> str:
    """Read a text file the way transfer.py does: with the locale's encoding.

    transfer.py opens its spec and batch files with ``open(path, "r")``
    (inference_utils.py, utils/io.py), so under an ASCII locale (LANG=C) a
    non-ASCII character in them ends it with a UnicodeDecodeError.

    Args:
        path: The file.
        what: Description for error messages.

    Returns:
        The text.

    Raises:
        SimulatorError: If the file cannot be read or decoded.
    """
    try:
        return path.read_text(encoding="locale")
    except FileNotFoundError:
        raise SimulatorError(f"{what} not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise SimulatorError(
            f"{what} {path} cannot be read with the locale's encoding: {exc}"
        ) from None
    except OSError as exc:
        raise SimulatorError(f"cannot read {what} {path}: {exc}") from None


def merge_spec(
    values: dict[str, Any], explicit: set[str], spec: Any, spec_path: Path
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Merge the controlnet spec JSON with the command line.

    Dict values are control blocks; non-dict values become arguments unless the
    same flag was given on the command line, which always wins.

    Args:
        values: Command-line values with defaults.
        explicit: Names of arguments given on the command line.
        spec: The decoded spec JSON.
        spec_path: The spec file, for messages.

    Returns:
        The effective parameters and the control blocks in spec order.

    Raises:
        SimulatorError: On an invalid spec.
    """
    where = f"spec {spec_path}"
    if not isinstance(spec, dict):
        raise SimulatorError(f"{where} must be a JSON object, got {_type_name(spec)}")
    params = dict(values)
    controls: dict[str, dict[str, Any]] = {}
    for key, value in spec.items():
        if isinstance(value, dict):
            if key not in CONTROL_KEYS:
                allowed = ", ".join(CONTROL_KEYS)
                raise SimulatorError(f"{where}: {key!r} is not a control (allowed: {allowed})")
            controls[key] = check_control_block(key, value, where)
            default_missing_weight(key, controls[key], where)
            continue
        spec_arg = ARGS_BY_NAME.get(key)
        if spec_arg is None or not spec_arg.in_json:
            raise SimulatorError(f"{where}: unknown parameter {key!r}")
        converted = check_scalar(key, value, where)
        if key not in explicit:
            params[key] = converted
    if not controls:
        allowed = ", ".join(CONTROL_KEYS)
        raise SimulatorError(f"{where}: no control block (need one of {allowed})")
    return params, controls


def load_batch(path: Path) -> list[dict[str, Any]]:
    """Read and validate the batch JSONL file.

    Args:
        path: The JSONL file.

    Returns:
        One validated object per line.

    Raises:
        SimulatorError: On an invalid file or line.
    """
    lines = read_text(path, "batch input file").splitlines()
    if not lines:
        raise SimulatorError(f"batch input file {path} has no lines")
    return [_parse_batch_line(path, number, line) for number, line in enumerate(lines, 1)]


def _parse_batch_line(path: Path, number: int, line: str) -> dict[str, Any]:
    """Decode and validate one batch line.

    Args:
        path: The JSONL file, for messages.
        number: 1-based line number.
        line: The text of the line.

    Returns:
        The validated object.

    Raises:
        SimulatorError: On an invalid line.
    """
    where = f"batch {path} line {number}"
    try:
        item = json.loads(line, parse_constant=_reject_constant)
    except ValueError as exc:
        raise SimulatorError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(item, dict):
        raise SimulatorError(f"{where} must be a JSON object, got {_type_name(item)}")
    unknown = [key for key in item if key not in BATCH_LINE_KEYS]
    if unknown:
        allowed = ", ".join(BATCH_LINE_KEYS)
        raise SimulatorError(f"{where}: unknown key {unknown[0]!r} (allowed: {allowed})")
    visual = item.get("visual_input")
    if not isinstance(visual, str) or not visual:
        raise SimulatorError(f"{where}: 'visual_input' (a non-empty path) is required")
    if "prompt" in item and not isinstance(item["prompt"], str):
        raise SimulatorError(f"{where}: 'prompt' must be a string")
    overrides = item.get("control_overrides", {})
    if not isinstance(overrides, dict):
        raise SimulatorError(f"{where}: 'control_overrides' must be an object")
    for key, block in overrides.items():
        if key not in CONTROL_KEYS:
            allowed = ", ".join(CONTROL_KEYS)
            raise SimulatorError(
                f"{where}: control_overrides: {key!r} is not a control (allowed: {allowed})"
            )
        check_control_block(key, block, where)
    return item


def apply_batch_line(
    params: dict[str, Any],
    controls: dict[str, dict[str, Any]],
    item: dict[str, Any],
    where: str,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Merge one batch line onto a deep copy of the shared parameters and controls.

    Args:
        params: Shared effective parameters.
        controls: Shared control blocks.
        item: The validated batch line.
        where: Description of the line for warnings.

    Returns:
        The line's parameters and controls.
    """
    line_params = copy.deepcopy(params)
    line_controls = copy.deepcopy(controls)
    line_params["input_video_path"] = item["visual_input"]
    if "prompt" in item:
        line_params["prompt"] = item["prompt"]
    for key, override in item.get("control_overrides", {}).items():
        if key not in line_controls:
            # transfer.py skips it with a warning: the line would silently lack the control.
            raise SimulatorError(
                f"{where}: control_overrides: {key!r} is not a control of the spec "
                "(transfer.py would ignore it)"
            )
        line_controls[key].update(copy.deepcopy(override))
    return line_params, line_controls


def check_job_inputs(
    params: dict[str, Any], controls: dict[str, dict[str, Any]], where: str
) -> Path:
    """Apply the no-input-video rules, check input files, and pick the source video.

    Args:
        params: Effective parameters of one video.
        controls: Effective controls of one video.
        where: Description of the video for messages.

    Returns:
        The video whose bytes the output copies.

    Raises:
        SimulatorError: If a rule is broken or an input file is missing.
    """
    video = params.get("input_video_path") or ""
    if not video:
        if params["sigma_max"] < MIN_SIGMA_MAX_WITHOUT_VIDEO:
            minimum, got = MIN_SIGMA_MAX_WITHOUT_VIDEO, params["sigma_max"]
            raise SimulatorError(
                f"{where}: without an input video sigma_max must be >= {minimum:g}, got {got:g}"
            )
        for key, block in controls.items():
            if not block.get("input_control"):
                raise SimulatorError(
                    f"{where}: without an input video control {key!r} needs input_control"
                )
    else:
        require_file(video, f"{where}: input video")
    for key, block in controls.items():
        if block.get("input_control"):
            require_file(block["input_control"], f"{where}: input_control of {key!r}")
        elif key in AV_CONTROLS:
            # Not computed by the preprocessors: the control augmentor would
            # look the video up and fail (KeyError).
            raise SimulatorError(f"{where}: control {key!r} needs input_control")
        weight = block.get("control_weight")
        if isinstance(weight, str) and weight.endswith(".pt"):
            require_file(weight, f"{where}: control_weight of {key!r}")
        if block.get("ckpt_path"):
            require_checkpoint(block["ckpt_path"], params, len(controls), f"{where}: {key!r}")
    if video:
        return Path(video)
    return Path(next(iter(controls.values()))["input_control"])


def require_checkpoint(path_text: str, params: dict[str, Any], controls: int, what: str) -> None:
    """Check a control's ckpt_path as transfer.py loads it.

    The path as written (relative to the working folder); with one control
    (not distilled) also under checkpoint_dir (world_generation_pipeline.py).

    Raises:
        SimulatorError: If no such checkpoint file exists.
    """
    if Path(path_text).is_file():
        return
    if controls == 1 and not params["use_distilled"]:
        if (Path(params["checkpoint_dir"]) / path_text).is_file():
            return
    require_file(path_text, f"{what} ckpt_path")


def check_model_rules(
    params: dict[str, Any], controls: dict[str, dict[str, Any]], where: str
) -> None:
    """What transfer.py refuses in the model set-up, or would use wrongly.

    Args:
        params: Effective parameters of one video (or of the shared spec).
        controls: Its control blocks.
        where: Description for messages.

    Raises:
        SimulatorError: On a combination transfer.py fails on, or (stricter
            than transfer.py, which would run a wrong model or ignore a value)
            one it has no sound use for.
    """
    if params["num_input_frames"] != 1:
        # argparse takes only 1, but a JSON value skips that check; another value
        # then fails compute_num_latent_frames's assertion at the second clip of a
        # long video (or runs a model trained for 1 frame): refused outright here.
        raise SimulatorError(f"{where}: num_input_frames must be 1 (argparse choices [1])")
    if params["use_distilled"]:
        _check_distilled(params, controls, where)
    av = [key for key in controls if key in AV_CONTROLS]
    others = [key for key in controls if key not in AV_CONTROLS and key != "upscale"]
    if av and not params["is_av_sample"]:
        raise SimulatorError(f"{where}: {', '.join(av)} need is_av_sample (the Sample-AV model)")
    if params["is_av_sample"] and others:
        raise SimulatorError(f"{where}: the Sample-AV model has no {', '.join(others)} control")
    for key, block in controls.items():
        _check_prompts(key, block, params, where)


def _check_distilled(
    params: dict[str, Any], controls: dict[str, dict[str, Any]], where: str
) -> None:
    """validate_controlnet_specs and the distilled pipeline's assertions."""
    for key, block in controls.items():
        if key != DISTILLED_CONTROL and "ckpt_path" not in block:
            raise SimulatorError(
                f"{where}: No default distilled checkpoint for {key}. "
                "Users must specify ckpt_path in config."
            )
    if len(controls) != 1:
        raise SimulatorError(f"{where}: Distilled model only supports single control input")
    if params["is_av_sample"]:
        raise SimulatorError(f"{where}: the distilled model is not a Sample-AV model")


def _check_prompts(key: str, block: dict[str, Any], params: dict[str, Any], where: str) -> None:
    """control_weight_prompt and input_control_prompt: seg's, where transfer.py uses them."""
    label = f"{where}: control {key!r}"
    for field in ("control_weight_prompt", "input_control_prompt"):
        if field in block and key != "seg":
            raise SimulatorError(f"{label}: transfer.py uses {field} for seg only")
    if block.get("input_control") and "input_control_prompt" in block:
        raise SimulatorError(f"{label}: input_control_prompt is unused with an input_control")
    if "control_weight_prompt" in block:
        if not params.get("input_video_path"):
            raise SimulatorError(f"{label}: control_weight_prompt needs an input video")
        if str(block.get("control_weight", "")).endswith(".pt"):
            raise SimulatorError(f"{label}: control_weight_prompt replaces the weight map")


def upsampled_prompt(
    params: dict[str, Any], pipeline_controls: dict[str, dict[str, Any]], where: str
) -> str:
    """The prompt of one video after transfer.py's prompt upsampler (simulated).

    The upsampler is set up once, from the shared spec's control blocks in
    their order (world_generation_pipeline.py): with vis or edge it reads
    that control's video from those blocks, or computes a vis/edge map from
    the video's own input; else it reads the first of depth and seg's video
    from those blocks, and crashes without one. With none of them the prompt
    stays as it is. The simulated text names what was read by its checksum.

    Raises:
        SimulatorError: Where transfer.py crashes (no depth or seg video).
    """
    prompt = params["prompt"]
    if not params["upsample_prompt"]:
        return prompt
    keys = list(pipeline_controls)
    if any(key in ("vis", "edge") for key in keys):
        hint = "vis" if "vis" in keys else "edge"
        path = pipeline_controls[hint].get("input_control")
        if path:
            what = f"the {hint} control video"
        else:
            what, path = f"the {hint} map made of the input video", params["input_video_path"]
    else:
        others = [key for key in keys if key in ("depth", "seg")]
        if not others:
            return prompt
        hint, path = others[0], pipeline_controls[others[0]].get("input_control")
        if not path:
            raise SimulatorError(
                f"{where}: the prompt upsampler reads the spec's {hint} input_control, and "
                "there is none (transfer.py crashes here: TypeError)"
            )
        what = f"the {hint} control video"
    require_file(path, f"{where}: the prompt upsampler's video")
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    return f"{prompt} [SIMULATED prompt upsampler: read {what} {digest}]"


def require_file(path_text: str, what: str) -> None:
    """Check that a file exists; relative paths resolve against the working directory.

    Args:
        path_text: The path as written in the spec.
        what: Description for the error message.

    Raises:
        SimulatorError: If the path is not an existing file.
    """
    path = Path(path_text)
    if not path.is_file():
        absolute = Path.cwd() / path
        state = "is not a file" if path.exists() else "not found"
        raise SimulatorError(f"{what} {state}: {path_text} ({absolute})")


def metadata_payload(
    params: dict[str, Any], controls: dict[str, dict[str, Any]], source: bytes
) -> dict[str, Any]:
    """Build the JSON metadata stored in the output video.

    Args:
        params: Effective parameters of the video.
        controls: Effective controls of the video.
        source: The video the picture is drawn from (the input video, or the
            first control's without one).

    Returns:
        The metadata object.
    """
    return {
        "simulated": True,
        "generator": GENERATOR,
        "note": "SIMULATED output: a drawn picture of these parameters; no neural network ran",
        "input_video_path": params.get("input_video_path") or "",
        "source_sha256": hashlib.sha256(source).hexdigest(),
        "prompt": params["prompt"],
        "negative_prompt": params["negative_prompt"],
        "seed": params["seed"],
        "guidance": params["guidance"],
        "num_steps": params["num_steps"],
        "sigma_max": params["sigma_max"],
        "fps": params["fps"],
        "num_input_frames": params["num_input_frames"],
        "blur_strength": params["blur_strength"],
        "canny_threshold": params["canny_threshold"],
        "controls": controls,
    }


def free_box(payload: dict[str, Any]) -> bytes:
    """Encode a metadata object as a top-level MP4 ``free`` box.

    Args:
        payload: The metadata object.

    Returns:
        4-byte big-endian size (header included), b"free", UTF-8 JSON.

    Raises:
        SimulatorError: If the payload does not fit a 32-bit box.
    """
    data = json.dumps(payload, ensure_ascii=False, sort_keys=False).encode("utf-8")
    if len(data) > MAX_BOX_PAYLOAD:
        raise SimulatorError("metadata too large for an MP4 box")
    return struct.pack(">I", len(data) + 8) + b"free" + data


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file atomically: a temporary file in the same folder, then os.replace.

    Args:
        path: Final path; its folder is created if needed.
        data: File content.

    Raises:
        SimulatorError: If the file cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(
            prefix="." + path.name + ".", suffix=".tmp", dir=path.parent
        )
    except OSError as exc:
        raise SimulatorError(f"cannot write {path}: {exc}") from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temp.chmod(0o644)
        temp.replace(path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise SimulatorError(f"cannot write {path}: {exc}") from None


def append_ledger(ledger: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to the ledger with O_APPEND and a single os.write.

    Args:
        ledger: The ledger file (created if missing).
        record: The record to append.

    Raises:
        SimulatorError: If the ledger cannot be written in one piece.
    """
    data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        ledger.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SimulatorError(f"cannot append to ledger {ledger}: {exc}") from None
    if written != len(data):
        raise SimulatorError(f"short write to ledger {ledger}")


def plan_jobs(values: dict[str, Any], explicit: set[str]) -> list[VideoJob]:
    """Read the spec (and batch file) and validate every video before any work.

    Args:
        values: Command-line values with defaults.
        explicit: Names of arguments given on the command line.

    Returns:
        The videos to produce, in order.

    Raises:
        SimulatorError: On any invalid input.
    """
    spec_path = Path(values["controlnet_specs"])
    spec = load_json_file(spec_path, "controlnet spec")
    params, controls = merge_spec(values, explicit, spec, spec_path)
    check_ranges(params)
    folder = Path(params["video_save_folder"])
    if not params.get("batch_input_path"):
        name = params["video_save_name"]
        if not name:
            raise SimulatorError("video_save_name must not be empty")
        check_model_rules(params, controls, f"spec {spec_path}")
        check_job_inputs(params, controls, f"spec {spec_path}")
        params["prompt"] = upsampled_prompt(params, controls, f"spec {spec_path}")
        weights_among_maps(controls, f"spec {spec_path}")
        return [VideoJob(0, params, controls, folder / (name + ".mp4"), folder / (name + ".txt"))]
    # Like transfer.py, the shared spec must be valid on its own before any line.
    check_model_rules(params, controls, f"spec {spec_path}")
    check_job_inputs(params, controls, f"spec {spec_path}")
    batch_path = Path(params["batch_input_path"])
    jobs = []
    for index, item in enumerate(load_batch(batch_path)):
        where = f"batch {batch_path} line {index + 1}"
        line_params, line_controls = apply_batch_line(params, controls, item, where)
        check_model_rules(line_params, line_controls, where)
        check_job_inputs(line_params, line_controls, where)
        line_params["prompt"] = upsampled_prompt(line_params, controls, where)
        weights_among_maps(line_controls, where)
        sub = folder / f"video_{index}"
        jobs.append(
            VideoJob(index, line_params, line_controls, sub / "output.mp4", sub / "prompt.txt")
        )
    return jobs


def produce(job: VideoJob, total: int, fail_on_seed: int | None, per_video_s: float) -> bytes:
    """Simulate generating one video and return its bytes (nothing written yet).

    Args:
        job: The video.
        total: Number of videos in this invocation.
        fail_on_seed: Seed that triggers a simulated failure, or None.
        per_video_s: Seconds to sleep for the video.

    Returns:
        The output video bytes.

    Raises:
        SimulatedFailure: If the video's seed equals fail_on_seed.
        SimulatorError: If the source video cannot be read.
    """
    seed = job.params["seed"]
    preview = json.dumps(job.params["prompt"][:60], ensure_ascii=True)
    out(f"video {job.index + 1}/{total} (index {job.index}) seed={seed} prompt={preview}")
    time.sleep(per_video_s)
    if fail_on_seed is not None and seed == fail_on_seed:
        raise SimulatedFailure(seed, job.index)
    source = check_job_inputs(job.params, job.controls, f"video {job.index}")
    try:
        video = source.read_bytes()
    except OSError as exc:
        raise SimulatorError(f"cannot read {source}: {exc}") from None
    card = picture_card(job.params, job.controls, video)
    drawn = h264_pcm.write_mp4(
        sim_frames.frames(card), sim_frames.WIDTH, sim_frames.HEIGHT, job.params["fps"]
    )
    return drawn + free_box(metadata_payload(job.params, job.controls, video))


# Frames of an output: the source video's, at most Transfer1's 121; 24 when unknown.
MAX_FRAMES = 121
DEFAULT_FRAMES = 24
# Control lines the picture has room for (under the seed, above the prompt hash).
CONTROL_LINES = 4


def picture_card(
    params: dict[str, Any], controls: dict[str, dict[str, Any]], source: bytes
) -> sim_frames.Card:
    """What the output video shows: the seed, each control's weight, the prompt's hash.

    A weight map (a .pt path) is drawn as MAP and blends its pattern in at 0.5;
    a number is clamped to 0..1 for the blend and shown with two decimals.
    """
    lines, weights = [f"SEED {params['seed']}"], []
    for key, block in controls.items():
        weight = block.get("control_weight", DEFAULT_CONTROL_WEIGHT)
        if _is_number(weight):
            lines.append(f"{key} {weight:.2f}")
            weights.append((key, min(1.0, max(0.0, float(weight)))))
        else:
            lines.append(f"{key} MAP")
            weights.append((key, 0.5))
    if len(lines) > CONTROL_LINES + 1:
        lines[CONTROL_LINES:] = [f"+{len(lines) - CONTROL_LINES} MORE"]
    lines.append("PROMPT " + sim_frames.prompt_hash(params["prompt"]))
    footer = f"{params['num_steps']} STEPS GUIDANCE {params['guidance']:g}"
    frames = h264_pcm.frame_count(source) or DEFAULT_FRAMES
    return sim_frames.Card(
        lines=tuple(lines),
        footer=(footer + f" SIGMA {params['sigma_max']:g}")[:30],
        seed=params["seed"],
        weights=tuple(weights),
        source=hashlib.sha256(source).digest(),
        frames=max(1, min(MAX_FRAMES, frames)),
    )


def blocked_words(values: dict[str, Any]) -> list[str]:
    """Words the simulated text guardrail blocks: --block_prompt and the blocklist files.

    Args:
        values: Command-line values with defaults.

    Returns:
        The words, in the order they are checked.

    Raises:
        SimulatorError: If a blocklist file cannot be read.
    """
    words = [values["block_prompt"]] if values.get("block_prompt") else []
    folder = Path(values["checkpoint_dir"]) / BLOCKLIST_DIR
    if folder.is_dir():
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            words += [w.strip() for w in read_text(path, "blocklist").splitlines() if w.strip()]
    return words


def run_guardrail(job: VideoJob, values: dict[str, Any], ledger: Path | None) -> None:
    """Check a video's prompt like transfer.py's text guardrail, and fail as it does.

    transfer.py makes one video at a time; for a blocked prompt the pipeline's
    generate() logs why and returns None, transfer.py logs that the batch was
    blocked and then unpacks the None: an uncaught TypeError (exit code 1),
    with the videos before it already saved and the ones after it never made.

    Args:
        job: The video about to be made.
        values: Command-line values with defaults.
        ledger: The ledger, which records the blocked video, or None.

    Raises:
        TypeError: If a blocked word is in the prompt (case-insensitive).
        SimulatorError: If the video's folder cannot be made.
    """
    try:
        # transfer.py makes a batch line's folder before it runs the line.
        job.video_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimulatorError(f"cannot write {job.video_path.parent}: {exc}") from None
    prompt = job.params["prompt"]
    word = next((w for w in blocked_words(values) if w.lower() in prompt.lower()), None)
    if word is None:
        return
    preview = json.dumps(prompt[:60], ensure_ascii=True)
    out(
        "CRITICAL GUARDRAIL BLOCKED: BLOCKLIST: Prompt blocked by exact match blocklist: "
        f"Prompt: {preview}, Exact Match Word: {json.dumps(word, ensure_ascii=True)}"
    )
    out("CRITICAL Input text prompt 1 is not safe")
    out("CRITICAL All prompts failed safety checks")
    out("CRITICAL Guardrail blocked generation for entire batch.")
    if ledger is not None:
        record = {"output": None, "blocked": True, "seed": job.params["seed"], "prompt": prompt}
        append_ledger(ledger, {**record, "pid": os.getpid(), "index": job.index})
    raise TypeError("cannot unpack non-iterable NoneType object")


# Words of the prompt that segments a seg control without input_control_prompt.
SEG_PROMPT_WORDS = 128


def write_computed_controls(job: VideoJob, env: dict[str, str] | os._Environ[str]) -> list[Path]:
    """Write the control videos transfer.py would compute for ``job``, like it names them.

    Each is the input video's bytes and a metadata box naming the control and
    what it was computed with (no paths: the same inputs give the same bytes).

    Raises:
        SimulatorError: If LOCAL_RANK is not an integer or a file cannot be read or written.
    """
    video = job.params.get("input_video_path") or ""
    missing = [
        key
        for key, block in job.controls.items()
        if key in COMPUTED_CONTROLS and not block.get("input_control")
    ]
    if not video or not missing:
        return []
    rank_text = env.get("LOCAL_RANK", "0")
    try:
        rank = int(rank_text)
    except ValueError:
        raise SimulatorError(f"LOCAL_RANK must be an integer, got {rank_text!r}") from None
    try:
        source = Path(video).read_bytes()
    except OSError as exc:
        raise SimulatorError(f"cannot read {video}: {exc}") from None
    # The video's output folder: video_<i> of a batch, else --video_save_folder.
    batch = job.params.get("batch_input_path")
    folder = job.video_path.parent if batch else Path(job.params["video_save_folder"])
    written = []
    for key in missing:
        made_with: dict[str, Any] = {}
        if key == "vis":
            made_with["blur_strength"] = job.params["blur_strength"]
        elif key == "edge":
            made_with["canny_threshold"] = job.params["canny_threshold"]
        elif key == "seg":
            text = job.controls[key].get("input_control_prompt") or job.params["prompt"]
            made_with["prompt"] = " ".join(text.split()[:SEG_PROMPT_WORDS])
        box = {
            "simulated": True,
            "generator": GENERATOR,
            "note": f"SIMULATED {key} control computed from the input video (its bytes unchanged)",
            "control": key,
            **made_with,
        }
        path = folder / f"{key}_input_control_{rank}.mp4"
        write_atomic(path, source + free_box(box))
        out(f"computed {key} control: {path.resolve()}")
        written.append(path)
    return written


def host_speed(env: dict[str, str] | os._Environ[str]) -> float:
    """How fast this simulated GPU host is: SPEED_ENV (a target's env), 1 by default.

    Raises:
        SimulatorError: If the value is not a positive number.
    """
    text = env.get(SPEED_ENV, "1")
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not math.isfinite(speed) or speed <= 0:
        raise SimulatorError(f"{SPEED_ENV} must be a positive number, got {text!r}")
    return speed


def run(argv: list[str]) -> int:
    """Run the simulated model.

    Args:
        argv: Arguments without the program name.

    Returns:
        The exit code (0 on success).

    Raises:
        SimulatorError: On bad input or an I/O failure.
        SimulatedFailure: When --fail_on_seed matches a video's seed.
    """
    started_at = time.time()
    values, explicit = parse_command_line(argv)
    out(
        "SIMULATED Cosmos-Transfer1 (no GPU, no neural network): outputs are drawn pictures "
        f"of their parameters plus a metadata box; num_gpus={values['num_gpus']}"
    )
    jobs = plan_jobs(values, explicit)
    mode = "batch" if values.get("batch_input_path") else "single"
    out(f"mode={mode} videos={len(jobs)} batch_size={jobs[0].params['batch_size']}")
    speed = host_speed(os.environ)
    out(f"loading model (simulated, {values['model_load_s'] / speed:g} s)")
    time.sleep(values["model_load_s"] / speed)
    out("model loaded")
    ledger = Path(values["ledger"]) if values.get("ledger") else None
    for job in jobs:
        write_computed_controls(job, os.environ)
        run_guardrail(job, values, ledger)
        data = produce(job, len(jobs), values["fail_on_seed"], values["per_video_s"] / speed)
        write_atomic(job.prompt_path, job.params["prompt"].encode("utf-8"))
        write_atomic(job.video_path, data)
        out(f"wrote {job.video_path.resolve()}")
        if ledger is not None:
            record = {
                "output": str(job.video_path.resolve()),
                "seed": job.params["seed"],
                "prompt": job.params["prompt"],
                "pid": os.getpid(),
                "index": job.index,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                # The process's start and this video's end (epoch seconds): when models overlapped.
                "started_at": started_at,
                "at": time.time(),
            }
            append_ledger(ledger, record)
    out(f"done: {len(jobs)} video(s)")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point: run and map errors to exit codes.

    Args:
        argv: Arguments without the program name; defaults to sys.argv[1:].

    Returns:
        0 on success; 1 for what transfer.py fails on (2 for a bad command line);
        17 on a simulated failure.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except SimulatorError as exc:
        print(f"{ERROR_PREFIX} {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except SimulatedFailure as exc:
        out(f"simulated failure for seed {exc.seed}")
        print(f"{ERROR_PREFIX} {exc}", file=sys.stderr, flush=True)
        return EXIT_SIMULATED_FAILURE


if __name__ == "__main__":
    sys.exit(main())
