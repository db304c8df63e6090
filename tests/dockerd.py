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


def start_dockerd(root: Path, netns: str | None = None) -> Dockerd:
    """Start dockerd on a private socket (no bridge, no iptables); import a busybox image.

    With ``netns``, the daemon lives in that network namespace (nsenter, not
    ``ip netns exec``, which remounts /sys and breaks dockerd's cgroups).
    """
    if not Path(DOCKERD).exists() or not BUSYBOX.exists():
        raise RuntimeError(
            "docker.io and busybox-static are needed: run scripts/install-system-deps "
            "(make test does it)"
        )
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    exec_root = Path(tempfile.mkdtemp(prefix="cwdx-"))  # short: unix socket paths are limited
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
    )
    env = {"DOCKER_HOST": f"unix://{socket}", "PATH": "/usr/local/bin:/usr/bin:/bin"}
    deadline = time.monotonic() + 30
    while _docker(env, "version").returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("dockerd did not start: " + (root / "dockerd.log").read_text())
        time.sleep(0.1)
    rootfs = root / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for tool in ("sh", "echo", "sleep", "cat", "printf", "ls", "env", "true", "false"):
        (rootfs / "bin" / tool).symlink_to("busybox")
    tarball = root / "busybox.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    imported = _docker(env, "import", str(tarball), IMAGE)
    if imported.returncode != 0:
        raise RuntimeError(imported.stderr)
    return Dockerd(root, exec_root, env, process)


PYTHON_IMAGE = "cosmos-workflow-test/python:1"
DEBIAN_PYTHON = Path("/usr/bin/python3.11")
_LIBS = [
    "/lib/x86_64-linux-gnu/libm.so.6",
    "/lib/x86_64-linux-gnu/libz.so.1",
    "/lib/x86_64-linux-gnu/libexpat.so.1",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/ld-linux-x86-64.so.2",
]


def import_python_image(daemon: Dockerd) -> str:
    """An image with busybox and Debian's Python (stdlib only): the simulated model runs in it."""
    rootfs = daemon.root / "pyroot"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for tool in ("sh", "echo", "sleep", "cat", "ls", "env"):
        (rootfs / "bin" / tool).symlink_to("busybox")
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
    tarball = daemon.root / "python.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    imported = _docker(daemon.env, "import", str(tarball), PYTHON_IMAGE)
    if imported.returncode != 0:
        raise RuntimeError(imported.stderr)
    return PYTHON_IMAGE
