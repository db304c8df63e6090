"""Progress of `cosmos prepare`: a live bar with an ETA on a terminal, plain lines otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from cosmos_workflow.services.eta import eta_seconds, format_duration
from cosmos_workflow.utils.clock import Clock, SystemClock

# Plain lines: one each time this share of all frames more is done.
PLAIN_STEP = 0.1


@dataclass
class _Counts:
    """Frames done of all videos, and when encoding began."""

    clock: Clock
    videos: list[tuple[str, int]] = field(default_factory=list)
    done: int = 0
    videos_done: int = 0
    started: float = 0.0
    current: str = ""

    @property
    def total(self) -> int:
        return sum(frames for _, frames in self.videos)

    def start(self, videos: list[tuple[str, int]]) -> None:
        self.videos, self.done, self.videos_done = list(videos), 0, 0
        self.started = self.clock.monotonic()
        self.current = videos[0][0] if videos else ""

    def video_end(self) -> int:
        """Frames done when the video being encoded is complete."""
        return sum(frames for _, frames in self.videos[: self.videos_done + 1])

    def eta(self) -> str:
        elapsed = self.clock.monotonic() - self.started
        return format_duration(eta_seconds(self.done, self.total - self.done, elapsed))


class PlainEncodeProgress:
    """Lines on a console: the start, every tenth of the frames, and each video done.

    Args:
        console: Where the lines go (stderr).
        clock: Time source for the ETA.
    """

    def __init__(self, console: Console, clock: Clock | None = None) -> None:
        self._console = console
        self._counts = _Counts(clock or SystemClock())
        self._next_line = 0

    def _line(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False)

    def start(self, videos: list[tuple[str, int]]) -> None:
        """Say what is encoded."""
        self._counts.start(videos)
        self._next_line = 0
        self._line(f"encoding {len(videos)} video(s), {self._counts.total} frames")
        self._advance_mark()

    def _advance_mark(self) -> None:
        step = max(1, round(self._counts.total * PLAIN_STEP))
        self._next_line = (self._counts.done // step + 1) * step

    def frame_done(self, modality: str) -> None:
        """A line each time another tenth of the frames is done (unless a video ends)."""
        counts = self._counts
        counts.done += 1
        if counts.done >= self._next_line:
            if counts.done < counts.video_end():
                self._line(f"{modality}: {counts.done}/{counts.total} frames, eta {counts.eta()}")
            self._advance_mark()

    def video_done(self, modality: str, output: Path) -> None:
        """A line per finished video."""
        counts = self._counts
        counts.videos_done += 1
        self._line(
            f"{modality}: encoded ({counts.videos_done}/{len(counts.videos)} videos, "
            f"{counts.done}/{counts.total} frames, eta {counts.eta()})"
        )

    def finish(self) -> None:
        """Nothing to close."""


class RichEncodeProgress:
    """A live bar: frames done of all videos, the video being encoded, and the ETA.

    Args:
        console: The terminal console.
        clock: Time source for the ETA.
    """

    def __init__(self, console: Console, clock: Clock | None = None) -> None:
        self._counts = _Counts(clock or SystemClock())
        self._live = Live(
            console=console, get_renderable=self._render, refresh_per_second=4, transient=False
        )
        self._started = False

    def start(self, videos: list[tuple[str, int]]) -> None:
        """Show the bar."""
        self._counts.start(videos)
        if not self._started:
            self._live.start()
            self._started = True

    def frame_done(self, modality: str) -> None:
        """Count a frame."""
        self._counts.done += 1
        self._counts.current = modality

    def video_done(self, modality: str, output: Path) -> None:
        """Count a video."""
        self._counts.videos_done += 1
        self._live.refresh()

    def finish(self) -> None:
        """Stop refreshing; the last state stays on screen."""
        if self._started:
            self._live.stop()
            self._started = False

    def _render(self) -> RenderableType:
        counts = self._counts
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            ProgressBar(total=counts.total or 1, completed=counts.done, width=40),
            f"{counts.done}/{counts.total} frames",
            f"{counts.videos_done}/{len(counts.videos)} videos",
            f"eta {counts.eta()}",
            counts.current,
        )
        return grid


def make_encode_progress(console: Console) -> PlainEncodeProgress | RichEncodeProgress:
    """Live display on a terminal, plain lines otherwise."""
    if console.is_terminal:
        return RichEncodeProgress(console)
    return PlainEncodeProgress(console)
