"""The ``cosmos`` launcher: every job of a multirun planned first, then run together.

Hydra's basic launcher runs the jobs of ``cosmos-batch -m ...`` one after
another, each as its own sweep. This launcher composes and plans every job
through Hydra's own job machinery (so each job keeps its
``<sweep dir>/<num>/.hydra/`` files), then hands all the plans to the task
at once, which executes them as one scheduled sweep.

A task function that cannot be split into planning and execution (see
:class:`PlannedTask`) is run job by job, as the basic launcher would.

If any job cannot be composed or planned, nothing runs and the multirun
leaves nothing behind: the files Hydra wrote for it (multirun.yaml, each
job's .hydra/ folder) are removed again, with the folders that are then empty.

The ``cosmos`` sweeper (:class:`CosmosSweeper`) is Hydra's basic sweeper
that also refuses a multirun of more jobs than limits.max_runs allows before
composing any of them.
"""

# No "from __future__ import annotations": Hydra's plugin scan executes this
# module outside sys.modules, where dataclasses cannot resolve string annotations.
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol, runtime_checkable

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, RangeSweep
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

logger = logging.getLogger(__name__)


@runtime_checkable
class PlannedTask(Protocol):
    """A task function whose jobs can be planned one by one and executed together."""

    def plan_job(self, cfg: DictConfig) -> Any:
        """Plan one job; called inside Hydra's job (HydraConfig is the job's). Executes nothing."""

    def run_planned(self, plans: list[Any], sweep_dir: Path) -> list[Any]:
        """Execute every planned job together; return each job's return value, in order."""


@dataclass
class CosmosLauncherConf:
    """Config node of the launcher (``hydra/launcher: cosmos``).

    Attributes:
        job_output_subdir: Where in each job's folder Hydra's files go when
            the app's ``hydra.output_subdir`` is null (cosmos-batch sets null
            so that single runs write none).
    """

    _target_: str = "hydra_plugins.cosmos_workflow_launcher.launcher.CosmosLauncher"
    job_output_subdir: str = ".hydra"


ConfigStore.instance().store(
    group="hydra/launcher", name="cosmos", node=CosmosLauncherConf, provider="cosmos-workflow"
)


@dataclass
class CosmosSweeperConf:
    """Config node of the sweeper (``hydra/sweeper: cosmos``): Hydra's basic sweeper's."""

    _target_: str = "hydra_plugins.cosmos_workflow_launcher.launcher.CosmosSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045 - the dataclass is read by OmegaConf
    params: Optional[dict[str, str]] = None  # noqa: UP045


ConfigStore.instance().store(
    group="hydra/sweeper", name="cosmos", node=CosmosSweeperConf, provider="cosmos-workflow"
)


class CosmosSweeper(BasicSweeper):
    """Hydra's basic sweeper (a cartesian product of the swept overrides), with two checks.

    A sweep of more jobs than limits.max_runs allows is refused before any
    job is composed (each job is a run at least), and a sweep whose jobs
    cannot all be composed leaves no multirun folder behind.
    """

    def sweep(self, arguments: list[str]) -> Any:
        """Refuse too many jobs; run the sweep; remove its folder if a job cannot be composed."""
        assert self.config is not None and self.hydra_context is not None
        self._refuse_too_many(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        try:
            return super().sweep(arguments)
        except BaseException:
            discard_multirun(sweep_dir, [], ".hydra")
            raise

    def _refuse_too_many(self, arguments: list[str]) -> None:
        """Raise ValidationFailure if the sweep has more jobs than may run unconfirmed."""
        from cosmos_workflow.config.manager import ConfigManager
        from cosmos_workflow.config.project import find_project
        from cosmos_workflow.errors import ValidationFailure

        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        jobs = math.prod(
            _sweep_length(override)
            for override in parser.parse_overrides([*self._parse_config(), *arguments])
        )
        layers = {
            key: OmegaConf.to_container(self.config[key], resolve=True)
            if OmegaConf.is_config(self.config[key])
            else self.config[key]
            for key in ("limits", "confirm_runs")
            if key in self.config
        }
        settings = ConfigManager(find_project(Path.cwd(), os.environ), os.environ).settings(layers)
        allowed = max(settings.limits.max_runs, settings.confirm_runs or 0)
        if jobs > allowed:
            raise ValidationFailure(
                f"-m: {jobs} jobs, and every job is a run at least: more than "
                f"limits.max_runs ({settings.limits.max_runs}); check the swept overrides, and "
                "to run them all add confirm_runs=N (N: every job's runs) or raise "
                "limits.max_runs"
            )


def _sweep_length(override: Override) -> int:
    """How many values a swept override takes (1 for a plain one)."""
    if not override.is_sweep_override():
        return 1
    value = override.value()
    if isinstance(value, RangeSweep) and value.start is not None and value.stop is not None:
        step = value.step or 1
        return max(0, math.ceil((value.stop - value.start) / step))
    return sum(1 for _ in override.sweep_string_iterator())


class CosmosLauncher(Launcher):
    """Plans every job of a batch, then runs them as one sweep.

    Args:
        job_output_subdir: See :class:`CosmosLauncherConf`.
    """

    def __init__(self, job_output_subdir: str = ".hydra") -> None:
        self._job_output_subdir = job_output_subdir
        self._config: DictConfig | None = None
        self._context: HydraContext | None = None
        self._task: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """Keep what launch() needs."""
        self._context = hydra_context
        self._task = task_function
        self._config = config

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        """Run a batch of jobs; return one JobReturn per job, in order."""
        config, _, task = self._ready()
        setup_globals()
        configure_log(config.hydra.hydra_logging, config.hydra.verbose)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if not isinstance(task, PlannedTask):
            logger.info("Launching %d jobs one after another", len(job_overrides))
            return self._run_each(job_overrides, initial_job_idx, task, None)
        logger.info("Planning %d jobs to run as one sweep", len(job_overrides))
        nums = range(initial_job_idx, initial_job_idx + len(job_overrides))
        try:
            returns = self._run_each(
                job_overrides, initial_job_idx, task.plan_job, self._job_output_subdir
            )
        except BaseException:
            # A job could not be composed: nothing runs, nothing stays.
            self._discard(sweep_dir, nums)
            raise
        if any(ret.status is not JobStatus.COMPLETED for ret in returns):
            # Hydra reports the failed job; nothing was executed.
            self._discard(sweep_dir, nums)
            return returns
        plans = [ret.return_value for ret in returns]
        # A task may say that a job was refused (``can_run(plan)``): then nothing runs.
        can_run = getattr(task, "can_run", None)
        if can_run is not None and not all(can_run(plan) for plan in plans):
            self._discard(sweep_dir, nums)
        values = task.run_planned(plans, sweep_dir)
        for ret, value in zip(returns, values, strict=True):
            ret.return_value = value
        return returns

    def _run_each(
        self,
        job_overrides: Sequence[Sequence[str]],
        initial_job_idx: int,
        function: Callable[[DictConfig], Any],
        output_subdir: str | None,
    ) -> list[JobReturn]:
        """Run ``function`` as each job, one after another, through Hydra's run_job.

        Args:
            output_subdir: Used as ``hydra.output_subdir`` where that is null.
        """
        primary, context, _ = self._ready()
        returns = []
        for num, overrides in enumerate(job_overrides, start=initial_job_idx):
            logger.debug("#%d : %s", num, " ".join(overrides))
            config = context.config_loader.load_sweep_config(primary, list(overrides))
            with open_dict(config):
                config.hydra.job.id = num
                config.hydra.job.num = num
                if config.hydra.output_subdir is None and output_subdir is not None:
                    config.hydra.output_subdir = output_subdir
            returns.append(
                run_job(
                    hydra_context=context,
                    task_function=function,
                    config=config,
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
            )
            configure_log(primary.hydra.hydra_logging, primary.hydra.verbose)
        return returns

    def _discard(self, sweep_dir: Path, nums: Sequence[int]) -> None:
        """Remove what Hydra wrote for this multirun (see :func:`discard_multirun`)."""
        discard_multirun(sweep_dir, nums, self._job_output_subdir)

    def _ready(self) -> tuple[DictConfig, HydraContext, TaskFunction]:
        """What setup() gave.

        Raises:
            RuntimeError: setup() was not called.
        """
        if self._config is None or self._context is None or self._task is None:
            raise RuntimeError("CosmosLauncher.launch() called before setup()")
        return self._config, self._context, self._task


def discard_multirun(sweep_dir: Path, nums: Sequence[int], output_subdir: str) -> None:
    """Remove what Hydra wrote for a multirun that did not run, and the folders left empty.

    Only Hydra's own files go (multirun.yaml, each job's config.yaml,
    hydra.yaml and overrides.yaml); a folder goes only if nothing else is in
    it, and never the current folder or one outside it.

    Args:
        sweep_dir: The multirun's folder (hydra.sweep.dir).
        nums: The jobs whose folders (<sweep_dir>/<num>/) were made.
        output_subdir: Where in a job's folder Hydra's files are.
    """
    for num in nums:
        job = sweep_dir / str(num)
        files = job / output_subdir
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            (files / name).unlink(missing_ok=True)
        _remove_if_empty(files)
        _remove_if_empty(job)
    (sweep_dir / "multirun.yaml").unlink(missing_ok=True)
    top = Path.cwd().resolve()
    folder = sweep_dir.resolve()
    while folder != top and top in folder.parents and _remove_if_empty(folder):
        folder = folder.parent


def _remove_if_empty(folder: Path) -> bool:
    """Remove ``folder`` if it is an empty folder; True if it was removed."""
    try:
        folder.rmdir()
    except OSError:
        return False
    return True
