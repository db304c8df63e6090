"""CosmosAPI: the one entry point for the CLI, cosmos-batch and any UI.

Setup (the constructor, from_project, from_composed, close) and one-line
hand-offs: sweeps to sweeps/ (plan, session, stages, multirun), single
prompts and runs to sweeps/single.py, list/show/search/rate/status/delete/verify to
api/catalogue.py; reports, logs, kill and gc in api/operations.py.
Each method imports what it hands off to, so importing this module is quick.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosmos_workflow.api.operations import Operations

if TYPE_CHECKING:
    from cosmos_workflow.api.catalogue import Catalogue
    from cosmos_workflow.api.views import Views
    from cosmos_workflow.api.web import WebViews
    from cosmos_workflow.config.settings import Settings
    from cosmos_workflow.config.sources import ConfigSources
    from cosmos_workflow.config.targets import ConfiguredTarget
    from cosmos_workflow.connection.local import LocalCommandExecutor
    from cosmos_workflow.database.repository import DataRepository
    from cosmos_workflow.engine.progress import ProgressSink
    from cosmos_workflow.local_ai.prepare import PrepareResult
    from cosmos_workflow.local_ai.probe import ProbeCache
    from cosmos_workflow.outputs.store import OutputStore
    from cosmos_workflow.outputs.verify import VerifyReport
    from cosmos_workflow.sweeps.inference import InferencePlan, PromptRef
    from cosmos_workflow.sweeps.multirun import JobPlan, Multirun
    from cosmos_workflow.sweeps.plan import SweepPlan
    from cosmos_workflow.sweeps.session import SweepSummary
    from cosmos_workflow.sweeps.single import CreatedPrompt, EnhanceResult, InferenceResult
    from cosmos_workflow.utils.clock import Clock
    from cosmos_workflow.utils.step_progress import StepProgress


class CosmosAPI(Operations):
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
        from cosmos_workflow.sweeps.workspace import Workspace

        self.settings = settings
        self._ws = Workspace(settings, clock, commands, targets, probes)
        self.store: OutputStore = self._ws.store
        # The composed Hydra config (from_project, from_composed), e.g. the model section.
        self.composed: dict[str, Any] = {}

    @cached_property
    def _catalogue(self) -> Catalogue:
        """The catalogue, made on first use (it loads the database models)."""
        from cosmos_workflow.api.catalogue import Catalogue

        return Catalogue(self._ws)

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
        manager = ConfigManager.for_project(project.root, env)
        settings = manager.settings(composed)
        targets = (
            configured_targets(manager, list(overrides), settings.target) if all_targets else None
        )
        api = cls(settings, clock=clock, targets=targets)
        api.composed = composed
        return api

    @classmethod
    def from_composed(
        cls,
        project_dir: Path,
        composed: dict[str, Any],
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        probes: ProbeCache | None = None,
        blame: Callable[[str], str] | None = None,
    ) -> CosmosAPI:
        """The API of a config that Hydra composed already (cosmos-batch, a multirun's job).

        Args:
            project_dir: The project's folder (holding conf/ and manifests/).
            composed: The composed config as plain data.
            environ: The environment (COSMOS_* settings); by default os.environ.
            clock: Time source (tests inject a fixed one).
            probes: Facts of the input videos probed so far (see the constructor).
            blame: Names the file or override that set a key of ``composed`` (for errors).

        Raises:
            SettingsError: invalid settings (names the key and where it came from).
        """
        from cosmos_workflow.config.manager import ConfigManager

        settings = ConfigManager.for_project(project_dir, environ).settings(composed, blame)
        api = cls(settings, clock=clock, probes=probes)
        api.composed = composed
        return api

    def __enter__(self) -> CosmosAPI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close connections to targets."""
        self._ws.close()

    @cached_property
    def views(self) -> Views:
        """Read models of `cosmos ui` (api/views.py), made on first use."""
        from cosmos_workflow.api.views import Views

        return Views(self._ws)

    @property
    def repository(self) -> DataRepository:
        """The database, opened and migrated on first use."""
        return self._ws.repository

    @cached_property
    def web(self) -> WebViews:
        """The web app's read models and background launches (api/web.py)."""
        from cosmos_workflow.api.web import WebViews

        return WebViews(self._ws, self._catalogue, self)

    @property
    def probes(self) -> ProbeCache:
        """The facts of the input videos probed so far (pass them to the next API to share)."""
        return self._ws.probes

    # -- sweeps ------------------------------------------------------------------------
    def plan_sweep(
        self, manifest: dict[str, Any], overrides: list[str], sources: ConfigSources
    ) -> SweepPlan:
        """Validate and expand a manifest; find which runs are cached.

        A command-line override of a swept key fixes that key. Writes
        nothing. Raises ManifestError on any problem.
        """
        from cosmos_workflow.sweeps.plan import plan_sweep

        return plan_sweep(self._ws, manifest, overrides, sources)

    def plan_experiment(self, overrides: list[str], sources: ConfigSources) -> SweepPlan:
        """Plan the experiment that the composed config selects (``+experiment=NAME``).

        Raises:
            ValidationFailure: no experiment is selected. ManifestError: any problem.
        """
        from cosmos_workflow.sweeps.plan import plan_experiment

        return plan_experiment(self._ws, self.composed, overrides, sources)

    def preview(self, plan: SweepPlan) -> dict[str, Any]:
        """What a dry run prints: the plan as it runs, its stages and jobs (sweeps/preview.py)."""
        from cosmos_workflow.sweeps.preview import preview

        return preview(self._ws, plan)

    def submit(self, plan: SweepPlan) -> SweepPlan:
        """Store a planned sweep (prompts, runs, sweep and its folder) without executing it.

        Returns:
            The plan with its cached runs looked up again (another runner may
            have finished some since it was made).
        """
        from cosmos_workflow.sweeps.session import submit

        return submit(self._ws, plan)

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
                execute (with stages.enhance, its runs are those of the
                enhanced prompts); a caller that is interrupted later still
                knows which sweep it was.

        Raises:
            StateError: another runner is working on this output tree.
        """
        from cosmos_workflow.sweeps.session import run_sweep

        return run_sweep(self._ws, plan, progress, on_stored)

    @staticmethod
    def multirun(jobs: list[JobPlan], sweep_dir: Path) -> Multirun:
        """The sweeps of a multirun's planned jobs (one per settings) and their record.

        Args:
            jobs: Every job of the multirun, planned (see :meth:`plan_experiment`).
            sweep_dir: Hydra's sweep folder, where the record is written.

        Raises:
            ValidationFailure: jobs with the same settings ask for different stages.
        """
        from cosmos_workflow.sweeps.multirun import Multirun

        return Multirun(jobs, sweep_dir)

    # -- prompts and single runs -----------------------------------------------------------
    def create_prompt(
        self, text: str, video_dir: Path, name: str | None = None, negative: str | None = None
    ) -> CreatedPrompt:
        """Create a prompt from a folder of videos named by role.

        Returns:
            Its id, whether it is new, and notes (the files of the folder not used).
        """
        from cosmos_workflow.sweeps.single import create_prompt

        return create_prompt(self._ws, text, video_dir, name, negative)

    def plan_inference(
        self, prompts: Sequence[str | PromptRef], model: dict[str, Any]
    ) -> InferencePlan:
        """One run per prompt (ps_ id, unique prefix or name), default weights filled in.

        Several make one sweep (:meth:`run_sweep`), one a single run (:meth:`inference`).
        """
        from cosmos_workflow.sweeps.inference import plan_inference

        return plan_inference(self._ws, prompts, model)

    def inference(
        self, planned: InferencePlan, progress: ProgressSink | None = None
    ) -> InferenceResult:
        """Execute the single run of :meth:`plan_inference` (cached if made before)."""
        from cosmos_workflow.sweeps.inference import run_single

        return run_single(self._ws, planned, progress)

    def enhance(
        self, prompt_id: str, model: dict[str, Any], progress: ProgressSink | None = None
    ) -> EnhanceResult:
        """Run ``model``'s family's prompt upsampler on a prompt; its text is a NEW, linked prompt.

        Raises:
            ValidationFailure: the model has no upsampler, the prompt no input video.
        """
        from cosmos_workflow.sweeps.single import enhance

        return enhance(self._ws, self.resolve_id(prompt_id, "ps"), model, progress)

    def plan_enhance(self, prompt_id: str, model: dict[str, Any]) -> SweepPlan:
        """The upsampler's run that :meth:`enhance` would execute (for :meth:`preview`)."""
        from cosmos_workflow.sweeps.single import enhance_plan

        return enhance_plan(self._ws, self.resolve_id(prompt_id, "ps"), model)

    def upscale(
        self,
        run_id: str,
        weight: float | None = None,
        text: str | None = None,
        progress: ProgressSink | None = None,
    ) -> InferenceResult:
        """4K-upscale a succeeded run's output video: a new run, linked to its parent.

        ``weight`` None: DEFAULT_UPSCALE_WEIGHT; ``text`` None: the parent's prompt.
        Raises ValidationFailure if the run has not succeeded, its outputs are
        gone or changed, or its model has no upscaler.
        """
        from cosmos_workflow.sweeps.single import upscale

        return upscale(self._ws, self.resolve_id(run_id, "rs"), weight, text, progress)

    def plan_upscale(
        self, run_id: str, weight: float | None = None, text: str | None = None
    ) -> SweepPlan:
        """The run that :meth:`upscale` would execute (for :meth:`preview`)."""
        from cosmos_workflow.sweeps.single import upscale_plan

        return upscale_plan(self._ws, self.resolve_id(run_id, "rs"), weight, text)

    def prepare_inputs(
        self,
        folder: Path,
        out: Path | None = None,
        fps: int | None = None,
        dry_run: bool = False,
        force: bool = False,
        progress: StepProgress | None = None,
    ) -> PrepareResult:
        """Turn a folder of PNG sequences into one mp4 per modality (see local_ai/prepare.py).

        ``fps`` None: DEFAULT_FPS of local_ai/prepare.py.

        Raises:
            ValidationFailure: bad frames or names, or a video exists (nothing written).
        """
        from cosmos_workflow.local_ai.prepare import DEFAULT_FPS, prepare_inputs

        fps = DEFAULT_FPS if fps is None else fps
        return prepare_inputs(folder, out, fps, dry_run=dry_run, force=force, progress=progress)

    # -- the catalogue (api/catalogue.py) -------------------------------------------------
    def resolve_id(self, given: str, prefix: str | None = None) -> str:
        """Expand a unique id prefix to the full id.

        Raises:
            NotFoundFailure: nothing matches. ValidationFailure: ambiguous.
        """
        return self._catalogue.resolve_id(given, prefix)

    def ids_with_prefix(
        self, prefix: str, kinds: tuple[str, ...] = ("ps", "rs", "sw"), limit: int = 100
    ) -> list[tuple[str, str]]:
        """(id, label) of at most ``limit`` objects whose id starts with ``prefix`` (completion).

        ``kinds``: "ps" (prompts, labelled by name), "rs" (runs, by status), "sw"
        (sweeps, by name). Without a database, or with one whose schema is not
        this version's, none (and nothing is created or migrated).
        """
        return self._catalogue.ids_with_prefix(prefix, kinds, limit)

    def list_prompts(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Prompts as dicts, newest first."""
        return self._catalogue.list_prompts(limit)

    def list_runs(
        self,
        status: str | None = None,
        limit: int | None = None,
        rating: int | None = None,
        min_rating: int | None = None,
        prompt: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs as dicts, newest first; ``rating``: rated exactly so, ``min_rating``: at least.

        ``prompt``: runs of that prompt (an id, a unique prefix or a name: every prompt so named).
        Raises ValidationFailure: an unknown status or prompt, a rating outside
        1-5, or both rating filters (one of them would be ignored).
        """
        return self._catalogue.list_runs(status, limit, rating, min_rating, prompt)

    def list_sweeps(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Sweeps as dicts with run counts, newest first."""
        return self._catalogue.list_sweeps(limit)

    def search(self, text: str, limit: int = 50) -> dict[str, Any]:
        """Prompts whose text, name or negative prompt contains ``text`` (literally, any case).

        Returns ``{query, prompts, runs, prompts_total, runs_total}``; see Catalogue.search.
        """
        return self._catalogue.search(text, limit)

    def rate(self, given: str, rating: int | None) -> dict[str, Any]:
        """Rate a succeeded run 1-5 (None clears it): ``{id, rating, previous}``."""
        return self._catalogue.rate(given, rating)

    def show(self, given: str) -> dict[str, Any]:
        """Details of a prompt, run or sweep by id (or unique prefix)."""
        return self._catalogue.show(given)

    def status(self) -> dict[str, Any]:
        """Counts by status, what is running where, each sweep under way, and each target's state.

        A target that cannot be reached is reported in its entry, never raised.
        """
        return self._catalogue.status()

    def delete_preview(
        self, kind: str, given: str | None, status: str | None = None, prompt: str | None = None
    ) -> dict[str, Any]:
        """What a deletion would remove (for the confirmation question); ``ids``: the selection.

        ``given`` None: every prompt or run that ``status`` (runs) and ``prompt``
        (an id or name) select (``--all``). ``children``: the prompts and runs
        made from them at any depth, kept and unlinked unless deleted with them.
        """
        return self._catalogue.delete_preview(kind, given, status, prompt)

    def delete(
        self,
        kind: str,
        given: str | list[str],
        delete_outputs: bool = False,
        with_children: bool = False,
    ) -> dict[str, Any]:
        """Delete a prompt (with its runs), a run, or the listed ids; outputs kept unless asked.

        What was made from them is kept, unlinked, unless ``with_children``.
        Refused while a runner is executing on the same output tree.
        """
        return self._catalogue.delete(kind, given, delete_outputs, with_children)

    def verify(self, fix: bool = False, progress: StepProgress | None = None) -> VerifyReport:
        """The database against the run folders (outputs/verify.py); ``fix`` marks damaged runs."""
        return self._catalogue.verify(fix, progress)
