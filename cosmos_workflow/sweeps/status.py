"""A sweep's progress as `cosmos status` shows it, from its runs' database rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from cosmos_workflow.database.models import RunStatus, SweepStage
from cosmos_workflow.engine.eta import active_since, eta_seconds

# Runs whose model finished: they measure throughput.
_PROCESSED = (RunStatus.SUCCEEDED, RunStatus.FAILED)
# The order a sweep's stages run in.
_STAGE_ORDER = (SweepStage.ENHANCE, SweepStage.MAIN, SweepStage.UPSCALE)


class RunTimes(Protocol):
    """What the progress needs of one run (a row of DataRepository.sweep_run_times)."""

    id: str
    stage: SweepStage
    status: RunStatus
    started_at: datetime | None
    finished_at: datetime | None
    job_id: str | None
    target: str | None
    gpus: str | None


def sweep_status(
    sweep_id: str, name: str, runs: Sequence[RunTimes], now: datetime
) -> dict[str, Any]:
    """Counts, stage, ETA and running jobs of one sweep, JSON-ready.

    ``counts`` are of the sweep's own runs, ``stages`` of its stages' runs
    (enhancements, upscales). ``stage`` is the first stage (enhance, main,
    upscale) with unfinished runs; the ETA is that stage's, computed as the
    live display does: its runs that succeeded or failed since the current
    stretch of work began, over the time since then, applied to its runs
    not finished yet (None: unknown).

    Args:
        sweep_id: The sweep's id.
        name: The sweep's name.
        runs: Every run of the sweep, of every stage.
        now: The current time.
    """
    by_stage: dict[SweepStage, list[RunTimes]] = {stage: [] for stage in SweepStage}
    for run in runs:
        by_stage[run.stage].append(run)
    current = next(
        (stage for stage in _STAGE_ORDER if any(not r.status.is_final for r in by_stage[stage])),
        SweepStage.MAIN,
    )
    eta, since = _eta(by_stage[current], now)
    return {
        "id": sweep_id,
        "name": name,
        "counts": _counts(by_stage[SweepStage.MAIN]),
        "stage": current.value,
        "stages": {
            stage.value: _counts(members)
            for stage, members in by_stage.items()
            if stage is not SweepStage.MAIN and members
        },
        "eta_s": eta,
        "active_since": since.isoformat() if since is not None else None,
        "jobs": _running_jobs(runs, now),
    }


def _counts(runs: Sequence[RunTimes]) -> dict[str, int]:
    """Runs by status, and their total."""
    counts = {status.value: 0 for status in RunStatus}
    for run in runs:
        counts[run.status.value] += 1
    counts["total"] = len(runs)
    return counts


def _eta(runs: Sequence[RunTimes], now: datetime) -> tuple[float | None, datetime | None]:
    """Seconds until ``runs`` are finished (None: unknown), and since when they run."""
    ran = [
        run
        for run in runs
        if run.started_at is not None
        and (run.status in _PROCESSED or run.status is RunStatus.RUNNING)
    ]
    since = active_since(
        [
            (run.started_at, None if run.status is RunStatus.RUNNING else run.finished_at)
            for run in ran
        ],
        now,
    )
    eta = None
    if since is not None:
        processed = sum(
            1
            for run in ran
            if run.status in _PROCESSED and run.finished_at is not None and run.finished_at >= since
        )
        unfinished = sum(1 for run in runs if not run.status.is_final)
        eta = eta_seconds(processed, unfinished, (now - since).total_seconds())
    return eta, since


def _running_jobs(runs: Sequence[RunTimes], now: datetime) -> list[dict[str, Any]]:
    """The running runs grouped by job, oldest job first."""
    jobs: dict[str | None, list[RunTimes]] = {}
    for run in runs:
        if run.status is RunStatus.RUNNING:
            jobs.setdefault(run.job_id, []).append(run)
    entries = []
    for job_id, members in jobs.items():
        started = min((r.started_at for r in members if r.started_at is not None), default=None)
        entries.append(
            {
                "job_id": job_id,
                "target": members[0].target,
                "gpus": _gpus(members[0].gpus),
                "runs": len(members),
                "run_ids": sorted(r.id for r in members),
                "started_at": started.isoformat() if started is not None else None,
                "elapsed_s": (now - started).total_seconds() if started is not None else None,
            }
        )
    return sorted(entries, key=lambda job: (job["started_at"] or "", job["job_id"] or ""))


def _gpus(text: str | None) -> list[int]:
    """``"0,1"`` as stored on a run -> [0, 1]."""
    return [int(part) for part in (text or "").split(",") if part.strip().isdigit()]
