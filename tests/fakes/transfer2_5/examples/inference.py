#!/usr/bin/env python3
"""Stand-in for Cosmos-Transfer2.5's examples/inference.py in tests (no GPU).

Written from reading examples/inference.py, cosmos_transfer2/config.py,
cosmos_transfer2/inference.py and the inference pipeline of
nvidia-cosmos/cosmos-transfer2.5 (docs/models.md lists the facts). Like the
real program it:

- parses its set-up flags strictly: an unknown flag or a bad choice exits 2;
  --model offers edge/distilled only when COSMOS_EXPERIMENTAL_CHECKPOINTS (or
  COSMOS_INTERNAL) is true; --checkpoint-path must be an existing path
  (relative to the working folder) or hf://ORG/REPO/FILE, else exit 1;
- reads each -i file (.json, .jsonl) with the locale's encoding, resolves its
  relative paths from that file's folder and validates every sample with the
  sample model's field types, ranges, defaults and lax coercion (pydantic, as
  the real one): one bad sample, or two samples with one name, ends the
  program with exit code 1 before anything is generated;
- loads one model for the union of the samples' controls (the distilled
  checkpoint exists for edge alone: anything else ends the program);
- per sample writes OUT/NAME.json (locale encoding, non-ASCII kept), runs the
  text guardrail on the prompt and negative prompt, writes
  OUT/NAME_control_KEY.mp4 for each of its controls (NAME_mask_KEY.mp4 for a
  mask_prompt), runs the video guardrail, then writes OUT/NAME.mp4 (the input
  video plus an MP4 'free' box holding the sample as read) and OUT/NAME.txt
  (the prompt, locale encoding); a one-frame result is NAME.jpg;
- ends the whole invocation with a traceback (exit 1) where the real one
  raises during generation: an unknown resolution, an input video it cannot
  read by its suffix, an image context of another kind, sigma_max with the
  distilled checkpoint or one float() cannot read.

Stricter than the real one in one place: a key a control block does not have
is refused (the real one drops it silently), so that a setting we write
without effect is caught.

Test hooks: with guardrails on (no --disable-guardrails), FAKE_T25_BLOCK=TEXT
makes the text guardrail block a prompt or negative prompt containing TEXT
and FAKE_T25_BLOCK_VIDEO=TEXT makes the video guardrail block the video of a
prompt containing TEXT. A blocked sample is skipped (--keep-going, the
default) or ends the program (--no-keep-going), as in the real one. One JSON
line per invocation goes to $FAKE_T25_LOG when it is set.
"""

import argparse
import json
import os
import struct
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import pydantic

CONTROLS = ("edge", "vis", "depth", "seg")
RESOLUTIONS = ("256", "480", "480p", "512", "720", "720p", "720robocasa", "1024", "1080")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BASE_MODELS = ("depth", "edge", "seg", "vis")
DISTILLED = "edge/distilled"
DEFAULT_NEGATIVE = "(the program's long default negative prompt)"


def flag(name: str, default: bool = False) -> bool:
    """An environment flag as the real program parses it (unset or empty: ``default``)."""
    value = os.environ.get(name, "")
    return value.lower() in ("true", "1", "yes", "y") if value else default


def log(level: str, message: str) -> None:
    """One console line in the real program's layout (rank 0 only)."""
    stamp = time.strftime("%m-%d %H:%M:%S")
    print(f"[{stamp}|{level}|cosmos_transfer2/inference.py] {message}", flush=True)


def resolved(path: Path) -> Path:
    return path.expanduser().absolute()


FilePath = Annotated[pydantic.FilePath, pydantic.AfterValidator(resolved)]
Threshold = Literal["very_low", "low", "medium", "high", "very_high"]


class Control(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    control_path: FilePath | None = None
    control_weight: Annotated[float, pydantic.Field(ge=0.0, le=1.0)] = 1.0
    mask_path: FilePath | None = None
    mask_prompt: str | None = None


class Edge(Control):
    preset_edge_threshold: Threshold = "medium"


class Vis(Control):
    preset_blur_strength: Threshold = "medium"


class Depth(Control):
    pass


class Seg(Control):
    control_prompt: str | None = None


class Sample(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    name: str
    prompt_path: FilePath | None = None
    prompt: str
    negative_prompt: str = DEFAULT_NEGATIVE
    seed: int = 2025
    guidance: Annotated[int, pydantic.Field(ge=0, le=7)] = 3
    video_path: FilePath
    max_frames: pydantic.PositiveInt | None = None
    context_frame_index: pydantic.PositiveInt | None = None
    image_context_path: FilePath | None = None
    num_conditional_frames: Literal[0, 1, 2] = 1
    resolution: str = "720"
    sigma_max: str | None = None
    num_video_frames_per_chunk: pydantic.PositiveInt = 93
    num_steps: pydantic.PositiveInt = 35
    show_control_condition: bool = False
    show_input: bool = False
    keep_input_resolution: bool = True
    edge: Edge | None = None
    depth: Depth | None = None
    vis: Vis | None = None
    seg: Seg | None = None
    guided_generation_mask: FilePath | pydantic.DirectoryPath | None = None
    guided_generation_step_threshold: int = 25
    guided_generation_foreground_labels: list[int] | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def prompt_from_file(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("prompt") is None and data.get("prompt_path"):
            data["prompt"] = Path(data["prompt_path"]).read_text().strip()
        return data

    @pydantic.model_validator(mode="after")
    def controls_fit(self) -> "Sample":
        if not self.hint_keys():
            raise ValueError("no controls provided: give at least one of edge, vis, depth, seg")
        if self.vis is not None and self.image_context_path is not None:
            raise ValueError("vis control and image_context_path may not be used together")
        return self

    def hint_keys(self) -> list[str]:
        return [key for key in CONTROLS if getattr(self, key) is not None]


def parse_args() -> argparse.Namespace:
    experimental = flag("COSMOS_EXPERIMENTAL_CHECKPOINTS", flag("COSMOS_INTERNAL"))
    models = BASE_MODELS + ((DISTILLED,) if experimental else ())
    on_off = argparse.BooleanOptionalAction
    parser = argparse.ArgumentParser(prog="examples/inference.py", allow_abbrev=False)
    parser.add_argument("-i", "--input-files", nargs="+", required=True, type=Path)
    parser.add_argument("-o", "--output-dir", required=True, type=Path)
    parser.add_argument("--model", choices=models, default="edge")
    parser.add_argument("--checkpoint-path", default=None)
    parser.add_argument("--experiment", default=None)
    parser.add_argument("--config-file", default="")
    parser.add_argument("--context-parallel-size", type=int, default=None)
    parser.add_argument("--disable-guardrails", action=on_off, default=False)
    parser.add_argument("--offload-guardrail-models", action=on_off, default=False)
    parser.add_argument("--keep-going", action=on_off, default=True)
    parser.add_argument("--profile", action=on_off, default=False)
    parser.add_argument("--benchmark", action=on_off, default=False)
    parser.add_argument("--compile-tokenizer", choices=("none", "moderate", "aggressive"))
    parser.add_argument("--enable-parallel-tokenizer", action=on_off, default=False)
    args = parser.parse_args()
    problem = setup_problem(args)
    if problem:
        print(f"1 validation error for SetupArguments\n{problem}", file=sys.stderr)
        sys.exit(1)
    return args


def setup_problem(args: argparse.Namespace) -> str | None:
    if args.context_parallel_size is not None and args.context_parallel_size < 1:
        return "context_parallel_size: must be positive"
    path = args.checkpoint_path
    if path is None:
        return None
    if "://" in path:
        parts = path.removeprefix("hf://").split("/")
        ok = path.startswith("hf://") and len(parts) >= 3
        return None if ok else f"checkpoint_path: checkpoint {path!r} not found"
    if not Path(path).expanduser().exists():
        return f"checkpoint_path: checkpoint {path!r} does not exist"
    return None


def load_samples(paths: list[Path]) -> list[tuple[dict, Sample]]:
    """Every sample of the -i files: as written, and as validated."""
    samples = []
    for path in paths:
        if path.suffix == ".json":
            rows = [json.loads(path.read_text())]
        elif path.suffix == ".jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines()]
        else:
            raise ValueError(f"Unsupported file extension: {path.suffix}")
        here = os.getcwd()
        os.chdir(path.parent)
        for line, row in enumerate(rows):
            try:
                samples.append((row, Sample.model_validate(dict(row))))
            except pydantic.ValidationError as error:
                print(
                    f"Error validating parameters from '{path}' at line {line}\n{error}",
                    file=sys.stderr,
                )
                sys.exit(1)
        os.chdir(here)
    if not samples:
        print("Error: No inference samples", file=sys.stderr)
        sys.exit(1)
    names = [sample.name for _, sample in samples]
    for name in names:
        if names.count(name) > 1:
            print(f"Error: Inference sample name {name} is not unique", file=sys.stderr)
            sys.exit(1)
    return samples


def boxed(data: bytes, payload: dict) -> bytes:
    """``data`` plus an MP4 'free' box holding ``payload`` as JSON."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return data + struct.pack(">I", len(body) + 8) + b"free" + body


def blocked(variable: str, *texts: str | None) -> bool:
    needle = os.environ.get(variable)
    return bool(needle) and any(text is not None and needle in text for text in texts)


class Inference:
    """One model load for a batch; generates its samples one after another."""

    def __init__(self, args: argparse.Namespace, hint_keys: list[str]) -> None:
        self.args = args
        self.distilled = args.model == DISTILLED
        if self.distilled and hint_keys != ["edge"]:
            raise KeyError(f"no distilled checkpoint for {', '.join(hint_keys)}")
        self.guardrails = not args.disable_guardrails
        log("INFO", f"loading {args.model} model ({', '.join(hint_keys)})")
        args.output_dir.mkdir(parents=True, exist_ok=True)
        (args.output_dir / "config.yaml").write_text(f"model: {args.model}\n")

    def generate(self, written: dict, sample: Sample, index: int, count: int) -> None:
        out = self.args.output_dir / sample.name
        log("INFO", f"[{index + 1}/{count}] Processing sample {sample.name}")
        negative = None if self.distilled else sample.negative_prompt
        with open(f"{out}.json", "w") as file:
            file.write(sample.model_dump_json())
        if self.guardrails:
            for label, text in (("Prompt", sample.prompt), ("Negative prompt", negative)):
                if blocked("FAKE_T25_BLOCK", text):
                    log("CRITICAL", f"Guardrail blocked generation. {label}: {text}")
                    self.blocked(f"Guardrail blocked generation. {label}: {text}")
                    return
        video = Path(sample.video_path)
        if video.suffix not in VIDEO_SUFFIXES + IMAGE_SUFFIXES:
            raise ValueError(f"Invalid video extension: {video.suffix}")
        if sample.resolution not in RESOLUTIONS:
            raise KeyError(sample.resolution)
        context = sample.image_context_path
        if context is not None and context.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            raise ValueError(f"Invalid image context extension: {context.suffix}")
        if sample.sigma_max is not None:
            float(sample.sigma_max)
            if self.distilled:
                raise AttributeError("'DMD2Model' object has no attribute 'get_x_from_clean'")
        still = 1 in (sample.max_frames, sample.num_video_frames_per_chunk)
        ext = ".jpg" if still or video.suffix in IMAGE_SUFFIXES else ".mp4"
        for key in sample.hint_keys():
            control = getattr(sample, key)
            source = control.control_path or video
            made = {"control": key, "computed": control.control_path is None}
            Path(f"{out}_control_{key}{ext}").write_bytes(boxed(source.read_bytes(), made))
            if control.mask_prompt is not None:
                Path(f"{out}_mask_{key}{ext}").write_bytes(boxed(video.read_bytes(), made))
        if self.guardrails and blocked("FAKE_T25_BLOCK_VIDEO", sample.prompt):
            # The real one logs this block below the console's level: nothing is printed.
            self.blocked("Guardrail blocked video2world generation.")
            return
        Path(f"{out}{ext}").write_bytes(boxed(video.read_bytes(), written))
        with open(f"{out}.txt", "w") as file:
            file.write(sample.prompt)
        log("SUCCESS", f"Generated video saved to {out}{ext}")

    def blocked(self, message: str) -> None:
        """Skip the sample (keep going) or end the program."""
        if not self.args.keep_going:
            raise Exception(message)


def main() -> None:
    args = parse_args()
    samples = load_samples(args.input_files)
    hint_keys = [key for key in CONTROLS if any(key in s.hint_keys() for _, s in samples)]
    entry = {
        "model": args.model,
        "guardrails": "on" if not args.disable_guardrails else "disabled",
        "samples": [sample.name for _, sample in samples],
        "hint_keys": hint_keys,
        "checkpoint_path": args.checkpoint_path,
        "experiment": args.experiment,
        "config_file": args.config_file,
        "keep_going": args.keep_going,
        "cwd": os.getcwd(),
    }
    if os.environ.get("FAKE_T25_LOG"):
        with open(os.environ["FAKE_T25_LOG"], "a", encoding="utf-8") as record:
            record.write(json.dumps(entry) + "\n")
    inference = Inference(args, hint_keys)
    for index, (written, sample) in enumerate(samples):
        inference.generate(written, sample, index, len(samples))


if __name__ == "__main__":
    main()
