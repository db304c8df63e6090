"""Host health: targets that cannot be reached are drained, probed again, and taken back.

A target whose job fails because it cannot be reached is drained: the
scheduler gives it no work, and its other jobs that fail with it count no
more. It is probed again after a backoff that grows with each failed probe;
once the probes have failed more often than transient faults may be
retried, it is given up for this sweep. When it answers again, the jobs
left there while it was away are handed back to the dispatcher: followed
again where their runs still wait (engine/comeback.py), else stopped and
removed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cosmos_workflow.config.settings import RetrySettings
from cosmos_workflow.engine.comeback import LeftJob
from cosmos_workflow.engine.scheduler import HostSlots
from cosmos_workflow.errors import CosmosError
from cosmos_workflow.execution.targets.base import Executor
from cosmos_workflow.outputs.store import OutputStore

logger = logging.getLogger(__name__)

# Receives a probe's answer (the target's name, and the error if it did not answer).
ProbeReport = Callable[[str, CosmosError | None], None]


def backoff_s(retries: RetrySettings, failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row (doubling, up to the maximum)."""
    return min(retries.max_backoff_s, retries.backoff_s * 2 ** max(0, failures - 1))


@dataclass
class _Down:
    """A drained host: how often it failed, when to probe it next."""

    failures: int
    next_probe: float
    probing: bool = False


class HostHealth:
    """Drains the targets that cannot be reached and takes them back when they answer.

    Its state is changed from the dispatcher's main thread only; probes run
    in threads of their own and hand their answer to ``report``, which the
    main thread passes back to :meth:`probed`.

    Args:
        hosts: The GPU slots of each target, by name (their ``up`` flag is set here).
        executors: The executor of each target, by name.
        store: The output tree (the staging folders of abandoned jobs).
        retries: How often a target may fail its probes, and the backoff between them.
        report: Receives each probe's answer (from the probe's thread).
        note: Tells the user what happened to a target.
    """

    def __init__(
        self,
        hosts: Mapping[str, HostSlots],
        executors: Mapping[str, Executor],
        store: OutputStore,
        retries: RetrySettings,
        report: ProbeReport,
        note: Callable[[str], None],
    ) -> None:
        self._hosts = hosts
        self._executors = executors
        self._store = store
        self._retries = retries
        self._report = report
        self._note = note
        self._down: dict[str, _Down] = {}
        self._abandoned: dict[str, list[LeftJob]] = {}

    @property
    def down(self) -> list[str]:
        """The names of the drained targets, sorted."""
        return sorted(self._down)

    def drain(self, name: str, error: CosmosError) -> None:
        """Take a host out of use (once: its other jobs that fail with it count no more)."""
        host = self._hosts[name]
        if not host.up:
            return
        host.up = False
        self._down[name] = _Down(1, time.monotonic() + backoff_s(self._retries, 1))
        others = any(other.up for other in self._hosts.values())
        where = "goes to the other targets" if others else "waits for it to answer"
        self._note(f"target {name} is unreachable ({error}); its work {where}")

    def abandon(self, name: str, job: LeftJob) -> None:
        """Remember a job left on a lost host: handed back when the host answers."""
        self._abandoned.setdefault(name, []).append(job)

    def hopeless(self, num_gpus: int) -> bool:
        """True if every host that has ``num_gpus`` GPUs is given up: no such job can run."""
        return not any(
            len(host.gpus) >= num_gpus and (host.up or not self._given_up(self._down[host.name]))
            for host in self._hosts.values()
        )

    def probe_due(self, now: float) -> None:
        """Start a probe of each drained host whose time has come."""
        for name, down in self._down.items():
            if down.probing or now < down.next_probe or self._given_up(down):
                continue
            down.probing = True
            threading.Thread(
                target=self._probe, args=(name,), name=f"probe-{name}", daemon=True
            ).start()

    def probed(self, name: str, error: CosmosError | None) -> list[LeftJob]:
        """Apply a probe's answer: back in use, or wait longer.

        Returns:
            The jobs left on the host while it was away (the dispatcher
            follows them again or has them stopped: :meth:`stop`).
        """
        down = self._down[name]
        down.probing = False
        if error is not None:
            down.failures += 1
            down.next_probe = time.monotonic() + backoff_s(self._retries, down.failures)
            logger.debug("Target %s still unreachable: %s", name, error)
            return []
        del self._down[name]
        self._hosts[name].up = True
        self._note(f"target {name} answers again; it takes work again")
        return self._abandoned.pop(name, [])

    def stop(self, name: str, job_ids: list[str]) -> None:
        """Stop and remove (in a thread) jobs left on a host whose runs went elsewhere."""
        if job_ids:
            threading.Thread(target=self._stop_abandoned, args=(name, job_ids), daemon=True).start()

    def _given_up(self, down: _Down) -> bool:
        return down.failures > self._retries.transient

    def _probe(self, name: str) -> None:
        """Ask a drained host whether it answers (in a thread of its own; reports the answer)."""
        try:
            self._executors[name].probe()
        except CosmosError as exc:
            self._report(name, exc)
            return
        self._report(name, None)

    def _stop_abandoned(self, name: str, job_ids: list[str]) -> None:
        """Stop and remove jobs left running on a host while it could not be reached."""
        executor = self._executors[name]
        for job_id in job_ids:
            staging = self._store.staging_path(job_id)
            try:
                executor.stop_job(job_id, staging)
                executor.release(job_id, staging)
                logger.info("Job %s left on %s was stopped and removed", job_id, name)
            except CosmosError as exc:
                logger.warning("Could not stop job %s left on %s: %s", job_id, name, exc)
