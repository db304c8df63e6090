"""A sweep session: store a planned sweep, queue what is not cached, execute it, record it.

:func:`run_sweep` reads top-down: enhance the prompts (stages.enhance),
store the sweep (:func:`store_sweep`), queue its runs and hand them to
engine/dispatch.py (through :meth:`Workspace.dispatch`), write its
runs.jsonl, then upscale what succeeded (stages.upscale).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from cosmos_workflow.database.models import RunStatus, SweepStage
from cosmos_workflow.engine.outcome import RunTally
from cosmos_workflow.engine.progress import NullProgress, ProgressSink
from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.outputs.provenance import sweep_provenance
from cosmos_workflow.sweeps.plan import SweepPlan, cached_runs
from cosmos_workflow.sweeps.queue import adopt, adopt_unless_succeeded, queue_runs
from cosmos_workflow.sweeps.stages import enhance_prompts, upscale_stage, with_enhanced_prompts
from cosmos_workflow.sweeps.workspace import Workspace

logger = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    """How a sweep ended."""

    sweep_id: str
    sweep_dir: Path
    runs_dir: Path
    total: int
    cached: int
    tally: RunTally = field(default_factory=RunTally)
    # stages.enhance: the enhancement runs (made, or cached) and how the executed ones ended.
    enhancements: list[str] = field(default_factory=list)
    enhance_tally: RunTally = field(default_factory=RunTally)
    # stages.upscale: the upscale runs (made, or cached) and how the executed ones ended.
    upscales: list[str] = field(default_factory=list)
    upscale_tally: RunTally = field(default_factory=RunTally)
    # Succeeded runs that could not be upscaled here, and why.
    upscale_skipped: dict[str, str] = field(default_factory=dict)

    @property
    def executed(self) -> int:
        """Runs executed while this invocation ran, here or by another runner (tally.by_others)."""
        return len(self.tally.succeeded) + len(self.tally.failed)


def run_sweep(
    ws: Workspace,
    plan: SweepPlan,
    progress: ProgressSink | None = None,
    on_stored: Callable[[SweepPlan], None] | None = None,
) -> SweepSummary:
    """Store the sweep, execute what is not cached, write the sweep folder.

    Args:
        ws: The workspace.
        plan: The planned sweep.
        progress: Where progress goes.
        on_stored: Called with the sweep as stored, before its runs
            execute (with stages.enhance, its id and runs are those of
            the enhanced prompts); a caller that is interrupted later
            still knows which sweep it was.

    Raises:
        StateError: another runner is working on this output tree.
    """
    progress = progress or NullProgress()
    unreachable = ws.preflight()
    with ws.runner_lock():
        enhanced = None
        if plan.enhance:
            plan, enhanced = enhance_prompts(ws, plan, progress)
        plan = store_sweep(ws, plan)
        if on_stored is not None:
            on_stored(plan)
        to_run = plan.to_run
        summary = SweepSummary(
            plan.sweep_id,
            ws.store.sweep_dir(plan.sweep_id),
            ws.store.runs_dir,
            len(plan.runs),
            len(plan.cached),
        )
        if enhanced is not None:
            summary.enhancements = enhanced.runs
            summary.enhance_tally = enhanced.tally
        progress.start(len(plan.runs), len(plan.cached), len(to_run))
        try:
            queue_runs(ws, [run.id for run in to_run])
            summary.tally = ws.dispatch(to_run, progress, unreachable, plan.sweep_id)
        finally:
            write_runs_jsonl(ws, plan)
            progress.finish()
        if plan.upscale is not None and not summary.tally.cancelled:
            try:
                upscaled = upscale_stage(ws, plan, plan.upscale, progress)
                summary.upscales = upscaled.runs
                summary.upscale_tally = upscaled.tally
                summary.upscale_skipped = upscaled.skipped
            finally:
                write_runs_jsonl(ws, plan)
    return summary


def submit(ws: Workspace, plan: SweepPlan) -> SweepPlan:
    """Store a planned sweep (prompts, runs, sweep and its folder) without executing it.

    Returns:
        The plan with its cached runs looked up again (another runner may
        have finished some since it was made).

    Raises:
        ValidationFailure: the sweep enhances prompts that are not enhanced yet.
    """
    if plan.enhance:
        plan = with_enhanced_prompts(ws, plan)
        if plan.unenhanced:
            raise ValidationFailure(
                f"sweep {plan.sweep_id} enhances its prompts first (stages.enhance): run "
                "it (run_sweep) rather than storing it"
            )
    with ws.runner_lock():
        return store_sweep(ws, plan)


def store_sweep(ws: Workspace, plan: SweepPlan) -> SweepPlan:
    """Store the sweep: its prompts, runs, enhancement runs, the sweep and its folder.

    The caller holds the runner lock. Returns the plan with its cached runs
    looked up again; those not recorded as succeeded are adopted.
    """
    plan = replace(plan, cached=frozenset(cached_runs(ws, [run.id for run in plan.runs])))
    repo = ws.repository
    # The enhancement runs: stored, and recorded as succeeded if only their
    # folder knew it (a deleted run, a new database).
    repo.add_prompts(derived.original for derived in plan.derived)
    repo.add_runs(derived.run for derived in plan.derived)
    for derived in plan.derived:
        if ws.store.verify_outputs(derived.run.id):
            adopt_unless_succeeded(ws, derived.run.id)
        repo.add_derived_prompt(derived.prompt, derived.original.id, derived.origin)
    repo.add_prompts(run.prompt for run in plan.runs)
    repo.add_runs(plan.runs)
    sweep_dir = ws.store.sweep_dir(plan.sweep_id)
    repo.add_sweep(
        plan.sweep_id, plan.name, plan.manifest, plan.overrides, str(sweep_dir), plan.runs
    )
    enhancements = [(derived.run.id, {"prompt": derived.original.name}) for derived in plan.derived]
    repo.link_stage_runs(plan.sweep_id, SweepStage.ENHANCE, enhancements)
    if not ws.store.has_sweep_record(plan.sweep_id):
        provenance = sweep_provenance(
            ws.settings.project_dir / "manifests",
            plan.manifest.get("model", {}),
            ws.commands,
        )
        ws.store.write_sweep(plan.sweep_id, plan.manifest, plan.overrides, provenance)
    _adopt_recovered(ws, plan)
    return plan


def _adopt_recovered(ws: Workspace, plan: SweepPlan) -> None:
    """Record as succeeded the cached runs that the database does not know succeeded."""
    statuses = ws.repository.statuses(plan.cached)
    for run_id in plan.cached:
        if statuses.get(run_id) is not RunStatus.SUCCEEDED:
            logger.info("Run %s has verified outputs; recording it as succeeded", run_id)
            adopt(ws, run_id)


def write_runs_jsonl(ws: Workspace, plan: SweepPlan) -> None:
    """The sweep folder's list of its runs: its own, then its stages' runs."""
    store = ws.store
    statuses = ws.repository.statuses(run.id for run in plan.runs)
    rows = [
        {
            "id": run.id,
            "stage": SweepStage.MAIN.value,
            "params": run.varying,
            "status": statuses[run.id].value if run.id in statuses else "deleted",
            "dir": str(store.run_dir(run.id)),
        }
        for run in plan.runs
    ]
    rows += [
        {
            "id": run.id,
            "stage": link.stage.value,
            "params": link.params,
            "status": run.status.value,
            "dir": str(store.run_dir(run.id)),
        }
        for link, run in ws.repository.sweep_runs(
            plan.sweep_id, [SweepStage.ENHANCE, SweepStage.UPSCALE]
        )
    ]
    store.write_sweep_runs(plan.sweep_id, rows)
