"""Local command execution: the one place that starts local processes.

It has the shape of the remote executor (argument lists in, exit code and
streamed lines out), so the layers above do not care where a command runs.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cosmos_workflow.errors import ExecutionFailure

logger = logging.getLogger(__name__)

# Exit codes of a child stopped by SIGINT: killed by the signal, or exited 128+2.
_INTERRUPTED = frozenset({-signal.SIGINT, 128 + signal.SIGINT})


@dataclass(frozen=True)
class CommandResult:
    """Exit code and captured output of a finished command."""

    exit_code: int
    stdout: str
    stderr: str


class DetachedProcess:
    """A program started in a session of its own, that outlives its starter if need be."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self.pid = process.pid

    def running(self) -> bool:
        """True until the program has exited (its exit status is collected then)."""
        return self._process.poll() is None


class LocalCommandExecutor:
    """Runs commands on this machine, never through a shell."""

    def run(
        self,
        argv: list[str],
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run ``argv`` and capture its output.

        Raises:
            ExecutionFailure: the program does not exist or timed out.
        """
        try:
            done = subprocess.run(
                argv,
                cwd=cwd,
                env=self._env(env),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ExecutionFailure(f"program not found: {argv[0]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ExecutionFailure(f"timed out after {timeout}s: {argv[0]}") from exc
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def stream(
        self,
        argv: list[str],
        on_line: Callable[[str], None],
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> int:
        """Run ``argv``, passing each line of stdout and stderr to ``on_line``.

        Args:
            argv: The command as an argument list.
            on_line: Receives each output line (without its newline).
            cwd: Working directory.
            env: Variables added to this process's environment.
            on_start: Receives the process id once the program started.

        Returns:
            The exit code.

        Raises:
            ExecutionFailure: the program does not exist.
            KeyboardInterrupt: the program was stopped by Ctrl-C (SIGINT).
        """
        try:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=self._env(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
            )
        except FileNotFoundError as exc:
            raise ExecutionFailure(f"program not found: {argv[0]}") from exc
        try:
            if on_start is not None:
                on_start(process.pid)
            assert process.stdout is not None
            for line in process.stdout:
                on_line(line.rstrip("\n"))
            code = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
        if code in _INTERRUPTED:
            # Ctrl-C reaches the whole process group: the child died of it, so
            # the user interrupted us too. Raise here rather than rely on our
            # own KeyboardInterrupt, which Python drops if it lands in a finalizer.
            raise KeyboardInterrupt
        return code

    def spawn_detached(
        self,
        argv: list[str],
        cwd: Path,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
    ) -> DetachedProcess:
        """Start ``argv`` in a session of its own, without a terminal; do not wait.

        Ctrl-C at the terminal does not reach it, nor does the end of the
        process that started it: it is stopped through :meth:`terminate` and
        :meth:`kill`, by whoever knows its id.

        Args:
            argv: The command as an argument list.
            cwd: Its working directory.
            env: Variables added to this process's environment.
            log: A file that receives its stdout and stderr (created, or
                appended to); None: they are discarded.

        Raises:
            ExecutionFailure: the program does not exist, or the log cannot be opened.
        """
        try:
            output = Path(log or os.devnull).open("ab")
        except OSError as exc:
            raise ExecutionFailure(f"cannot open the log {log}: {exc}") from exc
        with output:
            try:
                process = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=self._env(env),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except FileNotFoundError as exc:
                raise ExecutionFailure(f"program not found: {argv[0]}") from exc
        return DetachedProcess(process)

    def alive(self, pid: int, cwd: Path) -> bool:
        """True if process ``pid`` runs (not a zombie) in the working folder ``cwd``."""
        return self.process_exists(pid) and self._same_cwd(pid, cwd)

    @staticmethod
    def process_exists(pid: int) -> bool:
        """True if some process (not a zombie) has id ``pid`` on this machine."""
        if Path("/proc/self").exists():
            return LocalCommandExecutor.process_state(pid) not in (None, "Z", "X")
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    @staticmethod
    def process_state(pid: int) -> str | None:
        """The state letter of process ``pid`` (R, S, D, T, Z...); None if none or unknown."""
        fields = _proc_stat(pid)
        return fields[0] if fields else None

    @staticmethod
    def process_started_at(pid: int) -> float | None:
        """When process ``pid`` started (seconds since the epoch); None if unknown."""
        fields = _proc_stat(pid)
        try:
            return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK") if fields else None
        except (OSError, IndexError, ValueError):
            return None

    def terminate(self, pid: int, cwd: Path) -> bool:
        """Ask a program started by :meth:`spawn_detached` (by any process) to stop (SIGTERM).

        Args:
            pid: Its process id.
            cwd: Its working directory; where the system tells (Linux /proc),
                a process elsewhere is not ours (its id was reused) and is left alone.

        Returns:
            False if no such process of ours runs.
        """
        return self._signal(pid, cwd, signal.SIGTERM)

    def kill(self, pid: int, cwd: Path) -> bool:
        """Stop a detached program and everything in its session now (SIGKILL)."""
        return self._signal(pid, cwd, signal.SIGKILL)

    @staticmethod
    def _same_cwd(pid: int, cwd: Path) -> bool:
        proc_cwd = Path("/proc") / str(pid) / "cwd"
        if not Path("/proc/self").exists():
            return True
        try:
            return proc_cwd.resolve(strict=True) == cwd.resolve()
        except OSError:
            return False

    @classmethod
    def _signal(cls, pid: int, cwd: Path, sig: signal.Signals) -> bool:
        """Signal the process group that ``pid`` leads (the program and its children)."""
        if not cls._same_cwd(pid, cwd):
            return False
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return False
        logger.info("Sent %s to process group %d", sig.name, pid)
        return True

    @staticmethod
    def _env(extra: Mapping[str, str] | None) -> dict[str, str] | None:
        if extra is None:
            return None
        return {**os.environ, **extra}


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat from the state on (field 3); None if unreadable."""
    try:
        data = (Path("/proc") / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The name (field 2) is in parentheses and may hold anything, even ")".
    fields = data.rpartition(b")")[2].decode("ascii", "replace").split()
    return fields or None


def _boot_time() -> float:
    """When this machine booted (seconds since the epoch), from /proc/stat.

    Raises:
        OSError, ValueError: /proc/stat cannot be read or has no btime.
    """
    for line in Path("/proc/stat").read_text(encoding="ascii").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError("/proc/stat has no btime")
