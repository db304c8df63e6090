"""CosmosAPI: the one entry point for the CLI, cosmos-batch and any UI."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cosmos_workflow.config.settings import Settings, Target
from cosmos_workflow.config.sources import ConfigSources
from cosmos_workflow.config.targets import ConfiguredTarget
from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.database.engine import (
    create_db_engine,
    current_revision,
    head_revision,
    migrate,
    parse_url,
    session_factory,
)
from cosmos_workflow.database.models import Prompt, Run, RunStatus, Sweep, SweepStage
from cosmos_workflow.database.ratings import check_rating
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.database.search import MAX_SEARCH_CHARS, matched_fields
from cosmos_workflow.engine.control import KillReport, LogResult, RunControl
from cosmos_workflow.engine.dispatch import DispatchContext, Dispatcher, RunnerIdentity
from cosmos_workflow.engine.progress import NullProgress, ProgressSink
from cosmos_workflow.engine.runner import RunTally
from cosmos_workflow.errors import (
    CosmosError,
    ExecutionFailure,
    NetworkFailure,
    NotFoundFailure,
    Problem,
    ValidationFailure,
)
from cosmos_workflow.execution.adapters.base import ModelAdapter
from cosmos_workflow.execution.adapters.registry import build_adapters
from cosmos_workflow.execution.adapters.upscale import UPSCALE_OF
from cosmos_workflow.execution.targets.base import Executor
from cosmos_workflow.execution.targets.registry import ExecutorContext, make_executor
from cosmos_workflow.local_ai.checks import check_prompt_videos, check_video_folder
from cosmos_workflow.local_ai.prepare import DEFAULT_FPS, PrepareResult, prepare_inputs
from cosmos_workflow.local_ai.probe import ProbeCache
from cosmos_workflow.local_ai.video_dir import detect_videos
from cosmos_workflow.manifest.expansion import expand, pydantic_problems
from cosmos_workflow.manifest.models import ModelConfig, UpscaleStage
from cosmos_workflow.manifest.overrides import fix_swept_keys, redact
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, ResolvedPrompt, RunSpec
from cosmos_workflow.outputs.provenance import sweep_provenance
from cosmos_workflow.outputs.report import ReportResult, SweepReport
from cosmos_workflow.outputs.store import OUTPUT_PROMPT, OUTPUT_VIDEO, OutputStore
from cosmos_workflow.sweeps.derive import (
    DEFAULT_UPSCALE_WEIGHT as DEFAULT_UPSCALE_WEIGHT,
)
from cosmos_workflow.sweeps.derive import (
    ORIGIN_ENHANCED,
    UPSAMPLER_ADAPTERS,
    enhanced_origin,
    enhanced_prompt,
    enhancement_spec,
    upscale_origin,
    upscale_spec,
)
from cosmos_workflow.sweeps.status import sweep_status
from cosmos_workflow.utils.clock import Clock, SystemClock
from cosmos_workflow.utils.hashing import content_id, sha256_file
from cosmos_workflow.utils.step_progress import StepProgress

logger = logging.getLogger(__name__)

# How long a deletion waits for another short operation to release the output tree.
DELETE_LOCK_WAIT_S = 10.0
# Run statuses, for callers that filter or display them.
RUN_STATUSES: tuple[str, ...] = tuple(status.value for status in RunStatus)


@dataclass(frozen=True)
class SweepPlan:
    """A validated, expanded manifest, ready to submit."""

    sweep_id: str
    name: str
    manifest: dict[str, Any]
    # A multirun's sweep (api/multirun.py) has one list per Hydra job.
    overrides: list[str] | list[list[str]]
    runs: list[RunSpec]
    cached: frozenset[str]
    duplicates: int
    notes: list[str] = field(default_factory=list)
    # stages.enhance: the runs' prompts are enhanced first (``derived`` holds
    # each enhanced prompt, once known; ``renamed`` each planned run id's
    # id with the enhanced prompt).
    enhance: bool = False
    derived: tuple[DerivedPrompt, ...] = ()
    renamed: dict[str, str] = field(default_factory=dict)
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


@dataclass
class SweepSummary:
    """How a sweep ended."""

    sweep_id: str
    sweep_dir: Path
    runs_dir: Path
    total: int
    cached: int
    tally: RunTally = field(default_factory=RunTally)
    # stages.upscale: the upscale runs (made, or cached) and how the executed ones ended.
    upscales: list[str] = field(default_factory=list)
    upscale_tally: RunTally = field(default_factory=RunTally)
    # Succeeded runs that could not be upscaled here, and why.
    upscale_skipped: dict[str, str] = field(default_factory=dict)

    @property
    def executed(self) -> int:
        """Runs executed in this invocation (whatever their outcome)."""
        return len(self.tally.succeeded) + len(self.tally.failed)


@dataclass(frozen=True)
class InferenceResult:
    """Outcome of `cosmos inference` (and of one enhancement or upscale run)."""

    run_id: str
    status: str
    cached: bool
    output_dir: Path


@dataclass(frozen=True)
class EnhanceResult:
    """Outcome of `cosmos enhance`.

    Attributes:
        prompt_id: The enhanced prompt (None if the upsampler failed).
        created: True if that prompt was new.
        parent_id: The prompt it was made from.
        run: The upsampler's run.
    """

    prompt_id: str | None
    created: bool
    parent_id: str
    run: InferenceResult


class CosmosAPI:
    """Facade over manifests, the database, the output tree and execution.

    Args:
        settings: Validated settings.
        clock: Time source (tests inject a fixed one).
        commands: Local command wrapper (git, local model processes).
        targets: Every configured target (status, logs and kill look at them);
            by default only the selected one, ``settings.target``.
        probes: Facts of the input videos probed so far (a multirun's jobs
            share one, so that each video is probed once); by default, a new one.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        commands: LocalCommandExecutor | None = None,
        targets: list[ConfiguredTarget] | None = None,
        probes: ProbeCache | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock or SystemClock()
        self._commands = commands or LocalCommandExecutor()
        self._probes = probes or ProbeCache()
        self.store = OutputStore(settings.outputs_dir)
        self._repo: DataRepository | None = None
        self._targets = targets or [
            ConfiguredTarget(target.name, "config", target) for target in settings.pool
        ]
        self._executors: dict[str, Executor] = {}
        # The composed Hydra config (from_project), e.g. the model section for inference.
        self.composed: dict[str, Any] = {}

    @classmethod
    def from_project(
        cls,
        directory: Path | None = None,
        overrides: Sequence[str] = (),
        *,
        environ: Mapping[str, str] | None = None,
        all_targets: bool = False,
        clock: Clock | None = None,
    ) -> CosmosAPI:
        """The API of the project at ``directory`` (or its nearest parent), composed with Hydra.

        Args:
            directory: A folder inside the project; by default the current one
                ($COSMOS_PROJECT_DIR, when set, wins).
            overrides: Hydra overrides of conf/ (``--set`` on the CLI).
            environ: The environment (COSMOS_* settings); by default os.environ.
            all_targets: Also compose every target in conf/target/ (status, logs, kill).
            clock: Time source (tests inject a fixed one).

        Raises:
            ValidationFailure: no project, a bad override or invalid settings.
        """
        from cosmos_workflow.config.compose import compose_config
        from cosmos_workflow.config.manager import ConfigManager
        from cosmos_workflow.config.project import find_project
        from cosmos_workflow.config.targets import configured_targets

        env = os.environ if environ is None else environ
        project = find_project(Path(directory) if directory else Path.cwd(), env)
        composed = compose_config(project, list(overrides))
        manager = ConfigManager(project, env)
        settings = manager.settings(composed)
        targets = (
            configured_targets(manager, list(overrides), settings.target) if all_targets else None
        )
        api = cls(settings, clock=clock, targets=targets)
        api.composed = composed
        return api

    def __enter__(self) -> CosmosAPI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close connections to targets."""
        for executor in self._executors.values():
            executor.close()
        self._executors.clear()

    # -- plumbing ------------------------------------------------------------
    @property
    def repository(self) -> DataRepository:
        """The database, opened and migrated on first use."""
        if self._repo is None:
            engine = create_db_engine(self.settings.database_url)
            migrate(engine)
            self._repo = DataRepository(session_factory(engine), self._clock)
        return self._repo

    def _database_exists(self) -> bool:
        url = parse_url(self.settings.database_url)
        if url.get_backend_name() != "sqlite" or not url.database:
            return True
        return Path(url.database).is_file()

    def _adapters(self) -> dict[str, ModelAdapter]:
        return build_adapters(self.settings)

    def _pool_executors(self) -> dict[str, Executor]:
        """An executor for every target of the pool, by name."""
        return {target.name: self._executor_for(target) for target in self.settings.pool}

    def _preflight(self) -> dict[str, CosmosError]:
        """Reach every target of the pool; those that do not answer start drained.

        Raises:
            CosmosError: no target answers (the first target's error).
        """
        unreachable: dict[str, CosmosError] = {}
        for name, executor in self._pool_executors().items():
            try:
                executor.preflight()
            except (NetworkFailure, ExecutionFailure) as exc:
                logger.warning("Target %s is unreachable: %s", name, exc)
                unreachable[name] = exc
        if len(unreachable) == len(self.settings.pool):
            raise next(iter(unreachable.values()))
        return unreachable

    def _executor_for(self, target: Target) -> Executor:
        """A target's executor, made once per API (one connection per host)."""
        if target.name not in self._executors:
            context = ExecutorContext(self._clock, self._commands, self.store.input_cache_dir)
            self._executors[target.name] = make_executor(target, context)
        return self._executors[target.name]

    def _executor_named(self, name: str | None, what: str) -> Executor:
        """The executor of the configured target called ``name`` (where a run ran).

        Raises:
            ValidationFailure: no usable target has that name here.
        """
        for target in self._targets:
            if target.settings is not None and target.name == name:
                return self._executor_for(target.settings)
        known = ", ".join(t.name for t in self._targets if t.settings is not None)
        raise ValidationFailure(
            f"{what} runs on target {name!r}, which is not configured here "
            f"(configured: {known}); add it to conf/target/, or pass the target overrides "
            "that cosmos-batch was given with --set"
        )

    def _dispatch(
        self, runs: list[RunSpec], progress: ProgressSink, unreachable: dict[str, CosmosError]
    ) -> RunTally:
        """Execute queued runs over the pool."""
        context = DispatchContext(
            repository=self.repository,
            store=self.store,
            executors=self._pool_executors(),
            targets=self.settings.pool,
            adapters=self._adapters(),
            progress=progress,
            settings=self.settings.scheduler,
            clock=self._clock,
            commands=self._commands,
            identity=RunnerIdentity.new(socket.gethostname(), os.getpid()),
            unreachable=unreachable,
        )
        return Dispatcher(context).run(runs)

    def _pool_image(self) -> str | None:
        """The image every container target of the pool runs (None: no container target).

        Raises:
            ValidationFailure: the pool's container targets run different images.
        """
        images = {getattr(t, "image", None) for t in self.settings.pool} - {None}
        if len(images) > 1:
            raise ValidationFailure(
                f"the targets of the pool run different images ({', '.join(sorted(images))}); "
                "a run's image is part of its identity, so give them one image"
            )
        return next(iter(images), None)

    def _check_run(self) -> Callable[[RunSpec], list[Problem]]:
        """Problems a run would meet on the pool with its adapter."""
        adapters = self._adapters()
        image = self._pool_image()
        most_gpus = max(self.settings.pool, key=lambda t: len(t.gpus))

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

    def _with_target_image(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """A container target's image is part of every run's identity."""
        image = self._pool_image()
        model = manifest.get("model")
        if image is None or not isinstance(model, dict) or model.get("image") is not None:
            return manifest
        return {**manifest, "model": {**model, "image": image}}

    # -- sweeps --------------------------------------------------------------
    def plan_sweep(
        self, manifest: dict[str, Any], overrides: list[str], sources: ConfigSources
    ) -> SweepPlan:
        """Validate and expand a manifest; find which runs are cached.

        A command-line override of a swept key fixes that key. Writes
        nothing. Raises ManifestError on any problem.
        """
        manifest, notes = fix_swept_keys(manifest, overrides)
        manifest = self._with_target_image(manifest)
        expansion = expand(
            manifest,
            self.settings.project_dir,
            sources.blame,
            check_run=self._check_run(),
            check_inputs=partial(check_prompt_videos, probes=self._probes),
        )
        ids = expansion.run_ids
        sweep_id = content_id("sw", {"name": expansion.manifest.name, "runs": ids})
        stages = expansion.manifest.stages
        plan = SweepPlan(
            sweep_id=sweep_id,
            name=expansion.manifest.name,
            manifest=manifest,
            overrides=redact(overrides),
            runs=expansion.runs,
            cached=frozenset(self._cached(ids)),
            duplicates=expansion.duplicates,
            notes=notes + expansion.notes,
            enhance=stages.enhance,
            upscale=stages.upscale,
        )
        if plan.enhance:
            self._enhancements(plan)  # refuse a model without upsampler before any work
        if plan.upscale is not None:
            self._check_upscale_stage(plan, plan.upscale)
        return plan

    def _check_upscale_stage(self, plan: SweepPlan, stage: UpscaleStage) -> None:
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
            self._refuse_problems(spec, where)

    def with_stages(self, plan: SweepPlan) -> SweepPlan:
        """The plan as it will run: with enhanced prompts if they are enhanced already.

        Executes nothing (for dry runs); prompts not enhanced yet leave the
        plan as it is, with a note.
        """
        return self._with_enhanced_prompts(plan) if plan.enhance else plan

    def _enhancements(self, plan: SweepPlan) -> dict[tuple[Any, ...], RunSpec]:
        """The enhancement run of each prompt and model family of the plan.

        Keyed by :func:`_enhancement_key` of the runs that use it.
        """
        specs: dict[tuple[Any, ...], RunSpec] = {}
        for run in plan.runs:
            key = _enhancement_key(run)
            if key in specs:
                continue
            where = f"stages.enhance (prompt {run.prompt.name!r})"
            spec = enhancement_spec(run.prompt, run.model, where)
            self._refuse_problems(spec, where)
            specs[key] = spec
        return specs

    def _with_enhanced_prompts(
        self, plan: SweepPlan, progress: ProgressSink | None = None
    ) -> SweepPlan:
        """The plan with every prompt replaced by its enhanced one.

        Without ``progress`` nothing executes: prompts not enhanced yet leave
        the plan as it is, with a note. With it, they are enhanced first.

        Raises:
            ExecutionFailure: the upsampler failed for a prompt.
        """
        if plan.derived or not plan.runs:
            return plan
        specs = self._enhancements(plan)
        done = self._cached([spec.id for spec in specs.values()])
        pending = [spec for spec in specs.values() if spec.id not in done]
        if pending and progress is None:
            note = (
                f"stages.enhance: {len(pending)} prompt(s) are enhanced first; the run ids "
                "below are those of the prompts before enhancement"
            )
            return replace(plan, notes=[*plan.notes, note])
        if pending:
            tally = self._run_stage(SweepStage.ENHANCE, pending, progress or NullProgress())
            failed = [spec.id for spec in pending if spec.id not in tally.succeeded]
            if failed:
                raise ExecutionFailure(
                    f"the prompt upsampler failed for {len(failed)} prompt(s): "
                    f"{', '.join(failed)} (see cosmos logs RUN_ID); nothing else ran"
                )
        return self._enhanced(plan, specs)

    def _enhanced(self, plan: SweepPlan, specs: dict[tuple[Any, ...], RunSpec]) -> SweepPlan:
        """The plan with each run's prompt replaced by its (made) enhanced prompt."""
        derived = {
            key: DerivedPrompt(enhanced_prompt(spec.prompt, self._enhanced_text(spec)), spec)
            for key, spec in specs.items()
        }
        runs: dict[str, RunSpec] = {}
        renamed: dict[str, str] = {}
        for run in plan.runs:
            new = RunSpec(derived[_enhancement_key(run)].prompt, run.model, run.varying)
            runs.setdefault(new.id, new)
            renamed[run.id] = new.id
        ids = list(runs)
        return replace(
            plan,
            sweep_id=content_id("sw", {"name": plan.name, "runs": ids}),
            runs=list(runs.values()),
            cached=frozenset(self._cached(ids)),
            derived=tuple(derived.values()),
            renamed=renamed,
        )

    def _enhanced_text(self, spec: RunSpec) -> str:
        """The text an enhancement run made: its verified output, or the prompt it made.

        A run made in another output tree (several machines, one database)
        has no folder here; the enhanced prompt it made is in the database.

        Raises:
            ExecutionFailure: neither is there (the output was changed or lost).
        """
        if self.store.verify_outputs(spec.id):
            path = self.store.run_dir(spec.id) / OUTPUT_PROMPT
            return path.read_text(encoding="utf-8").strip()
        made = self.repository.prompt_made_by(spec.id, ORIGIN_ENHANCED)
        if made is not None:
            return made.text
        raise ExecutionFailure(
            f"the upsampled prompt of run {spec.id} is missing or changed in "
            f"{self.store.run_dir(spec.id)}: delete that run "
            f"(cosmos delete run {spec.id} --delete-outputs) and enhance again"
        )

    def _run_stage(
        self,
        stage: SweepStage,
        specs: list[RunSpec],
        progress: ProgressSink,
        joins: tuple[str, list[tuple[str, dict[str, Any]]]] | None = None,
    ) -> RunTally:
        """Store and execute a stage's runs (their prompts are stored already).

        Args:
            stage: Which stage.
            specs: The runs to execute.
            progress: Where progress goes.
            joins: (sweep id, links): the stage's runs (cached ones too, with
                their params) join that sweep in the transaction that queues
                ``specs``, so `cosmos kill --sweep` never misses a queued run.
        """
        self.repository.add_prompts(spec.prompt for spec in specs)
        self.repository.add_runs(specs)
        ids = [spec.id for spec in specs]
        unreachable = self._preflight()
        logger.info("%s stage: %d run(s)", stage.value, len(specs))
        self._requeue_lost(ids)
        if joins is None:
            self.repository.enqueue(ids)
        else:
            self.repository.link_stage_runs(joins[0], stage, joins[1], enqueue=ids)
        progress.start(len(specs), 0, len(specs))
        try:
            return self._dispatch(specs, progress, unreachable)
        finally:
            progress.finish()

    def _cached(self, run_ids: list[str]) -> set[str]:
        """Runs whose outputs exist: here (succeeded in the database, or verified on
        disk), or in another output tree that shares this database (another machine's
        runner made them; they are not made again)."""
        on_disk = self.store.with_outputs(run_ids)
        if not self._database_exists():
            return {run_id for run_id in on_disk if self.store.verify_outputs(run_id)}
        statuses = self.repository.statuses(on_disk)
        here = {
            run_id
            for run_id in on_disk
            if statuses.get(run_id) is RunStatus.SUCCEEDED or self.store.verify_outputs(run_id)
        }
        elsewhere = self.repository.succeeded_outside(
            [run_id for run_id in run_ids if run_id not in on_disk], str(self.store.root)
        )
        return here | set(elsewhere)

    def run_sweep(
        self,
        plan: SweepPlan,
        progress: ProgressSink | None = None,
        on_stored: Callable[[SweepPlan], None] | None = None,
    ) -> SweepSummary:
        """Store the sweep, execute what is not cached, write the sweep folder.

        Args:
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
        unreachable = self._preflight()
        with self.store.runner_lock(wait_s=DELETE_LOCK_WAIT_S):
            if plan.enhance:
                plan = self._with_enhanced_prompts(plan, progress)
            plan = self._submit(plan)
            if on_stored is not None:
                on_stored(plan)
            to_run = plan.to_run
            summary = SweepSummary(
                plan.sweep_id,
                self.store.sweep_dir(plan.sweep_id),
                self.store.runs_dir,
                len(plan.runs),
                len(plan.cached),
            )
            progress.start(len(plan.runs), len(plan.cached), len(to_run))
            try:
                self._queue([run.id for run in to_run])
                summary.tally = self._dispatch(to_run, progress, unreachable)
            finally:
                self._write_runs_jsonl(plan)
                progress.finish()
            if plan.upscale is not None and not summary.tally.cancelled:
                try:
                    self._upscale_stage(plan, plan.upscale, summary, progress)
                finally:
                    self._write_runs_jsonl(plan)
        return summary

    def _upscale_stage(
        self,
        plan: SweepPlan,
        stage: UpscaleStage,
        summary: SweepSummary,
        progress: ProgressSink,
    ) -> None:
        """Upscale every succeeded run of the sweep (upscales already made are cached).

        The upscale runs become members of the sweep (stage ``upscale``), so
        `cosmos status` and `cosmos kill --sweep` cover them.
        """
        statuses = self.repository.statuses(run.id for run in plan.runs)
        parents = [run for run in plan.runs if statuses.get(run.id) is RunStatus.SUCCEEDED]
        specs: dict[str, RunSpec] = {}
        params: dict[str, dict[str, Any]] = {}
        for parent in parents:
            try:
                spec = self._upscale_spec(parent.id, stage.weight, stage.prompt)
                self._refuse_problems(spec, f"stages.upscale of run {parent.id}")
            except ValidationFailure as exc:
                # Its output is not here to read (changed, or made in another
                # output tree): the others are upscaled all the same.
                summary.upscale_skipped[parent.id] = str(exc)
                continue
            prompt_of = self.repository.get_run(parent.id).prompt_id
            self.repository.add_derived_prompt(spec.prompt, prompt_of, upscale_origin(parent.id))
            # Two parents with the same output make the same upscale: it runs once.
            specs.setdefault(spec.id, spec)
            shown = params.setdefault(spec.id, {**parent.varying, UPSCALE_OF: []})
            shown[UPSCALE_OF].append(parent.id)
        summary.upscales = list(specs)
        self.repository.add_runs(specs.values())
        self.repository.link_runs(
            (shown[UPSCALE_OF][0], spec_id) for spec_id, shown in params.items()
        )
        cached = self._cached(summary.upscales)
        for run_id in cached:
            self._adopt_single(run_id)
        to_run = [spec for spec in specs.values() if spec.id not in cached]
        links = list(params.items())
        if to_run:
            joins = (plan.sweep_id, links)
            summary.upscale_tally = self._run_stage(SweepStage.UPSCALE, to_run, progress, joins)
        else:
            self.repository.link_stage_runs(plan.sweep_id, SweepStage.UPSCALE, links)

    def submit(self, plan: SweepPlan) -> SweepPlan:
        """Store a planned sweep (prompts, runs, sweep and its folder) without executing it.

        Returns:
            The plan with its cached runs looked up again (another runner may
            have finished some since it was made).
        """
        if plan.enhance:
            plan = self._with_enhanced_prompts(plan)
            if not plan.derived:
                raise ValidationFailure(
                    f"sweep {plan.sweep_id} enhances its prompts first (stages.enhance): run "
                    "it (run_sweep) rather than storing it"
                )
        with self.store.runner_lock(wait_s=DELETE_LOCK_WAIT_S):
            return self._submit(plan)

    def _submit(self, plan: SweepPlan) -> SweepPlan:
        plan = replace(plan, cached=frozenset(self._cached([run.id for run in plan.runs])))
        repo = self.repository
        # The enhancement runs: stored, and recorded as succeeded if only their
        # folder knew it (a deleted run, a new database).
        repo.add_prompts(derived.original for derived in plan.derived)
        repo.add_runs(derived.run for derived in plan.derived)
        for derived in plan.derived:
            if self.store.verify_outputs(derived.run.id):
                self._adopt_single(derived.run.id)
            repo.add_derived_prompt(derived.prompt, derived.original.id, derived.origin)
        repo.add_prompts(run.prompt for run in plan.runs)
        repo.add_runs(plan.runs)
        sweep_dir = self.store.sweep_dir(plan.sweep_id)
        repo.add_sweep(
            plan.sweep_id, plan.name, plan.manifest, plan.overrides, str(sweep_dir), plan.runs
        )
        enhancements = [
            (derived.run.id, {"prompt": derived.original.name}) for derived in plan.derived
        ]
        repo.link_stage_runs(plan.sweep_id, SweepStage.ENHANCE, enhancements)
        if not self.store.has_sweep_record(plan.sweep_id):
            provenance = sweep_provenance(
                self.settings.project_dir / "manifests",
                plan.manifest.get("model", {}),
                self._commands,
            )
            self.store.write_sweep(plan.sweep_id, plan.manifest, plan.overrides, provenance)
        self._adopt_recovered(plan)
        return plan

    def _queue(self, run_ids: list[str]) -> None:
        """Queue runs to execute; succeeded runs here lost their outputs."""
        self._requeue_lost(run_ids)
        self.repository.enqueue(run_ids)

    def _requeue_lost(self, run_ids: list[str]) -> None:
        """Queue again the succeeded runs among ``run_ids`` (their outputs are gone)."""
        for run_id in self.repository.requeue_lost(run_ids):
            logger.warning(
                "Run %s was succeeded but its outputs are gone; running it again", run_id
            )

    def _adopt_recovered(self, plan: SweepPlan) -> None:
        statuses = self.repository.statuses(plan.cached)
        for run_id in plan.cached:
            if statuses.get(run_id) is not RunStatus.SUCCEEDED:
                logger.info("Run %s has verified outputs; recording it as succeeded", run_id)
                self._adopt(run_id)

    def _write_runs_jsonl(self, plan: SweepPlan) -> None:
        """The sweep folder's list of its runs: its own, then its stages' runs."""
        statuses = self.repository.statuses(run.id for run in plan.runs)
        rows = [
            {
                "id": run.id,
                "stage": SweepStage.MAIN.value,
                "params": run.varying,
                "status": statuses[run.id].value if run.id in statuses else "deleted",
                "dir": str(self.store.run_dir(run.id)),
            }
            for run in plan.runs
        ]
        rows += [
            {
                "id": run.id,
                "stage": link.stage.value,
                "params": link.params,
                "status": run.status.value,
                "dir": str(self.store.run_dir(run.id)),
            }
            for link, run in self.repository.sweep_runs(
                plan.sweep_id, [SweepStage.ENHANCE, SweepStage.UPSCALE]
            )
        ]
        self.store.write_sweep_runs(plan.sweep_id, rows)

    # -- prompts and single runs -----------------------------------------------
    def create_prompt(
        self, text: str, video_dir: Path, name: str | None = None, negative: str | None = None
    ) -> tuple[str, bool]:
        """Create a prompt from a folder of videos named by role.

        Returns:
            (prompt id, True if it was new).
        """
        if not text.strip():
            raise ValidationFailure("the prompt text is empty")
        videos = detect_videos(video_dir)
        files = {
            role: InputFile(path.resolve(), sha256_file(path)) for role, path in videos.items()
        }
        check_video_folder(
            video_dir,
            {role: (path, files[role].sha256) for role, path in videos.items()},
            self._probes,
        )
        prompt = ResolvedPrompt(
            name=name or video_dir.resolve().name,
            text=text,
            negative=negative,
            inputs=PromptInputSet(video=files.pop("color"), controls=dict(sorted(files.items()))),
        )
        return prompt.id, self.repository.add_prompts([prompt]) == 1

    def inference(
        self, prompt_id: str, model: dict[str, Any], progress: ProgressSink | None = None
    ) -> InferenceResult:
        """Run one prompt with the given model parameters on the target.

        Args:
            prompt_id: A ps_ id (or unique prefix).
            model: Model config (adapter, parameters) as composed from conf/.
        """
        prompt = self.repository.get_prompt(self.resolve_id(prompt_id, "ps"))
        try:
            params = ModelConfig.model_validate(model).model_dump()
        except ValidationError as exc:
            detail = "; ".join(
                f"{p.key_path}: {p.message}" for p in pydantic_problems(exc, "model")
            )
            raise ValidationFailure(f"invalid model parameters: {detail}") from exc
        params = self._with_target_image({"model": params})["model"]
        resolved = _resolved(prompt)
        spec = RunSpec(prompt=resolved, model=params, varying={})
        problems = [
            Problem(f"prompts.{prompt.name}.inputs.controls.{key}", f"pass --weight {key}=W")
            for key in resolved.inputs.controls
            if params["weights"][key] is None
        ]
        self._refuse_problems(spec, f"prompt {prompt.id} cannot run so", problems)
        return self._execute_single(spec, progress)

    def _refuse_problems(
        self, spec: RunSpec, what: str, problems: list[Problem] | None = None
    ) -> None:
        """Raise ValidationFailure if ``spec`` (or the caller) has problems."""
        found = [*(problems or []), *self._check_run()(spec)]
        if found:
            detail = "; ".join(f"{p.key_path}: {p.message}" for p in found)
            raise ValidationFailure(f"{what}: {detail}")

    def _execute_single(
        self,
        spec: RunSpec,
        progress: ProgressSink | None,
        parent_run: Run | None = None,
    ) -> InferenceResult:
        """Store one run and execute it on the pool, unless it is cached.

        Args:
            spec: The run (its prompt is stored already, unless ``parent_run``).
            progress: Where progress goes.
            parent_run: The run whose output ``spec`` upscales: the run's
                input prompt is stored and both are linked to it.
        """
        unreachable = self._preflight()
        with self.store.runner_lock(wait_s=DELETE_LOCK_WAIT_S):
            if parent_run is not None:
                origin = upscale_origin(parent_run.id)
                self.repository.add_derived_prompt(spec.prompt, parent_run.prompt_id, origin)
            self.repository.add_runs([spec])
            if parent_run is not None:
                self.repository.link_runs([(parent_run.id, spec.id)])
            if self._cached([spec.id]):
                self._adopt_single(spec.id)
                return InferenceResult(spec.id, "succeeded", True, self.store.run_dir(spec.id))
            self._queue([spec.id])
            progress = progress or NullProgress()
            progress.start(1, 0, 1)
            try:
                self._dispatch([spec], progress, unreachable)
            finally:
                progress.finish()
        run = self.repository.get_run(spec.id)
        return InferenceResult(spec.id, run.status.value, False, self.store.run_dir(spec.id))

    def enhance(
        self, prompt_id: str, model: dict[str, Any], progress: ProgressSink | None = None
    ) -> EnhanceResult:
        """Run the prompt upsampler on a prompt; store its text as a NEW, linked prompt.

        Args:
            prompt_id: A ps_ id (or unique prefix).
            model: The video model (as composed from conf/); its family's
                upsampler runs, with its version and image.

        Raises:
            ValidationFailure: the model has no upsampler, the prompt no input video.
        """
        prompt = self.repository.get_prompt(self.resolve_id(prompt_id, "ps"))
        original = _resolved(prompt)
        params = self._with_target_image({"model": dict(model)})["model"]
        spec = enhancement_spec(original, params, f"enhance {prompt.id}")
        self._refuse_problems(spec, f"prompt {prompt.id} cannot be enhanced")
        result = self._execute_single(spec, progress)
        if result.status != RunStatus.SUCCEEDED.value:
            return EnhanceResult(None, False, prompt.id, result)
        new = enhanced_prompt(original, self._enhanced_text(spec))
        created = self.repository.add_derived_prompt(new, prompt.id, enhanced_origin(spec))
        return EnhanceResult(new.id, created, prompt.id, result)

    def upscale(
        self,
        run_id: str,
        weight: float = DEFAULT_UPSCALE_WEIGHT,
        text: str | None = None,
        progress: ProgressSink | None = None,
    ) -> InferenceResult:
        """4K-upscale a succeeded run's output video: a new run, linked to its parent.

        Raises:
            ValidationFailure: the run has not succeeded, its outputs are gone or
                changed, or its model has no upscaler.
        """
        parent_id = self.resolve_id(run_id, "rs")
        spec = self._upscale_spec(parent_id, weight, text)
        self._refuse_problems(spec, f"run {parent_id} cannot be upscaled so")
        return self._execute_single(spec, progress, self.repository.get_run(parent_id))

    def _upscale_spec(self, parent_id: str, weight: float, text: str | None) -> RunSpec:
        parent = self.repository.get_run(parent_id)
        if parent.status is not RunStatus.SUCCEEDED:
            raise ValidationFailure(
                f"run {parent_id} is {parent.status.value}: only a succeeded run's output "
                "can be upscaled"
            )
        if not self.store.verify_outputs(parent_id):
            raise ValidationFailure(
                f"the outputs of run {parent_id} are not in {self.store.run_dir(parent_id)} "
                "or do not match their checksums (outputs.sha256); upscale it where it was "
                f"made, or make it again here: cosmos delete run {parent_id} --delete-outputs, "
                "then run it again"
            )
        video = self.store.run_dir(parent_id) / OUTPUT_VIDEO
        if not video.is_file():
            raise ValidationFailure(f"run {parent_id} made no video to upscale")
        output = InputFile(video.resolve(), sha256_file(video))
        return upscale_spec(RunSpec.from_dict(parent.spec), output, weight, text)

    def _adopt_single(self, run_id: str) -> None:
        if self.repository.statuses([run_id]).get(run_id) is not RunStatus.SUCCEEDED:
            self._adopt(run_id)

    def _adopt(self, run_id: str) -> None:
        result = self.store.read_result(run_id) or {}
        self.repository.adopt_succeeded(run_id, str(self.store.run_dir(run_id)), result)

    # -- input preparation -----------------------------------------------------
    def prepare_inputs(
        self,
        folder: Path,
        out: Path | None = None,
        fps: int = DEFAULT_FPS,
        dry_run: bool = False,
        force: bool = False,
        progress: StepProgress | None = None,
    ) -> PrepareResult:
        """Turn a folder of PNG sequences into one mp4 per modality (see local_ai/prepare.py).

        Raises:
            ValidationFailure: bad frames or names, or a video exists (nothing written).
        """
        return prepare_inputs(folder, out, fps, dry_run=dry_run, force=force, progress=progress)

    # -- queries ----------------------------------------------------------------
    def resolve_id(self, given: str, prefix: str | None = None) -> str:
        """Expand a unique id prefix to the full id.

        Raises:
            NotFoundFailure: nothing matches. ValidationFailure: ambiguous.
        """
        if prefix and not given.startswith(f"{prefix}_"):
            raise ValidationFailure(f"expected a {prefix}_ id, got {given!r}")
        if not self._database_exists():
            raise NotFoundFailure(f"no object with id {given} (the database is empty)")
        matches = self.repository.find_ids(given)
        if given in matches:
            return given
        if not matches:
            raise NotFoundFailure(f"no prompt, run or sweep with id {given}")
        if len(matches) > 1:
            raise ValidationFailure(f"id {given} is ambiguous: {', '.join(sorted(matches))}")
        return matches[0]

    def list_prompts(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Prompts as dicts, newest first."""
        if not self._database_exists():
            return []
        return [prompt_dict(p) for p in self.repository.list_prompts(limit)]

    def list_runs(
        self,
        status: str | None = None,
        limit: int | None = None,
        rating: int | None = None,
        min_rating: int | None = None,
    ) -> list[dict[str, Any]]:
        """Runs as dicts, newest first; ``rating``: rated exactly so, ``min_rating``: at least.

        Raises:
            ValidationFailure: an unknown status, a rating outside 1-5, or both
                rating filters (one of them would be ignored).
        """
        wanted = _parse_status(status)
        if rating is not None and min_rating is not None:
            raise ValidationFailure("give --rating or --min-rating, not both")
        if rating is not None:
            check_rating(rating, "--rating")
        if min_rating is not None:
            check_rating(min_rating, "--min-rating")
        if not self._database_exists():
            return []
        runs = self.repository.list_runs(wanted, limit, rating=rating, min_rating=min_rating)
        return [self.run_dict(r) for r in runs]

    def list_sweeps(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Sweeps as dicts with run counts, newest first."""
        if not self._database_exists():
            return []
        return [self.sweep_dict(s) for s in self.repository.list_sweeps(limit)]

    def search(self, text: str, limit: int = 50) -> dict[str, Any]:
        """Prompts whose text, name or negative prompt contains ``text``, and their runs.

        ``text`` is matched literally (``%``, ``_`` and ``\\`` too), ignoring case.

        Returns:
            ``{query, prompts, runs, prompts_total, runs_total}``: the newest
            ``limit`` prompts (each with ``matched``: the fields that contain
            the text) and runs, and how many match in all.

        Raises:
            ValidationFailure: empty or overlong text, or a limit below 1.
        """
        if not text:
            raise ValidationFailure("the search text is empty")
        if len(text) > MAX_SEARCH_CHARS:
            raise ValidationFailure(
                f"the search text has {len(text)} characters; at most {MAX_SEARCH_CHARS}"
            )
        if limit < 1:
            raise ValidationFailure(f"--limit must be at least 1, got {limit}")
        found: dict[str, Any] = {"query": text, "prompts": [], "runs": []}
        if not self._database_exists():
            return {**found, "prompts_total": 0, "runs_total": 0}
        hits = self.repository.search(text, limit)
        found["prompts"] = [
            {**prompt_dict(p), "matched": matched_fields(p, text)} for p in hits.prompts
        ]
        found["runs"] = [self.run_dict(r) for r in hits.runs]
        return {**found, "prompts_total": hits.prompts_total, "runs_total": hits.runs_total}

    def rate(self, given: str, rating: int | None) -> dict[str, Any]:
        """Rate a succeeded run 1-5 (None clears its rating).

        Returns:
            ``{id, rating, previous}``.

        Raises:
            ValidationFailure: a rating outside 1-5, not a run id, or a run that
            did not succeed; nothing changes. NotFoundFailure: no such run.
        """
        if rating is not None:
            check_rating(rating)
        run_id = self.resolve_id(given, "rs")
        previous = self.repository.set_rating(run_id, rating)
        return {"id": run_id, "rating": rating, "previous": previous}

    def ids_with_prefix(
        self, prefix: str, kinds: tuple[str, ...] = ("ps", "rs", "sw"), limit: int = 100
    ) -> list[tuple[str, str]]:
        """(id, label) of objects whose id starts with ``prefix`` (shell completion).

        Without a database, or with one whose schema is not this version's,
        none (and nothing is created or migrated).

        Args:
            prefix: What was typed so far.
            kinds: "ps" (prompts, labelled by name), "rs" (runs, by status),
                "sw" (sweeps, by name).
            limit: At most this many.
        """
        if not self._database_exists():
            return []
        # Completion reads only: it never creates or migrates a (shared) schema.
        engine = create_db_engine(self.settings.database_url)
        try:
            if current_revision(engine) != head_revision(engine):
                return []
            repository = DataRepository(session_factory(engine), self._clock)
            return repository.ids_with_prefix(prefix, kinds, limit)
        finally:
            engine.dispose()

    def show(self, given: str) -> dict[str, Any]:
        """Details of a prompt, run or sweep by id (or unique prefix)."""
        object_id = self.resolve_id(given)
        kind = object_id.split("_", 1)[0]
        handlers: dict[str, Callable[[str], dict[str, Any]]] = {
            "ps": self._show_prompt,
            "rs": self._show_run,
            "sw": self._show_sweep,
        }
        return handlers[kind](object_id)

    def _show_prompt(self, prompt_id: str) -> dict[str, Any]:
        data = prompt_dict(self.repository.get_prompt(prompt_id))
        data["runs"] = [r.id for r in self.repository.list_runs(prompt_id=prompt_id)]
        data["children"] = [
            {"id": child.id, "origin": child.origin}
            for child in self.repository.child_prompts([prompt_id])
        ]
        return data

    def _show_run(self, run_id: str) -> dict[str, Any]:
        run = self.repository.get_run(run_id)
        data = self.run_dict(run)
        data["spec"] = run.spec
        data["sweeps"] = self.repository.sweeps_of_run(run_id)
        data["children"] = [
            {"id": child.id, "adapter": child.adapter, "status": child.status.value}
            for child in self.repository.child_runs([run_id])
        ]
        return data

    def _show_sweep(self, sweep_id: str) -> dict[str, Any]:
        data = self.sweep_dict(self.repository.get_sweep(sweep_id))
        data["runs"] = [
            {
                "id": run.id,
                "stage": link.stage.value,
                "params": link.params,
                "status": run.status.value,
            }
            for link, run in self.repository.sweep_runs(sweep_id)
        ]
        return data

    def run_dict(self, run: Run) -> dict[str, Any]:
        """JSON-ready view of a run."""
        main = OUTPUT_PROMPT if run.adapter in UPSAMPLER_ADAPTERS else OUTPUT_VIDEO
        output = self.store.run_dir(run.id) / main
        return {
            "id": run.id,
            "kind": "run",
            "prompt_id": run.prompt_id,
            "parent_run_id": run.parent_run_id,
            "adapter": run.adapter,
            "status": run.status.value,
            "rating": run.rating,
            "created_at": _iso(run.created_at),
            "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at),
            "attempts": run.attempts,
            "exit_code": run.exit_code,
            "error_class": run.error_class,
            "error_message": run.error_message,
            "target": run.target,
            "gpus": run.gpus,
            "job_id": run.job_id,
            "output_dir": run.output_dir,
            "output_path": str(output) if output.is_file() else None,
        }

    def sweep_dict(self, sweep: Sweep) -> dict[str, Any]:
        """JSON-ready view of a sweep with its run counts."""
        counts = self.repository.sweep_status_counts(sweep.id)
        return {
            "id": sweep.id,
            "kind": "sweep",
            "name": sweep.name,
            "created_at": _iso(sweep.created_at),
            "output_dir": sweep.output_dir,
            "overrides": sweep.overrides,
            "runs": sum(counts.values()),
            "counts": counts,
            "stages": self.repository.sweep_stage_sizes(sweep.id),
        }

    def status(self) -> dict[str, Any]:
        """Counts by status, what is running where, each sweep under way, and each target's state.

        A target that cannot be reached is reported in its entry, never raised.
        """
        targets = [self._target_status(target) for target in self._targets]
        if not self._database_exists():
            counts = {s.value: 0 for s in RunStatus}
            return {
                "counts": counts,
                "running": [],
                "active_sweeps": [],
                "database": self._db_label(),
                "targets": targets,
            }
        running = self.repository.list_runs(RunStatus.RUNNING)
        return {
            "database": self._db_label(),
            "counts": self.repository.counts_by_status(),
            "running": [
                {
                    "id": r.id,
                    "target": r.target,
                    "gpus": r.gpus,
                    "job_id": r.job_id,
                    "started_at": _iso(r.started_at),
                }
                for r in running
            ],
            "active_sweeps": self._active_sweeps(),
            "targets": targets,
        }

    def _active_sweeps(self) -> list[dict[str, Any]]:
        """Progress of each sweep that has queued or running runs."""
        now = self._clock.now()
        return [
            sweep_status(sweep.id, sweep.name, self.repository.sweep_run_times(sweep.id), now)
            for sweep in self.repository.active_sweeps()
        ]

    def _target_status(self, target: ConfiguredTarget) -> dict[str, Any]:
        """One target's GPUs and containers, or why they are not known."""
        entry: dict[str, Any] = {"name": target.name, "source": target.source}
        if target.settings is None:
            return {**entry, "configured": False, "problem": target.problem}
        try:
            report = self._executor_for(target.settings).describe().to_dict()
        except CosmosError as exc:
            report = {"name": target.name, "reachable": False, "error": f"{exc.kind}: {exc}"}
        return {**entry, "configured": True, **report}

    def _db_label(self) -> str:
        return parse_url(self.settings.database_url).render_as_string(hide_password=True)

    # -- reports ------------------------------------------------------------------
    def report(
        self,
        given: str,
        rows: str | None = None,
        cols: str | None = None,
        thumbnails: bool = True,
    ) -> ReportResult:
        """Write (or refresh) a sweep's report.html: a grid of its outputs.

        Args:
            given: A sw_ id or unique prefix.
            rows: The axis for the rows (a parameter name such as ``model.seed``
                or ``prompt``); None follows the rule (outputs/axes.py).
            cols: The axis for the columns.
            thumbnails: Make the thumbnails that are missing (False: the
                report shows only those made before; quick).

        Raises:
            NotFoundFailure: no such sweep. ValidationFailure: not a sweep id, or
            an unknown axis. StateError: the report cannot be written.
        """
        sweep_id = self.resolve_id(given, "sw")
        report = SweepReport(self.repository, self.store, self._clock)
        return report.write(sweep_id, rows, cols, thumbnails=thumbnails)

    # -- logs and kill ---------------------------------------------------------
    def logs(self, given: str, on_line: Callable[[str], None], follow: bool = False) -> LogResult:
        """Pass a run's log to ``on_line``: live while it runs, else its run folder's copy.

        Args:
            given: A rs_ id or unique prefix.
            on_line: Receives each line.
            follow: Wait for a queued run to start; follow a running one until it ends.

        Raises:
            NotFoundFailure: no such run. ValidationFailure: not a run id, or
            the run's target is not configured here.
        """
        return self._control().logs(self.resolve_id(given, "rs"), on_line, follow)

    def kill(self, given: str) -> KillReport:
        """Cancel a run and stop the container or process of its job (with its other runs).

        Raises:
            NotFoundFailure: no such run. ValidationFailure: not a run id, the
            run is over (nothing to kill), or its target is not configured here.
            NetworkFailure: the target cannot be reached (nothing was cancelled).
        """
        return self._control().kill(self.resolve_id(given, "rs"))

    def kill_sweep(self, given: str) -> KillReport:
        """Cancel every unfinished run of a sweep and stop its running jobs.

        Raises:
            NotFoundFailure: no such sweep. ValidationFailure: not a sweep id,
            nothing unfinished, or a target is not configured here.
            NetworkFailure: a target cannot be reached (nothing was cancelled).
        """
        return self._control().kill_sweep(self.resolve_id(given, "sw"))

    def _control(self) -> RunControl:
        return RunControl(self.repository, self.store, self._executor_named)

    # -- deletion -----------------------------------------------------------
    def delete_preview(self, kind: str, given: str) -> dict[str, Any]:
        """What a deletion would remove (for the confirmation question).

        ``children`` are the prompts and runs made from it, at any depth
        (enhanced prompts and their runs, upscales and their input prompts):
        kept and unlinked, unless deleted with it.
        """
        object_id = self.resolve_id(given, "ps" if kind == "prompt" else "rs")
        own, prompts, runs = self._descendants(kind, object_id)
        return {"id": object_id, "runs": own, "children": {"prompts": prompts, "runs": runs}}

    def _descendants(self, kind: str, object_id: str) -> tuple[list[str], list[str], list[str]]:
        """(its own runs, the prompts made from it, the runs made from it), at any depth.

        Made from a prompt: prompts whose parent it is, and their runs. Made
        from a run: runs whose parent it is (upscales), and their input prompts.
        """
        repo = self.repository
        if kind == "prompt":
            repo.get_prompt(object_id)
            own = [run.id for run in repo.list_runs_of_prompts([object_id])]
            seen_prompts, new_prompts = {object_id}, [object_id]
        else:
            repo.get_run(object_id)
            own, seen_prompts, new_prompts = [object_id], set(), []
        prompts: list[str] = []
        runs: list[str] = []
        seen_runs, new_runs = set(own), list(own)
        while new_prompts or new_runs:
            upscales = repo.child_runs(new_runs)
            found = [p.id for p in repo.child_prompts(new_prompts)]
            found += [run.prompt_id for run in upscales]
            new_prompts = [p for p in dict.fromkeys(found) if p not in seen_prompts]
            seen_prompts.update(new_prompts)
            found_runs = [run.id for run in upscales]
            found_runs += [run.id for run in repo.list_runs_of_prompts(new_prompts)]
            new_runs = [r for r in dict.fromkeys(found_runs) if r not in seen_runs]
            seen_runs.update(new_runs)
            prompts += new_prompts
            runs += new_runs
        return own, prompts, runs

    def delete(
        self,
        kind: str,
        given: str,
        delete_outputs: bool = False,
        with_children: bool = False,
    ) -> dict[str, Any]:
        """Delete a prompt (with its runs) or a run; outputs kept unless asked.

        Prompts and runs made from it are kept, unlinked, unless
        ``with_children``. Refused while a runner is executing on the same
        output tree.
        """
        object_id = self.resolve_id(given, "ps" if kind == "prompt" else "rs")
        with self.store.runner_lock(wait_s=DELETE_LOCK_WAIT_S, exclusive=True):
            child_prompts: list[str] = []
            child_runs: list[str] = []
            if with_children:
                _, child_prompts, child_runs = self._descendants(kind, object_id)
            run_ids = [self.repository.delete_run(run_id).id for run_id in child_runs]
            for prompt_id in reversed(child_prompts):
                run_ids += [r.id for r in self.repository.delete_prompt(prompt_id)]
            if kind == "prompt":
                run_ids += [r.id for r in self.repository.delete_prompt(object_id)]
            else:
                run_ids.append(self.repository.delete_run(object_id).id)
            removed = []
            if delete_outputs:
                for run_id in run_ids:
                    if self.store.remove_run_dir(run_id):
                        removed.append(run_id)
        return {
            "id": object_id,
            "deleted_runs": run_ids,
            "deleted_prompts": child_prompts,
            "removed_outputs": removed,
        }


def _parse_status(status: str | None) -> RunStatus | None:
    if status is None:
        return None
    try:
        return RunStatus(status)
    except ValueError as exc:
        known = ", ".join(s.value for s in RunStatus)
        raise ValidationFailure(f"unknown status {status!r} (one of: {known})") from exc


def _check_inputs_unchanged(inputs: PromptInputSet) -> None:
    for item in inputs.files():
        if not item.path.is_file():
            raise ValidationFailure(f"input file is gone: {item.path}")
        if sha256_file(item.path) != item.sha256:
            raise ValidationFailure(
                f"input file changed since the prompt was created: {item.path}; "
                "create a new prompt for the new content"
            )


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def prompt_dict(prompt: Prompt) -> dict[str, Any]:
    """JSON-ready view of a prompt."""
    return {
        "id": prompt.id,
        "kind": "prompt",
        "name": prompt.name,
        "text": prompt.text,
        "negative_prompt": prompt.negative_prompt,
        "inputs": prompt.inputs,
        "created_at": _iso(prompt.created_at),
        "parent_id": prompt.parent_id,
        "origin": prompt.origin,
    }


def _enhancement_key(run: RunSpec) -> tuple[Any, ...]:
    """What decides a run's enhancement: its prompt and its model family, version, image."""
    model = run.model
    return (run.prompt.id, run.adapter, model.get("version"), model.get("image"))


def _resolved(prompt: Prompt) -> ResolvedPrompt:
    """A stored prompt as a resolved prompt (its inputs must be unchanged)."""
    inputs = PromptInputSet.from_dict(prompt.inputs)
    _check_inputs_unchanged(inputs)
    return ResolvedPrompt(prompt.name, prompt.text, prompt.negative_prompt, inputs)
