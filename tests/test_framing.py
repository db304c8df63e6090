"""The frame around remote commands: answers are cut out exactly, whatever the
login shell prints around them. (The whole path, against a real sshd whose
login shell prints on both streams, is in tests/test_ssh.py and test_transfer.py.)"""

from __future__ import annotations

import pytest

from cosmos_workflow.connection.framing import Frame, FramedLines, FrameMissing

# A fixed token: test ids must be the same in every pytest-xdist worker.
FRAME = Frame("cosmos-frame-0123456789abcdef")
# Noise that starts like the marker, or holds most of it, must not confuse the reader.
NOISES = [
    b"",
    b"motd\n",
    b"no newline at the end",
    b"\n",
    FRAME.begin[:-1] + b"x",
    FRAME.begin[:5] + b"\n" + FRAME.begin[:-2] + b"x\n",
    b"\n" + FRAME.token.encode()[:-1] + b"\n",
]
ANSWERS = [b"", b"x", b"line\n", b"\n\nblank lines\n\n", bytes(range(256)) * 3]


class Source:
    """A stream read in pieces of at most ``piece`` bytes, as a channel may deliver it."""

    def __init__(self, data: bytes, piece: int) -> None:
        self.data, self.piece = data, piece

    def read(self, size: int) -> bytes:
        taken, self.data = self.data[: min(size, self.piece)], self.data[min(size, self.piece) :]
        return taken


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("piece", [1, 3, 1 << 20])
def test_skipping_to_the_marker_never_reads_into_the_answer(noise: bytes, piece: int) -> None:
    for answer in ANSWERS:
        source = Source(noise + FRAME.begin + answer, piece)
        assert FRAME.skip(source.read) == noise
        assert source.data == answer


def test_a_stream_that_ends_before_the_marker_is_a_clear_error() -> None:
    with pytest.raises(FrameMissing, match="command not found"):
        FRAME.skip(Source(b"sh: 1: command not found\n", 64).read)


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("answer", ANSWERS)
def test_a_closed_frame_gives_back_exactly_the_answer(noise: bytes, answer: bytes) -> None:
    after = b"logout noise\n"
    split = FRAME.split(noise + FRAME.begin + answer + FRAME.end + after)
    assert split.answer == answer and split.noise == noise + after


def test_a_frame_without_its_end_or_its_start() -> None:
    assert FRAME.split(b"noise" + FRAME.begin + b"cut sho").answer == b"cut sho"
    assert FRAME.split(b"the shell never ran it").answer is None
    # Another command's frame is noise here.
    assert Frame().split(FRAME.begin + b"x" + FRAME.end).answer is None


def test_lines_of_an_open_frame_come_whole_whatever_the_pieces() -> None:
    data = b"motd\nno newline" + FRAME.begin + b"one\ntwo\n\nlast"
    for piece in (1, 2, 7, len(data)):
        lines: list[str] = []
        reader = FramedLines(FRAME, lines.append)
        for start in range(0, len(data), piece):
            reader.feed(data[start : start + piece])
        reader.close()
        assert lines == ["one", "two", "", "last"]
        assert reader.noise == b"motd\nno newline"


def test_an_answer_that_holds_its_own_markers_is_given_back_whole() -> None:
    """A command that prints its own arguments (the token among them) one per line."""
    answer = b"frame\n" + FRAME.token.encode() + b"\n" + FRAME.end + b"tail\n"
    split = FRAME.split(b"motd\n" + FRAME.begin + answer + FRAME.end + b"bye\n")
    assert split.answer == answer and split.noise == b"motd\nbye\n"


def test_an_answer_that_holds_another_commands_frame_comes_back_whole() -> None:
    # e.g. a command that prints the log of an earlier framed command.
    inner = Frame()
    outer = Frame()
    answer = b"before" + inner.begin + b"inside" + inner.end + b"after"
    split = outer.split(b"motd" + outer.begin + answer + outer.end)
    assert split.answer == answer and split.noise == b"motd"
