#!/usr/bin/env python3
"""Run a prompt upsampler and keep the prompt it made in a file.

NVIDIA's standalone upsampler (upsampler_pipeline.py) reports its result only
in its output: ``print("Upsampled prompt:", text)``, where ``text`` is the
model's answer, stripped, and may span several lines. This program runs the
given command, passes its output through line by line, and writes the
prompt to ``--out`` (atomically): from the first line that starts with
``Upsampled prompt:`` up to the next log record (a line that starts like one
of vLLM, torch, Cosmos, loguru, the logging module, a warning or a
traceback) or the end of the output. It exits with the command's exit code,
or 3 if the command succeeded without printing a prompt (or an empty one).

It uses the standard library only: it travels with each job and runs inside
the model's container.

Usage:
    python3 prompt_capture.py --out OUT.txt -- COMMAND [ARGS...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

MARKER = "Upsampled prompt:"
EXIT_NO_PROMPT = 3
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
LOG_RECORD = re.compile(
    r"""
    \([^()]*\bpid=\d+\)\s                              # (EngineCore_0 pid=12) a vLLM process
    | (?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\s\d\d-\d\d\s\d\d:\d\d:\d\d  # vLLM: INFO 05-12 10:00:00
    | (?:DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.\-]*:    # logging's default: WARNING:root:
    | [DIWEF]\d{3,4}\s\d\d:\d\d:\d\d                     # torch / glog: W0512 10:00:00.1
    | \[(?:rank\d+\]:|[DIWEF]\d{3,4}\s|\d\d-\d\d\s\d\d:\d\d:\d\d\|)  # [rank0]: [W512 [05-12 ..|
    | \d{4}-\d\d-\d\d[\sT]\d\d:\d\d:\d\d                 # loguru's default: 2025-05-12 10:00:00
    | \S+\.py:\d+:\s\w*(?:Warning|Error):                # warnings.warn: file.py:1: UserWarning:
    | Traceback\s\(most\srecent\scall\slast\):
    | Exception\signored\sin\b
    """,
    re.VERBOSE,
)


def shown(raw: str) -> str:
    """A line as a terminal shows it: no line end, only what follows its last ``\\r``."""
    return raw.rstrip("\r\n").rsplit("\r", 1)[-1]


def is_log_record(line: str) -> bool:
    """Whether ``line`` starts a log record (colour codes ignored)."""
    return LOG_RECORD.match(ANSI_ESCAPE.sub("", line)) is not None


class PromptReader:
    """Follows the program's output line by line and keeps the upsampled prompt."""

    def __init__(self) -> None:
        self._lines: list[str] | None = None  # None: no marker line yet
        self._ended = False

    def feed(self, raw: str) -> None:
        """Take one line of output (with its line end)."""
        if self._ended:
            return
        line = shown(raw)
        if self._lines is None:
            if line.startswith(MARKER):
                self._lines = [line[len(MARKER) :]]
        elif is_log_record(line):
            self._ended = True
        else:
            self._lines.append(line)

    def found(self) -> bool:
        """Whether a line started with the marker."""
        return self._lines is not None

    def prompt(self) -> str:
        """The prompt: its lines as printed, surrounding blank space removed."""
        return "\n".join(self._lines or []).strip()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name next to ``path``, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text + "\n", encoding="utf-8")
    partial.replace(path)


def fail(message: str) -> int:
    """Report that no prompt can be kept; the exit code for it."""
    print(f"prompt_capture: error: {message}", flush=True)
    return EXIT_NO_PROMPT


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code (3: it printed no prompt)."""
    parser = argparse.ArgumentParser(prog="prompt_capture")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    reader = PromptReader()
    # Bytes pass through unchanged and are read as UTF-8, whatever the locale.
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as child:
        for raw in child.stdout or ():
            sys.stdout.buffer.write(raw)
            sys.stdout.buffer.flush()
            reader.feed(raw.decode("utf-8", errors="replace"))
    if child.returncode < 0:
        return 128 - child.returncode  # killed by a signal, as a shell reports it
    if child.returncode != 0:
        return child.returncode
    if not reader.found():
        return fail(f"the upsampler printed no line starting with {MARKER!r}")
    prompt = reader.prompt()
    if not prompt:
        return fail("the upsampler printed an empty prompt")
    write_atomic(args.out, prompt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
