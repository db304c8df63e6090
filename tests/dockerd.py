"""A private Docker daemon for the test session, with a tiny local image."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
BUSYBOX = Path("/bin/busybox")
IMAGE = "cosmos-workflow-test/busybox:1"


@dataclass
class Dockerd:
    """A running daemon and the environment its clients need."""

    root: Path
    exec_root: Path
    env: dict[str, str]
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.exec_root, ignore_errors=True)


def _docker(env: dict[str, str], *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, **kwargs)


def start_dockerd(
    root: Path, exec_root: Path | None = None, pass_fds: tuple[int, ...] = ()
) -> Dockerd:
    """Start dockerd on a private socket (no bridge, no iptables); import a busybox image.

    The daemon keeps its data, socket and log under ``root`` and its runtime
    state in ``exec_root`` (a new temporary folder if None; short, as unix
    socket paths are limited). It runs in this machine's network namespace:
    its clients (a test host's SSH sessions too) reach it through its socket.
    ``pass_fds`` stay open in the daemon (e.g. a lock it holds while it runs).
    If anything fails, the daemon is stopped again.
    """
    if not Path(DOCKERD).exists() or not BUSYBOX.exists():
        raise RuntimeError(
            "docker.io and busybox-static are needed: run scripts/install-system-deps "
            "(make test does it)"
        )
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    if exec_root is None:
        exec_root = Path(tempfile.mkdtemp(prefix="cwdx-"))
    exec_root.mkdir(parents=True, exist_ok=True)
    socket = root / "docker.sock"
    process = subprocess.Popen(
        [
            DOCKERD,
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(exec_root),
            "--host",
            f"unix://{socket}",
            "--pidfile",
            str(root / "docker.pid"),
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "dockerd.log").open("w"),
        pass_fds=pass_fds,
    )
    env = {"DOCKER_HOST": f"unix://{socket}", "PATH": "/usr/local/bin:/usr/bin:/bin"}
    daemon = Dockerd(root, exec_root, env, process)
    try:
        _wait_ready(daemon)
        _import(daemon, _busybox_rootfs(root / "rootfs", BUSYBOX_TOOLS), IMAGE)
    except BaseException:
        daemon.stop()
        raise
    return daemon


def _wait_ready(daemon: Dockerd, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while _docker(daemon.env, "version").returncode != 0:
        if daemon.process.poll() is not None or time.monotonic() > deadline:
            log = (daemon.root / "dockerd.log").read_text()
            raise RuntimeError("dockerd did not start: " + log)
        time.sleep(0.1)


BUSYBOX_TOOLS = ("sh", "echo", "sleep", "cat", "printf", "ls", "env", "true", "false")


def _busybox_rootfs(rootfs: Path, tools: tuple[str, ...]) -> Path:
    """A fresh root file system with busybox as ``tools``."""
    shutil.rmtree(rootfs, ignore_errors=True)
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for tool in tools:
        (rootfs / "bin" / tool).symlink_to("busybox")
    return rootfs


def _import(daemon: Dockerd, rootfs: Path, image: str) -> None:
    """Import ``rootfs`` as ``image``."""
    tarball = rootfs.with_suffix(".tar")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    imported = _docker(daemon.env, "import", str(tarball), image)
    if imported.returncode != 0:
        raise RuntimeError(f"docker import {image}: {imported.stderr}")


PYTHON_IMAGE = "cosmos-workflow-test/python:1"
DEBIAN_PYTHON = Path("/usr/bin/python3.11")
_LIBS = [
    "/lib/x86_64-linux-gnu/libm.so.6",
    "/lib/x86_64-linux-gnu/libz.so.1",
    "/lib/x86_64-linux-gnu/libexpat.so.1",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/ld-linux-x86-64.so.2",
]


def import_python_image(daemon: Dockerd, image: str = PYTHON_IMAGE) -> str:
    """An image with busybox and Debian's Python (stdlib only): the simulated model runs in it."""
    rootfs = _busybox_rootfs(daemon.root / "pyroot", ("sh", "echo", "sleep", "cat", "ls", "env"))
    (rootfs / "usr" / "bin").mkdir(parents=True)
    shutil.copy(DEBIAN_PYTHON, rootfs / "usr" / "bin" / "python3")
    for lib in _LIBS:
        target = rootfs / lib.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(lib).resolve(), target)
    shutil.copytree(
        "/usr/lib/python3.11",
        rootfs / "usr" / "lib" / "python3.11",
        ignore=shutil.ignore_patterns("test", "site-packages", "dist-packages", "idlelib"),
        symlinks=True,
    )
    _import(daemon, rootfs, image)
    return image
