"""A disposable GPU-less "remote host": a network namespace with its own
address and a real sshd inside it, a private dockerd (reached through its
socket), a locally made image in which the simulated model runs, and a fresh
key and known_hosts. Like many real hosts, its login shell prints on both
streams before every command (tests/sshd.py LOGIN_NOISE) and its ``openssl``
warns on stderr, unless ``noisy`` is off.

Used by the end-to-end tests and by ``scripts/test-host up|down``. Its
namespace, link and address come from a slot (tests/slots.py). ``up``
records in ``<state dir>/host.json`` what it makes before making it, so that
``down`` removes all of it, after a failed ``up`` too.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dockerd import PYTHON_IMAGE, Dockerd, import_python_image, start_dockerd
from slots import Slot, netns_pids, pids_mentioning, quiet_ip, remove_tree, terminate
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
STATE_FILE = "host.json"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _record(state_dir: Path, **changes: object) -> None:
    """Add ``changes`` to the host's state file."""
    path = state_dir / STATE_FILE
    state = json.loads(path.read_text()) if path.is_file() else {}
    state.update(changes)
    path.write_text(json.dumps(state, indent=2))


# A stand-in openssl that warns on stderr, as one with a missing config file does.
NOISY_OPENSSL = """#!/bin/sh
echo "WARNING: can't open config file: /usr/local/ssl/openssl.cnf" >&2
exec /usr/bin/openssl "$@"
"""


def up(
    state_dir: Path,
    slot: Slot,
    image: str = PYTHON_IMAGE,
    hold_slot: bool = False,
    noisy: bool = True,
) -> TestHost:
    """Create the namespace and link, start sshd and dockerd, import the image.

    Args:
        state_dir: A folder of the host's own (``down`` deletes it).
        slot: The slot whose namespace, link and address the host takes.
        image: The name of the image the simulated model runs in.
        hold_slot: The daemons keep the slot locked after this process ends
            (a host that outlives the process that started it).
        noisy: The login shell prints on both streams before every command,
            and openssl warns on stderr.

    Raises:
        RuntimeError: A host is up in ``state_dir`` already, or a part failed
            (everything made so far is removed again).
    """
    state_dir = state_dir.resolve()
    if (state_dir / STATE_FILE).is_file():
        raise RuntimeError(f"a test host is up in {state_dir} already")
    state_dir.mkdir(parents=True, exist_ok=True)
    netns, link, address = slot.netns, slot.link, slot.address
    _record(state_dir, slot=slot.number, netns=netns, link=link, paths=[])
    try:
        _make_network(slot)
        exec_root = Path(tempfile.mkdtemp(prefix=Path(slot.exec_root_prefix).name))
        _record(state_dir, paths=[str(exec_root)])
        dockerd = start_dockerd(
            state_dir / "docker",
            exec_root=exec_root,
            pass_fds=(slot.lock_fd,) if hold_slot else (),
        )
        bin_dir = state_dir / "bin"
        bin_dir.mkdir(exist_ok=True)
        if noisy:
            (bin_dir / "openssl").write_text(NOISY_OPENSSL)
            (bin_dir / "openssl").chmod(0o755)
        sshd = start_sshd(
            state_dir / "sshd",
            host=address,
            netns=netns,
            path=f"{bin_dir}:{HOST_PATH}",
            noisy=noisy,
        )
        import_python_image(dockerd, image)
    except BaseException:
        down(state_dir)
        raise
    host = TestHost(netns, link, address, state_dir, sshd, dockerd, image)
    host.work_dir.mkdir(parents=True, exist_ok=True)
    _record(state_dir, overrides=host.overrides())
    return host


def _make_network(slot: Slot) -> None:
    """The namespace and the veth link between it and this machine."""
    netns, link = slot.netns, slot.link
    _ip("netns", "add", netns)
    _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", netns)
    _ip("addr", "add", f"{slot.gateway}/30", "dev", link)
    _ip("link", "set", link, "up")
    _ip("-n", netns, "addr", "add", f"{slot.address}/30", "dev", "eth0")
    _ip("-n", netns, "link", "set", "eth0", "up")
    _ip("-n", netns, "link", "set", "lo", "up")


def down(state_dir: Path) -> None:
    """Remove everything ``up`` made in ``state_dir`` (idempotent).

    The link and namespace go first, while the daemons still hold the slot;
    then the daemons (every process in the namespace or started on the
    host's folders) and the folders.
    """
    state_dir = state_dir.resolve()
    state_file = state_dir / STATE_FILE
    if not state_file.is_file():
        return
    state = json.loads(state_file.read_text())
    folders = [str(state_dir), *state["paths"]]
    pids = netns_pids(state["netns"]) | pids_mentioning(f"{folder}/" for folder in folders)
    quiet_ip("link", "del", state["link"])
    quiet_ip("netns", "del", state["netns"])
    terminate(pids)
    for folder in folders:
        remove_tree(Path(folder))
