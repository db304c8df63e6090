"""ChunkBuffer: the receive buffer of bulk-data channels, without paramiko's copies.

paramiko keeps what a channel receives in a ``BufferedPipe``: one growing
``array`` that each packet is copied into, and that ``recv`` copies out of
twice (a slice, then ``tobytes``) before deleting the front, which moves the
rest. With a large window the array holds megabytes, every copy lands in
freshly mapped memory, and a reader that asks for less than is buffered pays
for moving the remainder each time. On a download that was the largest cost
on our side (benchmarks/transfer.py).

ChunkBuffer has the same methods and behaviour (``feed``, ``read`` with a
timeout, ``read_ready``, ``empty``, ``close``, ``set_event``, ``len``) but
keeps the packets' own ``bytes`` objects in a queue: ``read(n)`` returns the
same bytes as BufferedPipe would (up to ``n``), as one packet as it arrived
or joined from several (one copy).
SSHManager.exec_stream puts one in place of the channel's ``in_buffer``
before the command starts (:func:`install`), so ``Channel.recv`` (and its
window accounting) are paramiko's own. The swap relies on paramiko's
internals, so it is guarded: only a new channel's empty ``BufferedPipe`` is
replaced; a paramiko that keeps its buffer otherwise keeps its own (correct,
only slower), and tests/test_chunk_buffer.py fails if paramiko's buffer gains
a method that ChunkBuffer lacks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class _Event(Protocol):
    """What paramiko passes to ``set_event``: a threading.Event or its pipe wrapper."""

    def set(self) -> None: ...

    def clear(self) -> None: ...


class ChunkBuffer:
    """A thread-safe byte queue fed by the transport thread and read by ``Channel.recv``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._closed = False
        self._event: _Event | None = None

    def set_event(self, event: _Event) -> None:
        """Set ``event`` whenever data is buffered or the buffer is closed, clear it otherwise."""
        with self._lock:
            self._event = event
            if self._closed or self._size:
                event.set()
            else:
                event.clear()

    def feed(self, data: bytes) -> None:
        """Append ``data`` (called by the transport thread)."""
        with self._lock:
            if self._event is not None:
                self._event.set()
            if data:
                self._chunks.append(bytes(data))
                self._size += len(data)
            self._ready.notify_all()

    def read_ready(self) -> bool:
        """True if ``read`` would return at least one byte at once."""
        with self._lock:
            return self._size > 0

    def read(self, nbytes: int, timeout: float | None = None) -> bytes:
        """Up to ``nbytes`` bytes, waiting up to ``timeout`` seconds (None: forever) for some.

        Returns b"" once the buffer is closed and empty.

        Raises:
            paramiko.buffered_pipe.PipeTimeout: nothing arrived within ``timeout``.
        """
        with self._lock:
            if not self._wait(timeout):
                return b""
            out = self._take(nbytes)
            if not self._size and self._event is not None and not self._closed:
                self._event.clear()
            return out

    def empty(self) -> bytes:
        """Everything buffered, removed from the buffer."""
        with self._lock:
            out = b"".join(self._chunks)
            self._chunks.clear()
            self._size = 0
            if self._event is not None and not self._closed:
                self._event.clear()
            return out

    def close(self) -> None:
        """No more data will come: readers get what is left, then b""."""
        with self._lock:
            self._closed = True
            self._ready.notify_all()
            if self._event is not None:
                self._event.set()

    def __len__(self) -> int:
        with self._lock:
            return self._size

    def _wait(self, timeout: float | None) -> bool:
        """Wait (holding the lock) until data is buffered: True, or closed and empty: False."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._size:
            if self._closed:
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                from paramiko.buffered_pipe import PipeTimeout

                raise PipeTimeout()
            self._ready.wait(left)
        return True

    def _take(self, nbytes: int) -> bytes:
        """Remove and return up to ``nbytes`` from the front (holding the lock).

        Whole packets are handed over as they are, or joined (one copy);
        only a packet that straddles ``nbytes`` is split.
        """
        parts = []
        total = 0
        while total < nbytes and self._chunks:
            chunk = self._chunks.popleft()
            room = nbytes - total
            if len(chunk) > room:
                self._chunks.appendleft(chunk[room:])
                chunk = chunk[:room]
            parts.append(chunk)
            total += len(chunk)
        self._size -= total
        return parts[0] if len(parts) == 1 else b"".join(parts)


def install(channel: Any) -> bool:
    """Put a ChunkBuffer in place of a new channel's receive buffer, if that is safe.

    Args:
        channel: A paramiko Channel, before its command starts.

    Returns:
        True if swapped; False if the channel's buffer is not paramiko's empty
        ``BufferedPipe`` (a paramiko that changed, or data already arrived):
        the channel keeps its own.
    """
    from paramiko.buffered_pipe import BufferedPipe

    current = getattr(channel, "in_buffer", None)
    if type(current) is not BufferedPipe or len(current):
        logger.debug("Channel buffer %s left in place", type(current).__name__)
        return False
    channel.in_buffer = ChunkBuffer()
    return True
