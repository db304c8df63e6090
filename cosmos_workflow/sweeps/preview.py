"""A dry run: what a plan executes, cached or not, stage by stage, and which job goes where.

:func:`preview` is what `cosmos-batch ... dry_run=true` and the dry runs of
`cosmos inference`, `enhance` and `upscale` print. It counts what the real
command then executes: stages.enhance runs first (prompts enhanced already
give their runs' real ids; the others' ids are known only once the
upsampler ran), the sweep's runs, then stages.upscale (the upscale of a run
made already has its id; the others are to run). The jobs (one model
invocation each) are formed and placed on the pool's GPU slots by the
scheduler's own policy (engine/scheduler.py), on idle targets. Writes
nothing and reaches no target.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmos_workflow.engine.scheduler import (
    Booking,
    CostModel,
    HostSlots,
    form_jobs,
    split_for_balance,
)
from cosmos_workflow.engine.scheduler import plan as book
from cosmos_workflow.manifest.models import UpscaleStage
from cosmos_workflow.manifest.specs import InputFile, RunSpec
from cosmos_workflow.outputs.store import OUTPUT_VIDEO
from cosmos_workflow.sweeps.derive import upscale_spec
from cosmos_workflow.sweeps.plan import SweepPlan, cached_runs, enhancement_runs
from cosmos_workflow.sweeps.stages import with_enhanced_prompts
from cosmos_workflow.sweeps.workspace import Workspace
from cosmos_workflow.utils.hashing import sha256_file

STAGE_MAIN = "main"


@dataclass
class _Stage:
    """The runs of one stage: which are cached, which get their ids only later."""

    when: str
    runs: list[RunSpec]
    cached: set[str]
    unknown: set[str] = field(default_factory=set)

    @property
    def to_run(self) -> list[RunSpec]:
        return [run for run in self.runs if run.id not in self.cached]


def preview(ws: Workspace, plan: SweepPlan) -> dict[str, Any]:
    """The plan of a dry run as plain data (what ``--json`` prints).

    Returns:
        ``{dry_run, sweep_id, name, counts, runs, stages, jobs, total, notes}``:
        ``counts`` is ``{runs, cached, to_run}`` of the plan's own runs;
        each run is ``{id, prompt, params, cached, job}`` (``id`` None: known
        once its prompt is enhanced or its parent made; ``job`` None:
        cached); ``stages`` maps ``enhance`` and ``upscale`` (those the plan
        has) to ``{when, counts, runs}``; each job is ``{job, stage,
        adapter, runs, target, gpus}``; ``total`` is ``{to_run, cached,
        jobs}`` over the plan and its stages.
    """
    staged = with_enhanced_prompts(ws, plan) if plan.enhance else plan
    notes = list(staged.notes)
    stages: dict[str, _Stage] = {}
    if plan.enhance:
        specs = list({spec.id: spec for spec in enhancement_runs(ws, plan).values()}.values())
        stages["enhance"] = _Stage("before", specs, cached_runs(ws, [s.id for s in specs]))
    stages[STAGE_MAIN] = _Stage("", staged.runs, set(staged.cached), set(staged.unenhanced))
    if staged.upscale is not None:
        stages["upscale"] = _upscales(ws, staged, staged.upscale, notes)
        notes.append(
            "stages.upscale: every succeeded run is upscaled to 4K after the sweep "
            f"(weight {staged.upscale.weight:g})"
        )
    if staged.duplicates:
        notes.append(
            f"{staged.duplicates} sweep point(s) gave an already listed run and were merged"
        )
    jobs, job_of = _jobs(ws, [(name, stage.to_run) for name, stage in stages.items()])
    main = stages.pop(STAGE_MAIN)
    data = {
        "dry_run": True,
        "sweep_id": staged.sweep_id or None,
        "name": staged.name,
        "counts": _counts(main),
        "runs": [_row(run, main, job_of) for run in main.runs],
        "stages": {
            name: {
                "when": stage.when,
                "counts": _counts(stage),
                "runs": [_row(run, stage, job_of) for run in stage.runs],
            }
            for name, stage in stages.items()
        },
        "jobs": jobs,
        "notes": notes,
    }
    counts = [_counts(stage) for stage in (main, *stages.values())]
    data["total"] = {
        "to_run": sum(c["to_run"] for c in counts),
        "cached": sum(c["cached"] for c in counts),
        "jobs": len(jobs),
    }
    return data


def _upscales(ws: Workspace, plan: SweepPlan, stage: UpscaleStage, notes: list[str]) -> _Stage:
    """The upscale runs of the plan's runs, as stages.upscale makes them after the sweep.

    The upscale of a run made already has its id (its output is here); the
    others get a stand-in input (their output is not made yet), to be
    counted and placed. A run made in another output tree is not upscaled
    here (the real run says so too).
    """
    specs: dict[str, RunSpec] = {}
    unknown: set[str] = set()
    elsewhere = 0
    for run in plan.runs:
        video = ws.store.run_dir(run.id) / OUTPUT_VIDEO
        if run.id not in plan.cached:
            output = InputFile(Path(OUTPUT_VIDEO), hashlib.sha256(run.id.encode()).hexdigest())
        elif ws.store.verify_outputs(run.id) and video.is_file():
            output = InputFile(video.resolve(), sha256_file(video))
        else:
            elsewhere += 1
            continue
        spec = upscale_spec(run, output, stage.weight, stage.prompt)
        specs.setdefault(spec.id, spec)
        if run.id not in plan.cached:
            unknown.add(spec.id)
    known = [run_id for run_id in specs if run_id not in unknown]
    found = _Stage("after", list(specs.values()), cached_runs(ws, known), unknown)
    if elsewhere:
        notes.append(
            f"stages.upscale: {elsewhere} run(s) made elsewhere or changed are not upscaled here"
        )
    return found


def _jobs(
    ws: Workspace, stages: list[tuple[str, list[RunSpec]]]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Each stage's runs to execute formed into jobs and placed on idle targets, in order.

    Returns:
        The jobs (numbered from 1, stage after stage) and each run's job number.
    """
    adapters = ws.adapters()
    batching = ws.settings.scheduler.batching
    cost = CostModel(adapters)
    jobs: list[dict[str, Any]] = []
    job_of: dict[str, int] = {}
    for stage, runs in stages:
        hosts = [HostSlots(t.name, list(t.gpus), t.speed) for t in ws.settings.pool]
        formed = form_jobs(runs, adapters, batching)
        if batching:
            formed = split_for_balance(formed, hosts, cost)
        for booking in _in_order(book(formed, hosts, cost, 0.0)):
            jobs.append(
                {
                    "job": len(jobs) + 1,
                    "stage": stage,
                    "adapter": booking.job.adapter,
                    "runs": len(booking.job.runs),
                    "target": booking.host,
                    "gpus": list(booking.gpus),
                }
            )
            job_of.update(dict.fromkeys(booking.job.run_ids, len(jobs)))
    return jobs, job_of


def _in_order(bookings: list[Booking]) -> list[Booking]:
    return sorted(bookings, key=lambda b: (b.start, b.host, b.gpus, b.job.run_ids))


def _row(run: RunSpec, stage: _Stage, job_of: dict[str, int]) -> dict[str, Any]:
    return {
        "id": None if run.id in stage.unknown else run.id,
        "prompt": run.prompt.name,
        "params": dict(run.varying),
        "cached": run.id in stage.cached,
        "job": job_of.get(run.id),
    }


def _counts(stage: _Stage) -> dict[str, int]:
    hits = sum(1 for run in stage.runs if run.id in stage.cached)
    return {"runs": len(stage.runs), "cached": hits, "to_run": len(stage.runs) - hits}
