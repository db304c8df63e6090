"""Sweeps: storing them, their runs and stages, and the progress of active ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select

from cosmos_workflow.database.engine import WRITE_LOCK
from cosmos_workflow.database.models import Run, RunStatus, Sweep, SweepRun, SweepStage
from cosmos_workflow.database.repository.core import RepositoryCore, enqueue_in, insert_rows
from cosmos_workflow.manifest.specs import RunSpec


class SweepQueries(RepositoryCore):
    """Queries and changes of sweeps and their links to runs."""

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
            insert_rows(session, SweepRun, rows)
            return created

    def get_sweep(self, sweep_id: str) -> Sweep:
        """Return one sweep. Raises NotFoundFailure."""
        return self._get(Sweep, sweep_id, "sweep")

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
            insert_rows(session, SweepRun, rows)
            return enqueue_in(session, enqueue)

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
        return [row for row in self.sweeps_run_times([sweep_id]) if row.sweep_id == sweep_id]

    def sweeps_run_times(self, sweep_ids: Sequence[str] | None = None) -> list[Row[Any]]:
        """Each run of these sweeps (None: of every sweep), in one query.

        Rows: sweep_id, id, stage, status, started_at, finished_at, job_id, target, gpus.
        """
        query = select(
            SweepRun.sweep_id,
            Run.id,
            SweepRun.stage,
            Run.status,
            Run.started_at,
            Run.finished_at,
            Run.job_id,
            Run.target,
            Run.gpus,
        ).join(SweepRun, SweepRun.run_id == Run.id)
        if sweep_ids is not None:
            query = query.where(SweepRun.sweep_id.in_(list(sweep_ids)))
        with self._session() as session:
            return list(session.execute(query))
