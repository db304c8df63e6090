"""A Hydra multirun as one sweep: the union of its jobs' plans."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from cosmos_workflow.api.cosmos_api import SweepPlan
from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.manifest.specs import RunSpec
from cosmos_workflow.utils.hashing import content_id

# The key of a run's recorded params that holds the overrides of the job that made it.
OVERRIDES_PARAM = "overrides"
# The longest sweep name the database keeps (sweeps.name).
NAME_MAX = 200


def merge_plans(jobs: Mapping[int, SweepPlan]) -> SweepPlan:
    """The one sweep of a multirun's jobs.

    A single job's plan is returned unchanged: a multirun of one job is that
    sweep. Otherwise the sweep holds every job's runs in job order, each run
    once (a run that an earlier job already gave counts as a duplicate); each
    run's params gain the overrides of the job that first gave it. The
    manifest records every job's number, overrides and resolved manifest, and
    the model parameters all jobs share; the overrides are every job's list.
    The id hashes the name(s) and the run ids, as a single sweep's does, so
    the same command gives the same sweep again.

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
        sweep_id=content_id("sw", {"name": name, "runs": list(runs)}),
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
