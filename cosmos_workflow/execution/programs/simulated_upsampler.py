#!/usr/bin/env python3
"""Simulated stand-in for Cosmos-Transfer1's prompt upsampler (upsampler_pipeline.py).

No model runs here. It takes the same arguments as the real program
(``--prompt``, ``--input_video``, ``--checkpoint_dir``,
``--offload_prompt_upsampler``), waits ``--model_load_s`` seconds, checks that
the context video exists, and logs an "upsampled" prompt: the input prompt
followed by a fixed, clearly marked elaboration that names the context video
by size and checksum. Same inputs, same output.

Standard library only, like simulated_model.py. Exit codes: 0 ok, 2 bad
input, 17 simulated failure (``--fail_on_prompt TEXT`` found in the prompt).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

PROG = "simulated upsampler"
EXIT_SIMULATED_FAILURE = 17
ELABORATION = (
    "[SIMULATED prompt upsampler: no model ran] Rendered as a photoreal video with "
    "natural light, coherent motion and fine surface detail"
)


def enhanced(prompt: str, video: Path) -> str:
    """The simulated upsampled prompt of ``prompt`` with ``video`` as context."""
    data = video.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:12]
    base = " ".join(prompt.split()).rstrip(".")
    return f"{base}. {ELABORATION}; context video {len(data)} bytes, sha256 {digest}."


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, wait, log the upsampled prompt."""
    parser = argparse.ArgumentParser(prog=PROG)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--input_video", required=True, type=Path)
    parser.add_argument("--checkpoint_dir", default="checkpoints")
    parser.add_argument("--offload_prompt_upsampler", action="store_true")
    parser.add_argument("--model_load_s", type=float, default=0.0)
    parser.add_argument("--fail_on_prompt", default=None)
    args = parser.parse_args(argv)
    if not args.prompt.strip():
        print(f"{PROG}: error: the prompt is empty", file=sys.stderr)
        return 2
    if not args.input_video.is_file():
        print(f"{PROG}: error: input video not found: {args.input_video}", file=sys.stderr)
        return 2
    print(f"[simulated] loading the prompt upsampler ({args.model_load_s:g} s)", flush=True)
    time.sleep(args.model_load_s)
    if args.fail_on_prompt and args.fail_on_prompt in args.prompt:
        print(f"{PROG}: error: simulated failure (the prompt contains {args.fail_on_prompt!r})")
        return EXIT_SIMULATED_FAILURE
    print(f"Upsampled prompt: {enhanced(args.prompt, args.input_video)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
