"""Waiting for a host that went silent while one of its jobs is followed.

A host cut off the network answers nothing; its containers may go on and
finish. The job is followed again as soon as the host answers, for up to
the patience (``scheduler.patience_s``); after that it is given back to the
dispatcher, which may move its runs elsewhere (and stops this copy when the
host answers again). The log gets one line per change of state, never a
line per failed attempt (those, with their tracebacks, are at debug).
"""

from __future__ import annotations

import logging
import time

from cosmos_workflow.utils.clock import Clock

logger = logging.getLogger(__name__)


class HostSilence:
    """One job's wait for its silent host.

    Args:
        target: The target's name.
        job_id: The job followed there.
        patience_s: How long the host may stay silent before the job is given back.
        clock: Wall-clock time (for the line saying since when).
    """

    def __init__(self, target: str, job_id: str, patience_s: float, clock: Clock) -> None:
        self._target = target
        self._job_id = job_id
        self._patience_s = patience_s
        self._clock = clock
        self._since: float | None = None

    @property
    def silent_s(self) -> float:
        """Seconds since the host went silent (0 while it answers)."""
        return 0.0 if self._since is None else time.monotonic() - self._since

    def lost(self, error: Exception) -> bool:
        """Record a failed attempt to reach the host.

        Returns:
            True while the host may still be waited for; False once the patience is over.
        """
        if self._since is None:
            self._since = time.monotonic()
            logger.warning(
                "host %s silent since %s: waiting up to %.0f s for it before job %s may "
                "move elsewhere",
                self._target,
                self._clock.now().strftime("%H:%M:%S"),
                self._patience_s,
                self._job_id,
            )
        logger.debug("host %s: no answer (%s)", self._target, error, exc_info=error)
        if self.silent_s < self._patience_s:
            return True
        logger.warning(
            "host %s silent for %.0f s: job %s is given back (its container may still run there)",
            self._target,
            self.silent_s,
            self._job_id,
        )
        return False

    def answered(self) -> None:
        """The host answers (again): say so once, if it had gone silent."""
        if self._since is None:
            return
        logger.warning(
            "host %s answers again after %.0f s: following job %s again",
            self._target,
            self.silent_s,
            self._job_id,
        )
        self._since = None
