"""Planning a sweep: validate and expand a manifest, check every run, find the cached ones.

Planning writes nothing. A plan (:class:`SweepPlan`) is then stored and
executed by sweeps/session.py. The checks here (each run against its adapter
and the pool, the stages' runs against their model) are made before any
work, so that a sweep that cannot run is refused whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from cosmos_workflow.config.manager import ConfigManager
from cosmos_workflow.config.settings import Target
from cosmos_workflow.config.sources import ConfigSources
from cosmos_workflow.database.models import RunStatus
from cosmos_workflow.errors import Problem, ValidationFailure
from cosmos_workflow.local_ai.checks import check_prompt_videos
from cosmos_workflow.manifest.expansion import ExpansionLimits, expand
from cosmos_workflow.manifest.models import UpscaleStage
from cosmos_workflow.manifest.overrides import apply_sweep_overrides, fix_swept_keys, redact
from cosmos_workflow.manifest.specs import InputFile, ResolvedPrompt, RunSpec
from cosmos_workflow.outputs.store import OUTPUT_VIDEO
from cosmos_workflow.sweeps.derive import enhanced_origin, enhancement_spec, upscale_spec
from cosmos_workflow.sweeps.workspace import Workspace
from cosmos_workflow.utils.hashing import content_id


@dataclass(frozen=True)
class SweepPlan:
    """A validated, expanded manifest, ready to submit."""

    sweep_id: str
    name: str
    manifest: dict[str, Any]
    # A multirun's sweep (sweeps/multirun.py) has one list per Hydra job.
    overrides: list[str] | list[list[str]]
    runs: list[RunSpec]
    cached: frozenset[str]
    duplicates: int
    notes: list[str] = field(default_factory=list)
    # stages.enhance: the runs' prompts are enhanced first (``derived`` holds
    # each enhanced prompt, once known; ``renamed`` each planned run id's
    # id with the enhanced prompt; ``unenhanced`` the runs whose prompt is
    # not enhanced yet: their ids are known only then, and they are to run).
    enhance: bool = False
    derived: tuple[DerivedPrompt, ...] = ()
    renamed: dict[str, str] = field(default_factory=dict)
    unenhanced: frozenset[str] = frozenset()
    # stages.upscale: weight and prompt of the 4K upscale of every succeeded run.
    upscale: UpscaleStage | None = None

    @property
    def to_run(self) -> list[RunSpec]:
        """Runs that are not cached."""
        return [run for run in self.runs if run.id not in self.cached]


@dataclass(frozen=True)
class DerivedPrompt:
    """An enhanced prompt of a sweep: the prompt, and the enhancement run that made it."""

    prompt: ResolvedPrompt
    run: RunSpec

    @property
    def original(self) -> ResolvedPrompt:
        """The prompt it was made from."""
        return self.run.prompt

    @property
    def origin(self) -> dict[str, Any]:
        """How it was made (stored with it)."""
        return enhanced_origin(self.run)


def plan_experiment(
    ws: Workspace, composed: Mapping[str, Any], overrides: list[str], sources: ConfigSources
) -> SweepPlan:
    """Plan the experiment of a composed config (``+experiment=NAME``), as cosmos-batch does.

    Raises:
        ValidationFailure: no experiment is selected. ManifestError: see :func:`plan_sweep`.
    """
    manifest = ConfigManager.manifest_part(composed)
    if "prompts" not in manifest and "name" not in manifest:
        raise ValidationFailure(
            "no experiment selected: add +experiment=NAME "
            f"(available: {_available_experiments(ws.settings.project_dir)})"
        )
    return plan_sweep(ws, manifest, overrides, sources)


def _available_experiments(project_dir: Path) -> str:
    folder = project_dir / "manifests" / "experiment"
    names = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    return ", ".join(names) or "none"


def plan_sweep(
    ws: Workspace, manifest: dict[str, Any], overrides: list[str], sources: ConfigSources
) -> SweepPlan:
    """Validate and expand a manifest; find which runs are cached.

    A command-line override of a swept key fixes that key. Writes
    nothing. Raises ManifestError on any problem.
    """
    manifest, notes = fix_swept_keys(apply_sweep_overrides(manifest, overrides), overrides)
    manifest = with_target_image(ws, manifest)
    limits = ws.settings.limits
    expansion = expand(
        manifest,
        ws.settings.project_dir,
        sources.blame,
        check_run=run_checker(ws),
        check_inputs=partial(check_prompt_videos, probes=ws.probes),
        limits=ExpansionLimits(limits.prompt_chars, limits.max_runs, ws.settings.confirm_runs),
    )
    ids = expansion.run_ids
    stages = expansion.manifest.stages
    plan = SweepPlan(
        sweep_id=sweep_id_of(expansion.manifest.name, ids, stages.enhance),
        name=expansion.manifest.name,
        manifest=manifest,
        overrides=redact(overrides),
        runs=expansion.runs,
        cached=frozenset(cached_runs(ws, ids)),
        duplicates=expansion.duplicates,
        notes=notes + expansion.notes,
        enhance=stages.enhance,
        upscale=stages.upscale,
    )
    if plan.enhance:
        enhancement_runs(ws, plan)  # refuse a model without upsampler before any work
    if plan.upscale is not None:
        _check_upscale_stage(ws, plan, plan.upscale)
    return plan


def sweep_id_of(name: str, run_ids: list[str], enhance: bool = False) -> str:
    """A sweep's id: its name and its runs as planned.

    With stages.enhance, the planned runs are those of the prompts before
    enhancement (the sweep then runs the enhanced prompts): the id is known
    before the upsampler runs, and a dry run gives the id the sweep is
    stored with. It is not the id of the same runs without enhancement.
    """
    content: dict[str, Any] = {"name": name, "runs": run_ids}
    if enhance:
        content["enhance"] = True
    return content_id("sw", content)


# -- the checks of a run on the pool ---------------------------------------------
def pool_image(pool: list[Target]) -> str | None:
    """The image every container target of the pool runs (None: no container target).

    Raises:
        ValidationFailure: the pool's container targets run different images.
    """
    images = {t.container_image for t in pool} - {None}
    if len(images) > 1:
        raise ValidationFailure(
            f"the targets of the pool run different images ({', '.join(sorted(images))}); "
            "a run's image is part of its identity, so give them one image"
        )
    return next(iter(images), None)


def with_target_image(ws: Workspace, manifest: dict[str, Any]) -> dict[str, Any]:
    """A container target's image is part of every run's identity."""
    image = pool_image(ws.settings.pool)
    model = manifest.get("model")
    if image is None or not isinstance(model, dict) or model.get("image") is not None:
        return manifest
    return {**manifest, "model": {**model, "image": image}}


def run_checker(ws: Workspace) -> Callable[[RunSpec], list[Problem]]:
    """Problems a run would meet on the pool with its adapter."""
    adapters = ws.adapters()
    pool = ws.settings.pool
    image = pool_image(pool)
    most_gpus = max(pool, key=lambda t: len(t.gpus))

    def check(run: RunSpec) -> list[Problem]:
        adapter = adapters.get(run.adapter)
        if adapter is None:
            known = ", ".join(sorted(adapters))
            return [Problem("model.adapter", f"unknown adapter {run.adapter!r} ({known})")]
        problems = adapter.validate(run)
        if image is not None and run.model.get("image") != image:
            problems.append(
                Problem(
                    "model.image",
                    f"is {run.model.get('image')!r} but the targets run {image!r}",
                )
            )
        if run.model["num_gpus"] > len(most_gpus.gpus):
            problems.append(
                Problem(
                    "model.num_gpus",
                    f"{run.model['num_gpus']} GPUs asked, target {most_gpus.name!r} "
                    f"has {len(most_gpus.gpus)} (the most of the pool)",
                )
            )
        return problems

    return check


def refuse_problems(
    ws: Workspace, spec: RunSpec, what: str, problems: list[Problem] | None = None
) -> None:
    """Raise ValidationFailure if ``spec`` (or the caller) has problems."""
    found = [*(problems or []), *run_checker(ws)(spec)]
    if found:
        detail = "; ".join(f"{p.key_path}: {p.message}" for p in found)
        raise ValidationFailure(f"{what}: {detail}")


# -- the stages' runs ----------------------------------------------------------------
def enhancement_key(run: RunSpec) -> tuple[Any, ...]:
    """What decides a run's enhancement: its prompt and its model family, version, image."""
    model = run.model
    return (run.prompt.id, run.adapter, model.get("version"), model.get("image"))


def enhancement_runs(ws: Workspace, plan: SweepPlan) -> dict[tuple[Any, ...], RunSpec]:
    """The enhancement run of each prompt and model family of the plan.

    Keyed by :func:`enhancement_key` of the runs that use it.

    Raises:
        ValidationFailure: a model has no upsampler, or its run a problem on the pool.
    """
    specs: dict[tuple[Any, ...], RunSpec] = {}
    for run in plan.runs:
        key = enhancement_key(run)
        if key in specs:
            continue
        where = f"stages.enhance (prompt {run.prompt.name!r})"
        spec = enhancement_spec(run.prompt, run.model, where)
        refuse_problems(ws, spec, where)
        specs[key] = spec
    return specs


def _check_upscale_stage(ws: Workspace, plan: SweepPlan, stage: UpscaleStage) -> None:
    """Refuse stages.upscale before any work if a run's model could not be upscaled so.

    Raises:
        ValidationFailure: no upscaler for the model, a bad prompt, or a
            problem of the upscale run on the pool (image, GPUs).
    """
    placeholder = InputFile(Path(OUTPUT_VIDEO), "0" * 64)
    seen = set()
    for run in plan.runs:
        key = (run.adapter, run.model.get("version"), run.model.get("image"))
        if key in seen:
            continue
        seen.add(key)
        where = f"stages.upscale (run {run.id})"
        try:
            spec = upscale_spec(run, placeholder, stage.weight, stage.prompt)
        except ValidationFailure as exc:
            raise ValidationFailure(f"{where}: {exc}") from exc
        refuse_problems(ws, spec, where)


# -- the cache -------------------------------------------------------------------------
def cached_runs(ws: Workspace, run_ids: list[str]) -> set[str]:
    """Runs whose outputs exist: here (succeeded in the database, or verified on
    disk), or in another output tree that shares this database (another machine's
    runner made them; they are not made again).

    Here, outputs must have their recorded sizes; with ``cache.verify: sha256``
    their content must match outputs.sha256 too.
    """
    store = ws.store
    on_disk = store.with_outputs(run_ids)
    if not ws.database_exists():
        return {run_id for run_id in on_disk if store.verify_outputs(run_id)}
    statuses = ws.repository.statuses(on_disk)
    trust_sizes = ws.settings.cache.verify == "size"  # else every output is hashed
    here = {
        run_id
        for run_id in on_disk
        if (trust_sizes and statuses.get(run_id) is RunStatus.SUCCEEDED)
        or store.verify_outputs(run_id)
    }
    elsewhere = ws.repository.succeeded_outside(
        [run_id for run_id in run_ids if run_id not in on_disk], str(store.root)
    )
    return here | set(elsewhere)
