"""DataRepository: every database query and state change goes through here.

It is composed of one part per concern, each in a module of its own:
prompts, runs, the queue (status changes and claims), runners and their
jobs, GPU leases, and sweeps; core.py holds what they share (transactions,
the clock).
"""

from __future__ import annotations

from cosmos_workflow.database.repository.leases import LeaseQueries
from cosmos_workflow.database.repository.prompts import PromptQueries
from cosmos_workflow.database.repository.queue import QueueQueries
from cosmos_workflow.database.repository.runners import RunnerQueries, RunningJob
from cosmos_workflow.database.repository.runs import RunQueries
from cosmos_workflow.database.repository.sweeps import SweepQueries

__all__ = ["DataRepository", "RunningJob"]


class DataRepository(
    PromptQueries, RunQueries, QueueQueries, RunnerQueries, LeaseQueries, SweepQueries
):
    """Queries and updates prompts, runs, runners and sweeps.

    Args:
        sessions: Session factory bound to a migrated engine.
        clock: Time source for created/started/finished timestamps.
    """
