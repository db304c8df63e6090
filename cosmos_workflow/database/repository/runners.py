"""Runners and their jobs: heartbeats, the running jobs, and taking over a dead runner's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from cosmos_workflow.database.models import Run, Runner, RunStatus
from cosmos_workflow.database.repository.core import IN_CHUNK, NO_SYNC, RepositoryCore


@dataclass
class RunningJob:
    """A job (one model invocation) with running runs, as the database knows it.

    Attributes:
        job_id: The job's id.
        target: The target it runs on.
        gpus: Its GPU indices, comma-separated.
        runner_id: The runner executing it.
        runner: That runner's record (None if unknown).
        run_ids: Its running runs, sorted.
    """

    job_id: str
    target: str | None
    gpus: str | None
    runner_id: str | None
    runner: Runner | None
    run_ids: list[str]


# A run that names a job: its status and its runner (None if unknown).
JobHolder = tuple[RunStatus, Runner | None]


class RunnerQueries(RepositoryCore):
    """Records of runner processes and of the jobs they execute."""

    def register_runner(self, runner_id: str, hostname: str, pid: int) -> None:
        """Record a runner process that starts executing runs."""
        now = self._clock.now()
        with self._session() as session:
            session.add(
                Runner(id=runner_id, hostname=hostname, pid=pid, started_at=now, heartbeat_at=now)
            )

    def heartbeat(self, runner_id: str) -> None:
        """Say that a runner is alive."""
        statement = (
            update(Runner).where(Runner.id == runner_id).values(heartbeat_at=self._clock.now())
        )
        with self._session() as session:
            session.execute(statement, execution_options=NO_SYNC)

    def stop_runner(self, runner_id: str) -> None:
        """Record that a runner stopped (it executes nothing any more)."""
        statement = (
            update(Runner).where(Runner.id == runner_id).values(stopped_at=self._clock.now())
        )
        with self._session() as session:
            session.execute(statement, execution_options=NO_SYNC)

    def late_runners(self, timeout_s: float) -> list[Runner]:
        """Runners that have not stopped and have not beaten for ``timeout_s``.

        Whether each is dead is for engine/liveness.py to say (a busy runner
        on this machine may beat late).
        """
        since = self._clock.now() - timedelta(seconds=timeout_s)
        query = select(Runner).where(Runner.stopped_at.is_(None), Runner.heartbeat_at < since)
        with self._session() as session:
            return list(session.scalars(query))

    def running_jobs(self, run_ids: Iterable[str] | None = None) -> list[RunningJob]:
        """The jobs executing runs (among ``run_ids``, or all), with their runners.

        Returns:
            One entry per job id, its runs sorted by id.
        """
        ids = None if run_ids is None else list(run_ids)
        jobs: dict[str, RunningJob] = {}
        with self._session() as session:
            query = (
                select(Run, Runner)
                .outerjoin(Runner, Runner.id == Run.runner_id)
                .where(Run.status == RunStatus.RUNNING)
                .order_by(Run.id)
            )
            chunks = (
                [None]
                if ids is None
                else [ids[i : i + IN_CHUNK] for i in range(0, len(ids), IN_CHUNK)]
            )
            for chunk in chunks:
                chunk_query = query if chunk is None else query.where(Run.id.in_(chunk))
                for run, runner in session.execute(chunk_query):
                    job_id = run.job_id or f"run:{run.id}"
                    job = jobs.setdefault(
                        job_id,
                        RunningJob(job_id, run.target, run.gpus, run.runner_id, runner, []),
                    )
                    job.run_ids.append(run.id)
        for job in jobs.values():
            job.run_ids.sort()
        return list(jobs.values())

    def take_over_job(self, job_id: str, runner_from: str | None, runner_to: str) -> list[str]:
        """Make ``runner_to`` the runner of a job's running runs, if ``runner_from`` still is.

        The check is part of the write: of two runners that take over the
        same abandoned job at once, one gets it.

        Returns:
            The run ids taken over (empty if another runner was first).
        """
        owner = Run.runner_id.is_(None) if runner_from is None else Run.runner_id == runner_from
        statement = (
            update(Run)
            .where(Run.job_id == job_id, Run.status == RunStatus.RUNNING, owner)
            .values(runner_id=runner_to)
            .returning(Run.id)
        )
        with self._session() as session:
            return sorted(session.scalars(statement, execution_options=NO_SYNC))

    def job_holders(
        self, job_ids: Iterable[str]
    ) -> dict[str, list[tuple[RunStatus, Runner | None]]]:
        """Who holds each job: the status and runner of every run that names it.

        Returns:
            Per job id among ``job_ids`` that a run names, one entry per run;
            a job that no run names is missing (nothing of it is in use).
        """
        ids = list(job_ids)
        holders: dict[str, list[JobHolder]] = {}
        with self._session() as session:
            for start in range(0, len(ids), IN_CHUNK):
                query = (
                    select(Run.job_id, Run.status, Runner)
                    .outerjoin(Runner, Runner.id == Run.runner_id)
                    .where(Run.job_id.in_(ids[start : start + IN_CHUNK]))
                )
                for job_id, status, runner in session.execute(query):
                    holders.setdefault(job_id, []).append((status, runner))
        return holders
