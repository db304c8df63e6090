"""Slots: the test host, PostgreSQL port and folders a test process may use.

Every pytest-xdist worker (and a session without xdist) takes one slot and
keeps it for its session. The slot's number names the test host's network
namespace, veth link and subnet, the PostgreSQL port, and the folders of its
daemons. A slot is taken by locking its lock file (fcntl.flock): two test
sessions on one machine, or a test session and a ``scripts/test-host`` host,
never share one; a process starts at the slot of its worker id and takes the
next free one. A lock goes with the last process that holds it, so a free
slot may still hold what a killed session left behind: taking the slot
removes that first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SLOTS_DIR = Path(tempfile.gettempdir()) / "cosmos-workflow-slots"
SLOT_COUNT = 64
PG_BASE_PORT = 25432


@dataclass(frozen=True)
class Slot:
    """A taken slot: its number and the open, locked lock file that holds it."""

    number: int
    lock_fd: int

    @property
    def dir(self) -> Path:
        """The slot's own folder (emptied when the slot is taken)."""
        return SLOTS_DIR / str(self.number)

    @property
    def exec_root_prefix(self) -> str:
        """Where the slot's dockerd exec roots go (short: unix socket paths are limited)."""
        return str(Path(tempfile.gettempdir()) / f"cwdx{self.number}-")

    @property
    def netns(self) -> str:
        return f"cwts{self.number}"

    @property
    def link(self) -> str:
        return f"cwtv{self.number}"

    @property
    def gateway(self) -> str:
        """This machine's end of the veth link."""
        return f"10.201.{self.number}.1"

    @property
    def address(self) -> str:
        """The test host's address."""
        return f"10.201.{self.number}.2"

    @property
    def pg_port(self) -> int:
        return PG_BASE_PORT + self.number

    def release(self) -> None:
        """Give the slot up (closing the lock file drops the lock)."""
        os.close(self.lock_fd)


def preferred() -> int:
    """The slot to try first: 0 without xdist, N + 1 for xdist worker gwN."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return int(worker[2:]) + 1
    return 0


def acquire(first: int | None = None) -> Slot:
    """Take the first free slot from ``first`` on, clean of any leftovers.

    Raises:
        RuntimeError: Every slot is taken.
    """
    start = preferred() if first is None else first
    SLOTS_DIR.mkdir(exist_ok=True)
    if SLOTS_DIR.stat().st_uid == os.geteuid():
        SLOTS_DIR.chmod(0o1777)  # shared by every user's test sessions, like /tmp
    for offset in range(SLOT_COUNT):
        number = (start + offset) % SLOT_COUNT
        fd = _lock(SLOTS_DIR / f"{number}.lock")
        if fd is not None:
            slot = Slot(number, fd)
            clean(slot)
            return slot
    raise RuntimeError(f"all {SLOT_COUNT} test slots in {SLOTS_DIR} are taken")


def _lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with contextlib.suppress(PermissionError):
        os.fchmod(fd, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def clean(slot: Slot) -> None:
    """Remove what a dead owner of ``slot`` left: processes, namespace, link, folders."""
    prefixes = [f"{slot.dir}/", slot.exec_root_prefix]
    terminate(netns_pids(slot.netns) | pids_mentioning(prefixes))
    quiet_ip("link", "del", slot.link)
    quiet_ip("netns", "del", slot.netns)
    stale = [slot.dir, *Path(tempfile.gettempdir()).glob(Path(slot.exec_root_prefix).name + "*")]
    for path in stale:
        remove_tree(path)
    slot.dir.mkdir(mode=0o755, exist_ok=True)


def quiet_ip(*args: str) -> None:
    """Run ``ip ARGS``, ignoring failure (e.g. removing what is gone already)."""
    subprocess.run(["ip", *args], capture_output=True, check=False)


def netns_pids(netns: str) -> set[int]:
    """The processes in network namespace ``netns`` (none if it does not exist)."""
    done = subprocess.run(
        ["ip", "netns", "pids", netns], capture_output=True, text=True, check=False
    )
    return {int(pid) for pid in done.stdout.split()} if done.returncode == 0 else set()


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rpartition(")")[2].split()[1])
    return pids


def pids_mentioning(needles: Iterable[str]) -> set[int]:
    """Processes (not this one or its ancestors) whose command line contains a needle."""
    encoded = [needle.encode() for needle in needles]
    mine = _ancestors()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(needle in cmdline for needle in encoded):
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, or a process gone, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def terminate(pids: Iterable[int], grace_s: float = 15.0) -> None:
    """SIGTERM ``pids``, wait for them to go, SIGKILL what is left after ``grace_s``."""
    left = set(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while left and time.monotonic() < deadline:
            left = {pid for pid in left if alive(pid)}
            if left:
                time.sleep(0.05)
        if not left:
            return


def remove_tree(path: Path) -> None:
    """Delete ``path``, unmounting first whatever a killed daemon left mounted in it."""
    path = Path(path)
    prefix = f"{path}/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(prefix):
            mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)
