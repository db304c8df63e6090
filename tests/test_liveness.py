"""Whether a runner is alive (engine/liveness.py), as `cosmos gc` and a taking-over runner ask.

The end-to-end cases (gc next to a live runner, a runner killed with SIGKILL)
are in tests/test_outages.py and tests/test_gpu_leases.py; these are the
boundaries of the rule itself, on a runner of this machine and of another.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from test_database import T0, FakeClock

from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.database.models import Runner
from cosmos_workflow.engine.liveness import runner_alive

TIMEOUT_S = 30.0
HERE = "this-machine"


def a_dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def runner(hostname: str, pid: int, silent_s: float, stopped: bool = False) -> Runner:
    beat = T0 - timedelta(seconds=silent_s)
    return Runner(
        id="rn_0123456789ab",
        hostname=hostname,
        pid=pid,
        started_at=beat - timedelta(hours=1),
        heartbeat_at=beat,
        stopped_at=beat if stopped else None,
    )


def alive(record: Runner | None) -> bool:
    return runner_alive(record, HERE, FakeClock(T0), TIMEOUT_S, LocalCommandExecutor())


@pytest.mark.parametrize("hostname", [HERE, "another-machine"])
def test_a_runner_that_beat_within_the_timeout_is_alive_until_it_goes_silent(
    hostname: str,
) -> None:
    me = os.getpid()
    assert alive(runner(hostname, me, silent_s=0))
    assert alive(runner(hostname, me, silent_s=TIMEOUT_S - 1))
    assert not alive(runner(hostname, me, silent_s=TIMEOUT_S + 1))


def test_a_stopped_or_unknown_runner_is_not_alive() -> None:
    assert not alive(runner("another-machine", os.getpid(), silent_s=0, stopped=True))
    assert not alive(None)


def test_on_this_machine_a_runner_whose_process_is_gone_is_not_alive_however_recent() -> None:
    assert not alive(runner(HERE, a_dead_pid(), silent_s=0))
    # On another machine its process cannot be looked at: its heartbeat says.
    assert alive(runner("another-machine", a_dead_pid(), silent_s=0))
