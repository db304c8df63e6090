"""The life of a run and why a run belongs to a sweep: plain enums, no SQLAlchemy.

The models (models.py) store these; the CLI offers them as choices without
loading the database layer.
"""

from __future__ import annotations

import enum


class RunStatus(str, enum.Enum):
    """The life of a run: pending -> queued -> running -> a final state."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for succeeded, failed and cancelled."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})

# Every run status, in the order of a run's life (the CLI's choices and counts).
RUN_STATUSES: tuple[str, ...] = tuple(status.value for status in RunStatus)

# Allowed transitions. A final failed/cancelled run may be queued again (retry).
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.QUEUED, RunStatus.CANCELLED}),
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.PENDING}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.QUEUED}
    ),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset({RunStatus.QUEUED}),
    RunStatus.CANCELLED: frozenset({RunStatus.QUEUED}),
}


class SweepStage(str, enum.Enum):
    """Why a run belongs to a sweep: one of its points, or one of its stages' runs."""

    MAIN = "main"
    ENHANCE = "enhance"
    UPSCALE = "upscale"
