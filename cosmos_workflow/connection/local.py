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
    ) -> int:
        """Run ``argv``, passing each line of stdout and stderr to ``on_line``.

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

    @staticmethod
    def _env(extra: Mapping[str, str] | None) -> dict[str, str] | None:
        if extra is None:
            return None
        return {**os.environ, **extra}
