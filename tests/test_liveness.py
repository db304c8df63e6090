"""Whether a runner is alive (engine/liveness.py), as `cosmos gc` and a taking-over runner ask.

The end-to-end cases (gc next to a live runner, a runner killed with SIGKILL,
two runners with fast heartbeats) are in tests/test_outages.py,
tests/test_gpu_leases.py and tests/test_pool.py; these are the boundaries of
the rule itself, on a runner of this machine and of another.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from test_database import T0, FakeClock

from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.database.models import Runner
from cosmos_workflow.engine.liveness import BUSY_PATIENCE, runner_alive

TIMEOUT_S = 30.0
HERE = "this-machine"


def a_dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def runner(
    hostname: str,
    pid: int,
    silent_s: float,
    stopped: bool = False,
    started_at: datetime | None = None,
) -> Runner:
    beat = T0 - timedelta(seconds=silent_s)
    return Runner(
        id="rn_0123456789ab",
        hostname=hostname,
        pid=pid,
        # Real time: /proc says when this test's processes started.
        started_at=started_at or datetime.now(timezone.utc),
        heartbeat_at=beat,
        stopped_at=beat if stopped else None,
    )


def alive(record: Runner | None) -> bool:
    return runner_alive(record, HERE, FakeClock(T0), TIMEOUT_S, LocalCommandExecutor())


@contextmanager
def a_stopped_process() -> Iterator[int]:
    """A process stopped as by Ctrl-Z (SIGSTOP), killed afterwards."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(process.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while LocalCommandExecutor.process_state(process.pid) not in ("T", "t"):
            assert time.monotonic() < deadline, "the process did not stop"
            time.sleep(0.01)
        yield process.pid
    finally:
        process.kill()
        process.wait()


def test_a_runner_on_another_machine_is_alive_until_it_goes_silent() -> None:
    me = os.getpid()
    assert alive(runner("another-machine", me, silent_s=0))
    assert alive(runner("another-machine", me, silent_s=TIMEOUT_S - 1))
    assert not alive(runner("another-machine", me, silent_s=TIMEOUT_S + 1))


def test_on_this_machine_a_runner_whose_process_runs_is_alive_though_it_beats_late() -> None:
    # A busy runner (its heartbeat waiting for the database) still works: taking
    # its jobs over would run them twice. Only a runner silent for many
    # timeouts is taken for hung.
    me = os.getpid()
    for silent_s in (0, TIMEOUT_S + 1, BUSY_PATIENCE * TIMEOUT_S - 1):
        assert alive(runner(HERE, me, silent_s=silent_s)), silent_s
    assert not alive(runner(HERE, me, silent_s=BUSY_PATIENCE * TIMEOUT_S + 1))


def test_on_this_machine_a_stopped_runner_is_alive_until_it_goes_silent() -> None:
    with a_stopped_process() as pid:
        assert alive(runner(HERE, pid, silent_s=TIMEOUT_S - 1))
        assert not alive(runner(HERE, pid, silent_s=TIMEOUT_S + 1))


def test_a_process_that_got_the_id_of_a_dead_runner_does_not_keep_it_alive() -> None:
    # This test's process started long after a runner that registered in 2001
    # and has been silent since: it is not that runner.
    long_ago = datetime(2001, 1, 1, tzinfo=timezone.utc)
    late = TIMEOUT_S + 1
    assert not alive(runner(HERE, os.getpid(), silent_s=late, started_at=long_ago))
    # A runner registered after its process started is that process.
    assert alive(runner(HERE, os.getpid(), silent_s=late))


def test_a_stopped_or_unknown_runner_is_not_alive() -> None:
    assert not alive(runner("another-machine", os.getpid(), silent_s=0, stopped=True))
    assert not alive(runner(HERE, os.getpid(), silent_s=0, stopped=True))
    assert not alive(None)


def test_on_this_machine_a_runner_whose_process_is_gone_is_not_alive_however_recent() -> None:
    assert not alive(runner(HERE, a_dead_pid(), silent_s=0))
    # On another machine its process cannot be looked at: its heartbeat says.
    assert alive(runner("another-machine", a_dead_pid(), silent_s=0))


def test_the_process_must_have_started_before_the_runner_registered() -> None:
    # /proc's start time of a fresh process, against the runner's registration
    # (a margin of ten minutes allows for the wall clock being set meanwhile).
    before = datetime.now(timezone.utc)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    late = TIMEOUT_S + 1
    try:
        for registered, expected in [
            (before + timedelta(seconds=1), True),
            (before - timedelta(minutes=9), True),
            (before - timedelta(minutes=11), False),
            (before - timedelta(days=30), False),
        ]:
            record = runner(HERE, process.pid, silent_s=late, started_at=registered)
            assert alive(record) is expected, registered
    finally:
        process.kill()
        process.wait()


def test_a_runner_whose_process_is_a_zombie_is_not_alive() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while LocalCommandExecutor.process_state(process.pid) != "Z":
            assert time.monotonic() < deadline, "the process did not end"
            time.sleep(0.01)
        assert not alive(runner(HERE, process.pid, silent_s=0))
        assert not alive(runner(HERE, process.pid, silent_s=TIMEOUT_S + 1))
    finally:
        process.wait()
