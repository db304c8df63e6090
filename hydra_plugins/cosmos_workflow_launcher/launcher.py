"""The ``cosmos`` launcher: every job of a multirun planned first, then run together.

Hydra's basic launcher runs the jobs of ``cosmos-batch -m ...`` one after
another, each as its own sweep. This launcher composes and plans every job
through Hydra's own job machinery (so each job keeps its
``<sweep dir>/<num>/.hydra/`` files), then hands all the plans to the task
at once, which executes them as one scheduled sweep.

A task function that cannot be split into planning and execution (see
:class:`PlannedTask`) is run job by job, as the basic launcher would.
"""

# No "from __future__ import annotations": Hydra's plugin scan executes this
# module outside sys.modules, where dataclasses cannot resolve string annotations.
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

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
        returns = self._run_each(
            job_overrides, initial_job_idx, task.plan_job, self._job_output_subdir
        )
        if any(ret.status is not JobStatus.COMPLETED for ret in returns):
            # Hydra reports the failed job; nothing was executed.
            return returns
        values = task.run_planned([ret.return_value for ret in returns], sweep_dir)
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

    def _ready(self) -> tuple[DictConfig, HydraContext, TaskFunction]:
        """What setup() gave.

        Raises:
            RuntimeError: setup() was not called.
        """
        if self._config is None or self._context is None or self._task is None:
            raise RuntimeError("CosmosLauncher.launch() called before setup()")
        return self._config, self._context, self._task
