"""A sweep's stages: its prompts enhanced before it runs, its succeeded runs upscaled after.

stages.enhance: each prompt (per model family) is given to the prompt
upsampler first; the sweep then runs the enhanced prompts, so its run ids
are those of the enhanced prompts (its id is that of its runs as planned,
so a dry run knows it). stages.upscale: every succeeded
run is upscaled to 4K afterwards. The runs of both stages are members of
the sweep (stages ``enhance`` and ``upscale``). What each stage's runs are
(the model family tables) is in sweeps/derive.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from cosmos_workflow.database.models import RunStatus, SweepStage
from cosmos_workflow.engine.outcome import RunTally
from cosmos_workflow.engine.progress import ProgressSink
from cosmos_workflow.errors import ExecutionFailure, ValidationFailure
from cosmos_workflow.execution.adapters.upscale import UPSCALE_OF
from cosmos_workflow.manifest.models import UpscaleStage
from cosmos_workflow.manifest.specs import InputFile, RunSpec
from cosmos_workflow.outputs.store import OUTPUT_PROMPT, OUTPUT_VIDEO
from cosmos_workflow.sweeps.derive import (
    ORIGIN_ENHANCED,
    enhanced_prompt,
    upscale_origin,
    upscale_spec,
)
from cosmos_workflow.sweeps.plan import (
    DerivedPrompt,
    SweepPlan,
    cached_runs,
    enhancement_key,
    enhancement_runs,
    refuse_problems,
)
from cosmos_workflow.sweeps.queue import adopt_unless_succeeded, requeue_lost
from cosmos_workflow.sweeps.workspace import Workspace
from cosmos_workflow.utils.hashing import sha256_file

logger = logging.getLogger(__name__)


@dataclass
class StageOutcome:
    """What a stage did: its runs, how the executed ones ended, what it could not do.

    Attributes:
        runs: The stage's runs (made, or cached).
        tally: How the executed ones ended.
        skipped: Succeeded runs that could not be upscaled here, and why.
    """

    runs: list[str] = field(default_factory=list)
    tally: RunTally = field(default_factory=RunTally)
    skipped: dict[str, str] = field(default_factory=dict)


# -- stages.enhance ------------------------------------------------------------------
def with_enhanced_prompts(ws: Workspace, plan: SweepPlan) -> SweepPlan:
    """The plan with every prompt that is enhanced already replaced by its enhanced one.

    Executes nothing (dry runs, storing a sweep without running it). The
    runs of prompts not enhanced yet stay as planned and are listed in
    ``unenhanced`` (their ids are known once the upsampler ran), with a note.
    """
    if plan.derived or not plan.runs:
        return plan
    specs = enhancement_runs(ws, plan)
    return _enhanced(ws, plan, specs, cached_runs(ws, [spec.id for spec in specs.values()]))


def enhance_prompts(
    ws: Workspace, plan: SweepPlan, progress: ProgressSink
) -> tuple[SweepPlan, StageOutcome]:
    """Enhance the prompts not enhanced yet; the plan then runs the enhanced prompts.

    Returns:
        The plan with every prompt enhanced, and the stage's runs (made, or cached).

    Raises:
        ExecutionFailure: the upsampler failed for a prompt (nothing else ran).
    """
    specs = enhancement_runs(ws, plan)
    ids = list(dict.fromkeys(spec.id for spec in specs.values()))
    done = cached_runs(ws, ids)
    pending = list({spec.id: spec for spec in specs.values() if spec.id not in done}.values())
    outcome = StageOutcome(runs=ids)
    if pending:
        outcome.tally = run_stage(ws, SweepStage.ENHANCE, pending, progress)
        failed = [spec.id for spec in pending if spec.id not in outcome.tally.succeeded]
        if failed:
            raise ExecutionFailure(
                f"the prompt upsampler failed for {len(failed)} prompt(s): "
                f"{', '.join(failed)} (see cosmos logs RUN_ID); nothing else ran"
            )
    return _enhanced(ws, plan, specs, set(ids)), outcome


def _enhanced(
    ws: Workspace, plan: SweepPlan, specs: dict[tuple[Any, ...], RunSpec], done: set[str]
) -> SweepPlan:
    """The plan with each run's prompt replaced by its enhanced prompt, where it is made.

    The sweep keeps its id (see sweeps/plan.py, :func:`sweep_id_of`).
    """
    derived = {
        key: DerivedPrompt(enhanced_prompt(spec.prompt, enhanced_text(ws, spec)), spec)
        for key, spec in specs.items()
        if spec.id in done
    }
    runs: dict[str, RunSpec] = {}
    renamed: dict[str, str] = {}
    unenhanced: set[str] = set()
    for run in plan.runs:
        made = derived.get(enhancement_key(run))
        if made is None:
            unenhanced.add(run.id)
            runs.setdefault(run.id, run)
            continue
        new = RunSpec(made.prompt, run.model, run.varying)
        runs.setdefault(new.id, new)
        renamed[run.id] = new.id
    notes = list(plan.notes)
    pending = {spec.id for spec in specs.values() if spec.id not in done}
    if pending:
        notes.append(
            f"stages.enhance: {len(pending)} prompt(s) are enhanced first; the ids of "
            "their runs are known after that"
        )
    known = [run_id for run_id in runs if run_id not in unenhanced]
    return replace(
        plan,
        runs=list(runs.values()),
        cached=frozenset(cached_runs(ws, known)),
        notes=notes,
        derived=tuple(derived.values()),
        renamed=renamed,
        unenhanced=frozenset(unenhanced),
    )


def enhanced_text(ws: Workspace, spec: RunSpec) -> str:
    """The text an enhancement run made: its verified output, or the prompt it made.

    A run made in another output tree (several machines, one database)
    has no folder here; the enhanced prompt it made is in the database.

    Raises:
        ExecutionFailure: neither is there (the output was changed or lost).
    """
    if ws.store.verify_outputs(spec.id):
        path = ws.store.run_dir(spec.id) / OUTPUT_PROMPT
        return path.read_text(encoding="utf-8").strip()
    made = ws.repository.prompt_made_by(spec.id, ORIGIN_ENHANCED)
    if made is not None:
        return made.text
    raise ExecutionFailure(
        f"the upsampled prompt of run {spec.id} is missing or changed in "
        f"{ws.store.run_dir(spec.id)}: delete that run "
        f"(cosmos delete run {spec.id} --delete-outputs) and enhance again"
    )


# -- stages.upscale -------------------------------------------------------------------
def upscale_stage(
    ws: Workspace, plan: SweepPlan, stage: UpscaleStage, progress: ProgressSink
) -> StageOutcome:
    """Upscale every succeeded run of the sweep (upscales already made are cached).

    The upscale runs become members of the sweep (stage ``upscale``), so
    `cosmos status` and `cosmos kill --sweep` cover them.
    """
    repo = ws.repository
    outcome = StageOutcome()
    statuses = repo.statuses(run.id for run in plan.runs)
    parents = [run for run in plan.runs if statuses.get(run.id) is RunStatus.SUCCEEDED]
    specs: dict[str, RunSpec] = {}
    params: dict[str, dict[str, Any]] = {}
    for parent in parents:
        try:
            spec = upscale_spec_of(ws, parent.id, stage.weight, stage.prompt)
            refuse_problems(ws, spec, f"stages.upscale of run {parent.id}")
        except ValidationFailure as exc:
            # Its output is not here to read (changed, or made in another
            # output tree): the others are upscaled all the same.
            outcome.skipped[parent.id] = str(exc)
            continue
        prompt_of = repo.get_run(parent.id).prompt_id
        repo.add_derived_prompt(spec.prompt, prompt_of, upscale_origin(parent.id))
        # Two parents with the same output make the same upscale: it runs once.
        specs.setdefault(spec.id, spec)
        shown = params.setdefault(spec.id, {**parent.varying, UPSCALE_OF: []})
        shown[UPSCALE_OF].append(parent.id)
    outcome.runs = list(specs)
    repo.add_runs(specs.values())
    repo.link_runs((shown[UPSCALE_OF][0], spec_id) for spec_id, shown in params.items())
    cached = cached_runs(ws, outcome.runs)
    for run_id in cached:
        adopt_unless_succeeded(ws, run_id)
    to_run = [spec for spec in specs.values() if spec.id not in cached]
    links = list(params.items())
    if to_run:
        joins = (plan.sweep_id, links)
        outcome.tally = run_stage(ws, SweepStage.UPSCALE, to_run, progress, joins)
    else:
        repo.link_stage_runs(plan.sweep_id, SweepStage.UPSCALE, links)
    return outcome


def upscale_spec_of(ws: Workspace, parent_id: str, weight: float, text: str | None) -> RunSpec:
    """The run that upscales the output video of the succeeded run ``parent_id``.

    Raises:
        ValidationFailure: the run has not succeeded, its outputs are not
            here or changed, it made no video, or its model has no upscaler.
    """
    parent = ws.repository.get_run(parent_id)
    if parent.status is not RunStatus.SUCCEEDED:
        raise ValidationFailure(
            f"run {parent_id} is {parent.status.value}: only a succeeded run's output "
            "can be upscaled"
        )
    if not ws.store.verify_outputs(parent_id):
        raise ValidationFailure(
            f"the outputs of run {parent_id} are not in {ws.store.run_dir(parent_id)} "
            "or do not match their checksums (outputs.sha256); upscale it where it was "
            f"made, or make it again here: cosmos delete run {parent_id} --delete-outputs, "
            "then run it again"
        )
    video = ws.store.run_dir(parent_id) / OUTPUT_VIDEO
    if not video.is_file():
        raise ValidationFailure(f"run {parent_id} made no video to upscale")
    output = InputFile(video.resolve(), sha256_file(video))
    return upscale_spec(RunSpec.from_dict(parent.spec), output, weight, text)


# -- both ----------------------------------------------------------------------------------
def run_stage(
    ws: Workspace,
    stage: SweepStage,
    specs: list[RunSpec],
    progress: ProgressSink,
    joins: tuple[str, list[tuple[str, dict[str, Any]]]] | None = None,
) -> RunTally:
    """Store and execute a stage's runs (their prompts are stored already).

    Args:
        ws: The workspace.
        stage: Which stage.
        specs: The runs to execute.
        progress: Where progress goes.
        joins: (sweep id, links): the stage's runs (cached ones too, with
            their params) join that sweep in the transaction that queues
            ``specs``, so `cosmos kill --sweep` never misses a queued run.
    """
    repo = ws.repository
    repo.add_prompts(spec.prompt for spec in specs)
    repo.add_runs(specs)
    ids = [spec.id for spec in specs]
    unreachable = ws.preflight()
    logger.info("%s stage: %d run(s)", stage.value, len(specs))
    requeue_lost(ws, ids)
    if joins is None:
        repo.enqueue(ids)
    else:
        repo.link_stage_runs(joins[0], stage, joins[1], enqueue=ids)
    progress.start(len(specs), 0, len(specs))
    try:
        return ws.dispatch(specs, progress, unreachable)
    finally:
        progress.finish()
