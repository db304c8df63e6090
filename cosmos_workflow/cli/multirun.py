"""The jobs of a `cosmos-batch -m` multirun: planned one by one, then one sweep per settings.

The cosmos Hydra launcher (hydra_plugins/cosmos_workflow_launcher) has
every job planned first; jobs with identical settings become one sweep
(api/multirun.py merges their plans), and Hydra's sweep folder gets a
record of the sweeps and their jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmos_workflow.api.cosmos_api import SweepPlan
from cosmos_workflow.api.multirun import merge_plans
from cosmos_workflow.config.settings import Settings
from cosmos_workflow.errors import CosmosError
from cosmos_workflow.outputs.store import OutputStore
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


def _sweep_record(sweep: MultirunSweep, stored: SweepPlan | None) -> dict[str, Any]:
    """One sweep's entry; once stored, with the id and run ids it was stored with."""
    plan = stored or sweep.plan
    renamed = plan.renamed
    return {
        "id": plan.sweep_id,
        "name": plan.name,
        "outputs": str(OutputStore(sweep.settings.outputs_dir).sweep_dir(plan.sweep_id)),
        "jobs": [
            {
                "num": num,
                "overrides": list(job.overrides),
                "runs": [renamed.get(run.id, run.id) for run in job.runs],
            }
            for num, job in sweep.jobs.items()
        ],
    }


def multirun_record(
    sweeps: list[MultirunSweep], stored: Mapping[int, SweepPlan] | None = None
) -> dict[str, Any]:
    """Each sweep's id, name and output folder, with each job's number, overrides and runs.

    Args:
        sweeps: The sweeps of the multirun.
        stored: The plan each sweep (by index) was stored with, once it was:
            stages.enhance changes a sweep's id and run ids when it runs.
    """
    stored = stored or {}
    return {"sweeps": [_sweep_record(sweep, stored.get(i)) for i, sweep in enumerate(sweeps)]}


def write_record(
    sweeps: list[MultirunSweep],
    sweep_dir: Path,
    stored: Mapping[int, SweepPlan] | None = None,
) -> Path | None:
    """Write (or rewrite) cosmos_sweep.yaml into Hydra's sweep folder; dry runs are left out.

    Args:
        sweeps: The sweeps of the multirun.
        sweep_dir: Hydra's sweep folder.
        stored: See :func:`multirun_record`.

    Returns:
        The file, or None if every sweep is a dry run (nothing is written).
    """
    stored = stored or {}
    executed = [i for i, sweep in enumerate(sweeps) if not sweep.settings.dry_run]
    if not executed:
        return None
    record = multirun_record(
        [sweeps[i] for i in executed],
        {n: stored[i] for n, i in enumerate(executed) if i in stored},
    )
    path = sweep_dir.absolute() / MULTIRUN_RECORD
    write_yaml_atomic(path, record)
    return path
