"""Counts, busy GPU slots and the ETA, kept from progress events (thread-safe)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from cosmos_workflow.engine.eta import eta_seconds
from cosmos_workflow.utils.clock import Clock


@dataclass(frozen=True)
class Slot:
    """A job that holds GPUs of a target."""

    job_id: str
    target: str
    gpus: tuple[int, ...]
    runs: int
    elapsed_s: float


@dataclass(frozen=True)
class Snapshot:
    """What the progress is at one moment.

    ``left`` counts runs not started yet; ``finished`` counts runs in a
    final state (succeeded, failed or cancelled).
    """

    total: int
    cached: int
    to_run: int
    succeeded: int
    failed: int
    cancelled: int
    running: int
    left: int
    eta_s: float | None
    slots: tuple[Slot, ...]

    @property
    def finished(self) -> int:
        """Runs in a final state."""
        return self.succeeded + self.failed + self.cancelled


@dataclass
class _Job:
    target: str
    gpus: tuple[int, ...]
    runs: int
    started: float


class ProgressState:
    """Follows a sweep's progress events; every method may be called from any thread.

    Args:
        clock: Time source (its monotonic seconds) for elapsed times and the ETA.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._total = self._cached = self._to_run = 0
        self._outcomes = {"succeeded": 0, "failed": 0, "cancelled": 0}
        self._running: set[str] = set()
        self._jobs: dict[str, _Job] = {}
        self._first_start: float | None = None

    def start(self, total: int, cached: int, to_run: int) -> Snapshot:
        """A sweep (or one of its stages) begins: ``to_run`` of ``total`` runs will execute.

        Counts of an earlier stage are forgotten.
        """
        with self._lock:
            self._total, self._cached, self._to_run = total, cached, to_run
            self._outcomes = dict.fromkeys(self._outcomes, 0)
            self._running.clear()
            self._jobs.clear()
            self._first_start = None
            return self._snapshot()

    def job_started(
        self, job_id: str, run_ids: list[str], target: str, gpus: list[int]
    ) -> Snapshot:
        """A job holds ``gpus`` of ``target`` and runs ``run_ids``."""
        with self._lock:
            now = self._clock.monotonic()
            if self._first_start is None:
                self._first_start = now
            self._jobs[job_id] = _Job(target, tuple(gpus), len(run_ids), now)
            self._running.update(run_ids)
            return self._snapshot()

    def run_finished(self, run_id: str, status: str) -> Snapshot:
        """A run reached ``status`` (succeeded, failed or cancelled)."""
        with self._lock:
            self._running.discard(run_id)
            key = status if status in self._outcomes else "failed"
            self._outcomes[key] += 1
            return self._snapshot()

    def job_finished(self, job_id: str) -> tuple[Slot | None, Snapshot]:
        """A job's program ended: its GPUs are free.

        Its runs count as running until each is recorded (run_finished), or
        goes back to the queue (runs_requeued), or starts again in another job.

        Returns:
            The slot it held (None for a job never seen starting) and the new state.
        """
        with self._lock:
            job = self._jobs.pop(job_id, None)
            slot = self._slot(job_id, job) if job else None
            return slot, self._snapshot()

    def runs_requeued(self, run_ids: list[str]) -> Snapshot:
        """Runs of a job that ended go back to the queue: they run no more until restarted."""
        with self._lock:
            self._running.difference_update(run_ids)
            return self._snapshot()

    def snapshot(self) -> Snapshot:
        """The current state."""
        with self._lock:
            return self._snapshot()

    def _slot(self, job_id: str, job: _Job) -> Slot:
        elapsed = self._clock.monotonic() - job.started
        return Slot(job_id, job.target, job.gpus, job.runs, elapsed)

    def _snapshot(self) -> Snapshot:
        finished = sum(self._outcomes.values())
        processed = self._outcomes["succeeded"] + self._outcomes["failed"]
        unfinished = max(0, self._to_run - finished)
        running = len(self._running)
        elapsed = 0.0 if self._first_start is None else self._clock.monotonic() - self._first_start
        slots = sorted(
            (self._slot(job_id, job) for job_id, job in self._jobs.items()),
            key=lambda slot: (slot.target, slot.gpus, slot.job_id),
        )
        return Snapshot(
            total=self._total,
            cached=self._cached,
            to_run=self._to_run,
            running=running,
            left=max(0, unfinished - running),
            eta_s=eta_seconds(processed, unfinished, elapsed),
            slots=tuple(slots),
            **self._outcomes,
        )
