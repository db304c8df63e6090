"""GPU leases: which runner's job holds a GPU of a machine, shared by every runner.

A lease is one row per machine and GPU index (the primary key), so of two
runners that take the same GPU at once one gets it. A lease whose runner
stopped, is unknown, or has not beaten its heartbeat for ``timeout_s`` (and
is not among the late runners the caller knows alive, engine/liveness.py)
is free again: the next runner that takes the GPU removes it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta

from sqlalchemy import Select, and_, delete, or_, select
from sqlalchemy.exc import IntegrityError

from cosmos_workflow.database.engine import WRITE_LOCK
from cosmos_workflow.database.models import GpuLease, Runner
from cosmos_workflow.database.repository.core import NO_SYNC, RepositoryCore, insert_rows


class LeaseQueries(RepositoryCore):
    """Taking, listing and giving back GPU leases."""

    def _live_runners(self, timeout_s: float, late_alive: Collection[str]) -> Select[tuple[str]]:
        """The ids of runners that run and beat within ``timeout_s`` (or are
        ``late_alive``), as a subquery."""
        since = self._clock.now() - timedelta(seconds=timeout_s)
        beat = Runner.heartbeat_at >= since
        if late_alive:
            beat = or_(beat, Runner.id.in_(list(late_alive)))
        return select(Runner.id).where(Runner.stopped_at.is_(None), beat)

    def take_gpus(
        self,
        machine: str,
        gpus: Sequence[int],
        runner_id: str,
        job_id: str,
        timeout_s: float,
        late_alive: Collection[str] = (),
    ) -> bool:
        """Lease ``gpus`` of ``machine`` to a runner's job, all of them or none.

        Leases of runners that are not alive (see the module) are removed first,
        and the runner's own (it books only GPUs it knows free: a lease it could
        not give back is replaced), and those of the same job (a job taken over
        from a runner that died keeps its GPUs, with the runs it holds).

        Args:
            machine: The machine's key (``Executor.machine``).
            gpus: The GPU indices.
            runner_id: The runner taking them.
            job_id: The job that will run on them.
            timeout_s: A runner silent this long is taken for dead...
            late_alive: ... unless it is one of these.

        Returns:
            True if every GPU was free and is now leased; False if a live runner holds one.
        """
        if not gpus:
            return True
        mine = and_(GpuLease.machine == machine, GpuLease.gpu.in_(list(gpus)))
        stale = or_(
            GpuLease.runner_id == runner_id,
            # A job taken over from a runner that died (its runs are this runner's now).
            GpuLease.job_id == job_id,
            GpuLease.runner_id.not_in(self._live_runners(timeout_s, late_alive)),
        )
        rows = [
            {
                "machine": machine,
                "gpu": gpu,
                "runner_id": runner_id,
                "job_id": job_id,
                "leased_at": self._clock.now(),
            }
            for gpu in gpus
        ]
        try:
            with self._session(WRITE_LOCK) as session:
                session.execute(delete(GpuLease).where(mine, stale), execution_options=NO_SYNC)
                if session.scalars(select(GpuLease.gpu).where(mine)).first() is not None:
                    return False
                insert_rows(session, GpuLease, rows)
        except IntegrityError:
            # Another writer inserted one of them first (a backend without the writers' lock).
            return False
        return True

    def gpus_held_by_others(
        self, runner_id: str, timeout_s: float, late_alive: Collection[str] = ()
    ) -> dict[str, set[int]]:
        """The GPUs that live runners other than ``runner_id`` hold, by machine.

        A runner silent for ``timeout_s`` is dead unless it is ``late_alive``.
        """
        query = select(GpuLease.machine, GpuLease.gpu).where(
            GpuLease.runner_id != runner_id,
            GpuLease.runner_id.in_(self._live_runners(timeout_s, late_alive)),
        )
        held: dict[str, set[int]] = {}
        with self._session() as session:
            for machine, gpu in session.execute(query):
                held.setdefault(machine, set()).add(gpu)
        return held

    def release_gpus(self, runner_id: str, job_id: str | None = None) -> int:
        """Give back a runner's leases (of one job, or all of them); returns how many."""
        statement = delete(GpuLease).where(GpuLease.runner_id == runner_id)
        if job_id is not None:
            statement = statement.where(GpuLease.job_id == job_id)
        with self._session() as session:
            return session.execute(statement, execution_options=NO_SYNC).rowcount
