"""Estimated time to finish, from observed throughput.

The live display and `cosmos status` estimate the same way: runs the model
finished (succeeded or failed) divided by the time since the first job of
the current stretch of work started, applied to the runs still to do.
Until a run has finished there is no throughput, and the ETA is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

# Longest pause between two runs of one stretch of work (e.g. a retry that
# waits); a longer silence starts a new stretch.
ACTIVE_GAP_S = 60.0


def eta_seconds(processed: int, left: int, elapsed_s: float) -> float | None:
    """Seconds until ``left`` runs are over, at the pace observed so far.

    Args:
        processed: Runs the model finished (succeeded or failed) in ``elapsed_s``.
        left: Runs not finished yet (queued or running).
        elapsed_s: Seconds since the first job of this stretch started.

    Returns:
        0.0 when nothing is left; None (unknown) until a run has finished.
    """
    if left <= 0:
        return 0.0
    if processed <= 0 or elapsed_s <= 0:
        return None
    return left * elapsed_s / processed


def format_duration(seconds: float | None) -> str:
    """``12s``, ``3m10s``, ``1h02m``; ``unknown`` for None."""
    if seconds is None:
        return "unknown"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def active_since(
    spans: Iterable[tuple[datetime, datetime | None]],
    now: datetime,
    gap_s: float = ACTIVE_GAP_S,
) -> datetime | None:
    """When the stretch of work that is going on now began.

    Args:
        spans: (started, finished) of runs that ran; finished is None while running.
        now: The current time.
        gap_s: Longest pause within one stretch.

    Returns:
        The start of the earliest run chained to now by runs no more than
        ``gap_s`` apart, or None if nothing ran or ended within ``gap_s``.
    """
    ordered = sorted(((finished or now, started) for started, finished in spans), reverse=True)
    since = now
    found = False
    for finished, started in ordered:
        if (since - finished).total_seconds() > gap_s:
            break
        since = min(since, started)
        found = True
    return since if found else None
