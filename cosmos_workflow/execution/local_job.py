"""Supervisor of one local model process, so a job outlives the runner that started it.

    python -m cosmos_workflow.execution.local_job LOG EXIT -- PROGRAM [ARGS...]

The runner starts this in a session of its own. It runs the program with
its output in LOG and, when the program ends, writes the exit code to EXIT
(atomically). A runner that was killed meanwhile finds the job again by its
folder: still running (it follows the log), or over (it reads EXIT). SIGTERM
is passed on to the program. Standard library only.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


def write_exit_code(path: Path, code: int) -> None:
    """Write ``code`` to ``path`` through a temporary name (never half a number)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(f"{code}\n", encoding="ascii")
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Run the program, keep its log, record its exit code.

    Returns:
        0 when the exit code was recorded; 2 on bad arguments.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[2] != "--":
        sys.stderr.write("usage: local_job LOG EXIT -- PROGRAM [ARGS...]\n")
        return 2
    log_path, exit_path, command = Path(args[0]), Path(args[1]), args[3:]
    with log_path.open("ab") as log:
        try:
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        except OSError as exc:
            log.write(f"cannot start {command[0]}: {exc}\n".encode())
            write_exit_code(exit_path, 127)
            return 0
    signal.signal(signal.SIGTERM, lambda signum, _frame: child.send_signal(signum))
    code = child.wait()
    write_exit_code(exit_path, code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
