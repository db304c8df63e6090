"""Framed answers: what a remote command printed, told apart from login noise.

A host's login shell runs its start-up files before every command it is
given over SSH, and those may print on stdout and stderr (a ``~/.bashrc``
running pyenv, conda or ``module``, a motd, an OpenSSL warning). So every
remote command runs inside a small POSIX ``sh`` frame that prints a marker
line, unique to the command, on both streams before the command starts, and
(when it waits for the command) another one after it ends. What a stream
carried before its first marker, or after its end marker, is noise: it is
ignored, and the executor logs it once at debug.

This module is the one place that builds and reads frames; the
RemoteCommandExecutor applies it to every command it runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

# $1 the marker; the rest the command. Prints the marker on both streams.
_BEGIN = 't=$1; shift; printf "\\n%s\\n" "$t"; printf "\\n%s\\n" "$t" >&2; '
# After a closed frame's command: "<marker>.end" on both streams, its exit code.
_END = 'printf "\\n%s\\n" "$t.end"; printf "\\n%s\\n" "$t.end" >&2; exit $c'
# Every message that reaches sshd for a channel it has closed makes it drop
# the whole connection (paramiko sends an EOF outside its channel lock, so it
# can arrive late). So a command given no input reads /dev/null and is sent
# no EOF, and a closed frame whose command reads input reads what is left of
# it after the command ended, until the EOF, before it ends itself.
_NO_INPUT = " </dev/null"
_DRAIN = "cat >/dev/null; "


class FrameMissing(ValueError):
    """A stream ended before the frame's begin marker: the command never started."""


@dataclass(frozen=True)
class Split:
    """One stream of a framed command, cut at its markers.

    Attributes:
        answer: What the command printed; None if the begin marker never came.
        noise: What came before the begin marker and after the end marker.
    """

    answer: bytes | None
    noise: bytes


@dataclass(frozen=True)
class Frame:
    """The markers of one remote command.

    Attributes:
        token: Random text that nothing but this frame prints.
    """

    token: str = field(default_factory=lambda: f"cosmos-frame-{uuid.uuid4().hex}")

    @property
    def begin(self) -> bytes:
        """The bytes that precede the command's output on each stream."""
        return f"\n{self.token}\n".encode("ascii")

    @property
    def end(self) -> bytes:
        """The bytes that follow the command's output on each stream (closed frames)."""
        return f"\n{self.token}.end\n".encode("ascii")

    def wrap(self, argv: list[str], closed: bool = True, reads_input: bool = True) -> list[str]:
        """``argv`` inside the frame.

        Args:
            argv: The command.
            closed: Also mark the end of the output (the frame waits for the
                command); otherwise the frame becomes the command (``exec``,
                its signals, exit code and streams are the command's).
            reads_input: The command reads what the channel sends (the caller
                sends an EOF after it); otherwise it reads /dev/null.
        """
        command = '"$@"' + ("" if reads_input else _NO_INPUT)
        if closed:
            drain = _DRAIN if reads_input else ""
            script = f"{_BEGIN}{command}; c=$?; {drain}{_END}"
        else:
            script = f"{_BEGIN}exec {command}"
        return ["sh", "-c", script, "frame", self.token, *argv]

    def split(self, data: bytes) -> Split:
        """Cut one whole stream of a closed frame into the answer and the noise around it."""
        start = data.find(self.begin)
        if start < 0:
            return Split(None, data)
        inside = start + len(self.begin)
        # The last end marker: the answer may hold the token (a command that prints its argv).
        stop = data.rfind(self.end, inside)
        if stop < 0:
            return Split(data[inside:], data[:start])
        return Split(data[inside:stop], data[:start] + data[stop + len(self.end) :])

    def skip(self, read: Callable[[int], bytes]) -> bytes:
        """Read a stream up to and including the begin marker, never past it.

        Args:
            read: Returns at most the given number of bytes; ``b""`` at the end.

        Returns:
            The noise that came before the marker.

        Raises:
            FrameMissing: the stream ended first.
        """
        marker = self.begin
        seen = bytearray()
        while (matched := _overlap(seen, marker)) < len(marker):
            # Reading only what could complete the marker never consumes the answer.
            data = read(len(marker) - matched)
            if not data:
                raise FrameMissing(_tail(bytes(seen)))
            seen.extend(data)
        return bytes(seen[: -len(marker)])


class FramedLines:
    """Passes on the lines of one stream of an open frame; what precedes the marker is kept.

    Args:
        frame: The command's frame.
        on_line: Receives each line of the command's output.
    """

    def __init__(self, frame: Frame, on_line: Callable[[str], None]) -> None:
        self._frame = frame
        self._on_line = on_line
        self._pending = bytearray()
        self._started = False
        self.noise = b""

    def feed(self, data: bytes) -> None:
        """Take more bytes of the stream."""
        self._pending.extend(data)
        if not self._started:
            start = self._pending.find(self._frame.begin)
            if start < 0:
                return
            self.noise = bytes(self._pending[:start])
            del self._pending[: start + len(self._frame.begin)]
            self._started = True
        while (cut := self._pending.find(b"\n")) >= 0:
            self._on_line(self._pending[:cut].decode("utf-8", "replace"))
            del self._pending[: cut + 1]

    def close(self) -> None:
        """The stream ended: pass on its last, unterminated line (or keep it as noise)."""
        if not self._started:
            self.noise = bytes(self._pending)
        elif self._pending:
            self._on_line(self._pending.decode("utf-8", "replace"))
        self._pending.clear()


class NoiseNote:
    """Logs the first noise a host's shell printed, once, at debug."""

    def __init__(self) -> None:
        self._noted = False

    def note(self, log: Callable[..., None], label: str, *noise: bytes) -> None:
        """Log ``noise`` through ``log`` (a logger's debug) the first time there is any."""
        text = b"\n".join(part.strip() for part in noise if part.strip())
        if self._noted or not text:
            return
        self._noted = True
        log(
            "The shell on %s prints around our commands (ignored; said once): %s",
            label,
            _tail(text),
        )


def _overlap(seen: bytes | bytearray, marker: bytes) -> int:
    """The length of the longest end of ``seen`` that is a start of ``marker``."""
    for length in range(min(len(seen), len(marker)), 0, -1):
        if seen.endswith(marker[:length]):
            return length
    return 0


def _tail(text: bytes, lines: int = 12, width: int = 120) -> str:
    """The last lines of ``text``, each cut to ``width``, for a message."""
    last = text.decode("utf-8", "replace").strip().splitlines()[-lines:]
    if not last:
        return "nothing"
    return repr("\n".join(line[:width] for line in last))
