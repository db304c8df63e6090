"""Show a :class:`StepProgress`: a live bar with an ETA on a terminal, plain lines otherwise.

Usage, for a command with a long operation::

    progress = make_step_progress(stderr_console())
    api.long_operation(..., progress=progress)   # calls start / advance / finish
"""

from __future__ import annotations

import threading

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from cosmos_workflow.engine.eta import eta_seconds, format_duration
from cosmos_workflow.utils.clock import Clock, SystemClock

# Seconds between two progress lines when stderr is not a terminal.
PLAIN_INTERVAL_S = 5.0


class _Steps:
    """Counts steps and times them; thread-safe."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.what = ""
        self.total: int | None = None
        self.done = 0
        self._started = clock.monotonic()

    def start(self, what: str, total: int | None) -> None:
        with self._lock:
            self.what, self.total, self.done = what, total, 0
            self._started = self._clock.monotonic()

    def advance(self, steps: int) -> None:
        with self._lock:
            self.done += steps

    def state(self) -> tuple[str, int | None, int, float, float | None]:
        """(what, total, done, elapsed seconds, eta seconds or None)."""
        with self._lock:
            elapsed = self._clock.monotonic() - self._started
            left = None if self.total is None else max(0, self.total - self.done)
            eta = None if left is None else eta_seconds(self.done, left, elapsed)
            return self.what, self.total, self.done, elapsed, eta


class PlainStepProgress:
    """Plain lines: at the start, at most every ``interval_s`` seconds, and at the end.

    Args:
        console: Where the lines go (stderr, not a terminal).
        clock: Time source.
        interval_s: Least time between two progress lines.
    """

    def __init__(
        self, console: Console, clock: Clock | None = None, interval_s: float = PLAIN_INTERVAL_S
    ) -> None:
        self._console = console
        self._clock = clock or SystemClock()
        self._steps = _Steps(self._clock)
        self._interval_s = interval_s
        self._last = 0.0
        self._lock = threading.Lock()

    def start(self, what: str, total: int | None) -> None:
        """Say what begins and how many steps it has."""
        self._steps.start(what, total)
        self._last = self._clock.monotonic()
        self._line(f"{what}: {'unknown' if total is None else total} step(s)")

    def advance(self, steps: int = 1) -> None:
        """Count steps; print the counts and ETA when ``interval_s`` has passed."""
        self._steps.advance(steps)
        with self._lock:
            now = self._clock.monotonic()
            if now - self._last < self._interval_s:
                return
            self._last = now
        self._counts()

    def finish(self) -> None:
        """Print the final counts."""
        self._counts()

    def _counts(self) -> None:
        what, total, done, elapsed, eta = self._steps.state()
        count = "?" if total is None else total
        self._line(
            f"{what}: {done}/{count} after {format_duration(elapsed)}; eta {format_duration(eta)}"
        )

    def _line(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False, soft_wrap=True)


class RichStepProgress:
    """A live line: what, a bar, done/total, elapsed time and the ETA.

    Args:
        console: The terminal console.
        clock: Time source.
    """

    def __init__(self, console: Console, clock: Clock | None = None) -> None:
        self._steps = _Steps(clock or SystemClock())
        self._live = Live(
            console=console, get_renderable=self._render, refresh_per_second=4, transient=False
        )
        self._lock = threading.Lock()
        self._running = False

    def start(self, what: str, total: int | None) -> None:
        """Show the line."""
        self._steps.start(what, total)
        with self._lock:
            if not self._running:
                self._live.start()
                self._running = True
        self._refresh()

    def advance(self, steps: int = 1) -> None:
        """Count steps."""
        self._steps.advance(steps)
        self._refresh()

    def finish(self) -> None:
        """Stop refreshing; the last state stays on screen."""
        with self._lock:
            if self._running:
                self._live.stop()
                self._running = False

    def _refresh(self) -> None:
        with self._lock:
            if self._running:
                self._live.refresh()

    def _render(self) -> RenderableType:
        what, total, done, elapsed, eta = self._steps.state()
        line = Table.grid(padding=(0, 1))
        line.add_row(
            what,
            ProgressBar(total=total, completed=done, width=30),
            f"{done}/{'?' if total is None else total}",
            f"elapsed {format_duration(elapsed)}",
            f"eta {format_duration(eta)}",
        )
        return line


def make_step_progress(
    console: Console, clock: Clock | None = None
) -> PlainStepProgress | RichStepProgress:
    """A live bar with an ETA on a terminal, log lines otherwise."""
    if console.is_terminal:
        return RichStepProgress(console, clock)
    return PlainStepProgress(console, clock)
