"""Supervisor of one local model process, so a job outlives the runner that started it.

    python -S -E local_job.py LOG EXIT TOKEN -- PROGRAM [ARGS...]

The runner starts this in a session of its own. It takes the start TOKEN
(see claim_start), writes its pid file, runs the program with its output in
LOG and, when the program ends, writes the exit code to EXIT (atomically).
The room for the exit code is taken before the program starts (a file of
its final size, overwritten in place): a program that fills the disk cannot
keep its exit code from being recorded.
A runner that was killed meanwhile finds the job again by its folder: still
running (it follows the log), or over (it reads EXIT). SIGTERM is passed on
to the program. Standard library only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

# Names in the job folder (the runner uses the same ones).
START_NAME = "job.start"
STARTED_NAME = "job.started"
# The name the token gets when a runner gives the job up before it started.
ABANDONED_NAME = "job.abandoned"
PID_NAME = "job.pid"


# The width of the recorded exit code (room for any int32, right-aligned).
EXIT_WIDTH = 12


def reserve_exit_code(path: Path) -> None:
    """Take the disk space of ``path``'s exit code now, under a temporary name."""
    path.with_name(path.name + ".tmp").write_text(" " * EXIT_WIDTH + "\n", encoding="ascii")


def write_exit_code(path: Path, code: int) -> None:
    """Write ``code`` to ``path`` through a temporary name (never half a number).

    The temporary file that :func:`reserve_exit_code` made is overwritten in
    place (no new disk space is needed), else made now.
    """
    temporary = path.with_name(path.name + ".tmp")
    text = f"{code:>{EXIT_WIDTH}}\n".encode("ascii")
    try:
        fd = os.open(temporary, os.O_WRONLY)
    except FileNotFoundError:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, text, 0)
        os.ftruncate(fd, len(text))
    finally:
        os.close(fd)
    temporary.replace(path)


def claim_start(token: Path, to: str = STARTED_NAME) -> bool:
    """Take the job's start token (a rename: exactly one process gets it).

    The runner writes the token before it starts this supervisor; a runner
    that later finds the job not started takes the token away instead, so a
    late supervisor never runs a job that was given up and started again.
    """
    try:
        token.rename(token.with_name(to))
    except FileNotFoundError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Take the start token, record this process, run the program, record its exit code.

    Returns:
        0 when the exit code was recorded (or the job was given up); 2 on bad arguments.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 5 or args[3] != "--":
        sys.stderr.write("usage: local_job LOG EXIT TOKEN -- PROGRAM [ARGS...]\n")
        return 2
    log_path, exit_path, token, command = Path(args[0]), Path(args[1]), Path(args[2]), args[4:]
    if not claim_start(token):
        return 0
    reserve_exit_code(exit_path)
    pid_file = token.with_name(PID_NAME)
    temporary = pid_file.with_name(pid_file.name + ".tmp")
    temporary.write_text(f"{os.getpid()}\n{Path.cwd().resolve()}\n", encoding="utf-8")
    temporary.replace(pid_file)
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
