"""Local I/O faults of a runner: a full disk is recorded as such, and no run is left running.

The output tree (and, by default, the SQLite database in it) is on a local
disk that can fill up: a model's outputs, a run's records, the database's
own writes. What the runner does then:

- every run of a job that met such a fault is recorded: adopted as
  succeeded if its folder verifies (its outputs and records were written
  whole), else failed with the fault as its reason ("no space left on
  device writing .../result.json"), never left "running";
- on a full disk it frees the output tree's reserve (utils/disk.py) so that
  these records can still be written, records the run it was recording
  once more, and starts no new job: runs not started stay queued, and the
  next command (with space again) finishes the sweep;
- a model that failed on a full disk fails its runs without output with
  that reason, without retries or splitting (the runs are not at fault);
  the outputs it wrote whole are adopted as usual.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from cosmos_workflow.database.models import RunStatus
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.engine.isolation import AfterFailure, Failure, log_tail
from cosmos_workflow.engine.outcome import JobOutcome
from cosmos_workflow.engine.progress import ProgressSink
from cosmos_workflow.outputs.store import OutputStore
from cosmos_workflow.utils.disk import (
    ENOSPC_TEXT,
    RESERVE_NAME,
    DiskReserve,
    free_bytes,
    io_reason,
    is_disk_full,
)

logger = logging.getLogger(__name__)

# A disk with less free space than this is full (for a model that failed on it).
LOW_FREE_BYTES = 1 << 20
# How much of a failed job's log is searched for the full disk's message.
LOG_LOOK_BYTES = 64 << 10
# The error class of runs that met a local I/O fault.
IO_ERROR_CLASS = "io"


def output_reserve(store: OutputStore) -> DiskReserve:
    """The disk reserve of an output tree."""
    return DiskReserve(store.root / RESERVE_NAME)


class DiskGuard:
    """Watches a runner's local I/O faults, and records the runs they hit.

    Safe to use from several job threads at once.

    Args:
        repository: Database access.
        store: The output tree.
        progress: Receives the runs' outcomes and notes.
        runner_id: The runner whose running runs it records.
    """

    def __init__(
        self, repository: DataRepository, store: OutputStore, progress: ProgressSink, runner_id: str
    ) -> None:
        self._repo = repository
        self._store = store
        self._progress = progress
        self._runner_id = runner_id
        self._reserve = output_reserve(store)
        self._full = threading.Event()
        self._lock = threading.Lock()

    @property
    def full(self) -> bool:
        """True once a full disk was met: no new job starts."""
        return self._full.is_set()

    def seen(self, exc: BaseException) -> bool:
        """Take note of an I/O fault; True if it is a full disk (the reserve is freed then)."""
        if not is_disk_full(exc):
            return False
        with self._lock:
            first = not self._full.is_set()
            self._full.set()
        self._reserve.release()
        if first:
            self._progress.note(
                f"the disk of {self._store.root} is full ({io_reason(exc)}): no new job "
                "starts, runs not started stay queued; free space and run the command again"
            )
        return True

    def relieved(self, exc: BaseException) -> bool:
        """True if ``exc`` is a full disk and the reserve was freed for it just now.

        A write that failed may then be tried once more (at most once per runner).
        """
        if not is_disk_full(exc):
            return False
        freed = self._reserve.release()
        self.seen(exc)
        return freed

    @staticmethod
    def record_error(exc: OSError) -> str:
        """The error message of a run whose records could not be written."""
        return f"could not record the run's outputs: {io_reason(exc)}"

    def model_failure(self, failure: Failure, staging: Path, log_path: Path) -> Failure:
        """A failed job's fate, if its model failed on a full disk (else ``failure`` itself).

        On a full disk the runs without output fail with that reason; they
        are not tried again (the runs are not at fault; the next command
        runs them).
        """
        free = free_bytes(staging)
        if free is not None and free < LOW_FREE_BYTES:
            reason = f"the disk of {self._store.root} is full ({free} bytes free)"
        elif ENOSPC_TEXT in log_tail(log_path, LOG_LOOK_BYTES):
            reason = f"the model met a full disk (its log says {ENOSPC_TEXT!r})"
        elif self.full:
            reason = f"the disk of {self._store.root} filled up during this sweep"
        else:
            return failure
        self.seen(OSError(errno.ENOSPC, ENOSPC_TEXT))
        plan = AfterFailure(adopt=list(failure.plan.adopt))
        return Failure(failure.exit_code, reason, plan)

    @contextmanager
    def recording(self, run_ids: Sequence[str], outcome: JobOutcome) -> Iterator[None]:
        """Around a job's work: an I/O or database fault records the job's runs still running.

        The fault is not raised again: the job is over, its runs are recorded.
        """
        try:
            yield
        except (OSError, SQLAlchemyError) as exc:
            logger.error("Recording runs %s failed: %s", ", ".join(run_ids), exc)
            self.settle_running(run_ids, exc, outcome)

    def settle_running(
        self, run_ids: Sequence[str], exc: BaseException, outcome: JobOutcome
    ) -> None:
        """Record the runs among ``run_ids`` that this runner still has running.

        A run whose folder verifies succeeded (it was recorded on disk
        whole); the others fail with ``exc`` as their reason. On a full
        disk the reserve is freed first, and a database write that fails
        on it is tried once more.
        """
        self.seen(exc)
        what = "I/O error" if isinstance(exc, OSError) else "could not record the run"
        message = f"{what}: {io_reason(exc)}"
        try:
            self._settle(run_ids, message, outcome)
        except SQLAlchemyError as again:
            if not self.seen(again):
                raise
            self._settle(run_ids, message, outcome)

    def settle_after(self, run_ids: Sequence[str], error: BaseException) -> BaseException:
        """Record the runs of a job whose thread failed (none is left running); return ``error``.

        A database that cannot record them is logged: ``error`` is what the caller raises.
        """
        try:
            self.settle_running(run_ids, error, JobOutcome())
        except SQLAlchemyError as exc:
            logger.error("Could not record runs %s: %s", ", ".join(run_ids), exc)
        return error

    def _settle(self, run_ids: Sequence[str], message: str, outcome: JobOutcome) -> None:
        statuses = self._repo.statuses(run_ids)
        running = [run_id for run_id in run_ids if statuses.get(run_id) is RunStatus.RUNNING]
        rest = []
        for run_id in running:
            if not self._store.verify_outputs(run_id):
                rest.append(run_id)
                continue
            folder = self._store.run_dir(run_id)
            self._repo.adopt_succeeded(run_id, str(folder), self._store.read_result(run_id) or {})
            outcome.tally.succeeded.append(run_id)
            self._progress.run_finished(run_id, "succeeded", 0.0, str(folder))
        failed = self._repo.fail_running(rest, self._runner_id, IO_ERROR_CLASS, message)
        for run_id in failed:
            outcome.tally.failed.append(run_id)
            self._progress.run_finished(run_id, "failed", 0.0, message)
