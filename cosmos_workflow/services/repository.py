"""DataRepository: every database query and state change goes through here."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from cosmos_workflow.database.models import TRANSITIONS, Prompt, Run, RunStatus, Sweep, SweepRun
from cosmos_workflow.errors import NotFoundFailure, StateError
from cosmos_workflow.manifest.specs import ResolvedPrompt, RunSpec
from cosmos_workflow.utils.clock import Clock

logger = logging.getLogger(__name__)

# Bulk updates check the status in SQL; loaded objects are not refreshed.
_NO_SYNC = {"synchronize_session": False}


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _move(run: Run, to: RunStatus, now: datetime, fields: dict[str, Any]) -> None:
    """Apply one allowed status change to a loaded run.

    Raises:
        StateError: the status machine forbids it.
    """
    if to not in TRANSITIONS[run.status]:
        raise StateError(f"run {run.id}: cannot go from {run.status.value} to {to.value}")
    run.status = to
    if to is RunStatus.RUNNING:
        run.attempts += 1
        run.started_at = now
        run.finished_at = None
        run.exit_code = None
        run.error_class = None
        run.error_message = None
    if to.is_final:
        run.finished_at = now
    for name, value in fields.items():
        setattr(run, name, value)


class DataRepository:
    """Queries and updates prompts, runs and sweeps.

    Args:
        sessions: Session factory bound to a migrated engine.
        clock: Time source for created/started/finished timestamps.
    """

    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    # -- prompts -----------------------------------------------------------
    def add_prompts(self, prompts: Iterable[ResolvedPrompt]) -> int:
        """Store prompts not stored yet; return how many were new."""
        unique = {p.id: p for p in prompts}
        with self._session() as session:
            existing = set(session.scalars(select(Prompt.id).where(Prompt.id.in_(unique))))
            now = self._clock.now()
            for prompt_id, prompt in unique.items():
                if prompt_id not in existing:
                    session.add(
                        Prompt(
                            id=prompt_id,
                            name=prompt.name,
                            text=prompt.text,
                            negative_prompt=prompt.negative,
                            inputs=prompt.inputs.to_dict(),
                            created_at=now,
                        )
                    )
            return len(unique) - len(existing)

    def get_prompt(self, prompt_id: str) -> Prompt:
        """Return one prompt. Raises NotFoundFailure."""
        with self._session() as session:
            prompt = session.get(Prompt, prompt_id)
            if prompt is None:
                raise NotFoundFailure(f"no prompt with id {prompt_id}")
            return prompt

    def list_prompts(self, limit: int | None = None) -> list[Prompt]:
        """Prompts, newest first."""
        with self._session() as session:
            query = select(Prompt).order_by(Prompt.created_at.desc(), Prompt.id).limit(limit)
            return list(session.scalars(query))

    def delete_prompt(self, prompt_id: str) -> list[Run]:
        """Delete a prompt and its runs; return the deleted runs."""
        with self._session() as session:
            prompt = session.get(Prompt, prompt_id)
            if prompt is None:
                raise NotFoundFailure(f"no prompt with id {prompt_id}")
            runs = list(session.scalars(select(Run).where(Run.prompt_id == prompt_id)))
            for run in runs:
                session.delete(run)
            session.delete(prompt)
            return runs

    # -- runs ----------------------------------------------------------------
    def add_runs(self, specs: Iterable[RunSpec]) -> None:
        """Store runs not stored yet, as pending."""
        unique = {s.id: s for s in specs}
        with self._session() as session:
            existing = set(session.scalars(select(Run.id).where(Run.id.in_(unique))))
            now = self._clock.now()
            for run_id, spec in unique.items():
                if run_id not in existing:
                    session.add(
                        Run(
                            id=run_id,
                            prompt_id=spec.prompt.id,
                            adapter=spec.adapter,
                            spec=spec.to_dict(),
                            status=RunStatus.PENDING,
                            created_at=now,
                            attempts=0,
                        )
                    )

    def statuses(self, run_ids: Iterable[str]) -> dict[str, RunStatus]:
        """Status of each stored run among ``run_ids``."""
        ids = list(run_ids)
        found: dict[str, RunStatus] = {}
        with self._session() as session:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = session.execute(select(Run.id, Run.status).where(Run.id.in_(chunk)))
                found.update({row.id: row.status for row in rows})
        return found

    def get_run(self, run_id: str) -> Run:
        """Return one run. Raises NotFoundFailure."""
        with self._session() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFoundFailure(f"no run with id {run_id}")
            return run

    def list_runs(
        self,
        status: RunStatus | None = None,
        limit: int | None = None,
        prompt_id: str | None = None,
    ) -> list[Run]:
        """Runs, newest first, optionally filtered."""
        with self._session() as session:
            query = select(Run).order_by(Run.created_at.desc(), Run.id)
            if status is not None:
                query = query.where(Run.status == status)
            if prompt_id is not None:
                query = query.where(Run.prompt_id == prompt_id)
            return list(session.scalars(query.limit(limit)))

    def transition(self, run_ids: Iterable[str], to: RunStatus, **fields: Any) -> None:
        """Move runs to status ``to``, enforcing the status machine.

        A run already in status ``to`` is left as it is. Entering ``running``
        counts an attempt and sets started_at; entering a final status sets
        finished_at. Extra ``fields`` are stored as given.

        Raises:
            StateError: a transition that the status machine forbids.
        """
        now = self._clock.now()
        with self._session() as session:
            for run_id in run_ids:
                run = session.get(Run, run_id)
                if run is None:
                    raise NotFoundFailure(f"no run with id {run_id}")
                if to is not run.status:
                    _move(run, to, now, fields)

    def claim(self, run_ids: Iterable[str], **fields: Any) -> list[str]:
        """Start the queued runs among ``run_ids`` (queued -> running).

        The status check is part of the write, so a run cancelled by a
        concurrent ``cosmos kill`` stays cancelled. Extra ``fields`` (target,
        GPUs, job id) are stored on the runs that start.

        Returns:
            The ids that were started, in the order given.
        """
        ids = list(run_ids)
        statement = (
            update(Run)
            .where(Run.id.in_(ids), Run.status == RunStatus.QUEUED)
            .values(
                status=RunStatus.RUNNING,
                attempts=Run.attempts + 1,
                started_at=self._clock.now(),
                finished_at=None,
                exit_code=None,
                error_class=None,
                error_message=None,
                **fields,
            )
            .returning(Run.id)
        )
        with self._session() as session:
            started = set(session.scalars(statement, execution_options=_NO_SYNC))
        return [run_id for run_id in ids if run_id in started]

    def settle(self, run_id: str, to: RunStatus, **fields: Any) -> bool:
        """Record a running run's outcome, unless the user cancelled it meanwhile.

        Only a run that is still running changes; the status check is part
        of the write, so a concurrent ``cosmos kill`` is never overwritten.

        Returns:
            False if the run was cancelled (it stays cancelled), True if it
            now has status ``to``.

        Raises:
            NotFoundFailure: no such run.
            StateError: a transition that the status machine forbids.
        """
        if to not in TRANSITIONS[RunStatus.RUNNING]:
            raise StateError(f"run {run_id}: cannot go from running to {to.value}")
        values = dict(fields, status=to)
        if to.is_final:
            values["finished_at"] = self._clock.now()
        statement = (
            update(Run).where(Run.id == run_id, Run.status == RunStatus.RUNNING).values(**values)
        )
        with self._session() as session:
            if session.execute(statement, execution_options=_NO_SYNC).rowcount == 1:
                return True
            status = session.scalar(select(Run.status).where(Run.id == run_id))
        if status is None:
            raise NotFoundFailure(f"no run with id {run_id}")
        if status is RunStatus.CANCELLED:
            return False
        if status is to:
            return True
        raise StateError(f"run {run_id}: cannot go from {status.value} to {to.value}")

    def cancelled_among(self, run_ids: Iterable[str]) -> list[str]:
        """The runs among ``run_ids`` that are cancelled, in the order given."""
        ids = list(run_ids)
        statuses = self.statuses(ids)
        return [run_id for run_id in ids if statuses.get(run_id) is RunStatus.CANCELLED]

    def runs_of_job(self, job_id: str) -> list[Run]:
        """The runs that a job executes (or last executed), by id."""
        with self._session() as session:
            query = select(Run).where(Run.job_id == job_id).order_by(Run.id)
            return list(session.scalars(query))

    def cancel_unfinished(self, run_ids: Iterable[str], reason: str) -> list[str]:
        """Mark as cancelled every run among ``run_ids`` not in a final status.

        The status check is part of the write: a run that finished in the
        meantime keeps its outcome.

        Returns:
            The ids that were cancelled, in the order given.
        """
        ids = list(run_ids)
        unfinished = (RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RUNNING)
        statement = (
            update(Run)
            .where(Run.id.in_(ids), Run.status.in_(unfinished))
            .values(
                status=RunStatus.CANCELLED,
                finished_at=self._clock.now(),
                error_class="cancelled",
                error_message=reason,
            )
            .returning(Run.id)
        )
        with self._session() as session:
            cancelled = set(session.scalars(statement, execution_options=_NO_SYNC))
        return [run_id for run_id in ids if run_id in cancelled]

    def requeue_lost(self, run_ids: Iterable[str]) -> list[str]:
        """Queue again the succeeded runs among ``run_ids`` (their outputs are gone).

        The second way around the status machine, for a user who deleted a
        run folder: the run can only be produced again.

        Returns:
            The ids that were re-queued.
        """
        ids = list(run_ids)
        with self._session() as session:
            runs = session.scalars(
                select(Run).where(Run.id.in_(ids), Run.status == RunStatus.SUCCEEDED)
            )
            requeued = []
            for run in runs:
                run.status = RunStatus.QUEUED
                run.error_class = None
                run.error_message = None
                requeued.append(run.id)
            return requeued

    def adopt_succeeded(self, run_id: str, output_dir: str, result: dict[str, Any]) -> None:
        """Record as succeeded a run whose outputs were verified on disk.

        This is the one way around the status machine: it repairs the state
        after a crash between writing a run's result.json and committing it,
        or re-creates a deleted run whose folder was kept. Timestamps, target,
        GPUs, attempts and exit code come from that result.json.
        """
        with self._session() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFoundFailure(f"no run with id {run_id}")
            run.status = RunStatus.SUCCEEDED
            run.output_dir = output_dir
            run.started_at = _parse_time(result.get("started_at")) or run.started_at
            run.finished_at = (
                _parse_time(result.get("finished_at")) or run.finished_at or self._clock.now()
            )
            run.target = result.get("target", run.target)
            gpus = result.get("gpus")
            run.gpus = ",".join(str(g) for g in gpus) if isinstance(gpus, list) else run.gpus
            run.attempts = max(run.attempts, int(result.get("attempts") or 1))
            run.exit_code = result.get("exit_code", 0)
            run.error_class = None
            run.error_message = None

    def delete_run(self, run_id: str) -> Run:
        """Delete one run (and its sweep links); return it."""
        with self._session() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFoundFailure(f"no run with id {run_id}")
            session.delete(run)
            return run

    def counts_by_status(self) -> dict[str, int]:
        """Number of runs in each status (every status listed)."""
        counts = {status.value: 0 for status in RunStatus}
        with self._session() as session:
            for status, count in session.execute(
                select(Run.status, func.count()).group_by(Run.status)
            ):
                counts[status.value] = count
        return counts

    # -- sweeps --------------------------------------------------------------
    def add_sweep(
        self,
        sweep_id: str,
        name: str,
        manifest: dict[str, Any],
        overrides: list[str] | list[list[str]],
        output_dir: str,
        runs: list[RunSpec],
    ) -> bool:
        """Store a sweep if new, and any run link it lacks; return True if new.

        Links go missing when a run was deleted and the sweep runs again.
        """
        with self._session() as session:
            created = session.get(Sweep, sweep_id) is None
            if created:
                session.add(
                    Sweep(
                        id=sweep_id,
                        name=name,
                        manifest=manifest,
                        overrides=overrides,
                        created_at=self._clock.now(),
                        output_dir=output_dir,
                    )
                )
            linked = set(
                session.scalars(select(SweepRun.run_id).where(SweepRun.sweep_id == sweep_id))
            )
            for position, spec in enumerate(runs):
                if spec.id not in linked:
                    session.add(
                        SweepRun(
                            sweep_id=sweep_id,
                            run_id=spec.id,
                            position=position,
                            params=spec.varying,
                        )
                    )
            return created

    def get_sweep(self, sweep_id: str) -> Sweep:
        """Return one sweep. Raises NotFoundFailure."""
        with self._session() as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is None:
                raise NotFoundFailure(f"no sweep with id {sweep_id}")
            return sweep

    def list_sweeps(self, limit: int | None = None) -> list[Sweep]:
        """Sweeps, newest first."""
        with self._session() as session:
            query = select(Sweep).order_by(Sweep.created_at.desc(), Sweep.id).limit(limit)
            return list(session.scalars(query))

    def sweep_runs(self, sweep_id: str) -> list[tuple[SweepRun, Run]]:
        """The sweep's links and runs, in sweep order."""
        with self._session() as session:
            query = (
                select(SweepRun, Run)
                .join(Run, Run.id == SweepRun.run_id)
                .where(SweepRun.sweep_id == sweep_id)
                .order_by(SweepRun.position)
            )
            return [(link, run) for link, run in session.execute(query)]

    def sweep_status_counts(self, sweep_id: str) -> dict[str, int]:
        """Run counts by status within one sweep."""
        counts = {status.value: 0 for status in RunStatus}
        with self._session() as session:
            query = (
                select(Run.status, func.count())
                .join(SweepRun, SweepRun.run_id == Run.id)
                .where(SweepRun.sweep_id == sweep_id)
                .group_by(Run.status)
            )
            for status, count in session.execute(query):
                counts[status.value] = count
        return counts

    def sweeps_of_run(self, run_id: str) -> list[str]:
        """Ids of the sweeps that include ``run_id``."""
        with self._session() as session:
            return list(session.scalars(select(SweepRun.sweep_id).where(SweepRun.run_id == run_id)))

    def find_ids(self, prefix: str) -> list[str]:
        """Ids of prompts, runs and sweeps starting with ``prefix``."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found: list[str] = []
        with self._session() as session:
            for model in (Prompt, Run, Sweep):
                found += session.scalars(
                    select(model.id).where(model.id.like(pattern, escape="\\")).limit(5)
                )
        return found

    def now(self) -> datetime:
        """The repository's clock (for callers that stamp results)."""
        return self._clock.now()
