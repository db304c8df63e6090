"""What one job hands back to the dispatcher: how its runs ended, what to try again.

The job runner (engine/runner.py) fills these in, the dispatcher
(engine/dispatch.py) reads them (as events from its worker threads), and a
sweep adds up their tallies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cosmos_workflow.database.models import RunStatus
from cosmos_workflow.errors import CosmosError
from cosmos_workflow.execution.targets.base import ExecutionResult, Executor
from cosmos_workflow.outputs.store import RunRecord


@dataclass
class RunTally:
    """How the executed runs ended.

    Attributes:
        succeeded: Runs that succeeded.
        failed: Runs that failed.
        cancelled: Runs cancelled before they ended.
        by_others: Those of the runs above that another runner executed
            (this runner waited for them).
    """

    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    by_others: list[str] = field(default_factory=list)

    def add(self, other: RunTally) -> None:
        """Count the runs of ``other`` too."""
        for name in ("succeeded", "failed", "cancelled", "by_others"):
            getattr(self, name).extend(getattr(other, name))

    def add_by_others(self, statuses: Mapping[str, RunStatus]) -> None:
        """Count runs that another runner brought to the final ``statuses``."""
        for run_id, status in sorted(statuses.items()):
            if status.is_final:
                getattr(self, status.value).append(run_id)
                self.by_others.append(run_id)


@dataclass
class JobOutcome:
    """What happened to one job, for the dispatcher.

    Attributes:
        tally: The runs that reached a final state in this job.
        elsewhere: Runs that another runner holds (they were not claimed).
        retry: Runs put back in the queue to be tried again as one job (their job failed).
        split: Groups of runs put back in the queue, each to be tried as a job of its own.
        fault: The error that made the job fail, if any.
        host_lost: True if the target could not be reached (drain it).
        seconds: How long the program ran (0 if it did not).
        expected_ok: True if the program ran to a normal end (a measure of the host's speed).
    """

    tally: RunTally = field(default_factory=RunTally)
    elsewhere: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    split: list[list[str]] = field(default_factory=list)
    fault: CosmosError | None = None
    host_lost: bool = False
    seconds: float = 0.0
    expected_ok: bool = False


@dataclass
class JobEvent:
    """What a worker or probe thread hands to the dispatcher's main thread (which alone acts).

    Attributes:
        job_id: The job (empty for a probe's answer).
        outcome: How the job ended.
        lost: True if a job re-attached to was gone from its target.
        error: An unexpected error of the worker (re-raised in the main thread).
        probed: The target a probe asked, if this is a probe's answer.
        probe_error: Why that target did not answer (None: it did).
    """

    job_id: str = ""
    outcome: JobOutcome | None = None
    lost: bool = False
    error: BaseException | None = None
    probed: str | None = None
    probe_error: CosmosError | None = None


@dataclass(frozen=True)
class Slot:
    """GPUs of one target given to a job."""

    executor: Executor
    gpus: list[int]


def run_record(
    status: RunStatus,
    job: tuple[str, int, str, list[int]],
    result: ExecutionResult | None,
    stored: tuple[datetime, datetime, int],
    error: tuple[str, str] | None = None,
) -> RunRecord:
    """The record of a run that ended (its run folder's run.json).

    Args:
        status: How it ended.
        job: Its job's id, batch size, target name and GPUs.
        result: How the job's program ended (None: it did not run).
        stored: When it started (as stored), now, and its attempts.
        error: Its error class and message, if it did not succeed.
    """
    job_id, batch_size, target, gpus = job
    started, now, attempts = stored
    return RunRecord(
        status=status.value,
        target=target,
        gpus=gpus,
        job_id=job_id,
        batch_size=batch_size,
        started_at=(result.started_at if result else started).isoformat(),
        finished_at=(result.finished_at if result else now).isoformat(),
        exit_code=result.exit_code if result else None,
        attempts=attempts,
        error_class=error[0] if error else None,
        error_message=error[1] if error else None,
    )
