"""RemoteCommandExecutor: run argument lists on an SSH host.

Callers pass argument lists; this module quotes them (POSIX shell quoting)
and never accepts a shell string, so user text cannot become shell syntax.
Every command runs framed (connection/framing.py): what the host's login
shell prints around it never reaches a caller.
"""

from __future__ import annotations

import contextlib
import logging
import select
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cosmos_workflow.connection.framing import Frame, FramedLines, FrameMissing, NoiseNote
from cosmos_workflow.connection.local import CommandResult
from cosmos_workflow.connection.ssh import SSHManager, transport_errors
from cosmos_workflow.errors import ExecutionFailure, NetworkFailure

if TYPE_CHECKING:
    import paramiko

logger = logging.getLogger(__name__)

_READ = 1 << 16
# Seconds a bulk-data command may take to start (the host's shell start-up included).
STARTED_WITHIN_S = 60.0


class RemoteCommandError(ExecutionFailure):
    """A remote command failed or timed out."""


@dataclass(frozen=True)
class RemoteCommand:
    """An argument list and an optional environment for one remote command."""

    argv: list[str]
    env: dict[str, str] | None = None

    def words(self) -> list[str]:
        """The command as one argument list (``env K=V ...`` first when there is an environment)."""
        prefix = []
        if self.env:
            prefix = ["env", *(f"{key}={value}" for key, value in sorted(self.env.items()))]
        return [*prefix, *self.argv]

    def render(self) -> str:
        """The command line the remote shell receives; every word quoted."""
        return shlex.join(self.words())

    def shown(self) -> str:
        """The command line for logs and messages: the values of variables it sets hidden."""
        return shown(self.words(), len(self.env or {}))


# Flags after which a word NAME=VALUE sets a variable (docker and podman run).
_ENV_FLAGS = frozenset({"-e", "--env"})


def shown(words: list[str], prefix: int = 0) -> str:
    """``words`` as a command line for logs and messages, with values that may be secret hidden.

    Args:
        words: The command.
        prefix: How many words after the first are ``env``'s NAME=VALUE settings.
    """
    out = []
    for index, word in enumerate(words):
        name, equals, _ = word.partition("=")
        setting = 0 < index <= prefix or (index > 0 and words[index - 1] in _ENV_FLAGS)
        out.append(f"{name}=..." if setting and equals else word)
    return shlex.join(out)


class RemoteCommandExecutor:
    """Runs commands over one SSHManager's connection.

    Args:
        ssh: The connection to use.
    """

    def __init__(self, ssh: SSHManager) -> None:
        self._ssh = ssh
        self._noise = NoiseNote()

    def run(
        self,
        argv: list[str],
        timeout: float | None = 300.0,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
        check: bool = False,
    ) -> CommandResult:
        """Run ``argv`` and collect its exit code, stdout and stderr.

        Args:
            argv: The command as an argument list.
            timeout: Seconds before the command is abandoned (None: no limit).
            env: Variables set for the command.
            stdin: Bytes sent to the command's standard input.
            check: Raise RemoteCommandError on a non-zero exit code.

        Raises:
            NetworkFailure: the connection failed or dropped.
            RemoteCommandError: timeout, a non-zero exit with ``check``, or the
                host's shell did not start the command.
        """
        frame = Frame()
        channel, command = self._start(
            frame, RemoteCommand(argv, env), closed=True, reads_input=stdin is not None
        )
        out, err = bytearray(), bytearray()
        try:
            if stdin is not None:
                channel.sendall(stdin)
                channel.shutdown_write()
            code = self._pump(channel, out.extend, err.extend, timeout, command)
        except transport_errors() as exc:
            raise NetworkFailure(f"{self._ssh.endpoint.label}: {exc}") from exc
        finally:
            _close(channel)
        result = self._unframe(frame, code, bytes(out), bytes(err), argv[0])
        if check and code != 0:
            raise RemoteCommandError(
                f"remote command failed with exit code {code} on {self._ssh.endpoint.label}: "
                f"{argv[0]}: {result.stderr.strip()[-500:]}"
            )
        return result

    def stream(
        self,
        argv: list[str],
        on_line: Callable[[str], None],
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> int:
        """Run ``argv``, passing each line of its stdout and stderr to ``on_line``.

        Returns:
            The exit code.

        Raises:
            NetworkFailure: the connection failed or dropped.
            RemoteCommandError: timeout.
        """
        frame = Frame()
        channel, command = self._start(
            frame, RemoteCommand(argv, env), closed=False, reads_input=False
        )
        out, err = FramedLines(frame, on_line), FramedLines(frame, on_line)
        try:
            code = self._pump(channel, out.feed, err.feed, timeout, command)
        except transport_errors() as exc:
            raise NetworkFailure(f"{self._ssh.endpoint.label}: {exc}") from exc
        finally:
            _close(channel)
        out.close()
        err.close()
        self._noise.note(logger.debug, self._ssh.endpoint.label, out.noise, err.noise)
        return code

    def open_stream(self, argv: list[str], window: int, max_packet: int) -> paramiko.Channel:
        """Start ``argv`` for bulk data; the caller drives its stdin/stdout and closes it.

        Returns once the command has started: what the host's shell printed
        before it has been read from both streams, so they carry only the
        command's own output.

        Args:
            argv: The command as an argument list.
            window: Bytes the host may send ahead of what has been read.
            max_packet: The largest data packet the host may send.

        Raises:
            NetworkFailure: the channel cannot be opened or the command started.
        """
        frame = Frame()
        command = RemoteCommand(frame.wrap(argv, closed=False)).render()
        logger.debug("%s$ %s", self._ssh.endpoint.label, shown(argv))
        channel = self._ssh.exec_stream(command, window, max_packet)
        try:
            channel.settimeout(STARTED_WITHIN_S)
            noise = frame.skip(channel.recv), frame.skip(channel.recv_stderr)
            channel.settimeout(None)
        except (FrameMissing, *transport_errors()) as exc:
            _close(channel)
            raise NetworkFailure(
                f"{self._ssh.endpoint.label}: the command did not start: {exc}"
            ) from exc
        self._noise.note(logger.debug, self._ssh.endpoint.label, *noise)
        return channel

    def _unframe(
        self, frame: Frame, code: int, out: bytes, err: bytes, program: str
    ) -> CommandResult:
        """The command's own stdout and stderr; what the host's shell printed is dropped."""
        stdout, stderr = frame.split(out), frame.split(err)
        self._noise.note(logger.debug, self._ssh.endpoint.label, stdout.noise, stderr.noise)
        if stdout.answer is None:
            message = (err + out).decode("utf-8", "replace").strip()[-500:]
            raise RemoteCommandError(
                f"the shell on {self._ssh.endpoint.label} did not start {program} "
                f"(exit code {code}): {message}"
            )
        return CommandResult(
            code,
            stdout.answer.decode("utf-8", "replace"),
            (stderr.answer or b"").decode("utf-8", "replace"),
        )

    def _start(
        self, frame: Frame, command: RemoteCommand, closed: bool, reads_input: bool
    ) -> tuple[paramiko.Channel, str]:
        """Start ``command`` inside ``frame``; return its channel and its text (for messages).

        Without ``reads_input`` the command reads /dev/null and the caller
        sends no EOF (framing.py says why).
        """
        shown = command.shown()
        channel = self._ssh.open_session(timeout=30)
        logger.debug("%s$ %s", self._ssh.endpoint.label, shown)
        wrapped = frame.wrap(command.words(), closed, reads_input)
        try:
            channel.exec_command(RemoteCommand(wrapped).render())
        except transport_errors() as exc:
            _close(channel)
            raise NetworkFailure(
                f"{self._ssh.endpoint.label}: cannot start command: {exc}"
            ) from exc
        return channel, shown

    def _pump(
        self,
        channel: paramiko.Channel,
        on_out: Callable[[bytes], None],
        on_err: Callable[[bytes], None],
        timeout: float | None,
        command: str,
    ) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            progressed = False
            while channel.recv_ready():
                on_out(channel.recv(_READ))
                progressed = True
            while channel.recv_stderr_ready():
                on_err(channel.recv_stderr(_READ))
                progressed = True
            # sshd may send the exit status before the last output: the output
            # is complete once the channel's EOF (or close) has arrived too.
            finished = channel.exit_status_ready() and (channel.eof_received or channel.closed)
            if finished and not channel.recv_ready():
                if not channel.recv_stderr_ready():
                    code = channel.recv_exit_status()
                    if code == -1 and _dropped(channel):
                        raise NetworkFailure(f"{self._ssh.endpoint.label}: the connection dropped")
                    return code
            if deadline is not None and time.monotonic() > deadline:
                raise RemoteCommandError(
                    f"remote command timed out after {timeout}s on {self._ssh.endpoint.label}: "
                    f"{command[:200]}"
                )
            if not progressed:
                select.select([channel], [], [], 0.2)


def _dropped(channel: paramiko.Channel) -> bool:
    """True if ``channel`` ended because its connection did, not because its command did.

    A command that ended (even by a signal: paramiko then reports no exit
    status either) had sshd send the channel's EOF before closing it. The
    channel's own connection is asked, not the manager's: another thread may
    have opened a new one meanwhile, and paramiko closes the channels of a
    lost connection before it marks the connection inactive.
    """
    transport = channel.get_transport()
    return not channel.eof_received or transport is None or not transport.is_active()


def _close(channel: paramiko.Channel) -> None:
    """Close a channel; a connection that broke meanwhile (closed by the watchdog) is no error.

    The error that matters (the command's, or none) is the one raised before.
    """
    with contextlib.suppress(*transport_errors()):
        channel.close()
