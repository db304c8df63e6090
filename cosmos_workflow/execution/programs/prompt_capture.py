#!/usr/bin/env python3
"""Run a prompt upsampler and keep the prompt it made in a file.

NVIDIA's standalone upsampler (upsampler_pipeline.py) writes its result only
to its log, as a line containing ``Upsampled prompt: TEXT``. This program runs
the given command, passes its output through line by line, and writes TEXT of
the last such line to ``--out`` (atomically). It exits with the command's exit
code, or 3 if the command succeeded without printing a prompt.

It uses the standard library only: it travels with each job and runs inside
the model's container.

Usage:
    python3 prompt_capture.py --out OUT.txt -- COMMAND [ARGS...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

MARKER = "Upsampled prompt: "
EXIT_NO_PROMPT = 3


def last_prompt(lines: list[str]) -> str | None:
    """The text after the marker in the last line that has it."""
    for line in reversed(lines):
        at = line.find(MARKER)
        if at >= 0:
            text = line[at + len(MARKER) :].strip()
            if text:
                return text
    return None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name next to ``path``, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text + "\n", encoding="utf-8")
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code (3: it printed no prompt)."""
    parser = argparse.ArgumentParser(prog="prompt_capture")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    seen: list[str] = []
    # Bytes pass through unchanged and are read as UTF-8, whatever the locale.
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as child:
        for raw in child.stdout or ():
            sys.stdout.buffer.write(raw)
            sys.stdout.buffer.flush()
            line = raw.decode("utf-8", errors="replace")
            if MARKER in line:
                seen.append(line)
    if child.returncode < 0:
        return 128 - child.returncode  # killed by a signal, as a shell reports it
    if child.returncode != 0:
        return child.returncode
    prompt = last_prompt(seen)
    if prompt is None:
        print(f"prompt_capture: error: the upsampler printed no line with {MARKER!r}", flush=True)
        return EXIT_NO_PROMPT
    write_atomic(args.out, prompt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
