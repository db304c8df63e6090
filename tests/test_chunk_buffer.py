"""ChunkBuffer behaves as paramiko's BufferedPipe, which it replaces on bulk channels."""

from __future__ import annotations

import random
import threading
import time

import paramiko
import pytest
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout

from cosmos_workflow.connection.chunk_buffer import ChunkBuffer, install


def scenario(seed: int) -> list[tuple[str, int]]:
    """A random sequence of feeds and reads, of sizes around packet and chunk borders."""
    rng = random.Random(seed)
    sizes = [0, 1, 2, 7, 32767, 32768, 32769, 65536, 262144, 1048575, 1048576, 1048577]
    steps = []
    for _ in range(40):
        kind = rng.choice(["feed", "feed", "read", "read_ready", "len"])
        steps.append((kind, rng.choice(sizes) or rng.randint(1, 100)))
    return steps


def replay(buffer: ChunkBuffer | BufferedPipe, steps: list[tuple[str, int]], seed: int) -> list:
    """Run ``steps`` against ``buffer``; return what each step answered."""
    rng = random.Random(seed)
    answers = []
    for kind, size in steps:
        if kind == "feed":
            buffer.feed(rng.randbytes(size))
        elif kind == "read":
            answers.append(buffer.read(size, timeout=0.0) if len(buffer) else b"(empty)")
        elif kind == "read_ready":
            answers.append(buffer.read_ready())
        else:
            answers.append(len(buffer))
    buffer.close()
    answers.append(buffer.empty())
    answers.append(buffer.read(10))
    return answers


@pytest.mark.parametrize("seed", range(20))
def test_every_read_answers_what_paramikos_buffer_answers(seed: int) -> None:
    steps = scenario(seed)
    assert replay(ChunkBuffer(), steps, seed) == replay(BufferedPipe(), steps, seed)


def test_a_read_takes_up_to_the_size_asked_across_packets() -> None:
    buffer = ChunkBuffer()
    for data in (b"aaaa", b"bbbb", b"cccc"):
        buffer.feed(data)
    assert buffer.read(10) == b"aaaabbbbcc"
    assert len(buffer) == 2
    assert buffer.read(10) == b"cc"
    assert len(buffer) == 0 and not buffer.read_ready()
    buffer.feed(b"abc")
    assert [buffer.read(0), buffer.read(1), buffer.read(5)] == [b"", b"a", b"bc"]


def test_a_read_waits_for_data_from_another_thread() -> None:
    buffer = ChunkBuffer()
    threading.Timer(0.1, buffer.feed, [b"late"]).start()
    assert buffer.read(100, timeout=5) == b"late"


def reader_of(buffer: ChunkBuffer, timeout: float | None) -> tuple[threading.Thread, list]:
    """A thread that reads ``buffer`` once, and the list its answer lands in."""
    answers: list[bytes] = []
    reader = threading.Thread(target=lambda: answers.append(buffer.read(10, timeout)), daemon=True)
    reader.start()
    return reader, answers


@pytest.mark.parametrize("timeout", [None, 20.0])
def test_a_waiting_reader_wakes_as_soon_as_data_comes_not_at_its_timeout(
    timeout: float | None,
) -> None:
    buffer = ChunkBuffer()
    reader, answers = reader_of(buffer, timeout)
    time.sleep(0.1)
    fed = time.monotonic()
    buffer.feed(b"now")
    reader.join(timeout=3)
    # A reader that stays asleep is a transfer that stalls for the channel's timeout.
    assert answers == [b"now"] and time.monotonic() - fed < 2
    buffer.close()


def test_a_read_with_nothing_buffered_times_out_like_paramikos() -> None:
    buffer = ChunkBuffer()
    with pytest.raises(PipeTimeout):
        buffer.read(10, timeout=0.0)
    start = time.monotonic()
    with pytest.raises(PipeTimeout):
        buffer.read(10, timeout=0.2)
    assert time.monotonic() - start >= 0.2


def test_closing_wakes_a_waiting_reader_which_gets_the_rest_then_nothing() -> None:
    buffer = ChunkBuffer()
    answers = []
    reader = threading.Thread(target=lambda: answers.append(buffer.read(10)))
    reader.start()
    time.sleep(0.1)
    buffer.close()
    reader.join(timeout=5)
    assert answers == [b""]
    closed = ChunkBuffer()
    closed.feed(b"tail")
    closed.close()
    assert [closed.read(10), closed.read(10)] == [b"tail", b""]


def test_the_event_is_set_while_data_is_buffered_or_the_buffer_is_closed() -> None:
    buffer = ChunkBuffer()
    event = threading.Event()
    buffer.set_event(event)
    assert not event.is_set()
    buffer.feed(b"x")
    assert event.is_set()
    buffer.read(1)
    assert not event.is_set()
    buffer.close()
    assert event.is_set()
    late = threading.Event()
    buffer.set_event(late)
    assert late.is_set()


# -- the swap on a channel: guarded against a paramiko that changed ---------------
def test_chunk_buffer_answers_every_method_of_paramikos_buffer() -> None:
    """A paramiko that calls a new method of its buffer fails here, not on a download."""
    public = {name for name in dir(BufferedPipe) if not name.startswith("_")}
    missing = sorted(name for name in public | {"__len__"} if not hasattr(ChunkBuffer, name))
    assert missing == []


def test_a_new_channels_buffer_is_swapped_for_a_chunk_buffer() -> None:
    channel = paramiko.Channel(0)
    assert install(channel) is True
    assert isinstance(channel.in_buffer, ChunkBuffer)
    channel.in_buffer.feed(b"data")
    assert channel.recv(10) == b"data"


def test_a_buffer_paramiko_keeps_otherwise_is_left_in_place() -> None:
    """A channel whose buffer is not paramiko's BufferedPipe keeps its own (slower, correct)."""
    channel = paramiko.Channel(0)
    own = ChunkBuffer()
    channel.in_buffer = own
    assert install(channel) is False and channel.in_buffer is own
    bare = object()
    assert install(bare) is False and not hasattr(bare, "in_buffer")


def test_a_buffer_that_already_holds_data_is_left_in_place() -> None:
    """Swapping it would lose what the host sent."""
    channel = paramiko.Channel(0)
    channel.in_buffer.feed(b"early")
    assert install(channel) is False
    assert channel.recv(10) == b"early"
