"""GPUs booked across runners: who this runner is, and its leases on GPUs.

Two runners on one machine, or two whose pools reach one host, see the same
GPUs. Each GPU of a machine (``Executor.machine``) has at most one lease in
the database (database/repository/leases.py):

- Before the dispatcher starts a job on GPUs it takes their leases, all or
  none, in one transaction; a job whose GPUs another runner took first
  waits for the next plan.
- When it plans, the GPUs that other live runners hold count as busy (for
  :data:`LOOK_AGAIN_S`, then the database is asked again), so its jobs go
  to the GPUs that are free; it says once what it waits for.
- The lease is given back when the job ends (not when its host went
  silent: its container may still run there), and all of the runner's when
  it stops (Ctrl-C, an error). A lease of a runner that stopped, or whose
  heartbeat is older than the runner timeout (killed), is free again;
  unless that runner is alive all the same (engine/liveness.py: a busy
  runner of this machine may beat late).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from sqlalchemy.exc import SQLAlchemyError

from cosmos_workflow.database.models import Runner
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.engine.scheduler import HostSlots

logger = logging.getLogger(__name__)

# GPUs another runner holds count as busy this long in a plan (then it looks again).
LOOK_AGAIN_S = 1.0


class GpuLeases:
    """This runner's leases on the GPUs of its targets' machines.

    Args:
        repository: Database access.
        runner_id: This runner.
        machines: Target name -> the machine whose GPUs it uses.
        timeout_s: A runner silent this long is taken for dead (its leases are free)...
        alive: ... unless this says it is alive all the same (engine/liveness.py).
        note: Tells the user something (one line).
    """

    def __init__(
        self,
        repository: DataRepository,
        runner_id: str,
        machines: Mapping[str, str],
        timeout_s: float,
        alive: Callable[[Runner], bool],
        note: Callable[[str], None],
    ) -> None:
        self._repo = repository
        self._runner_id = runner_id
        self._machines = dict(machines)
        self._timeout_s = timeout_s
        self._alive = alive
        self._note = note
        self._waiting_for: dict[str, list[int]] = {}

    def visible(self, hosts: Sequence[HostSlots], now: float) -> list[HostSlots]:
        """``hosts`` as this runner may plan on them: GPUs other runners hold are busy.

        The hosts themselves are not changed (copies are returned). Says once,
        at each change, which free GPUs it waits for.
        """
        held = self._repo.gpus_held_by_others(self._runner_id, self._timeout_s, self._late_alive())
        views, waiting = [], {}
        for host in hosts:
            taken = [
                gpu
                for gpu in host.free_gpus()
                if gpu in held.get(self._machines.get(host.name, ""), ())
            ]
            if taken:
                waiting[host.name] = taken
                busy = {**host.busy_until, **dict.fromkeys(taken, now + LOOK_AGAIN_S)}
                host = replace(host, busy_until=busy)
            views.append(host)
        self._say_waiting(waiting)
        return views

    def _say_waiting(self, waiting: dict[str, list[int]]) -> None:
        if waiting == self._waiting_for:
            return
        self._waiting_for = waiting
        if waiting:
            slots = "; ".join(
                f"{name} GPU {', '.join(map(str, gpus))}" for name, gpus in waiting.items()
            )
            count = sum(len(gpus) for gpus in waiting.values())
            self._note(f"waiting for {count} GPU slot(s) another runner holds ({slots})")

    def take(self, target: str, gpus: Sequence[int], job_id: str) -> bool:
        """Lease ``gpus`` of a target's machine to a job; False if another runner holds one."""
        machine = self._machines[target]
        taken = self._repo.take_gpus(
            machine, gpus, self._runner_id, job_id, self._timeout_s, self._late_alive()
        )
        if not taken:
            logger.info("GPU(s) %s of %s were taken by another runner first", gpus, machine)
        return taken

    def _late_alive(self) -> set[str]:
        """Runners that have not beaten within the timeout and are alive all the same."""
        late = self._repo.late_runners(self._timeout_s)
        return {runner.id for runner in late if self._alive(runner)}

    def release(self, job_id: str | None = None) -> None:
        """Give back a job's leases (all of this runner's without ``job_id``).

        A lease that cannot be given back now frees itself when the runner stops
        (or goes silent): a database error is logged, not raised.
        """
        try:
            self._repo.release_gpus(self._runner_id, job_id)
        except SQLAlchemyError as exc:
            logger.warning("Could not give back the GPU leases of %s: %s", job_id or "", exc)
