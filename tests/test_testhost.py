"""scripts/test-host and test slots: up, down and up again; nothing left behind.

Runs the real script (as root: a network namespace, a veth link, sshd and
dockerd). A failed ``up`` is caused through a real parameter (an image name
that docker refuses) after everything else is running.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slots
import testhost
from conftest import REPO

SCRIPT = REPO / "scripts" / "test-host"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def slot_line(stdout: str) -> tuple[int, str, str]:
    """The slot, namespace and link that `up` says it takes."""
    found = re.search(r"test slot (\d+): network namespace (\S+), link (\S+)", stdout)
    assert found, stdout
    return int(found[1]), found[2], found[3]


def leftovers(state_dir: Path, netns: str, link: str, number: int) -> list[str]:
    """What of a host is still there: processes, namespace, link, folders."""
    found = []
    exec_roots = sorted(Path("/tmp").glob(f"cwdx{number}-*"))
    pids = slots.pids_mentioning([f"{state_dir}/", *(f"{path}/" for path in exec_roots)])
    found += [f"process {pid}" for pid in pids | slots.netns_pids(netns)]
    if netns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout:
        found.append(f"namespace {netns}")
    if subprocess.run(["ip", "link", "show", link], capture_output=True).returncode == 0:
        found.append(f"link {link}")
    found += [str(path) for path in [state_dir, *exec_roots] if path.exists()]
    return found


def test_up_down_and_up_again(tmp_path: Path) -> None:
    state_dir = tmp_path / "host"
    for _ in range(2):
        started = run_script("up", "--state-dir", str(state_dir))
        assert started.returncode == 0, started.stderr
        number, netns, link = slot_line(started.stdout)
        assert f"'target.host=10.201.{number}.2'" in started.stdout
        assert (state_dir / "host.json").is_file()
        assert slots.netns_pids(netns), "nothing runs in the namespace"
        # The host keeps its slot after the script has exited: a test session skips it.
        other = slots.acquire(number)
        other.release()
        assert other.number != number
        again = run_script("up", "--state-dir", str(state_dir))
        assert again.returncode == 1 and "already up" in again.stderr

        stopped = run_script("down", "--state-dir", str(state_dir))
        assert stopped.returncode == 0, stopped.stderr
        assert leftovers(state_dir, netns, link, number) == []


def test_up_with_slurm_prints_the_slurm_overrides_and_down_stops_the_cluster(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "host"
    started = run_script("up", "--slurm", "--state-dir", str(state_dir))
    assert started.returncode == 0, started.stderr
    number, netns, link = slot_line(started.stdout)
    try:
        assert "'target=slurm'" in started.stdout
        assert f"'target.login.host=10.201.{number}.2'" in started.stdout
        assert f"'target.work_dir={state_dir.resolve()}/slurm/work'" in started.stdout
        found = re.search(r"SLURM_CONF=(\S+)", started.stdout)
        assert found, started.stdout
        # The cluster outlives the script, and answers clients on this machine.
        sinfo = subprocess.run(
            ["sinfo", "-h", "-o", "%P %t %G"],
            env={"SLURM_CONF": found[1], "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert sinfo.stdout.split() == ["gpu*", "idle", "gpu:4"], sinfo.stderr
        daemons = slots.pids_mentioning([f"{state_dir.resolve()}/slurm/"])
        assert len(daemons) == 3, "munged, slurmctld and slurmd run"
    finally:
        stopped = run_script("down", "--state-dir", str(state_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert leftovers(state_dir, netns, link, number) == []


def test_a_failed_up_leaves_nothing_behind(tmp_path: Path) -> None:
    state_dir = tmp_path / "host"
    failed = run_script("up", "--state-dir", str(state_dir), "--image", "Not A Valid Name")
    assert failed.returncode == 1
    assert "invalid reference format" in failed.stderr
    assert "Traceback" not in failed.stderr
    number, netns, link = slot_line(failed.stdout)
    assert leftovers(state_dir, netns, link, number) == []

    started = run_script("up", "--state-dir", str(state_dir))
    assert started.returncode == 0, started.stderr
    assert run_script("down", "--state-dir", str(state_dir)).returncode == 0


STALE_OWNER = """
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
import slots, testhost
slot = slots.acquire()
testhost._make_network(slot)
subprocess.Popen(["ip", "netns", "exec", slot.netns, "sleep", "600"], start_new_session=True)
subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(600)", str(slot.dir / "stale")],
    start_new_session=True,
)
print(slot.number, flush=True)
time.sleep(600)
"""


def test_taking_a_slot_removes_what_a_killed_session_left(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", STALE_OWNER, str(REPO / "tests")],
        stdout=subprocess.PIPE,
        text=True,
    )
    number = int(owner.stdout.readline())
    stale = Path(slots.SLOTS_DIR / str(number))
    # Both were started; the first may take a moment to enter the namespace.
    deadline = time.monotonic() + 10
    while len(left := slots.netns_pids(f"cwts{number}") | slots.pids_mentioning([f"{stale}/"])) < 2:
        assert time.monotonic() < deadline, f"the stale processes never all ran: {left}"
        time.sleep(0.05)
    assert len(left) == 2
    owner.send_signal(signal.SIGKILL)  # its lock goes with it; its namespace and processes stay
    owner.wait()

    taken = slots.acquire(number)
    try:
        assert taken.number == number
        assert not any(slots.alive(pid) for pid in left)
        assert leftovers(tmp_path / "none", taken.netns, taken.link, number) == []
        assert list(taken.dir.iterdir()) == []
    finally:
        taken.release()


def test_up_refuses_a_state_dir_in_use(tmp_path: Path) -> None:
    (tmp_path / testhost.STATE_FILE).write_text("{}")
    slot = slots.acquire()
    try:
        with pytest.raises(RuntimeError, match=r"up in .* already"):
            testhost.up(tmp_path, slot)
    finally:
        slot.release()
