"""DataRepository: every database query and state change goes through here."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from cosmos_workflow.database.engine import ROW_LOCKS, WRITE_LOCK
from cosmos_workflow.database.ids import ids_starting_with
from cosmos_workflow.database.models import (
    TRANSITIONS,
    Base,
    Prompt,
    Run,
    Runner,
    RunStatus,
    Sweep,
    SweepRun,
    SweepStage,
)
from cosmos_workflow.database.search import LIKE_ESCAPE, SearchHits, find_text, like_literal
from cosmos_workflow.errors import NotFoundFailure, StateError, ValidationFailure
from cosmos_workflow.manifest.specs import ResolvedPrompt, RunSpec
from cosmos_workflow.utils.clock import Clock

logger = logging.getLogger(__name__)

# Bulk updates check the status in SQL; loaded objects are not refreshed.
_NO_SYNC = {"synchronize_session": False}
# Ids per IN (...) list: far below every backend's limit on bound parameters.
_IN_CHUNK = 500


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


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


def _stored_among(session: Session, column: InstrumentedAttribute[str], ids: list[str]) -> set[str]:
    """The values among ``ids`` that ``column`` (a primary key) holds, in chunked queries."""
    found: set[str] = set()
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        found.update(session.scalars(select(column).where(column.in_(chunk))))
    return found


def _insert(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into the table of ``model`` with one executemany.

    Through the table (Core), without the ORM's per-row bookkeeping: a third
    faster for the thousands of runs and sweep links of a large sweep.
    """
    if rows:
        session.execute(insert(model.__table__), rows)


def _enqueue_in(session: Session, run_ids: Iterable[str]) -> list[str]:
    """Queue the pending, failed and cancelled runs among ``run_ids`` (see enqueue)."""
    ids = sorted(set(run_ids))
    waiting = (RunStatus.PENDING, RunStatus.FAILED, RunStatus.CANCELLED)
    queued: set[str] = set()
    # In id order, taking turns with the other writers: two runners that
    # queue overlapping sweeps at once cannot deadlock.
    for start in range(0, len(ids), _IN_CHUNK):
        statement = (
            update(Run)
            .where(Run.id.in_(ids[start : start + _IN_CHUNK]), Run.status.in_(waiting))
            .values(status=RunStatus.QUEUED, error_class=None, error_message=None)
            .returning(Run.id)
        )
        queued.update(session.scalars(statement, execution_options=_NO_SYNC))
    return [run_id for run_id in ids if run_id in queued]


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
    def _session(self, locks: dict[str, Any] | None = None) -> Iterator[Session]:
        """One transaction; ``locks`` (WRITE_LOCK, ROW_LOCKS) for one that reads then writes.

        Without ``locks`` it takes none at its start: reads never wait for a
        writer.
        """
        with self._sessions() as session, session.begin():
            if locks is not None:
                session.connection(execution_options=locks)
            yield session

    # -- prompts -----------------------------------------------------------
    def add_prompts(self, prompts: Iterable[ResolvedPrompt]) -> int:
        """Store prompts not stored yet; return how many were new."""
        unique = {p.id: p for p in prompts}
        with self._session(WRITE_LOCK) as session:
            existing = _stored_among(session, Prompt.id, list(unique))
            now = self._clock.now()
            rows = [
                {
                    "id": prompt_id,
                    "name": prompt.name,
                    "text": prompt.text,
                    "negative_prompt": prompt.negative,
                    "inputs": prompt.inputs.to_dict(),
                    "created_at": now,
                }
                for prompt_id, prompt in unique.items()
                if prompt_id not in existing
            ]
            _insert(session, Prompt, rows)
            return len(rows)

    def add_derived_prompt(
        self, prompt: ResolvedPrompt, parent_id: str, origin: dict[str, Any]
    ) -> bool:
        """Store a prompt made from another one, linked to it.

        A prompt already stored keeps what it has. Only a derived prompt that
        lost its parent (the parent was deleted, then made again) is linked
        again; a prompt typed in by hand with the same text and inputs is
        never adopted, so deleting the parent "with its children" cannot
        take it.

        Returns:
            True if the prompt was new.
        """
        with self._session(WRITE_LOCK) as session:
            stored = session.get(Prompt, prompt.id)
            if stored is not None:
                derived = stored.origin is not None
                if derived and stored.parent_id is None and stored.id != parent_id:
                    stored.parent_id = parent_id
                return False
            session.add(
                Prompt(
                    id=prompt.id,
                    name=prompt.name,
                    text=prompt.text,
                    negative_prompt=prompt.negative,
                    inputs=prompt.inputs.to_dict(),
                    created_at=self._clock.now(),
                    parent_id=parent_id,
                    origin=origin,
                    origin_run_id=origin.get("run"),
                )
            )
            return True

    def prompt_made_by(self, run_id: str, kind: str) -> Prompt | None:
        """The derived prompt of origin ``kind`` that names run ``run_id``, if stored.

        Args:
            run_id: The run that made it (an enhancement) or that it was made for.
            kind: Its origin kind ("enhanced", "upscale_input").
        """
        with self._session() as session:
            query = select(Prompt).where(Prompt.origin_run_id == run_id).order_by(Prompt.id)
            for prompt in session.scalars(query):
                if (prompt.origin or {}).get("kind") == kind:
                    return prompt
        return None

    def child_prompts(self, prompt_ids: Iterable[str]) -> list[Prompt]:
        """Prompts made from any of ``prompt_ids`` (enhanced prompts, upscale inputs)."""
        ids = list(prompt_ids)
        with self._session() as session:
            query = select(Prompt).where(Prompt.parent_id.in_(ids)).order_by(Prompt.id)
            return list(session.scalars(query)) if ids else []

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
        with self._session(WRITE_LOCK) as session:
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
        unique: dict[str, tuple[RunSpec, dict[str, Any]]] = {}
        for spec in specs:
            stored = spec.to_dict()
            unique.setdefault(stored["id"], (spec, stored))
        with self._session(WRITE_LOCK) as session:
            existing = _stored_among(session, Run.id, list(unique))
            now = self._clock.now()
            rows = [
                {
                    "id": run_id,
                    "prompt_id": stored["prompt"]["id"],
                    "adapter": spec.adapter,
                    "spec": stored,
                    "status": RunStatus.PENDING,
                    "created_at": now,
                    "attempts": 0,
                }
                for run_id, (spec, stored) in unique.items()
                if run_id not in existing
            ]
            _insert(session, Run, rows)

    def link_runs(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record for each (parent run, run) that the run's input is the parent's output.

        A run linked already keeps its parent.

        Raises:
            NotFoundFailure: a run is not stored.
        """
        parents = {run_id: parent_id for parent_id, run_id in pairs}
        if not parents:
            return
        ids = list(parents)
        with self._session(WRITE_LOCK) as session:
            runs: dict[str, Run] = {}
            for start in range(0, len(ids), _IN_CHUNK):
                query = select(Run).where(Run.id.in_(ids[start : start + _IN_CHUNK]))
                runs.update((run.id, run) for run in session.scalars(query))
            for run_id, parent_id in parents.items():
                run = runs.get(run_id)
                if run is None:
                    raise NotFoundFailure(f"no run with id {run_id}")
                if run.parent_run_id is None:
                    run.parent_run_id = parent_id

    def child_runs(self, run_ids: Iterable[str]) -> list[Run]:
        """Runs whose input is the output of any of ``run_ids`` (upscales)."""
        ids = list(run_ids)
        with self._session() as session:
            query = select(Run).where(Run.parent_run_id.in_(ids)).order_by(Run.id)
            return list(session.scalars(query)) if ids else []

    def statuses(self, run_ids: Iterable[str]) -> dict[str, RunStatus]:
        """Status of each stored run among ``run_ids``."""
        ids = list(run_ids)
        found: dict[str, RunStatus] = {}
        with self._session() as session:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
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
        rating: int | None = None,
        min_rating: int | None = None,
    ) -> list[Run]:
        """Runs, newest first, optionally filtered (``min_rating``: rated at least so)."""
        with self._session() as session:
            query = select(Run).order_by(Run.created_at.desc(), Run.id)
            if status is not None:
                query = query.where(Run.status == status)
            if prompt_id is not None:
                query = query.where(Run.prompt_id == prompt_id)
            if rating is not None:
                query = query.where(Run.rating == rating)
            if min_rating is not None:
                query = query.where(Run.rating >= min_rating)
            return list(session.scalars(query.limit(limit)))

    def list_runs_of_prompts(self, prompt_ids: Iterable[str]) -> list[Run]:
        """Every run of any of ``prompt_ids``."""
        ids = list(prompt_ids)
        with self._session() as session:
            query = select(Run).where(Run.prompt_id.in_(ids)).order_by(Run.id)
            return list(session.scalars(query)) if ids else []

    def transition(self, run_ids: Iterable[str], to: RunStatus, **fields: Any) -> None:
        """Move runs to status ``to``, enforcing the status machine.

        A run already in status ``to`` is left as it is. Entering ``running``
        counts an attempt and sets started_at; entering a final status sets
        finished_at. Extra ``fields`` are stored as given.

        Raises:
            StateError: a transition that the status machine forbids.
        """
        ids = list(run_ids)
        now = self._clock.now()
        with self._session(WRITE_LOCK) as session:
            # Lock the rows (PostgreSQL), in id order: two callers cannot deadlock.
            locked = select(Run).where(Run.id.in_(ids)).order_by(Run.id).with_for_update()
            runs = {run.id: run for run in session.scalars(locked)}
            for run_id in ids:
                run = runs.get(run_id)
                if run is None:
                    raise NotFoundFailure(f"no run with id {run_id}")
                if to is not run.status:
                    _move(run, to, now, fields)

    def claim(self, run_ids: Iterable[str], **fields: Any) -> list[str]:
        """Start the queued runs among ``run_ids`` (queued -> running), atomically.

        One transaction selects the queued runs among the ids and starts
        them. On PostgreSQL the select locks them (FOR UPDATE SKIP LOCKED):
        a run that another runner or a ``cosmos kill`` is changing right now
        is skipped, not waited for. On SQLite the transaction holds the
        write lock from its start (BEGIN IMMEDIATE). So runners that share a
        database never start a run twice, and a run cancelled by a
        concurrent kill stays cancelled. Extra ``fields`` (target, GPUs, job
        id) are stored on the runs that start.

        Returns:
            The ids that were started, in the order given.
        """
        ids = list(run_ids)
        queued = (
            select(Run.id)
            .where(Run.id.in_(ids), Run.status == RunStatus.QUEUED)
            .with_for_update(skip_locked=True)
        )
        with self._session(ROW_LOCKS) as session:
            started = set(session.scalars(queued))
            if started:
                statement = (
                    update(Run)
                    .where(Run.id.in_(started))
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
                )
                session.execute(statement, execution_options=_NO_SYNC)
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

    def cancel_unfinished(
        self, run_ids: Iterable[str], reason: str, runner_id: str | None = None
    ) -> list[str]:
        """Mark as cancelled every run among ``run_ids`` not in a final status.

        The status check is part of the write: a run that finished in the
        meantime keeps its outcome.

        Args:
            run_ids: The runs.
            reason: Stored as the runs' error message.
            runner_id: If given, a running run is cancelled only if this
                runner executes it (another runner's work is left alone).

        Returns:
            The ids that were cancelled, in the order given.
        """
        ids = list(run_ids)
        waiting = Run.status.in_((RunStatus.PENDING, RunStatus.QUEUED))
        running = Run.status == RunStatus.RUNNING
        if runner_id is not None:
            running = running & (Run.runner_id == runner_id)
        statement = (
            update(Run)
            .where(Run.id.in_(ids), waiting | running)
            .values(
                status=RunStatus.CANCELLED,
                finished_at=self._clock.now(),
                error_class="cancelled",
                error_message=reason,
            )
            .returning(Run.id)
        )
        # Takes turns with transition() (both lock many rows): no deadlock.
        with self._session(WRITE_LOCK) as session:
            cancelled = set(session.scalars(statement, execution_options=_NO_SYNC))
        return [run_id for run_id in ids if run_id in cancelled]

    def succeeded_outside(self, run_ids: Iterable[str], root: str) -> list[str]:
        """The succeeded runs among ``run_ids`` whose run folder is not under ``root``.

        Runners on several machines share one database, each with its own
        output tree: a run one of them made is done, wherever its folder is.
        """
        ids = list(run_ids)
        prefix = root.rstrip("/") + "/"
        found: list[str] = []
        with self._session() as session:
            for start in range(0, len(ids), _IN_CHUNK):
                rows = session.execute(
                    select(Run.id, Run.output_dir).where(
                        Run.id.in_(ids[start : start + _IN_CHUNK]),
                        Run.status == RunStatus.SUCCEEDED,
                    )
                )
                found += [
                    row.id
                    for row in rows
                    if row.output_dir and not row.output_dir.startswith(prefix)
                ]
        return found

    def requeue_lost(self, run_ids: Iterable[str]) -> list[str]:
        """Queue again the succeeded runs among ``run_ids`` (their outputs are gone).

        The second way around the status machine, for a user who deleted a
        run folder: the run can only be produced again.

        Returns:
            The ids that were re-queued.
        """
        ids = list(run_ids)
        with self._session(WRITE_LOCK) as session:
            runs = session.scalars(
                select(Run)
                .where(Run.id.in_(ids), Run.status == RunStatus.SUCCEEDED)
                .order_by(Run.id)
                .with_for_update()
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
        with self._session(WRITE_LOCK) as session:
            run = session.get(Run, run_id, with_for_update=True)
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
        with self._session(WRITE_LOCK) as session:
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

    # -- runners and their jobs ---------------------------------------------
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
            session.execute(statement, execution_options=_NO_SYNC)

    def stop_runner(self, runner_id: str) -> None:
        """Record that a runner stopped (it executes nothing any more)."""
        statement = (
            update(Runner).where(Runner.id == runner_id).values(stopped_at=self._clock.now())
        )
        with self._session() as session:
            session.execute(statement, execution_options=_NO_SYNC)

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
            chunks = [None] if ids is None else [ids[i : i + 500] for i in range(0, len(ids), 500)]
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
            return sorted(session.scalars(statement, execution_options=_NO_SYNC))

    def requeue_running(self, run_ids: Iterable[str], runner_id: str) -> list[str]:
        """Put a runner's running runs back in the queue (their job is to be tried again).

        Returns:
            The ids that went back to queued (not those cancelled meanwhile).
        """
        ids = list(run_ids)
        statement = (
            update(Run)
            .where(Run.id.in_(ids), Run.status == RunStatus.RUNNING, Run.runner_id == runner_id)
            .values(status=RunStatus.QUEUED)
            .returning(Run.id)
        )
        with self._session() as session:
            requeued = set(session.scalars(statement, execution_options=_NO_SYNC))
        return [run_id for run_id in ids if run_id in requeued]

    def set_job_positions(self, job_id: str, run_ids: Sequence[str]) -> None:
        """Record the order in which a job's program was given its runs."""
        with self._session() as session:
            for position, run_id in enumerate(run_ids):
                session.execute(
                    update(Run)
                    .where(Run.id == run_id, Run.job_id == job_id)
                    .values(job_position=position),
                    execution_options=_NO_SYNC,
                )

    def job_run_order(self, job_id: str) -> list[str]:
        """The runs a job's program was given, in their order (empty if not recorded)."""
        with self._session() as session:
            query = (
                select(Run.id)
                .where(Run.job_id == job_id, Run.job_position.is_not(None))
                .order_by(Run.job_position)
            )
            return list(session.scalars(query))

    def enqueue(self, run_ids: Iterable[str]) -> list[str]:
        """Queue the runs among ``run_ids`` that wait for a first or new try.

        Pending, failed and cancelled runs become queued; queued and running
        ones (perhaps another runner's) are left as they are.

        Returns:
            The ids that became queued.
        """
        with self._session(WRITE_LOCK) as session:
            return _enqueue_in(session, run_ids)

    def run_specs(self, run_ids: Iterable[str]) -> list[RunSpec]:
        """The stored specs of runs (for a job whose runs belong to other sweeps too)."""
        ids = list(run_ids)
        specs: list[RunSpec] = []
        with self._session() as session:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                specs += [
                    RunSpec.from_dict(spec)
                    for spec in session.scalars(select(Run.spec).where(Run.id.in_(chunk)))
                ]
        return specs

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
        with self._session(WRITE_LOCK) as session:
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
            rows = []
            for position, spec in enumerate(runs):
                run_id = spec.id
                if run_id not in linked:
                    rows.append(
                        {
                            "sweep_id": sweep_id,
                            "run_id": run_id,
                            "position": position,
                            "params": spec.varying,
                        }
                    )
            _insert(session, SweepRun, rows)
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

    def link_stage_runs(
        self,
        sweep_id: str,
        stage: SweepStage,
        runs: Sequence[tuple[str, dict[str, Any]]],
        enqueue: Sequence[str] = (),
    ) -> list[str]:
        """Make the runs of one of a sweep's stages members of the sweep, and queue some.

        Both happen in one transaction: a `cosmos kill --sweep` sees the
        runs queued, or neither linked nor queued (then they are not run
        after it either, unless the sweep runs again).

        Args:
            sweep_id: A stored sweep.
            stage: The stage (not MAIN: a sweep's own runs are linked by add_sweep).
            runs: (run id, parameters shown with it), in order; a run linked
                already keeps its link.
            enqueue: Runs to queue, as :meth:`enqueue` does.

        Returns:
            The ids that became queued.
        """
        if not runs and not enqueue:
            return []
        with self._session(WRITE_LOCK) as session:
            linked = set(
                session.scalars(select(SweepRun.run_id).where(SweepRun.sweep_id == sweep_id))
            )
            last = session.scalar(
                select(func.max(SweepRun.position)).where(SweepRun.sweep_id == sweep_id)
            )
            start = -1 if last is None else last
            rows = []
            for run_id, params in runs:
                if run_id in linked:
                    continue
                linked.add(run_id)
                rows.append(
                    {
                        "sweep_id": sweep_id,
                        "run_id": run_id,
                        "position": start + 1 + len(rows),
                        "params": params,
                        "stage": stage,
                    }
                )
            _insert(session, SweepRun, rows)
            return _enqueue_in(session, enqueue)

    def sweep_runs(
        self, sweep_id: str, stages: Sequence[SweepStage] | None = None
    ) -> list[tuple[SweepRun, Run]]:
        """The sweep's links and runs, in sweep order (of these stages, or all)."""
        with self._session() as session:
            query = (
                select(SweepRun, Run)
                .join(Run, Run.id == SweepRun.run_id)
                .where(SweepRun.sweep_id == sweep_id)
                .order_by(SweepRun.position)
            )
            if stages is not None:
                query = query.where(SweepRun.stage.in_(stages))
            return [(link, run) for link, run in session.execute(query)]

    def sweep_status_counts(self, sweep_id: str) -> dict[str, int]:
        """Counts by status of a sweep's own runs (its points, not its stages' runs)."""
        counts = {status.value: 0 for status in RunStatus}
        with self._session() as session:
            query = (
                select(Run.status, func.count())
                .join(SweepRun, SweepRun.run_id == Run.id)
                .where(SweepRun.sweep_id == sweep_id, SweepRun.stage == SweepStage.MAIN)
                .group_by(Run.status)
            )
            for status, count in session.execute(query):
                counts[status.value] = count
        return counts

    def sweep_stage_sizes(self, sweep_id: str) -> dict[str, int]:
        """How many runs each of a sweep's stages has (stages without runs are left out)."""
        with self._session() as session:
            query = (
                select(SweepRun.stage, func.count())
                .where(SweepRun.sweep_id == sweep_id, SweepRun.stage != SweepStage.MAIN)
                .group_by(SweepRun.stage)
            )
            sizes = {stage: count for stage, count in session.execute(query)}
        return {stage.value: sizes[stage] for stage in SweepStage if stage in sizes}

    def sweeps_of_run(self, run_id: str) -> list[str]:
        """Ids of the sweeps that include ``run_id``."""
        with self._session() as session:
            return list(session.scalars(select(SweepRun.sweep_id).where(SweepRun.run_id == run_id)))

    def find_ids(self, prefix: str) -> list[str]:
        """Ids of prompts, runs and sweeps starting with ``prefix``."""
        pattern = like_literal(prefix) + "%"
        found: list[str] = []
        with self._session() as session:
            for model in (Prompt, Run, Sweep):
                found += session.scalars(
                    select(model.id).where(model.id.like(pattern, escape=LIKE_ESCAPE)).limit(5)
                )
        return found

    def ids_with_prefix(
        self, prefix: str, kinds: Sequence[str], limit: int
    ) -> list[tuple[str, str]]:
        """(id, label) of prompts/runs/sweeps (``kinds``: ps, rs, sw) whose id starts so."""
        with self._session() as session:
            return ids_starting_with(session, prefix, kinds, limit)

    def search(self, text: str, limit: int) -> SearchHits:
        """Prompts containing ``text`` (literally, ignoring case) and their runs."""
        with self._session() as session:
            return find_text(session, text, limit)

    def set_rating(self, run_id: str, rating: int | None) -> int | None:
        """Rate a succeeded run (None: clear its rating); return its previous rating.

        Raises:
            NotFoundFailure: no such run. ValidationFailure: a rating for a run
            that did not succeed (it has no output to judge); nothing changes.
        """
        with self._session(WRITE_LOCK) as session:
            run = session.get(Run, run_id, with_for_update=True)
            if run is None:
                raise NotFoundFailure(f"no run with id {run_id}")
            if rating is not None and run.status is not RunStatus.SUCCEEDED:
                raise ValidationFailure(
                    f"run {run_id} is {run.status.value}: only a succeeded run has an output "
                    "to rate"
                )
            previous = run.rating
            run.rating = rating
            return previous

    def now(self) -> datetime:
        """The repository's clock (for callers that stamp results)."""
        return self._clock.now()

    # -- progress of active sweeps (cosmos status) -------------------------------
    def active_sweeps(self) -> list[Sweep]:
        """Sweeps that have queued or running runs, oldest first."""
        active = (
            select(SweepRun.sweep_id)
            .join(Run, Run.id == SweepRun.run_id)
            .where(Run.status.in_((RunStatus.QUEUED, RunStatus.RUNNING)))
        )
        with self._session() as session:
            query = select(Sweep).where(Sweep.id.in_(active)).order_by(Sweep.created_at, Sweep.id)
            return list(session.scalars(query))

    def sweep_run_times(self, sweep_id: str) -> list[Row[Any]]:
        """Each run of a sweep: id, stage, status, started_at, finished_at, job_id, target, gpus."""
        query = (
            select(
                Run.id,
                SweepRun.stage,
                Run.status,
                Run.started_at,
                Run.finished_at,
                Run.job_id,
                Run.target,
                Run.gpus,
            )
            .join(SweepRun, SweepRun.run_id == Run.id)
            .where(SweepRun.sweep_id == sweep_id)
        )
        with self._session() as session:
            return list(session.execute(query))
