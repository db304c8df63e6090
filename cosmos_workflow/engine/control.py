"""Run control: a run's log and stopping runs (`cosmos logs`, `cosmos kill`).

A run executes inside a job (one container or local process, maybe a
batch of runs); the database records each run's job when it starts. The
target that ran it finds the job's live log and stops its program.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cosmos_workflow.database.models import Run, RunStatus
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.errors import NetworkFailure, ValidationFailure
from cosmos_workflow.execution.targets.base import Executor, LiveLog
from cosmos_workflow.outputs.store import OutputStore

# How often `cosmos logs -f` looks again at a run that has not started its program yet.
LOG_POLL_S = 0.5
# How long `cosmos logs -f` waits for the runner to record a run whose program ended
# (it downloads the outputs first), or stopped after a kill.
JOB_END_WAIT_S = 600.0

# Finds the executor of the target with a name; the text says what ran there (messages).
ExecutorLookup = Callable[[str | None, str], Executor]


@dataclass(frozen=True)
class StoppedJob:
    """A job that `cosmos kill` stopped, and the runs it held.

    Attributes:
        job_id: The job.
        target: The target it ran on.
        stopped: What was stopped (a container, a process), or None if its
            program had not started (it will not start).
        runs: Every run of the job (all of them are cancelled).
    """

    job_id: str
    target: str
    stopped: str | None
    runs: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "job_id": self.job_id,
            "target": self.target,
            "stopped": self.stopped,
            "runs": self.runs,
        }


@dataclass(frozen=True)
class KillReport:
    """What `cosmos kill` did: the runs it cancelled and the jobs it stopped."""

    cancelled: list[str]
    jobs: list[StoppedJob]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"cancelled": self.cancelled, "jobs": [job.to_dict() for job in self.jobs]}


@dataclass(frozen=True)
class LogResult:
    """Where `cosmos logs` found a run's log.

    Attributes:
        run_id: The run.
        status: Its status when the command ended.
        source: "live" (its running job), "run folder", or None (no log yet).
    """

    run_id: str
    status: str
    source: str | None


class RunControl:
    """Shows the logs of runs and stops them.

    Args:
        repository: Database access.
        store: The output tree (run folders, job work folders).
        executor_named: Finds the executor of a configured target by name.
    """

    def __init__(
        self, repository: DataRepository, store: OutputStore, executor_named: ExecutorLookup
    ) -> None:
        self._repo = repository
        self._store = store
        self._executor_named = executor_named

    # -- logs --------------------------------------------------------------------
    def logs(self, run_id: str, on_line: Callable[[str], None], follow: bool) -> LogResult:
        """Pass a run's log to ``on_line``: live while it runs, else its run folder's copy.

        With ``follow``, a queued run is waited for, and a running one is
        followed until it has ended and been recorded.

        Raises:
            ValidationFailure: the run's target is not configured here.
        """
        while True:
            run = self._repo.get_run(run_id)
            live = self._live_log(run, on_line, follow)
            if live is not None and not follow:
                return LogResult(run_id, run.status.value, "live")
            if live is not None:
                self._wait_for_record(run)
                if live.complete:
                    return LogResult(run_id, self._repo.get_run(run_id).status.value, "live")
                return self._folder_log(run_id, on_line, skip=live.lines)
            if not (follow and _log_may_start(run)):
                return self._folder_log(run_id, on_line, skip=0)
            time.sleep(LOG_POLL_S)

    def _live_log(self, run: Run, on_line: Callable[[str], None], follow: bool) -> LiveLog | None:
        """The log of the run's job on its target while the run is running."""
        if run.status is not RunStatus.RUNNING or run.job_id is None:
            return None
        job_id = run.job_id
        executor = self._executor_named(run.target, f"run {run.id}")
        keep_going = (lambda: self._job_is_running(run.id, job_id)) if follow else None
        return executor.job_log(job_id, self._store.staging_path(job_id), on_line, keep_going)

    def _job_is_running(self, run_id: str, job_id: str) -> bool:
        """True while the run is running in that job and the job's work folder exists."""
        run = self._repo.get_run(run_id)
        running = run.status is RunStatus.RUNNING and run.job_id == job_id
        return running and self._store.staging_path(job_id).is_dir()

    def _wait_for_record(self, run: Run) -> None:
        """Wait (a bounded time) for the runner to record the run once its program ended.

        The runner removes the job's work folder only after it has recorded
        every run of the job (status, run folder and log), so the record is
        complete once the folder is gone, whatever the status says: a kill
        marks the run cancelled before the runner writes its folder.
        """
        if run.job_id is None:
            return
        staging = self._store.staging_path(run.job_id)
        deadline = time.monotonic() + JOB_END_WAIT_S
        while staging.is_dir() and time.monotonic() < deadline:
            time.sleep(LOG_POLL_S / 5)

    def _folder_log(self, run_id: str, on_line: Callable[[str], None], skip: int) -> LogResult:
        """The log kept in the run's folder, from line ``skip`` on."""
        status = self._repo.get_run(run_id).status.value
        path = self._store.run_log(run_id)
        if not path.is_file():
            return LogResult(run_id, status, None)
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in lines[skip:]:
            on_line(line)
        return LogResult(run_id, status, "run folder")

    # -- kill --------------------------------------------------------------------
    def kill(self, run_id: str) -> KillReport:
        """Stop a run: cancel it and stop the container or process of its job.

        Every run that the job holds (a batch) is cancelled with it. A
        queued run is only cancelled: the runner will not start it. The job
        of a cancelled run is stopped again if it still runs (an earlier
        kill could not reach its host).

        Raises:
            ValidationFailure: the run is over (nothing to kill), or its target
            is not configured here.
            NetworkFailure: the target cannot be reached (nothing was cancelled).
        """
        run = self._repo.get_run(run_id)
        reason = f"cancelled by cosmos kill {run_id}"
        if run.status is RunStatus.RUNNING and run.job_id:
            return self._kill_jobs({run.job_id: run.target}, [run_id], reason)
        if not run.status.is_final:
            return KillReport(self._repo.cancel_unfinished([run_id], reason), [])
        if run.status is RunStatus.CANCELLED and run.job_id:
            report = self._kill_jobs({run.job_id: run.target}, [], reason)
            if any(job.stopped for job in report.jobs):
                return report
        raise ValidationFailure(f"run {run_id} already ended ({run.status.value}); nothing to kill")

    def kill_sweep(self, sweep_id: str) -> KillReport:
        """Cancel every unfinished run of a sweep (queued ones too) and stop its running jobs.

        Raises:
            ValidationFailure: nothing is unfinished, or a target is not configured here.
            NetworkFailure: a target cannot be reached (nothing was cancelled).
        """
        unfinished = [run for _, run in self._repo.sweep_runs(sweep_id) if not run.status.is_final]
        if not unfinished:
            raise ValidationFailure(f"sweep {sweep_id} has no unfinished runs; nothing to kill")
        jobs = {
            run.job_id: run.target
            for run in unfinished
            if run.status is RunStatus.RUNNING and run.job_id
        }
        reason = f"cancelled by cosmos kill --sweep {sweep_id}"
        return self._kill_jobs(jobs, [run.id for run in unfinished], reason)

    def _kill_jobs(
        self, jobs: dict[str, str | None], run_ids: list[str], reason: str
    ) -> KillReport:
        """Cancel ``run_ids`` and every run of ``jobs`` (job id -> target), then stop the jobs.

        Every target is reached before anything changes. The runs are
        cancelled before their programs are stopped, so that the runner
        following a job records them as cancelled, never as failed.
        """
        executors = self._reach(jobs)
        members = {job_id: [run.id for run in self._repo.runs_of_job(job_id)] for job_id in jobs}
        everything = run_ids + [run_id for ids in members.values() for run_id in ids]
        cancelled = self._repo.cancel_unfinished(list(dict.fromkeys(everything)), reason)
        stopped = [
            self._stop(job_id, executor, members[job_id]) for job_id, executor in executors.items()
        ]
        return KillReport(cancelled, stopped)

    def _reach(self, jobs: dict[str, str | None]) -> dict[str, Executor]:
        """The executor of each job's target, connected.

        Raises:
            ValidationFailure: a target is not configured here.
            NetworkFailure: a target cannot be reached.
        """
        executors = {}
        for job_id, target in jobs.items():
            executor = self._executor_named(target, f"job {job_id}")
            executor.preflight()
            executors[job_id] = executor
        return executors

    def _stop(self, job_id: str, executor: Executor, runs: list[str]) -> StoppedJob:
        """Stop one job's program.

        Raises:
            NetworkFailure: the host stopped answering (its runs are cancelled already).
        """
        try:
            what = executor.stop_job(job_id, self._store.staging_path(job_id))
        except NetworkFailure as exc:
            raise NetworkFailure(
                f"runs {', '.join(runs)} were marked cancelled, but job {job_id} on "
                f"{executor.target_name} could not be stopped ({exc}); it may still run: "
                f"once the host answers, run cosmos kill {runs[0]}"
            ) from exc
        return StoppedJob(job_id, executor.target_name, what, runs)


def _log_may_start(run: Run) -> bool:
    """True while a run waits to start, or its job has not started its program yet."""
    if run.status in (RunStatus.PENDING, RunStatus.QUEUED):
        return True
    return run.status is RunStatus.RUNNING and run.job_id is not None
