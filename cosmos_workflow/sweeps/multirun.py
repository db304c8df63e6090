"""A Hydra multirun (`cosmos-batch -m`): its jobs planned one by one, then one sweep per settings.

The cosmos Hydra launcher (hydra_plugins/cosmos_workflow_launcher) has
every job planned first (:class:`JobPlan`); jobs with identical settings
become one sweep, the union of their plans (:func:`merge_plans`), and
Hydra's sweep folder gets a record of the sweeps and their jobs
(:class:`Multirun`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cosmos_workflow.config.settings import Settings
from cosmos_workflow.errors import CosmosError, ValidationFailure
from cosmos_workflow.manifest.specs import RunSpec
from cosmos_workflow.outputs.store import OutputStore
from cosmos_workflow.sweeps.plan import SweepPlan, sweep_id_of
from cosmos_workflow.utils.atomic import write_yaml_atomic

# The key of a run's recorded params that holds the overrides of the job that made it.
OVERRIDES_PARAM = "overrides"
# The longest sweep name the database keeps (sweeps.name).
NAME_MAX = 200
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


class Multirun:
    """The sweeps of a multirun's planned jobs, and their record in Hydra's sweep folder.

    Args:
        jobs: Every job, planned.
        sweep_dir: Hydra's sweep folder.

    Raises:
        ValueError: a job was not planned.
        ValidationFailure: jobs with the same settings ask for different stages.
    """

    def __init__(self, jobs: list[JobPlan], sweep_dir: Path) -> None:
        self.sweeps = group_sweeps(jobs)
        self._sweep_dir = sweep_dir
        # The plan each sweep (by index) was stored with, where its runs changed.
        self._stored: dict[int, SweepPlan] = {}

    def write_record(self) -> Path | None:
        """Write (or rewrite) cosmos_sweep.yaml; None if every sweep is a dry run."""
        return write_record(self.sweeps, self._sweep_dir, self._stored)

    def stored(self, index: int, plan: SweepPlan) -> None:
        """Sweep ``index`` was stored as ``plan``: record its runs if they changed.

        stages.enhance gives a sweep its run ids only when it runs.
        """
        if plan.renamed or plan.sweep_id != self.sweeps[index].plan.sweep_id:
            self._stored[index] = plan
            self.write_record()


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


def merge_plans(jobs: Mapping[int, SweepPlan]) -> SweepPlan:
    """The one sweep of a multirun's jobs.

    A single job's plan is returned unchanged: a multirun of one job is that
    sweep. Otherwise the sweep holds every job's runs in job order, each run
    once (a run that an earlier job already gave counts as a duplicate); each
    run's params gain the overrides of the job that first gave it. The
    manifest records every job's number, overrides and resolved manifest, and
    the model parameters all jobs share; the overrides are every job's list.
    The id hashes the name(s) and the run ids (and stages.enhance), as a
    single sweep's does, so the same command gives the same sweep again.

    Args:
        jobs: Each Hydra job's number and plan, in job order.

    Raises:
        ValueError: no jobs.
        ValidationFailure: the jobs ask for different stages.
    """
    if not jobs:
        raise ValueError("a multirun without jobs has no sweep")
    plans = list(jobs.values())
    if len(plans) == 1:
        return plans[0]
    name = _union_name(list(dict.fromkeys(plan.name for plan in plans)))
    runs: dict[str, RunSpec] = {}
    duplicates = sum(plan.duplicates for plan in plans)
    for plan in plans:
        for run in plan.runs:
            if run.id in runs:
                duplicates += 1
            else:
                params = {**run.varying, OVERRIDES_PARAM: list(plan.overrides)}
                runs[run.id] = replace(run, varying=params)
    manifest = {
        "name": name,
        "model": _shared(plan.manifest.get("model") or {} for plan in plans),
        "jobs": [
            {"num": num, "overrides": list(plan.overrides), "manifest": plan.manifest}
            for num, plan in jobs.items()
        ],
    }
    stages = {(plan.enhance, repr(plan.upscale)) for plan in plans}
    if len(stages) > 1:
        raise ValidationFailure(
            "the jobs of a multirun ask for different stages (stages.enhance, "
            "stages.upscale); give them one setting"
        )
    return SweepPlan(
        sweep_id=sweep_id_of(name, list(runs), plans[0].enhance),
        name=name,
        manifest=manifest,
        overrides=[list(plan.overrides) for plan in plans],
        runs=list(runs.values()),
        cached=frozenset().union(*(plan.cached for plan in plans)),
        duplicates=duplicates,
        notes=list(dict.fromkeys(note for plan in plans for note in plan.notes)),
        enhance=plans[0].enhance,
        upscale=plans[0].upscale,
    )


def _union_name(names: list[str]) -> str:
    """The experiment names joined by '+', or the first and a count if that is too long."""
    joined = "+".join(names)
    return joined if len(joined) <= NAME_MAX else f"{names[0]}+{len(names) - 1}-more"


def _shared(models: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The entries that every mapping has with the same value (copies)."""
    first, *others = list(models)
    return {
        key: copy.deepcopy(value)
        for key, value in first.items()
        if all(key in other and other[key] == value for other in others)
    }


# -- the record in Hydra's sweep folder ------------------------------------------------
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
            stages.enhance changes a sweep's run ids when it runs.
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
