#!/usr/bin/env python3
"""Run the demo sweep and end by saying how to look at it (``make demo``).

Runs ``BIN/cosmos-batch +experiment=demo`` in the current folder, passing its
output through as it comes, then prints where its report is and the command
that browses every run and sweep:

    Look at it: open outputs/sweeps/<sw_id>/report.html   or run: .venv/bin/cosmos ui

Usage:
    python scripts/demo.py [BIN] [OVERRIDE ...]   (BIN: default .venv/bin)

Exits with cosmos-batch's exit code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPORT_PREFIX = "report: "


def main(argv: list[str]) -> int:
    """Run the demo; print the hint when cosmos-batch wrote a report.

    Args:
        argv: The commands' folder, then extra cosmos-batch overrides.

    Returns:
        cosmos-batch's exit code.
    """
    bin_dir = Path(argv[0]) if argv else Path(".venv") / "bin"
    command = [str(bin_dir / "cosmos-batch"), "+experiment=demo", *argv[1:]]
    report = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.startswith(REPORT_PREFIX):
                report = line.removeprefix(REPORT_PREFIX).strip()
    if report:
        print(f"\nLook at it: open {report}   or run: {bin_dir / 'cosmos'} ui", flush=True)
    return process.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
