"""The jobs of a `cosmos-batch -m` multirun: planned one by one, then one sweep per settings.

The cosmos Hydra launcher (hydra_plugins/cosmos_workflow_launcher) has
every job planned first; jobs with identical settings become one sweep
(api/multirun.py merges their plans), and Hydra's sweep folder gets a
record of the sweeps and their jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmos_workflow.api.cosmos_api import SweepPlan
from cosmos_workflow.api.multirun import merge_plans
from cosmos_workflow.config.settings import Settings
from cosmos_workflow.errors import CosmosError
from cosmos_workflow.services.outputs import OutputStore
from cosmos_workflow.utils.atomic import write_yaml_atomic

# Written into Hydra's sweep folder: each sweep of the multirun and its jobs.
MULTIRUN_RECORD = "cosmos_sweep.yaml"


@dataclass
class JobPlan:
    """One job of a multirun: its plan and settings, or the exit code of why it has none."""

    num: int
    overrides: list[str]
    settings: Settings | None = None
    plan: SweepPlan | None = None
    exit_code: int = 0


class JobFailure(CosmosError):
    """A job of a multirun could not be planned: the cause, with the job named."""

    def __init__(self, job: JobPlan, cause: CosmosError) -> None:
        super().__init__(f"job {job.num} ({' '.join(job.overrides)}): {cause}")
        self.kind = cause.kind
        self.exit_code = cause.exit_code


@dataclass(frozen=True)
class MultirunSweep:
    """Jobs with identical settings and the one sweep they make."""

    settings: Settings
    jobs: dict[int, SweepPlan]
    plan: SweepPlan


def group_sweeps(jobs: list[JobPlan]) -> list[MultirunSweep]:
    """One sweep per distinct settings, in job order.

    Raises:
        ValueError: a job was not planned.
    """
    groups: dict[str, tuple[Settings, dict[int, SweepPlan]]] = {}
    for job in jobs:
        if job.settings is None or job.plan is None:
            raise ValueError(f"job {job.num} was not planned")
        key = job.settings.model_dump_json()
        groups.setdefault(key, (job.settings, {}))[1][job.num] = job.plan
    return [
        MultirunSweep(settings, plans, merge_plans(plans)) for settings, plans in groups.values()
    ]


def multirun_record(sweeps: list[MultirunSweep]) -> dict[str, Any]:
    """Each sweep's id, name and output folder, with each job's number, overrides and runs."""
    return {
        "sweeps": [
            {
                "id": sweep.plan.sweep_id,
                "name": sweep.plan.name,
                "outputs": str(
                    OutputStore(sweep.settings.outputs_dir).sweep_dir(sweep.plan.sweep_id)
                ),
                "jobs": [
                    {
                        "num": num,
                        "overrides": list(plan.overrides),
                        "runs": [run.id for run in plan.runs],
                    }
                    for num, plan in sweep.jobs.items()
                ],
            }
            for sweep in sweeps
        ]
    }


def write_record(sweeps: list[MultirunSweep], sweep_dir: Path) -> Path | None:
    """Write cosmos_sweep.yaml into Hydra's sweep folder; dry runs are left out.

    Returns:
        The file, or None if every sweep is a dry run (nothing is written).
    """
    executed = [sweep for sweep in sweeps if not sweep.settings.dry_run]
    if not executed:
        return None
    path = sweep_dir.absolute() / MULTIRUN_RECORD
    write_yaml_atomic(path, multirun_record(executed))
    return path
