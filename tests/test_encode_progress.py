"""Progress of `cosmos prepare`: a live bar with an ETA on a terminal, plain lines otherwise.

Driven with the events the encoder sends, on a console that writes to a
string; time comes from a fake clock.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console
from test_database import T0, FakeClock
from test_progress import screen

from cosmos_workflow.cli.encode_progress import (
    PlainEncodeProgress,
    RichEncodeProgress,
    make_encode_progress,
)

VIDEOS = [("color", 10), ("depth", 10)]


def console(terminal: bool) -> Console:
    return Console(file=io.StringIO(), force_terminal=terminal, width=120, color_system=None)


def text_of(out: Console) -> str:
    assert isinstance(out.file, io.StringIO)
    return "\n".join(screen(out.file.getvalue()))


def encode(sink, clock: FakeClock, per_frame_s: float, until: int | None = None) -> None:
    """Send the events of encoding VIDEOS, each frame taking ``per_frame_s``."""
    sink.start(VIDEOS)
    done = 0
    for modality, frames in VIDEOS:
        for _ in range(frames):
            if until is not None and done == until:
                return
            clock.advance(per_frame_s)
            sink.frame_done(modality)
            done += 1
        sink.video_done(modality, Path(f"/out/{modality}.mp4"))
    sink.finish()


def test_plain_lines_every_tenth_with_the_eta() -> None:
    out, clock = console(False), FakeClock(T0)
    encode(PlainEncodeProgress(out, clock), clock, per_frame_s=0.5)
    lines = text_of(out).splitlines()
    assert lines[0] == "encoding 2 video(s), 20 frames"
    steps = [line for line in lines if re.match(r"\w+: \d+/20 frames, eta", line)]
    assert [int(re.search(r"(\d+)/20", line).group(1)) for line in steps] == [
        2,
        4,
        6,
        8,
        12,
        14,
        16,
        18,
    ]
    # 0.5 s a frame: at 4 of 20 frames, 16 left take 8 s.
    assert "color: 4/20 frames, eta 8s" in lines
    assert "color: encoded (1/2 videos, 10/20 frames, eta 5s)" in lines
    assert lines[-1] == "depth: encoded (2/2 videos, 20/20 frames, eta 0s)"


def test_the_live_bar_shows_frames_videos_and_eta() -> None:
    out, clock = console(True), FakeClock(T0)
    sink = RichEncodeProgress(out, clock)
    encode(sink, clock, per_frame_s=2.0, until=15)
    sink.finish()  # as on Ctrl-C: the last state stays on screen
    shown = text_of(out)
    assert "15/20 frames" in shown and "1/2 videos" in shown and "depth" in shown
    assert "eta 10s" in shown  # 5 frames left at 2 s each


def test_a_terminal_gets_the_live_bar_anything_else_plain_lines() -> None:
    assert isinstance(make_encode_progress(console(True)), RichEncodeProgress)
    assert isinstance(make_encode_progress(console(False)), PlainEncodeProgress)
