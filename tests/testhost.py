"""A disposable GPU-less "remote host": a network namespace with its own
address, a real sshd and a private dockerd inside it, a locally made image in
which the simulated model runs, and a fresh key and known_hosts.

Used by the end-to-end tests and by ``scripts/test-host up|down``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dockerd import Dockerd, import_python_image, start_dockerd
from sshd import Sshd, start_sshd


@dataclass
class TestHost:
    """A running test host and what a target needs to reach it."""

    netns: str
    link: str
    address: str
    state_dir: Path
    sshd: Sshd
    dockerd: Dockerd
    image: str

    @property
    def work_dir(self) -> Path:
        """The remote work dir (on this machine's file system)."""
        return self.state_dir / "work"

    @property
    def bin_dir(self) -> Path:
        """First on the PATH of SSH sessions: programs only this host has (e.g. nvidia-smi)."""
        return self.state_dir / "bin"

    def target_config(self, work_dir: Path, name: str = "test-host") -> dict:
        """A conf/target/ file's content that selects this host (like overrides())."""
        return {
            "name": name,
            "kind": "ssh",
            "host": self.address,
            "port": self.sshd.port,
            "user": self.sshd.user,
            "key_file": str(self.sshd.client_key),
            "known_hosts": str(self.sshd.known_hosts),
            "work_dir": str(work_dir),
            "image": self.image,
            "gpu_flags": False,
            "network": "none",
            "shm_size": "64m",
            "runtime_env": {"DOCKER_HOST": self.dockerd.env["DOCKER_HOST"]},
        }

    def overrides(self) -> list[str]:
        """The cosmos-batch overrides that select this host."""
        values = {
            "target": "ssh",
            "target.name": "test-host",
            "target.host": self.address,
            "target.port": str(self.sshd.port),
            "target.user": self.sshd.user,
            "target.key_file": str(self.sshd.client_key),
            "target.known_hosts": str(self.sshd.known_hosts),
            "target.work_dir": str(self.work_dir),
            "target.image": self.image,
            "target.gpu_flags": "false",
            "target.network": "none",
            "target.shm_size": "64m",
            "+target.runtime_env.DOCKER_HOST": self.dockerd.env["DOCKER_HOST"],
        }
        return [f"{key}={value}" for key, value in values.items()]

    def set_link(self, up: bool) -> None:
        """Cut the host off the network, or bring it back (fault injection)."""
        _ip("link", "set", self.link, "up" if up else "down")


# The PATH of SSH sessions on the host, after its own bin folder.
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def up(state_dir: Path, subnet: int | None = None) -> TestHost:
    """Create the namespace, start sshd and dockerd in it, import the image."""
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    subnet = subnet if subnet is not None else 100 + os.getpid() % 100
    netns, link = f"cwth{subnet}", f"vcwth{subnet}"
    host_side, address = f"10.200.{subnet}.1", f"10.200.{subnet}.2"
    _ip("netns", "add", netns)
    try:
        _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _ip("addr", "add", f"{host_side}/30", "dev", link)
        _ip("link", "set", link, "up")
        _ip("-n", netns, "addr", "add", f"{address}/30", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        dockerd = start_dockerd(state_dir / "docker", netns=netns)
        bin_dir = state_dir / "bin"
        bin_dir.mkdir(exist_ok=True)
        sshd = start_sshd(
            state_dir / "sshd", host=address, netns=netns, path=f"{bin_dir}:{HOST_PATH}"
        )
        image = import_python_image(dockerd)
    except BaseException:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        raise
    host = TestHost(netns, link, address, state_dir, sshd, dockerd, image)
    host.work_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "netns": netns,
        "pids": [sshd.process.pid, dockerd.process.pid],
        "exec_root": str(dockerd.exec_root),
        "overrides": host.overrides(),
    }
    (state_dir / "host.json").write_text(json.dumps(state, indent=2))
    return host


def _terminate(pid: int, grace_s: float = 15.0) -> None:
    """SIGTERM, wait for the process to go, SIGKILL after ``grace_s``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def down(state_dir: Path) -> None:
    """Stop what ``up`` started and delete the namespace (idempotent)."""
    state_file = state_dir / "host.json"
    if not state_file.is_file():
        return
    state = json.loads(state_file.read_text())
    for pid in state["pids"]:
        _terminate(pid)
    subprocess.run(["ip", "netns", "del", state["netns"]], capture_output=True)
    subprocess.run(["rm", "-rf", state["exec_root"]], capture_output=True)
    state_file.unlink()


def stop(host: TestHost) -> None:
    """Tear down a host started in this process."""
    host.dockerd.stop()
    host.sshd.stop()
    down(host.state_dir)
