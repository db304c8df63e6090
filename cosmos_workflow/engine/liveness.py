"""Who a runner is, and whether another runner still works.

A runner beats a heartbeat in the database (engine/dispatch.py). Another
runner (taking over jobs) and `cosmos gc` (removing what no runner owns)
ask here whether a runner is alive: it has not stopped, and on this
machine its process still runs (the same process, not a later one given its
id); on another machine, or while its process is stopped (Ctrl-Z), it beat
recently.
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

# A runner registers soon after its process starts (clocks read from /proc
# are whole seconds at boot, hence the margin).
_REGISTERED_WITHIN = timedelta(seconds=5)
# Process states of a stopped process (Ctrl-Z, a debugger).
_STOPPED = frozenset({"T", "t"})


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
    even if its heartbeat is late (a busy machine, or a heartbeat waiting
    for the database), and one whose process is gone is dead at once. A
    stopped process (Ctrl-Z) is alive only while it beat recently, as is a
    runner on another machine.

    Args:
        runner: The runner's record (None: unknown, so not alive).
        hostname: The machine the caller runs on.
        clock: Wall-clock time.
        timeout_s: How long a runner may be silent (scheduler.runner_timeout_s).
        commands: Tells whether a local process still runs.
    """
    if runner is None or runner.stopped_at is not None:
        return False
    if runner.hostname == hostname:
        # A process that started after the runner registered only got its id.
        state = commands.process_state(runner.pid, runner.started_at + _REGISTERED_WITHIN)
        if state in (None, "Z", "X"):
            return False
        if state not in _STOPPED:
            return True
    return clock.now() - runner.heartbeat_at <= timedelta(seconds=timeout_s)


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
