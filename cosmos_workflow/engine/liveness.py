"""Who a runner is, and whether another runner still works.

A runner beats a heartbeat in the database (engine/dispatch.py). Another
runner (taking over jobs) and `cosmos gc` (removing what no runner owns)
ask here whether a runner is alive: it has not stopped, and it beat
recently or, on this machine, its process still runs (see runner_alive).
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.database.models import Runner
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.utils.clock import Clock

logger = logging.getLogger(__name__)

# A runner on this machine whose process runs is alive this many runner
# timeouts past its last heartbeat (then it is taken for hung).
BUSY_PATIENCE = 10
# A runner registers soon after its process starts; the start time read
# from /proc moves with the wall clock, hence a wide margin.
_REGISTERED_WITHIN = timedelta(minutes=10)
# Process states of a process that runs (not stopped, not a zombie).
_RUNNING = frozenset({"R", "S", "D", "I", "W", "P"})


@dataclass
class RunnerIdentity:
    """Who this runner is, for the database and for other runners.

    Attributes:
        runner_id: Its id (rn_...).
        hostname: The machine it runs on.
        pid: Its process id.
    """

    runner_id: str
    hostname: str
    pid: int

    @classmethod
    def new(cls, hostname: str, pid: int) -> RunnerIdentity:
        """A fresh identity for this process."""
        return cls(f"rn_{uuid.uuid4().hex[:12]}", hostname, pid)


def runner_alive(
    runner: Runner | None,
    hostname: str,
    clock: Clock,
    timeout_s: float,
    commands: LocalCommandExecutor,
) -> bool:
    """True if a runner may still work.

    On this machine its process says: a runner whose process runs is alive
    even if its heartbeat is late (a busy machine, or a heartbeat waiting for
    the database), up to :data:`BUSY_PATIENCE` runner timeouts; one whose
    process is gone is dead at once. A stopped process (Ctrl-Z), a runner on
    another machine, or one whose process cannot be looked at is alive
    while it beat within the timeout.

    Args:
        runner: The runner's record (None: unknown, so not alive).
        hostname: The machine the caller runs on.
        clock: Wall-clock time.
        timeout_s: How long a runner may be silent (scheduler.runner_timeout_s).
        commands: Tells whether a local process still runs.
    """
    if runner is None or runner.stopped_at is not None:
        return False
    silent = clock.now() - runner.heartbeat_at
    if silent <= timedelta(seconds=timeout_s):
        return runner.hostname != hostname or commands.process_exists(runner.pid)
    if runner.hostname != hostname or silent > timedelta(seconds=timeout_s * BUSY_PATIENCE):
        return False
    return _busy_here(runner, commands)


def _busy_here(runner: Runner, commands: LocalCommandExecutor) -> bool:
    """True if the late runner's own process runs on this machine (not stopped, not a later one)."""
    if commands.process_state(runner.pid) not in _RUNNING:
        return False
    started = commands.process_started_at(runner.pid)
    # A process that started after the runner registered only got its id.
    return started is None or started <= (runner.started_at + _REGISTERED_WITHIN).timestamp()


class Heartbeat:
    """A thread that records a runner's heartbeat every ``every_s`` seconds until stopped.

    Args:
        repository: Database access.
        runner_id: The runner that beats.
        every_s: Seconds between beats.
    """

    def __init__(self, repository: DataRepository, runner_id: str, every_s: float) -> None:
        self._repo = repository
        self._runner_id = runner_id
        self._every_s = every_s
        self._stopped = threading.Event()
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()

    def stop(self) -> None:
        """Beat no more."""
        self._stopped.set()

    def _beat(self) -> None:
        while not self._stopped.wait(self._every_s):
            try:
                self._repo.heartbeat(self._runner_id)
            except SQLAlchemyError as exc:
                logger.warning("Could not record the heartbeat: %s", exc)
