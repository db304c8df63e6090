"""`cosmos-batch`: the Hydra app that runs manifests.

cosmos-batch +experiment=demo
cosmos-batch +experiment=demo dry_run=true
cosmos-batch +experiment=demo model.seed=7 --cfg job
cosmos-batch -m +experiment=demo model.seed=1,2,3    # every job's runs as one sweep
cosmos-batch --help                                  # cli/batch_help.py
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from cosmos_workflow.cli.batch_help import print_help_if_asked
from cosmos_workflow.cli.common import INTERRUPTED_EXIT
from cosmos_workflow.cli.console import configure_logging, guarded, print_error
from cosmos_workflow.cli.plans import finish_sweep
from cosmos_workflow.config.project import ProjectPaths, find_project
from cosmos_workflow.errors import CosmosError, ValidationFailure
from cosmos_workflow.utils.words import counted

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from cosmos_workflow.api import CosmosAPI, JobPlan, MultirunSweep, SweepPlan
    from cosmos_workflow.config.sources import ConfigSources
    from cosmos_workflow.local_ai.probe import ProbeCache

logger = logging.getLogger(__name__)


@dataclass
class _Outcome:
    """What the Hydra task reports back to main() (no global state)."""

    started: bool = False
    exit_code: int = 0


def _sources(project: ProjectPaths, extra_overrides: list[str]) -> ConfigSources:
    """Where each key of the job's composed config came from (manifest errors name it)."""
    from hydra.core.hydra_config import HydraConfig

    from cosmos_workflow.config.sources import ConfigSources

    hydra_cfg = HydraConfig.get()
    dirs = [
        Path(source["path"])
        for source in hydra_cfg.runtime.config_sources
        if source["schema"] in ("file", "cosmos")
    ]
    primary = None
    for folder in dirs:
        candidate = folder / f"{hydra_cfg.job.config_name}.yaml"
        if candidate.is_file():
            primary = candidate
            break
    return ConfigSources.build(
        project.root,
        dirs,
        primary,
        dict(hydra_cfg.runtime.choices),
        [*extra_overrides, *_task_overrides()],
    )


def _task_overrides() -> list[str]:
    """The job's command-line overrides, as typed (``${...}`` in them not resolved)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    task = OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)
    return [str(override) for override in task]


class BatchTask:
    """What Hydra runs: one sweep per call, or every job of a multirun as one sweep.

    Called as a function, it plans and runs one job (a single run). The
    cosmos launcher instead calls :meth:`plan_job` for every job of a
    multirun, then :meth:`run_planned` once with all the plans.

    Args:
        project: The project in use.
        outcome: Where the exit code goes (main() reads it).
        sweep_overrides: Overrides of a swept list (``sweep.grid.KEY=[...]``),
            taken off the command line before Hydra parses it.
        debug: Print the traceback of an error too (HYDRA_FULL_ERROR=1).
    """

    def __init__(
        self,
        project: ProjectPaths,
        outcome: _Outcome,
        sweep_overrides: list[str] | None = None,
        debug: bool = False,
    ) -> None:
        self._project = project
        self._outcome = outcome
        self._debug = debug
        # Overrides of a swept list (sweep.grid.KEY=[...]): Hydra cannot address them.
        self._sweep_overrides = list(sweep_overrides or [])
        # Every job of a multirun probes each input video once: they share
        # the first job's probes.
        self._probes: ProbeCache | None = None

    def __call__(self, cfg: DictConfig) -> None:
        """Plan and run the sweep of one composed config."""
        self._outcome.started = True
        self._record(self._guarded(partial(self._execute, cfg), self._debug))

    def plan_job(self, cfg: DictConfig) -> JobPlan:
        """Plan one job of a multirun (inside Hydra's job); print why if it cannot be."""
        from hydra.core.hydra_config import HydraConfig

        from cosmos_workflow.api import JobPlan
        from cosmos_workflow.manifest.overrides import redact

        self._outcome.started = True
        job = JobPlan(HydraConfig.get().job.num, redact(self._overrides()))
        # Ctrl-C while planning ends the multirun (main() reports it).
        job.exit_code = self._classified(partial(self._plan_into, job, cfg), self._debug)
        return job

    @staticmethod
    def can_run(job: JobPlan) -> bool:
        """True if the job was planned (False: it was refused, and nothing will run)."""
        return not job.exit_code

    def run_planned(self, jobs: list[JobPlan], sweep_dir: Path) -> list[int]:
        """Run the planned jobs: those with the same settings as one sweep.

        Nothing runs if any job could not be planned. Returns each job's exit code.
        """
        failed = [job for job in jobs if job.exit_code]
        if failed:
            sys.stderr.write(
                f"{len(failed)} of {len(jobs)} job(s) could not be planned; nothing was executed\n"
            )
            code = max(job.exit_code for job in failed)
            self._record(code)
            return [job.exit_code or code for job in jobs]
        from cosmos_workflow.api import CosmosAPI

        try:
            multirun = CosmosAPI.multirun(jobs, sweep_dir)
        except CosmosError as exc:
            print_error(exc)
            self._record(exc.exit_code)
            return [exc.exit_code] * len(jobs)
        sweeps = multirun.sweeps
        print(f"multirun: {counted(len(jobs), 'job')}, {counted(len(sweeps), 'sweep')}")
        if len(sweeps) > 1:
            print(
                f"note: the jobs have {len(sweeps)} different settings (target, database, "
                "paths, simulator, adapters, ...); each set runs as its own sweep, one after "
                "another"
            )
        record = multirun.write_record()
        codes: dict[int, int] = {}
        for index, sweep in enumerate(sweeps):
            # stages.enhance: the sweep may be stored with other ids than planned.
            update = partial(multirun.stored, index)
            code = self._guarded(partial(self._run_sweep, sweep, update), self._debug)
            codes.update(dict.fromkeys(sweep.jobs, code))
            if code == INTERRUPTED_EXIT:
                break
        if record is not None:
            print(f"hydra: {record}")
        exit_codes = [codes.get(job.num, INTERRUPTED_EXIT) for job in jobs]
        self._record(max(exit_codes))
        return exit_codes

    def _execute(self, cfg: DictConfig) -> int:
        with self._api(cfg) as api:
            plan = api.plan_experiment(self._overrides(), self._sources())
            return finish_sweep(api, plan)

    def _plan_into(self, job: JobPlan, cfg: DictConfig) -> int:
        from cosmos_workflow.api import JobFailure

        try:
            with self._api(cfg) as api:
                job.plan = api.plan_experiment(self._overrides(), self._sources())
            job.settings = api.settings
        except CosmosError as exc:
            raise JobFailure(job, exc) from exc
        return 0

    def _run_sweep(
        self, sweep: MultirunSweep, on_stored: Callable[[SweepPlan], None] | None = None
    ) -> int:
        """Run one sweep of a multirun (its jobs' plans, merged)."""
        from cosmos_workflow.api import CosmosAPI

        with CosmosAPI(sweep.settings, probes=self._probes) as api:
            return finish_sweep(api, sweep.plan, on_stored)

    def _overrides(self) -> list[str]:
        """The job's command-line overrides, those of swept lists last."""
        return _task_overrides() + self._sweep_overrides

    def _sources(self) -> ConfigSources:
        return _sources(self._project, self._sweep_overrides)

    def _api(self, cfg: DictConfig) -> CosmosAPI:
        """The API of a composed config; its log level is set.

        Raises:
            ManifestError: the manifest interpolates where it may not, or an
                interpolation cannot be resolved (naming the file and key).
        """
        from cosmos_workflow.api import CosmosAPI
        from cosmos_workflow.cli.batch_input import resolve_config

        blame = self._sources().blame
        api = CosmosAPI.from_composed(
            self._project.root, resolve_config(cfg, blame), probes=self._probes, blame=blame
        )
        self._probes = api.probes
        configure_logging(api.settings.log_level)
        return api

    def _record(self, code: int) -> None:
        self._outcome.exit_code = max(self._outcome.exit_code, code)

    @staticmethod
    def _guarded(action: Callable[[], int], debug: bool = False) -> int:
        """Run an action; turn every failure and Ctrl-C into a message and an exit code."""
        try:
            return BatchTask._classified(action, debug)
        except KeyboardInterrupt:
            sys.stderr.write("interrupted: unfinished runs were marked cancelled\n")
            return INTERRUPTED_EXIT

    @staticmethod
    def _classified(action: Callable[[], int], debug: bool = False) -> int:
        """Run an action; turn every failure into a message and an exit code."""
        try:
            return guarded(action, debug)
        except Exception:
            # A bug: show it, but never let Hydra print the overrides (secrets).
            logger.exception("internal error; please report it with the traceback above")
            return 1


def _refuse_secrets(argv: list[str]) -> None:
    """Credentials on the command line would be saved with the sweep: refuse them."""
    from cosmos_workflow.manifest.overrides import carries_password

    for arg in argv:
        if carries_password(arg):
            raise ValidationFailure(
                "a database URL with a password was given on the command line, where it would "
                "be saved with the sweep; set COSMOS_DATABASE__URL or the user config file instead"
            )


def main() -> None:
    """Console entry point of cosmos-batch."""
    # --help is answered before Hydra is imported (cli/batch_help.py).
    print_help_if_asked(sys.argv[1:])
    import hydra

    from cosmos_workflow.cli.batch_input import (
        hydra_raises,
        report_composition,
        traceback_wanted,
    )
    from cosmos_workflow.manifest.overrides import split_sweep_overrides

    args, sweep_overrides = split_sweep_overrides(sys.argv[1:])
    try:
        _refuse_secrets(args)
        project = find_project(Path.cwd(), os.environ)
    except CosmosError as exc:
        print_error(exc)
        sys.exit(exc.exit_code)
    outcome = _Outcome()
    debug = traceback_wanted()
    app = hydra.main(config_path=str(project.conf_dir), config_name="config", version_base="1.3")(
        BatchTask(project, outcome, sweep_overrides, debug)
    )
    sys.argv = [sys.argv[0], *args]
    try:
        with hydra_raises():
            app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: nothing was executed\n")
        sys.exit(INTERRUPTED_EXIT)
    except SystemExit as exc:
        if exc.code not in (0, None) and not outcome.started:
            # Hydra could not parse its own arguments: that is bad input.
            sys.exit(ValidationFailure.exit_code)
        raise
    except Exception as exc:
        code = report_composition(exc, project, args, debug)
        if code is None:
            raise
        sys.exit(code)
    sys.exit(outcome.exit_code)


if __name__ == "__main__":
    main()
