"""Progress of a long operation made of counted steps (frames encoded, files sent, ...).

The API reports to a :class:`StepProgress`; the CLI decides how to show it
(cosmos_workflow/cli/step_display.py: a bar with an ETA on a terminal, log
lines otherwise). Sinks must be thread-safe.
"""

from __future__ import annotations

from typing import Protocol


class StepProgress(Protocol):
    """Receives the progress of one operation of ``total`` steps."""

    def start(self, what: str, total: int | None) -> None:
        """The operation begins; ``total`` is None when the number of steps is unknown."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps are done."""

    def finish(self) -> None:
        """The operation is over (normally or not)."""


class NullStepProgress:
    """Reports nothing."""

    def start(self, what: str, total: int | None) -> None:
        """Ignore."""

    def advance(self, steps: int = 1) -> None:
        """Ignore."""

    def finish(self) -> None:
        """Ignore."""
