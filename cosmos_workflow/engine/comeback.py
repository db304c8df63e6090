"""A host that answers again: which of the jobs left there are followed again.

A job whose host went silent for longer than the patience is given back to
the dispatcher: its runs are queued again and may move to another target,
while its container may go on (and finish) on the silent host. When that
host answers, each job left there is sorted out here:

- all of its runs still wait in this runner's plan (they went nowhere
  else): the job is followed again, under its own id, so that its container
  is never started a second time on the same host (it is found by label; if
  it is gone, its runs run again);
- otherwise its runs moved (or ended): the other copy wins, and this one is
  stopped and removed, its outputs never adopted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.engine.outcome import JobOutcome, Slot
from cosmos_workflow.engine.runner import JobRunner
from cosmos_workflow.engine.scheduler import PlannedJob
from cosmos_workflow.errors import CosmosError
from cosmos_workflow.execution.targets.base import Leftover
from cosmos_workflow.manifest.specs import RunSpec

logger = logging.getLogger(__name__)

# When a job started (None: not recorded).
Started = datetime | None


@dataclass(frozen=True)
class LeftJob:
    """A job left on a host that could not be reached.

    Attributes:
        job_id: The job's id (its container's label and name).
        run_ids: Its runs, in the order its program was given them.
        gpus: The GPUs it was given there.
        tries: As for :meth:`JobRunner.resume` (0: a runner that quit left it).
        started: When it started (None: not known).
    """

    job_id: str
    run_ids: tuple[str, ...]
    gpus: tuple[int, ...]
    tries: int = 1
    started: datetime | None = None


@dataclass
class Comeback:
    """What to do with the jobs left on a host that answers again.

    Attributes:
        follow: Jobs to follow again (their runs were taken out of the plan).
        stop: Ids of jobs to stop and remove (their runs went elsewhere or ended).
        pending: The plan without the runs of the jobs followed again.
    """

    follow: list[LeftJob]
    stop: list[str]
    pending: list[PlannedJob]


def sort_out(left: list[LeftJob], pending: list[PlannedJob]) -> Comeback:
    """Sort the jobs left on a host into those followed again and those stopped.

    Args:
        left: The jobs left on the host, oldest first.
        pending: The runner's plan of jobs not started yet.
    """
    waiting = {run_id for job in pending for run_id in job.run_ids}
    follow: list[LeftJob] = []
    stop: list[str] = []
    for job in left:
        if set(job.run_ids) <= waiting:
            follow.append(job)
            waiting -= set(job.run_ids)
        else:
            stop.append(job.job_id)
    taken = {run_id for job in follow for run_id in job.run_ids}
    kept = []
    for job in pending:
        runs = [run for run in job.runs if run.id not in taken]
        if runs:
            kept.append(job if len(runs) == len(job.runs) else replace(job, runs=runs))
    return Comeback(follow, stop, kept)


def follow_again(
    jobs: JobRunner, specs: list[RunSpec], slot: Slot, left: LeftJob, staging: Path
) -> JobOutcome | None:
    """Re-attach to a job on its target; if it is gone, remove what is left of it there.

    Returns:
        As :meth:`JobRunner.resume` (None: the job is gone, its runs run again).
    """
    job_id = left.job_id
    assert left.started is not None, "the dispatcher fills in when the job started"
    outcome = jobs.resume(specs, job_id, slot, left.started, left.tries)
    if outcome is None:
        try:
            # A job given back during its upload has a folder but no container.
            slot.executor.release(job_id, staging)
        except CosmosError as exc:
            logger.warning("Could not remove what is left of job %s: %s", job_id, exc)
    return outcome


def claim_again(
    repository: DataRepository, runner_id: str, target: str, job: LeftJob
) -> tuple[list[str], Started]:
    """Make the queued runs of a job left on ``target`` running again, under the job's own id.

    Returns:
        The runs claimed (not those cancelled or taken meanwhile) and when the job started.
    """
    started = repository.get_run(job.run_ids[0]).started_at
    claimed = repository.claim(
        job.run_ids,
        target=target,
        gpus=",".join(map(str, job.gpus)),
        job_id=job.job_id,
        runner_id=runner_id,
        job_position=None,
    )
    if claimed:
        # The order its program was given them: its outputs map back by position.
        repository.set_job_positions(job.job_id, job.run_ids)
    return claimed, started


def adoptable(
    repository: DataRepository, pending: list[PlannedJob], job_id: str, items: list[Leftover]
) -> LeftJob | None:
    """A container left by a runner that quit, to be followed rather than removed.

    It is, if every run its label names waits in this runner's plan. Its
    outputs map back by position: the order its program was given them is
    the recorded one, or (when its runs were recorded under another job since,
    e.g. failed while its host was given up) their id order, which is the
    order of every job's runs (engine/scheduler.py, ``PlannedJob.runs``). Its
    failure is not its runs' (the runner may have killed it): those without
    output are tried again.
    """
    container = next((item for item in items if item.what == "container"), None)
    if container is None or not container.runs:
        return None
    order = repository.job_run_order(job_id) or sorted(container.runs)
    waiting = {run_id for job in pending for run_id in job.run_ids}
    if set(order) != set(container.runs) or not set(order) <= waiting:
        return None
    gpus = repository.get_run(order[0]).gpus or ""
    numbers = tuple(int(gpu) for gpu in gpus.split(",") if gpu.strip().isdigit())
    return LeftJob(job_id, tuple(order), numbers, tries=0)
