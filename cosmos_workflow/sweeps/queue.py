"""Runs onto the queue: queue them, queue again those that lost their outputs, adopt verified ones.

Shared by a sweep (sweeps/session.py), its stages (sweeps/stages.py) and
single runs (sweeps/single.py); the queue itself is the database's
(database/repository/), and engine/dispatch.py executes what is queued.
"""

from __future__ import annotations

import logging

from cosmos_workflow.database.models import RunStatus
from cosmos_workflow.sweeps.plan import cached_runs
from cosmos_workflow.sweeps.workspace import Workspace

logger = logging.getLogger(__name__)


def queue_runs(ws: Workspace, run_ids: list[str]) -> None:
    """Queue runs to execute; succeeded runs here lost their outputs."""
    requeue_lost(ws, run_ids)
    ws.repository.enqueue(run_ids)


def requeue_lost(ws: Workspace, run_ids: list[str]) -> None:
    """Queue again the succeeded runs among ``run_ids`` whose outputs are gone.

    Their outputs are looked at again now, after their status: a run that
    another runner finished after this one planned (so it was not cached
    then) has its run folder whole before it is succeeded, and is kept.
    """
    statuses = ws.repository.statuses(run_ids)
    succeeded = [run_id for run_id in run_ids if statuses.get(run_id) is RunStatus.SUCCEEDED]
    if not succeeded:
        return
    kept = cached_runs(ws, succeeded)
    lost = [run_id for run_id in succeeded if run_id not in kept]
    for run_id in ws.repository.requeue_lost(lost):
        logger.warning(
            "Run %s was succeeded but its outputs are gone or changed; running it again", run_id
        )


def adopt(ws: Workspace, run_id: str) -> None:
    """Record as succeeded a run whose outputs were verified in its run folder."""
    result = ws.store.read_result(run_id) or {}
    ws.repository.adopt_succeeded(run_id, str(ws.store.run_dir(run_id)), result)


def adopt_unless_succeeded(ws: Workspace, run_id: str) -> None:
    """:func:`adopt` a cached run, unless the database knows it succeeded."""
    if ws.repository.statuses([run_id]).get(run_id) is not RunStatus.SUCCEEDED:
        adopt(ws, run_id)
