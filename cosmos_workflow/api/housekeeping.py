"""`cosmos gc`: remove the containers and job folders of ours that no live runner owns.

The work is engine/leftovers.py's (the runner does the same at its start);
here it looks at every configured target, and the runners are judged alive
as a runner judges them (engine/liveness.py).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from cosmos_workflow.engine.leftovers import LeftoverCollector, LeftoverReport
from cosmos_workflow.engine.liveness import runner_alive

if TYPE_CHECKING:
    from cosmos_workflow.database.models import Runner
    from cosmos_workflow.sweeps.workspace import Workspace


def collect_garbage(ws: Workspace, dry_run: bool) -> LeftoverReport:
    """Remove (or with ``dry_run`` only list) what no live runner owns, on every target.

    Without a database there is no run to trace anything back to: nothing is removed.
    """
    if not ws.database_exists():
        return LeftoverReport(dry_run)
    executors = {
        target.name: ws.executor_for(target.settings)
        for target in ws.targets
        if target.settings is not None
    }
    hostname = socket.gethostname()
    timeout = ws.settings.scheduler.runner_timeout_s

    def alive(runner: Runner | None) -> bool:
        return runner_alive(runner, hostname, ws.clock, timeout, ws.commands)

    collector = LeftoverCollector(ws.repository, ws.store, executors, alive)
    return collector.sweep(dry_run=dry_run)
