"""Terminal output shared by `cosmos` and `cosmos-batch`: errors, logging, progress."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.exc import SQLAlchemyError

from cosmos_workflow.errors import CosmosError, StateError

logger = logging.getLogger("cosmos_workflow.progress")


def stderr_console() -> Console:
    """A console on stderr; colour only when it is a terminal."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def configure_logging(level: str) -> None:
    """Plain log lines on stderr at ``level``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("alembic", "sqlalchemy", "paramiko"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def print_error(error: CosmosError) -> None:
    """One screen: 'error (kind): message', nothing else."""
    sys.stderr.write(f"error ({error.kind}): {error}\n")


# What a shell reports for a program stopped by SIGPIPE (128 + 13).
BROKEN_PIPE_EXIT = 141


def guarded(action: Callable[[], int]) -> int:
    """Run a CLI action; turn every expected failure into a message and exit code.

    Database and file-system errors become state errors (exit 1), classified
    errors keep their own exit code. A closed output pipe (``| head``) ends
    the command quietly, with exit code 141 as if SIGPIPE had stopped it.
    """
    try:
        return action()
    except CosmosError as exc:
        print_error(exc)
        return exc.exit_code
    except SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        print_error(StateError(f"database error: {detail}"))
        return StateError.exit_code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_EXIT
    except OSError as exc:
        print_error(StateError(f"file system error: {exc}"))
        return StateError.exit_code


class PlainProgress:
    """Progress as log lines (when stderr is not a terminal)."""

    def __init__(self) -> None:
        self._total = 0
        self._done = 0

    def start(self, total: int, cached: int, to_run: int) -> None:
        """Log the counts."""
        self._total = to_run
        logger.info("%d runs: %d cached, %d to run", total, cached, to_run)

    def job_started(self, job_id: str, run_ids: list[str], target: str, gpus: list[int]) -> None:
        """Log the job."""
        logger.info("job %s: %d run(s) on %s gpus=%s", job_id, len(run_ids), target, gpus)

    def log_line(self, job_id: str, line: str) -> None:
        """Model output only at DEBUG level."""
        logger.debug("%s | %s", job_id, line)

    def job_finished(self, job_id: str, target: str, gpus: list[int]) -> None:
        """Log the end of the job's program."""
        logger.info("job %s ended on %s gpus=%s", job_id, target, gpus)

    def note(self, message: str) -> None:
        """Log the note."""
        logger.warning("%s", message)

    def run_finished(self, run_id: str, status: str, seconds: float, message: str) -> None:
        """Log one finished run."""
        self._done += 1
        logger.info(
            "[%d/%d] %s %s in %.1fs: %s", self._done, self._total, run_id, status, seconds, message
        )

    def finish(self) -> None:
        """Nothing to close."""


class RichProgress:
    """A live bar with counts and ETA (when stderr is a terminal)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ok {task.fields[ok]} failed {task.fields[failed]}"),
            TextColumn("{task.fields[current]}"),
            TimeRemainingColumn(),
            console=console,
        )
        self._task = None
        self._counts = {"ok": 0, "failed": 0}

    def start(self, total: int, cached: int, to_run: int) -> None:
        """Show the bar."""
        self._console.print(f"{total} runs: {cached} cached, {to_run} to run")
        self._progress.start()
        self._task = self._progress.add_task("runs", total=to_run, ok=0, failed=0, current="")

    def job_started(self, job_id: str, run_ids: list[str], target: str, gpus: list[int]) -> None:
        """Show what runs where."""
        self._progress.update(self._task, current=f"{target} gpu {gpus}: {len(run_ids)} run(s)")

    def log_line(self, job_id: str, line: str) -> None:
        """Model output is in the run logs, not on screen."""

    def job_finished(self, job_id: str, target: str, gpus: list[int]) -> None:
        """Nothing to show."""

    def note(self, message: str) -> None:
        """Print the note above the bar."""
        self._progress.console.print(escape(message))

    def run_finished(self, run_id: str, status: str, seconds: float, message: str) -> None:
        """Advance the bar."""
        key = "ok" if status == "succeeded" else "failed"
        self._counts[key] += 1
        if status != "succeeded":
            self._progress.console.print(f"[red]{run_id} {status}[/red]: {escape(message)}")
        self._progress.update(self._task, advance=1, **self._counts)

    def finish(self) -> None:
        """Remove the live display."""
        self._progress.stop()


def make_progress(console: Console) -> PlainProgress | RichProgress:
    """Rich display on a terminal, log lines otherwise."""
    return RichProgress(console) if console.is_terminal else PlainProgress()
