"""A real OpenSSH server on loopback, with keys made for the test session."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> Path:
    """A new key pair at ``path`` and ``path``.pub (replacing an old one)."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


@dataclass
class Sshd:
    """A running sshd and what a client needs to reach it."""

    root: Path
    port: int
    host: str
    user: str
    client_key: Path
    known_hosts: Path
    host_key: Path
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_listening(
    process: subprocess.Popen, host: str, port: int, log: Path, timeout_s: float = 10
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("sshd did not start: " + log.read_text()) from None
            time.sleep(0.05)
    raise RuntimeError("sshd did not start: " + log.read_text())


# What a real host's shell start-up files print around every command it runs
# over SSH (a ~/.bashrc running pyenv, conda or `module`, a motd, an OpenSSL
# warning), on both streams, including a stale digest line, JSON, a line that
# looks like a path we asked about, and no newline at the end.
LOGIN_NOISE = """\
echo "Welcome to gpu-host-1 (GNU/Linux 6.1.0-18-amd64 x86_64)"
echo "pyenv: cannot rehash: /root/.pyenv/shims isn't writable"
echo "sha256=0000000000000000000000000000000000000000000000000000000000000000"
echo '["cosmos-noise"]'
echo "/tmp"
printf 'conda: base activated'
echo "WARNING: can't open config file: /usr/lib/ssl/openssl.cnf" >&2
echo "sha256=1111111111111111111111111111111111111111111111111111111111111111" >&2
echo "Lmod has detected the following error: module 'cuda' not found" >&2
printf 'module: no newline' >&2
unset BASH_ENV
"""


def start_sshd(
    root: Path,
    host: str = "127.0.0.1",
    netns: str | None = None,
    path: str | None = None,
    noisy: bool = True,
) -> Sshd:
    """Start sshd in the foreground on a free port; fail loudly if it is missing.

    ``path`` is the PATH of the sessions (a host's own programs, e.g. a fake nvidia-smi).
    With ``noisy``, the login shell (bash) prints LOGIN_NOISE before every
    command, on stdout and stderr, as a host's start-up files may: bash reads
    the file named by BASH_ENV before it runs a command given with -c.
    """
    if not SSHD.is_file():
        raise RuntimeError(
            "openssh-server is not installed: run scripts/install-system-deps (make test does it)"
        )
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    host_key = keygen(root / "host_ed25519")
    client_key = keygen(root / "client_ed25519")
    shutil.copy(root / "client_ed25519.pub", root / "authorized_keys")
    port = free_port() if netns is None else 22
    environment = [f"PATH={path}"] if path else []
    if noisy:
        (root / "login-noise.sh").write_text(LOGIN_NOISE)
        environment.append(f"BASH_ENV={root / 'login-noise.sh'}")
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {host}\nHostKey {host_key}\nPidFile none\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
        "ClientAliveInterval 5\nMaxSessions 64\nMaxStartups 64\n"
        # SHLVL=1: bash, as the login shell, then skips the machine's own
        # ~/.bashrc (the noise is ours, the same everywhere). sshd reads one SetEnv line.
        + " ".join(["SetEnv", *environment, "SHLVL=1"])
        + "\n"
    )
    public = (root / "host_ed25519.pub").read_text().split()
    name = host if port == 22 else f"[{host}]:{port}"
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"{name} {public[0]} {public[1]}\n")
    argv = [str(SSHD), "-D", "-e", "-f", str(config)]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=(root / "sshd.log").open("w")
    )
    try:
        _wait_listening(process, host, port, root / "sshd.log")
    except BaseException:
        process.kill()
        process.wait()
        raise
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout
    return Sshd(root, port, host, user.strip(), client_key, known_hosts, host_key, process)
