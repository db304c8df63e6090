"""The login node of a Slurm cluster: commands and files there, over SSH or on this machine.

A slurm target reaches its cluster through a login node: over SSH with our
SSHManager (``login: {host: ...}``), or directly when the runner runs on the
login node itself (``login: local``). Both give the executor the same few
operations: run a command, write a small file atomically, fetch a file, and
put an input into the cluster's content-addressed cache (uploaded once per
cluster, verified by sha256).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from cosmos_workflow.config.target_kinds import SlurmLogin
from cosmos_workflow.connection.local import CommandResult, LocalCommandExecutor
from cosmos_workflow.connection.remote import RemoteCommandExecutor
from cosmos_workflow.connection.ssh import SSHEndpoint, SSHManager, parse_jump
from cosmos_workflow.errors import ExecutionFailure, NetworkFailure
from cosmos_workflow.manifest.specs import InputFile
from cosmos_workflow.transfer.files import FileTransferService
from cosmos_workflow.transfer.input_cache import LocalInputCache
from cosmos_workflow.utils.atomic import write_bytes_atomic

# Writes stdin to "$1" through a temporary name in the same folder.
_PUT = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1.tmp" && mv -f -- "$1.tmp" "$1"'
# Seconds a command on the login node may take (sbatch, squeue, ...).
COMMAND_TIMEOUT_S = 60.0
# Seconds between checks that the login node answers, while jobs are followed.
CHECK_EVERY_S = 2.0


class LoginNode(ABC):
    """Where Slurm's commands run and the shared file system is seen.

    Attributes:
        label: How messages name it (user@host:port, or "this machine").
        machine: The key of the cluster's GPU slots (the same for every runner that reaches it).
    """

    label: str
    machine: str

    @abstractmethod
    def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT_S) -> CommandResult:
        """Run a command there.

        Raises:
            NetworkFailure: the login node cannot be reached.
        """

    @abstractmethod
    def put(self, content: bytes, path: str) -> None:
        """Write a small file there, atomically (its folder is made if need be)."""

    @abstractmethod
    def fetch(self, path: str, local: Path) -> None:
        """Copy a file from there to ``local`` (verified over SSH)."""

    @abstractmethod
    def cache_input(self, item: InputFile, cache_dir: str) -> str:
        """Put ``item`` into the cluster's content-addressed cache once; its path there."""

    def connect(self) -> None:
        """Open the connection now (nothing to open by default)."""
        return None

    def check_alive(self) -> None:
        """Check that it answers now (raises NetworkFailure if not)."""
        self.run(["true"])

    def close(self) -> None:
        """Close the connection (none by default)."""
        return None

    @contextlib.contextmanager
    def watched(self) -> Iterator[None]:
        """While jobs are followed, notice at once when the login node goes silent (no-op)."""
        yield


class SshLogin(LoginNode):
    """A login node reached over SSH."""

    def __init__(self, login: SlurmLogin) -> None:
        endpoint = SSHEndpoint(
            host=login.host,
            port=login.port,
            user=login.user,
            key_file=Path(login.key_file).expanduser() if login.key_file else None,
            known_hosts=Path(login.known_hosts).expanduser(),
            use_agent=login.use_agent,
            connect_timeout=login.connect_timeout,
        )
        jump = parse_jump(login.jump, endpoint) if login.jump else None
        self._timeout = login.connect_timeout
        self._ssh = SSHManager(endpoint, jump)
        self._remote = RemoteCommandExecutor(self._ssh)
        self._files = FileTransferService(self._ssh, self._remote)
        self.label = endpoint.label
        via = f"{login.jump}/" if login.jump else ""
        self.machine = f"slurm:{via}{login.host.lower()}:{login.port}"
        self._watch_lock = threading.Lock()
        self._watched = 0
        self._watch_stop = threading.Event()

    def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT_S) -> CommandResult:
        """Run a command on the login node."""
        return self._remote.run(argv, timeout=timeout)

    def put(self, content: bytes, path: str) -> None:
        """Write a small file on the login node, atomically."""
        self._remote.run(["sh", "-c", _PUT, "put", path], stdin=content, check=True)

    def fetch(self, path: str, local: Path) -> None:
        """Download a file, verified by sha256."""
        self._files.download(path, local)

    def cache_input(self, item: InputFile, cache_dir: str) -> str:
        """Upload an input the cluster's cache lacks (verified)."""
        return self._files.ensure_cached(item, cache_dir)

    def connect(self) -> None:
        """Connect now, so auth and host-key problems stop everything early."""
        self._ssh.connect()

    def check_alive(self) -> None:
        """Connect if need be; check it answers within the connect timeout."""
        self._ssh.connect()
        self._ssh.check_alive(self._timeout)

    def close(self) -> None:
        """Close the connection."""
        self._ssh.close()

    @contextlib.contextmanager
    def watched(self) -> Iterator[None]:
        """While jobs are followed, check every few seconds that the login node answers.

        A login node cut off the network sends nothing, not even a reset: a
        failed check closes the connection, so the commands waiting on it end
        now (NetworkFailure) instead of when TCP gives up. One check for all
        the jobs followed.
        """
        with self._watch_lock:
            self._watched += 1
            if self._watched == 1:
                self._watch_stop = threading.Event()
                threading.Thread(
                    target=self._watch, args=(self._watch_stop,), name="watch-login", daemon=True
                ).start()
        try:
            yield
        finally:
            with self._watch_lock:
                self._watched -= 1
                if self._watched == 0:
                    self._watch_stop.set()

    def _watch(self, stop: threading.Event) -> None:
        while not stop.wait(CHECK_EVERY_S):
            with contextlib.suppress(NetworkFailure):
                self.check_alive()


class LocalLogin(LoginNode):
    """This machine is the login node: commands run here, the shared file system is mounted."""

    def __init__(self, commands: LocalCommandExecutor) -> None:
        self._commands = commands
        self.label = "this machine"
        self.machine = f"slurm:local:{socket.gethostname()}"

    def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT_S) -> CommandResult:
        """Run a command here."""
        return self._commands.run(argv, timeout=timeout)

    def put(self, content: bytes, path: str) -> None:
        """Write a small file, atomically."""
        write_bytes_atomic(Path(path), content)

    def fetch(self, path: str, local: Path) -> None:
        """Copy a file."""
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(path, local)
        except OSError as exc:
            raise ExecutionFailure(f"cannot copy {path}: {exc}") from exc

    def cache_input(self, item: InputFile, cache_dir: str) -> str:
        """Copy an input into the cache on the shared file system (verified)."""
        return str(LocalInputCache(Path(cache_dir)).materialize(item))


def login_node(login: SlurmLogin | str, commands: LocalCommandExecutor) -> LoginNode:
    """The login node of a target's ``login`` setting."""
    if isinstance(login, SlurmLogin):
        return SshLogin(login)
    return LocalLogin(commands)
