"""Runs: storing them, reading them back, their links, statuses and ratings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, select, update

from cosmos_workflow.database.engine import WRITE_LOCK
from cosmos_workflow.database.models import Run, RunStatus, SweepRun
from cosmos_workflow.database.repository.core import (
    IN_CHUNK,
    RepositoryCore,
    insert_rows,
    stored_among,
)
from cosmos_workflow.database.states import FINAL_STATUSES
from cosmos_workflow.errors import NotFoundFailure, ValidationFailure
from cosmos_workflow.manifest.specs import RunSpec


class RunQueries(RepositoryCore):
    """Queries and changes of runs that are not status changes (see queue.py)."""

    def add_runs(self, specs: Iterable[RunSpec]) -> None:
        """Store runs not stored yet, as pending."""
        unique: dict[str, tuple[RunSpec, dict[str, Any]]] = {}
        for spec in specs:
            stored = spec.to_dict()
            unique.setdefault(stored["id"], (spec, stored))
        with self._session(WRITE_LOCK) as session:
            existing = stored_among(session, Run.id, list(unique))
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
            insert_rows(session, Run, rows)

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
            for start in range(0, len(ids), IN_CHUNK):
                query = select(Run).where(Run.id.in_(ids[start : start + IN_CHUNK]))
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
            for start in range(0, len(ids), IN_CHUNK):
                chunk = ids[start : start + IN_CHUNK]
                rows = session.execute(select(Run.id, Run.status).where(Run.id.in_(chunk)))
                found.update({row.id: row.status for row in rows})
        return found

    def get_run(self, run_id: str) -> Run:
        """Return one run. Raises NotFoundFailure."""
        return self._get(Run, run_id, "run")

    def list_runs(
        self,
        status: RunStatus | None = None,
        limit: int | None = None,
        prompt_id: str | None = None,
        rating: int | None = None,
        min_rating: int | None = None,
        prompt_ids: Sequence[str] | None = None,
    ) -> list[Run]:
        """Runs, newest first, optionally filtered (``min_rating``: rated at least so).

        ``prompt_ids``: runs of any of these prompts (an empty list: none).
        """
        with self._session() as session:
            query = select(Run).order_by(Run.created_at.desc(), Run.id)
            if status is not None:
                query = query.where(Run.status == status)
            if prompt_id is not None:
                query = query.where(Run.prompt_id == prompt_id)
            if prompt_ids is not None:
                query = query.where(Run.prompt_id.in_(list(prompt_ids)))
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

    def run_specs(self, run_ids: Iterable[str]) -> list[RunSpec]:
        """The stored specs of runs (for a job whose runs belong to other sweeps too)."""
        ids = list(run_ids)
        specs: list[RunSpec] = []
        with self._session() as session:
            for start in range(0, len(ids), IN_CHUNK):
                chunk = ids[start : start + IN_CHUNK]
                specs += [
                    RunSpec.from_dict(spec)
                    for spec in session.scalars(select(Run.spec).where(Run.id.in_(chunk)))
                ]
        return specs

    def delete_run(self, run_id: str) -> Run:
        """Delete one run (and its sweep links); return it."""
        with self._session(WRITE_LOCK) as session:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFoundFailure(f"no run with id {run_id}")
            session.delete(run)
            return run

    def delete_runs(self, run_ids: Iterable[str]) -> list[str]:
        """Delete the stored runs among ``run_ids`` (and their sweep links), in one transaction.

        Returns:
            The ids deleted, in the order given (those not stored are skipped).
        """
        ids = list(dict.fromkeys(run_ids))
        with self._session(WRITE_LOCK) as session:
            stored = stored_among(session, Run.id, ids)
            gone = [run_id for run_id in ids if run_id in stored]
            for start in range(0, len(gone), IN_CHUNK):
                chunk = gone[start : start + IN_CHUNK]
                session.execute(delete(SweepRun).where(SweepRun.run_id.in_(chunk)))
                session.execute(
                    update(Run).where(Run.parent_run_id.in_(chunk)).values(parent_run_id=None)
                )
                session.execute(delete(Run).where(Run.id.in_(chunk)))
            return gone

    def stored_run_ids(self, run_ids: Iterable[str]) -> set[str]:
        """The ids among ``run_ids`` that are stored runs."""
        with self._session() as session:
            return stored_among(session, Run.id, list(run_ids))

    def succeeded_run_dirs(self) -> list[tuple[str, str | None]]:
        """(id, output_dir) of every succeeded run, by id."""
        with self._session() as session:
            query = select(Run.id, Run.output_dir).where(Run.status == RunStatus.SUCCEEDED)
            return [(row.id, row.output_dir) for row in session.execute(query.order_by(Run.id))]

    def counts_by_status(self) -> dict[str, int]:
        """Number of runs in each status (every status listed)."""
        counts = {status.value: 0 for status in RunStatus}
        with self._session() as session:
            for status, count in session.execute(
                select(Run.status, func.count()).group_by(Run.status)
            ):
                counts[status.value] = count
        return counts

    def recent_run_states(self, finished_since: datetime) -> list[Row[Any]]:
        """id, status, rating and the sweeps of each run unfinished or finished since then.

        What a live page polls: one query, however many runs the database holds.
        """
        query = (
            select(Run.id, Run.status, Run.rating, SweepRun.sweep_id)
            .outerjoin(SweepRun, SweepRun.run_id == Run.id)
            .where(Run.status.not_in(FINAL_STATUSES) | (Run.finished_at >= finished_since))
        )
        with self._session() as session:
            return list(session.execute(query))

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
