"""The queue: a run's status changes, atomic claims, outcomes, cancelling and re-queueing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from cosmos_workflow.database.engine import ROW_LOCKS, WRITE_LOCK
from cosmos_workflow.database.models import TRANSITIONS, Run, RunStatus
from cosmos_workflow.database.repository.core import IN_CHUNK, NO_SYNC, RepositoryCore, enqueue_in
from cosmos_workflow.errors import NotFoundFailure, StateError

# The error class of a succeeded run whose outputs were found missing or changed.
DAMAGED = "damaged"


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


class QueueQueries(RepositoryCore):
    """Status changes of runs; every one checks the status as part of its write."""

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
                session.execute(statement, execution_options=NO_SYNC)
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
            if session.execute(statement, execution_options=NO_SYNC).rowcount == 1:
                return True
            status = session.scalar(select(Run.status).where(Run.id == run_id))
        if status is None:
            raise NotFoundFailure(f"no run with id {run_id}")
        if status is RunStatus.CANCELLED:
            return False
        if status is to:
            return True
        raise StateError(f"run {run_id}: cannot go from {status.value} to {to.value}")

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
            cancelled = set(session.scalars(statement, execution_options=NO_SYNC))
        return [run_id for run_id in ids if run_id in cancelled]

    def enqueue(self, run_ids: Iterable[str]) -> list[str]:
        """Queue the runs among ``run_ids`` that wait for a first or new try.

        Pending, failed and cancelled runs become queued; queued and running
        ones (perhaps another runner's) are left as they are.

        Returns:
            The ids that became queued.
        """
        with self._session(WRITE_LOCK) as session:
            return enqueue_in(session, run_ids)

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
            requeued = set(session.scalars(statement, execution_options=NO_SYNC))
        return [run_id for run_id in ids if run_id in requeued]

    def fail_running(
        self, run_ids: Iterable[str], runner_id: str, error_class: str, message: str
    ) -> list[str]:
        """Mark a runner's running runs failed (their job could not be recorded).

        Runs cancelled meanwhile, finished, or held by another runner are left alone.

        Returns:
            The ids that are failed now, in the order given.
        """
        ids = list(run_ids)
        statement = (
            update(Run)
            .where(Run.id.in_(ids), Run.status == RunStatus.RUNNING, Run.runner_id == runner_id)
            .values(
                status=RunStatus.FAILED,
                finished_at=self._clock.now(),
                error_class=error_class,
                error_message=message,
            )
            .returning(Run.id)
        )
        with self._session() as session:
            failed = set(session.scalars(statement, execution_options=NO_SYNC))
        return [run_id for run_id in ids if run_id in failed]

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

    def mark_damaged(self, problems: dict[str, str]) -> list[str]:
        """Mark succeeded runs whose outputs are damaged as failed, so that they run again.

        The second way around the status machine (after :meth:`requeue_lost`):
        a failed run is not cached, and the next sweep or inference that
        asks for it queues it.

        Args:
            problems: Run id -> what is wrong (stored as its error message).

        Returns:
            The ids marked (runs that are no longer succeeded are left as they are).
        """
        ids = sorted(problems)
        marked = []
        with self._session(WRITE_LOCK) as session:
            for start in range(0, len(ids), IN_CHUNK):
                chunk = ids[start : start + IN_CHUNK]
                runs = session.scalars(
                    select(Run)
                    .where(Run.id.in_(chunk), Run.status == RunStatus.SUCCEEDED)
                    .order_by(Run.id)
                    .with_for_update()
                )
                for run in runs:
                    run.status = RunStatus.FAILED
                    run.error_class = DAMAGED
                    run.error_message = problems[run.id]
                    marked.append(run.id)
        return marked

    def succeeded_outside(self, run_ids: Iterable[str], root: str) -> list[str]:
        """The succeeded runs among ``run_ids`` whose run folder is not under ``root``.

        Runners on several machines share one database, each with its own
        output tree: a run one of them made is done, wherever its folder is.
        """
        ids = list(run_ids)
        prefix = root.rstrip("/") + "/"
        found: list[str] = []
        with self._session() as session:
            for start in range(0, len(ids), IN_CHUNK):
                rows = session.execute(
                    select(Run.id, Run.output_dir).where(
                        Run.id.in_(ids[start : start + IN_CHUNK]),
                        Run.status == RunStatus.SUCCEEDED,
                    )
                )
                found += [
                    row.id
                    for row in rows
                    if row.output_dir and not row.output_dir.startswith(prefix)
                ]
        return found

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

    def set_job_positions(self, job_id: str, run_ids: Sequence[str]) -> None:
        """Record the order in which a job's program was given its runs."""
        with self._session() as session:
            for position, run_id in enumerate(run_ids):
                session.execute(
                    update(Run)
                    .where(Run.id == run_id, Run.job_id == job_id)
                    .values(job_position=position),
                    execution_options=NO_SYNC,
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
