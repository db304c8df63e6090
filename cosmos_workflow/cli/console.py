"""Terminal output shared by `cosmos` and `cosmos-batch`: errors, logging, progress."""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.padding import Padding
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cosmos_workflow.cli.common import database_errors
from cosmos_workflow.engine.eta import format_duration
from cosmos_workflow.engine.progress_state import ProgressState
from cosmos_workflow.errors import CosmosError, StateError
from cosmos_workflow.utils.clock import Clock, SystemClock
from cosmos_workflow.utils.words import counted

logger = logging.getLogger("cosmos_workflow.progress")


def stderr_console() -> Console:
    """A console on stderr; colour only when it is a terminal."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


class _ResultConsole(Console):
    """A console whose closed output pipe ends the command like SIGPIPE (see guarded)."""

    def on_broken_pipe(self) -> None:
        """Leave the closed pipe to guarded() (rich itself would exit with code 1)."""
        raise BrokenPipeError


def stdout_console() -> Console:
    """A console on stdout for results: colour only on a terminal without NO_COLOR.

    Text is printed as given: no markup, emoji codes, highlighting or wrapping.
    """
    return _ResultConsole(highlight=False, markup=False, emoji=False, soft_wrap=True)


# How a run status is coloured on a terminal.
STATUS_STYLES = {
    "succeeded": "green",
    "failed": "red",
    "damaged": "bold red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "blue",
    "pending": "default",
}


def status_text(status: str, width: int = 0) -> Text:
    """A run status padded to ``width``, in its colour."""
    return Text(status.ljust(width), style=STATUS_STYLES.get(status, "default"))


class _StderrHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is at each line (a live display redirects it)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        """The current sys.stderr."""
        return sys.stderr


def configure_logging(level: str) -> None:
    """Plain log lines on stderr at ``level``.

    While the live display runs, the lines are printed above it.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("alembic", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # paramiko logs a lost connection as ERROR lines of a traceback; what it
    # means is said in one line by the runner: its own lines only at DEBUG.
    logging.getLogger("paramiko").setLevel(
        logging.DEBUG if level == "DEBUG" else logging.CRITICAL + 1
    )


def print_error(error: CosmosError) -> None:
    """One screen: 'error (kind): message', nothing else (in red on a terminal)."""
    console = stderr_console()
    if console.is_terminal:
        console.print(Text.assemble((f"error ({error.kind}):", "bold red"), f" {error}"))
    else:
        sys.stderr.write(f"error ({error.kind}): {error}\n")


# What a shell reports for a program stopped by SIGPIPE (128 + 13).
BROKEN_PIPE_EXIT = 141


def guarded(action: Callable[[], int], debug: bool = False) -> int:
    """Run a CLI action; turn every expected failure into a message and exit code.

    Database and file-system errors become state errors (exit 1), classified
    errors keep their own exit code. A closed output pipe (``| head``) ends
    the command quietly, with exit code 141 as if SIGPIPE had stopped it.

    Args:
        action: What to run.
        debug: Print the traceback of a failure above its message
            (``cosmos --debug``, ``HYDRA_FULL_ERROR=1 cosmos-batch``).
    """
    try:
        return action()
    except CosmosError as exc:
        _traceback(debug)
        print_error(exc)
        return exc.exit_code
    except database_errors() as exc:
        _traceback(debug)
        detail = getattr(exc, "orig", None) or exc
        print_error(StateError(f"database error: {detail}"))
        return StateError.exit_code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_EXIT
    except OSError as exc:
        _traceback(debug)
        print_error(StateError(f"file system error: {exc}"))
        return StateError.exit_code


def _traceback(debug: bool) -> None:
    """The traceback of the exception being handled, on stderr, if asked for."""
    if debug:
        traceback.print_exc(file=sys.stderr)


def _gpu_list(gpus: list[int] | tuple[int, ...]) -> str:
    return ",".join(str(gpu) for gpu in gpus)


class PlainProgress:
    """Progress as log lines (when stderr is not a terminal); thread-safe.

    Args:
        clock: Time source for elapsed times and the ETA.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._state = ProgressState(clock or SystemClock())
        # Held while logging, so that lines come out in the order they count.
        self._lock = threading.Lock()

    def start(self, total: int, cached: int, to_run: int) -> None:
        """Log the counts."""
        with self._lock:
            self._state.start(total, cached, to_run)
            logger.info("%d runs: %d cached, %d to run", total, cached, to_run)

    def job_started(self, job_id: str, run_ids: list[str], target: str, gpus: list[int]) -> None:
        """Log where the job runs."""
        with self._lock:
            self._state.job_started(job_id, run_ids, target, gpus)
            logger.info(
                "job %s started on %s gpus %s: %s",
                job_id,
                target,
                _gpu_list(gpus),
                counted(len(run_ids), "run"),
            )

    def log_line(self, job_id: str, line: str) -> None:
        """Model output only at DEBUG level."""
        logger.debug("%s | %s", job_id, line)

    def run_finished(self, run_id: str, status: str, seconds: float, message: str) -> None:
        """Log one finished run with the counts and the ETA."""
        with self._lock:
            now = self._state.run_finished(run_id, status)
            logger.info(
                "[%d/%d] %s %s in %.1fs (done %d, running %d, failed %d, cancelled %d, left %d; "
                "eta %s): %s",
                now.finished,
                now.to_run,
                run_id,
                status,
                seconds,
                now.succeeded,
                now.running,
                now.failed,
                now.cancelled,
                now.left,
                format_duration(now.eta_s),
                message,
            )

    def job_finished(self, job_id: str, target: str, gpus: list[int]) -> None:
        """Log that the job's GPUs are free."""
        with self._lock:
            slot, _ = self._state.job_finished(job_id)
            took = format_duration(slot.elapsed_s if slot else None)
            logger.info(
                "job %s ended on %s gpus %s after %s", job_id, target, _gpu_list(gpus), took
            )

    def runs_requeued(self, run_ids: list[str]) -> None:
        """Count the runs as queued again (the dispatcher's note says why)."""
        with self._lock:
            self._state.runs_requeued(run_ids)

    def note(self, message: str) -> None:
        """Log a note as a warning."""
        with self._lock:
            logger.warning("%s", message)

    def finish(self) -> None:
        """Nothing to close."""


class RichProgress:
    """A live display of counts, ETA and busy GPUs (when stderr is a terminal); thread-safe.

    Failures and notes are printed above the live area, which stays on
    screen with the final counts when the work is over.

    Args:
        console: The terminal console.
        clock: Time source for elapsed times and the ETA.
    """

    def __init__(self, console: Console, clock: Clock | None = None) -> None:
        self._console = console
        self._state = ProgressState(clock or SystemClock())
        self._live = Live(
            console=console, get_renderable=self._render, refresh_per_second=4, transient=False
        )
        self._live_lock = threading.Lock()
        self._started = False

    def start(self, total: int, cached: int, to_run: int) -> None:
        """Show the display."""
        self._state.start(total, cached, to_run)
        self._console.print(f"{total} runs: {cached} cached, {to_run} to run")
        with self._live_lock:
            if not self._started:
                self._live.start()
                self._started = True
        self._refresh()

    def job_started(self, job_id: str, run_ids: list[str], target: str, gpus: list[int]) -> None:
        """Show the job on its GPUs."""
        self._state.job_started(job_id, run_ids, target, gpus)
        self._refresh()

    def log_line(self, job_id: str, line: str) -> None:
        """Model output is in the run logs, not on screen."""

    def run_finished(self, run_id: str, status: str, seconds: float, message: str) -> None:
        """Count the run; print a failure (or cancellation) above the display."""
        self._state.run_finished(run_id, status)
        if status != "succeeded":
            style = "yellow" if status == "cancelled" else "red"
            self._console.print(Text.assemble((f"{run_id} {status}", style), f": {message}"))
        self._refresh()

    def job_finished(self, job_id: str, target: str, gpus: list[int]) -> None:
        """Free the job's GPUs."""
        self._state.job_finished(job_id)
        self._refresh()

    def runs_requeued(self, run_ids: list[str]) -> None:
        """Count the runs as queued again."""
        self._state.runs_requeued(run_ids)
        self._refresh()

    def note(self, message: str) -> None:
        """Print a note above the display."""
        self._console.print(Text(message, style="yellow"))

    def finish(self) -> None:
        """Stop refreshing; the last state stays on screen."""
        with self._live_lock:
            if self._started:
                self._live.stop()
                self._started = False

    def _refresh(self) -> None:
        # Lock order: _live_lock, then rich's lock, then the state's lock (to
        # render); nothing takes _live_lock while holding one of the others.
        with self._live_lock:
            if self._started:
                self._live.refresh()

    def _render(self) -> RenderableType:
        now = self._state.snapshot()
        head = Table.grid(padding=(0, 1))
        head.add_row(
            ProgressBar(
                total=now.to_run or 1, completed=now.finished if now.to_run else 1, width=40
            ),
            f"{now.finished}/{now.to_run}",
            f"eta {format_duration(now.eta_s)}",
        )
        counts = Text.assemble(
            *_count("done", now.succeeded, "green"),
            *_count("running", now.running, "cyan"),
            *_count("failed", now.failed, "red"),
            *_count("cancelled", now.cancelled, "yellow"),
            *_count("cached", now.cached, "blue"),
            *_count("left", now.left, "default"),
        )
        slots = Table.grid(padding=(0, 2))
        for slot in now.slots:
            slots.add_row(
                slot.target,
                f"gpus {_gpu_list(slot.gpus)}",
                slot.job_id,
                counted(slot.runs, "run"),
                format_duration(slot.elapsed_s),
            )
        return Group(head, counts, Padding(slots, (0, 0, 0, 2), expand=False))


def _count(name: str, value: int, style: str) -> tuple[tuple[str, str], ...]:
    """A "name N" piece of the counts line, two spaces before the next."""
    return ((f"{name} ", ""), (str(value), f"bold {style}"), ("  ", ""))


def make_progress(console: Console) -> PlainProgress | RichProgress:
    """Live display on a terminal, log lines otherwise."""
    clock = SystemClock()
    return RichProgress(console, clock) if console.is_terminal else PlainProgress(clock)
