"""One configured target's state for `cosmos status`, as its executor describes it.

A target that cannot be reached is reported in its entry, never raised. A
cluster's jobs in its scheduler's queue (a slurm target) come with the runs
each holds in this project's database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cosmos_workflow.errors import CosmosError

if TYPE_CHECKING:
    from cosmos_workflow.config.targets import ConfiguredTarget
    from cosmos_workflow.sweeps.workspace import Workspace


def target_status(ws: Workspace, target: ConfiguredTarget) -> dict[str, Any]:
    """One target's GPUs, containers or queued jobs, or why they are not known."""
    entry: dict[str, Any] = {"name": target.name, "source": target.source}
    if target.settings is None:
        return {**entry, "configured": False, "problem": target.problem}
    try:
        report = ws.executor_for(target.settings).describe().to_dict()
    except CosmosError as exc:
        report = {"name": target.name, "reachable": False, "error": f"{exc.kind}: {exc}"}
    exists = ws.database_exists()
    for job in report.get("queued_jobs") or []:
        runs = ws.repository.runs_of_job(job["job_id"]) if exists else []
        job["runs"] = [run.id for run in runs]
    return {**entry, "configured": True, **report}
