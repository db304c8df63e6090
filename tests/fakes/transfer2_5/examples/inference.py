#!/usr/bin/env python3
"""Stand-in for Cosmos-Transfer2.5's examples/inference.py in tests (no GPU).

It is as strict as the real program about its inputs (COSMOS_INTERFACE.md):
extra sample keys are rejected, name and video_path are required, names are
unique, guidance is a whole number 0..7, control weights are 0..1 and at
least one control is given. Per sample it writes OUT/NAME.mp4 (the input
video plus an MP4 'free' box holding the sample as read), NAME.txt and
NAME.json, after one simulated model load per invocation, which it records
in $FAKE_T25_LOG.
"""

import argparse
import json
import os
import struct
import sys
from pathlib import Path

SAMPLE_KEYS = {
    "name",
    "prompt",
    "prompt_path",
    "video_path",
    "negative_prompt",
    "seed",
    "guidance",
    "num_steps",
    "resolution",
    "sigma_max",
    "max_frames",
    "num_conditional_frames",
    "num_video_frames_per_chunk",
    "keep_input_resolution",
    "edge",
    "vis",
    "depth",
    "seg",
}
CONTROLS = ("edge", "vis", "depth", "seg")
CONTROL_FIELDS = {"control_path", "control_weight", "mask_path", "mask_prompt"}


def check(sample: dict, where: str) -> None:
    extra = set(sample) - SAMPLE_KEYS
    if extra:
        sys.exit(f"{where}: unknown keys {sorted(extra)}")
    for key in ("name", "video_path"):
        if not isinstance(sample.get(key), str) or not sample[key]:
            sys.exit(f"{where}: {key} is required")
    guidance = sample.get("guidance", 3)
    if not isinstance(guidance, int) or not 0 <= guidance <= 7:
        sys.exit(f"{where}: guidance must be an integer 0..7")
    blocks = [key for key in CONTROLS if key in sample]
    if not blocks:
        sys.exit(f"{where}: at least one control block is required")
    for key in blocks:
        if set(sample[key]) - CONTROL_FIELDS:
            sys.exit(f"{where}: {key}: unknown fields")
        weight = sample[key].get("control_weight", 1.0)
        if not 0 <= weight <= 1:
            sys.exit(f"{where}: {key}: control_weight must be 0..1")
        path = sample[key].get("control_path")
        if path is not None and not Path(path).is_file():
            sys.exit(f"{where}: {key}: no control video {path}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="examples/inference.py")
    parser.add_argument("-i", nargs="+", required=True)
    parser.add_argument("-o", required=True)
    parser.add_argument("--model", default="edge")
    parser.add_argument("--disable-guardrails", action="store_true")
    parser.add_argument("--keep-going", action="store_true")
    args = parser.parse_args()
    samples = []
    for path in args.i:
        sample = json.loads(Path(path).read_text(encoding="utf-8"))
        check(sample, path)
        samples.append(sample)
    names = [s["name"] for s in samples]
    if len(set(names)) != len(names):
        sys.exit("sample names must be unique")
    print(f"loading {args.model} model for {len(samples)} sample(s)", flush=True)
    with open(os.environ["FAKE_T25_LOG"], "a", encoding="utf-8") as log:
        guardrails = "disabled" if args.disable_guardrails else "on"
        log.write(json.dumps({"model": args.model, "guardrails": guardrails, "samples": names}))
        log.write("\n")
    out = Path(args.o)
    out.mkdir(parents=True, exist_ok=True)
    for sample in samples:
        payload = json.dumps(sample, ensure_ascii=False).encode("utf-8")
        video = Path(sample["video_path"]).read_bytes()
        box = struct.pack(">I", len(payload) + 8) + b"free" + payload
        (out / (sample["name"] + ".mp4")).write_bytes(video + box)
        (out / (sample["name"] + ".txt")).write_text(sample.get("prompt", ""), encoding="utf-8")
        (out / (sample["name"] + ".json")).write_text(json.dumps(sample), encoding="utf-8")
        print(f"wrote {sample['name']}.mp4", flush=True)


main()
