"""Plans and sweeps as `cosmos-batch` and `cosmos` print them: a dry run, a summary, the report.

One printer of a dry run's plan (:func:`print_plan`) serves `cosmos-batch
... dry_run=true` and the dry runs of `cosmos inference`, `enhance` and
`upscale`; :func:`finish_sweep` runs a planned sweep (or prints its plan)
for both commands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cosmos_workflow.cli.common import emit
from cosmos_workflow.cli.console import make_progress, stderr_console
from cosmos_workflow.errors import CosmosError
from cosmos_workflow.utils.words import counted

if TYPE_CHECKING:
    from cosmos_workflow.api import CosmosAPI, SweepPlan, SweepSummary

logger = logging.getLogger(__name__)
DRY_RUN_DONE = "dry run: nothing was executed"
# A run whose id is known only later: its prompt is enhanced first, or its parent made first.
UNKNOWN_ID = {"main": "(once enhanced)", "enhance": "(once made)", "upscale": "(once made)"}
STAGE_WHEN = {"before": "before the sweep", "after": "after the sweep"}


def _format_params(params: dict[str, Any]) -> str:
    from cosmos_workflow.api import OVERRIDES_PARAM

    shown = [f"{k}={v}" for k, v in params.items() if k not in ("prompt", OVERRIDES_PARAM)]
    return " ".join(shown + list(params.get(OVERRIDES_PARAM, [])))


# -- a dry run --------------------------------------------------------------------------
def print_plan(data: dict[str, Any]) -> None:
    """A dry run's plan (CosmosAPI.preview): every run, cached or to run in which job, the
    stages' runs, the jobs and where they go, notes."""
    counts = data["counts"]
    tally = f"{counts['cached']} cached, {counts['to_run']} to run"
    if data["sweep_id"]:
        click.echo(f"sweep {data['sweep_id']} ({data['name']}): {counts['runs']} runs, {tally}")
    else:
        click.echo(f"{data['name']}: {counted(counts['runs'], 'run')}, {tally}")
    _print_runs(data["runs"], "main")
    for stage, found in data["stages"].items():
        counts = found["counts"]
        click.echo(
            f"{stage} stage ({STAGE_WHEN[found['when']]}): {counts['runs']} runs, "
            f"{counts['cached']} cached, {counts['to_run']} to run"
        )
        _print_runs(found["runs"], stage)
    _print_jobs(data["jobs"])
    if data["stages"]:
        total = data["total"]
        click.echo(
            f"total: {total['to_run']} runs to run in {counted(total['jobs'], 'job')}, "
            f"{total['cached']} cached"
        )
    for note in data["notes"]:
        click.echo(f"note: {note}")
    click.echo(DRY_RUN_DONE)


def _print_runs(runs: list[dict[str, Any]], stage: str) -> None:
    for run in runs:
        shown = run["id"] or UNKNOWN_ID[stage]
        state = "cached" if run["cached"] else "to run"
        job = f"  job {run['job']}" if run["job"] else ""
        params = _format_params(run["params"])
        click.echo(f"  {shown:<19}  {run['prompt']:<16} {params:<40} {state}{job}")


def _print_jobs(jobs: list[dict[str, Any]]) -> None:
    if not jobs:
        return
    targets = sorted({job["target"] for job in jobs})
    click.echo(f"jobs: {counted(len(jobs), 'model load')} on {', '.join(targets)}")
    for job in jobs:
        gpus = ",".join(str(gpu) for gpu in job["gpus"])
        where = f"on {job['target']} {'gpu' if len(job['gpus']) == 1 else 'gpus'} {gpus}"
        click.echo(
            f"  job {job['job']:<3} {job['stage']:<8} {job['adapter']:<20} "
            f"{counted(job['runs'], 'run'):<8} {where}"
        )


# -- a real run --------------------------------------------------------------------------
def print_notes(plan: SweepPlan) -> None:
    """The plan's notes, its upscale stage, and the sweep points merged."""
    for note in plan.notes:
        click.echo(f"note: {note}")
    if plan.upscale is not None:
        click.echo(
            "note: stages.upscale: every succeeded run is upscaled to 4K after the sweep "
            f"(weight {plan.upscale.weight:g})"
        )
    if plan.duplicates:
        click.echo(
            f"note: {plan.duplicates} sweep point(s) gave an already listed run and were merged"
        )


def print_summary(plan: SweepPlan, summary: SweepSummary) -> None:
    """Counts of the sweep and its stages, and where the outputs are."""
    tally = summary.tally
    print_notes(plan)
    if plan.enhance:
        _print_stage("enhance stage", "enhancement", summary.enhancements, summary.enhance_tally)
    cancelled = f", {len(tally.cancelled)} cancelled" if tally.cancelled else ""
    others = f"; {len(tally.by_others)} by another runner" if tally.by_others else ""
    click.echo(
        f"sweep {summary.sweep_id} ({plan.name}): {summary.total} runs: "
        f"{summary.executed} executed ({len(tally.succeeded)} succeeded, "
        f"{len(tally.failed)} failed{others}), {summary.cached} cached{cancelled}"
    )
    if tally.failed:
        click.echo("failed runs (see their logs/run.log):")
        for run_id in tally.failed:
            click.echo(f"  {summary.runs_dir / run_id}")
    if tally.cancelled:
        click.echo("cancelled runs (cosmos kill); they run again the next time:")
        for run_id in tally.cancelled:
            click.echo(f"  {run_id}")
    if plan.upscale is not None:
        skipped = summary.upscale_skipped
        _print_stage("upscale stage", "upscale", summary.upscales, summary.upscale_tally, skipped)
        for run_id in summary.upscale_tally.failed:
            click.echo(f"  failed: {summary.runs_dir / run_id}")
        for run_id, reason in skipped.items():
            click.echo(f"  not upscaled: {run_id}: {reason}")
    click.echo(f"runs:  {summary.runs_dir}/<run_id>/")
    click.echo(f"sweep: {summary.sweep_dir}/")


def _print_stage(
    label: str, noun: str, runs: list[str], tally: Any, skipped: dict[str, str] | None = None
) -> None:
    executed = len(tally.succeeded) + len(tally.failed)
    cached = len(runs) - executed - len(tally.cancelled)
    cancelled = f", {len(tally.cancelled)} cancelled" if tally.cancelled else ""
    not_done = f", {len(skipped)} not upscaled" if skipped else ""
    click.echo(
        f"{label}: {len(runs)} {noun} runs: {executed} executed ({len(tally.succeeded)} "
        f"succeeded, {len(tally.failed)} failed), {cached} cached{cancelled}{not_done}"
    )


def summary_data(plan: SweepPlan, summary: SweepSummary, report: Path | None) -> dict[str, Any]:
    """A finished sweep as JSON: counts, each run's status and weights, the folders."""
    tally = summary.tally
    status = {run_id: "failed" for run_id in tally.failed}
    status.update(dict.fromkeys(tally.cancelled, "cancelled"))
    runs = [
        {
            "id": run.id,
            "prompt_id": run.prompt.id,
            "prompt": run.prompt.name,
            "params": run.varying,
            "weights": {k: v for k, v in (run.model.get("weights") or {}).items() if v is not None},
            "status": status.get(run.id, "succeeded"),
            "output_dir": str(summary.runs_dir / run.id),
        }
        for run in plan.runs
    ]
    return {
        "sweep_id": summary.sweep_id,
        "name": plan.name,
        "total": summary.total,
        "executed": summary.executed,
        "cached": summary.cached,
        "failed": list(tally.failed),
        "cancelled": list(tally.cancelled),
        "by_another_runner": list(tally.by_others),
        "runs": runs,
        "sweep_dir": str(summary.sweep_dir),
        "report": str(report) if report else None,
    }


def finish_sweep(
    api: CosmosAPI,
    plan: SweepPlan,
    on_stored: Callable[[SweepPlan], None] | None = None,
    *,
    dry_run: bool | None = None,
    as_json: bool = False,
) -> int:
    """Print the plan of a dry run, or execute it, print the summary and write the report.

    The report is written whatever the outcome (failed runs, an error, Ctrl-C).

    Args:
        api: The API to run it through.
        plan: The planned sweep.
        on_stored: Also called with the sweep as stored (see CosmosAPI.run_sweep).
        dry_run: Only print the plan (None: the ``dry_run`` setting decides).
        as_json: Print JSON (the plan, or the summary) instead of lines.

    Returns:
        The exit code: 1 if a run failed, was cancelled or was not upscaled.
    """
    if api.settings.dry_run if dry_run is None else dry_run:
        emit(api.preview(plan), as_json, print_plan)
        return 0
    summary: SweepSummary | None = None
    # The sweep once stored (stages.enhance gives it its runs only after enhancing).
    stored: list[SweepPlan] = []

    def remember(stored_plan: SweepPlan) -> None:
        stored.append(stored_plan)
        if on_stored is not None:
            on_stored(stored_plan)

    interrupted = False
    report = None
    try:
        summary = api.run_sweep(plan, make_progress(stderr_console()), on_stored=remember)
        if not as_json:
            print_summary(plan, summary)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if stored:
            # After Ctrl-C, quit soon: no new thumbnails (cosmos report makes them).
            report = write_report(api, stored[-1].sweep_id, thumbnails=not interrupted)
            if report is not None and not as_json:
                click.echo(f"report: {report}")
    if as_json:
        emit(summary_data(stored[-1], summary, report), True, print)
    tallies = (summary.tally, summary.upscale_tally)
    failed = any(t.failed or t.cancelled for t in tallies) or summary.upscale_skipped
    return 1 if failed else 0


def write_report(api: CosmosAPI, sweep_id: str, thumbnails: bool = True) -> Path | None:
    """Write or refresh the sweep's report.html; its path (None, with a warning, if it failed).

    A report that cannot be written is a warning: the sweep's exit code stands.

    Args:
        api: The API the sweep ran through.
        sweep_id: The stored sweep.
        thumbnails: Make the thumbnails that are missing (False: show only those made).
    """
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return api.report(sweep_id, thumbnails=thumbnails).path
    except (CosmosError, SQLAlchemyError, OSError) as exc:
        logger.warning(
            "The report of sweep %s was not written: %s; the sweep's result stands. "
            "Write it again with: cosmos report %s",
            sweep_id,
            exc,
            sweep_id,
        )
        return None
