"""What the runner reports while it works; the CLI decides how to show it.

A scheduler sends these events from several worker threads at once: every
sink must be thread-safe.
"""

from __future__ import annotations

import logging
from typing import Protocol

logger = logging.getLogger(__name__)


class ProgressSink(Protocol):
    """Receives progress events from the runner."""

    def start(self, total: int, cached: int, to_run: int) -> None:
        """A sweep (or single run) begins."""

    def job_started(self, job_id: str, run_ids: list[str], target: str, gpus: list[int]) -> None:
        """One invocation starts on a target."""

    def log_line(self, job_id: str, line: str) -> None:
        """One line of a job's log."""

    def run_finished(self, run_id: str, status: str, seconds: float, message: str) -> None:
        """One run reached a final state."""

    def job_finished(self, job_id: str, target: str, gpus: list[int]) -> None:
        """A job's program ended (whatever the outcome): its GPUs are free."""

    def runs_requeued(self, run_ids: list[str]) -> None:
        """Runs of a job that ended go back to the queue (they are not running now)."""

    def note(self, message: str) -> None:
        """Something the user should know, e.g. a retry or a target taken out of use."""

    def finish(self) -> None:
        """The work is over (normally or not)."""


class NullProgress:
    """Reports nothing but notes, which it logs (there is no screen to show them on)."""

    def start(self, total: int, cached: int, to_run: int) -> None:
        """Ignore."""

    def job_started(self, job_id: str, run_ids: list[str], target: str, gpus: list[int]) -> None:
        """Ignore."""

    def log_line(self, job_id: str, line: str) -> None:
        """Ignore."""

    def run_finished(self, run_id: str, status: str, seconds: float, message: str) -> None:
        """Ignore."""

    def job_finished(self, job_id: str, target: str, gpus: list[int]) -> None:
        """Ignore."""

    def runs_requeued(self, run_ids: list[str]) -> None:
        """Ignore."""

    def note(self, message: str) -> None:
        """Log the note."""
        logger.info("%s", message)

    def finish(self) -> None:
        """Ignore."""
