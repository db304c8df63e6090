"""Hydra's own launcher test suites, run against the ``cosmos`` launcher.

hydra-core ships the suites every Hydra launcher plugin runs
(hydra.test_utils.launcher_common_tests; Hydra's basic and joblib launchers
use them the same way). The ``cosmos`` launcher
(hydra_plugins/cosmos_workflow_launcher) must still behave as a Hydra
launcher: jobs numbered from the launch's first index, each job's overrides
and config, one output folder per job with its .hydra/ files and log, the
task's return values in order.

It has two paths, and both run the suites:

- a plain task function (the suites' own tasks): jobs run one after another,
  as with the basic launcher;
- a task that can plan (cosmos-batch's): every job is planned inside its own
  Hydra job, then one ``run_planned`` call executes all of a launch's plans
  and gives the return values. ``TestCosmosLauncherPlanned`` gives the suite
  such a task and checks that each launch went through ``run_planned`` once.

Every test of LauncherTestSuite, BatchedSweeperTestSuite (the basic sweeper
in batches of two, so that the launcher is called three times with a first
job index of 0, 2 and 4) and IntegrationTestSuite applies; none is excluded.
The integration suite starts generated apps whose task is a plain function,
so it covers the plain path only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from hydra.test_utils.test_utils import SweepTaskFunction
from omegaconf import DictConfig

from hydra_plugins.cosmos_workflow_launcher.launcher import CosmosLauncher, PlannedTask

LAUNCHER = "cosmos"
# The suites' apps and configs set no version_base (Hydra 1.1 behaviour): Hydra
# warns in every job that it changes the working directory; so it does, by design.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Future Hydra versions will no longer change working directory:UserWarning"
)
BATCHES_OF_TWO = ["hydra/sweeper=basic", "hydra.sweeper.max_batch_size=2"]


def test_discovery() -> None:
    assert CosmosLauncher.__name__ in [
        plugin.__name__ for plugin in Plugins.instance().discover(Launcher)
    ]


@pytest.mark.parametrize(("launcher_name", "overrides"), [(LAUNCHER, [])])
class TestCosmosLauncher(LauncherTestSuite):
    """The suite with plain task functions: jobs run one after another."""


# A copy per class: the batched suite extends the list it is given.
@pytest.mark.parametrize(("launcher_name", "overrides"), [(LAUNCHER, list(BATCHES_OF_TWO))])
class TestCosmosLauncherInBatches(BatchedSweeperTestSuite):
    """Three launches of two jobs each: job numbers go on from each launch's first index."""


@pytest.mark.parametrize(
    ("task_launcher_cfg", "extra_flags"),
    [
        pytest.param(
            {},
            [
                "-m",
                f"hydra/launcher={LAUNCHER}",
                "hydra/hydra_logging=disabled",
                "hydra/job_logging=disabled",
            ],
            id="cosmos_launcher_multirun",
        )
    ],
)
class TestCosmosLauncherIntegration(IntegrationTestSuite):
    """Generated apps run with -m in their own processes, as a user runs them."""


class PlanningSweep(SweepTaskFunction):
    """Hydra's sweep test task, split into planning and execution (a PlannedTask).

    ``plan_job`` runs inside each job and executes nothing; ``run_planned``
    runs the suite's task on every plan of a launch at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.planned: list[int] = []
        self.launches: list[list[int]] = []

    def plan_job(self, cfg: DictConfig) -> tuple[int, DictConfig]:
        num = HydraConfig.get().job.num
        self.planned.append(num)
        return num, cfg

    def run_planned(self, plans: list[tuple[int, DictConfig]], sweep_dir: Path) -> list[Any]:
        assert sweep_dir.is_dir()
        self.launches.append([num for num, _ in plans])
        return [self(cfg) for _, cfg in plans]


@pytest.fixture(autouse=True)
def _leave_logging_and_hydra_as_found() -> Iterator[None]:
    """Hydra's suites configure logging and Hydra's singletons: later tests on this
    worker must not inherit a root logger at INFO printing to stdout."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton
    from inprocess import _logging_state, _restore_logging

    logging_before = _logging_state()
    hydra_before = Singleton.get_state()
    yield
    _restore_logging(logging_before)
    GlobalHydra.instance().clear()
    Singleton.set_state(hydra_before)


class Planning:
    """The sweep runner of a suite made to give it PlanningSweep tasks."""

    @pytest.fixture
    def planning_sweeps(self) -> Iterator[list[PlanningSweep]]:
        """Every sweep a test made; afterwards, each finished one must have gone
        through run_planned once per launch, with the jobs of that launch in order."""
        sweeps: list[PlanningSweep] = []
        yield sweeps
        for sweep in sweeps:
            if sweep.returns is None:  # the sweep failed (a test of a failure)
                continue
            assert isinstance(sweep, PlannedTask)
            numbers = [[ret.hydra_cfg.hydra.job.num for ret in batch] for batch in sweep.returns]
            assert sweep.launches == numbers
            assert sweep.planned == [num for batch in numbers for num in batch]

    @pytest.fixture
    def hydra_sweep_runner(self, planning_sweeps: list[PlanningSweep]) -> Callable[..., Any]:
        """Hydra's hydra_sweep_runner fixture, making PlanningSweep tasks."""

        def make(
            calling_file: str | None,
            calling_module: str | None,
            task_function: Callable[[DictConfig], Any] | None,
            config_path: str | None,
            config_name: str | None,
            overrides: list[str] | None,
            temp_dir: Path | None = None,
            configure_logging: bool = False,
        ) -> PlanningSweep:
            sweep = PlanningSweep()
            sweep.calling_file = calling_file
            sweep.calling_module = calling_module
            sweep.task_function = task_function
            sweep.config_path = config_path
            sweep.config_name = config_name
            sweep.overrides = overrides or []
            sweep.temp_dir = str(temp_dir)
            sweep.configure_logging = configure_logging
            planning_sweeps.append(sweep)
            return sweep

        return make


@pytest.mark.parametrize(("launcher_name", "overrides"), [(LAUNCHER, [])])
class TestCosmosLauncherPlanned(Planning, LauncherTestSuite):
    """The suite with a task that plans: each launch executes its jobs in one call."""


@pytest.mark.parametrize(("launcher_name", "overrides"), [(LAUNCHER, list(BATCHES_OF_TWO))])
class TestCosmosLauncherPlannedInBatches(Planning, BatchedSweeperTestSuite):
    """Three launches of two planned jobs: three run_planned calls, numbered on."""
