"""What one CosmosAPI works with: settings, the output tree, the database, the targets.

A :class:`Workspace` is made by ``CosmosAPI`` and handed to every module of
sweeps/ and to api/catalogue.py. It opens the database on first use, makes
one executor per target (one connection per host) and executes queued runs
over the pool through engine/dispatch.py. Heavy modules (the database, the
executors, the dispatcher) are imported where they are first needed, so
that a command that never touches them does not pay for them.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.errors import CosmosError, ExecutionFailure, NetworkFailure, ValidationFailure
from cosmos_workflow.outputs.store import OutputStore
from cosmos_workflow.utils.clock import Clock, SystemClock

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from cosmos_workflow.config.settings import Settings, Target
    from cosmos_workflow.config.targets import ConfiguredTarget
    from cosmos_workflow.database.repository import DataRepository
    from cosmos_workflow.engine.outcome import RunTally
    from cosmos_workflow.engine.progress import ProgressSink
    from cosmos_workflow.execution.adapters.base import ModelAdapter
    from cosmos_workflow.execution.targets.base import Executor
    from cosmos_workflow.local_ai.probe import ProbeCache
    from cosmos_workflow.manifest.specs import RunSpec

logger = logging.getLogger(__name__)

# How long an operation waits for another short one to release the output tree.
LOCK_WAIT_S = 10.0


class Workspace:
    """Settings, the output tree, the database and the executors of one API.

    Args:
        settings: Validated settings.
        clock: Time source (tests inject a fixed one).
        commands: Local command wrapper (git, local model processes).
        targets: Every configured target (status, logs and kill look at them);
            by default only the pool, ``settings.pool``.
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
        self.clock = clock or SystemClock()
        self.commands = commands or LocalCommandExecutor()
        self.store = OutputStore(settings.outputs_dir)
        self._probes = probes
        self._targets = targets or None
        self._repo: DataRepository | None = None
        self._engine: Engine | None = None
        self._executors: dict[str, Executor] = {}

    @property
    def probes(self) -> ProbeCache:
        """The facts of the input videos probed so far (made on first use)."""
        if self._probes is None:
            from cosmos_workflow.local_ai.probe import ProbeCache

            self._probes = ProbeCache()
        return self._probes

    @property
    def targets(self) -> list[ConfiguredTarget]:
        """Every configured target: those given, else the targets of the pool."""
        if self._targets is None:
            from cosmos_workflow.config.targets import ConfiguredTarget

            self._targets = [
                ConfiguredTarget(target.name, "config", target) for target in self.settings.pool
            ]
        return self._targets

    @contextmanager
    def runner_lock(self, exclusive: bool = False) -> Iterator[None]:
        """Hold the output tree: shared while executing, exclusive for deletions.

        Raises:
            StateError: others still hold it after :data:`LOCK_WAIT_S`.
        """
        with self.store.runner_lock(wait_s=LOCK_WAIT_S, exclusive=exclusive):
            yield

    # -- the database ----------------------------------------------------------
    @property
    def repository(self) -> DataRepository:
        """The database, opened and migrated on first use."""
        if self._repo is None:
            from cosmos_workflow.database.engine import create_db_engine, migrate, session_factory
            from cosmos_workflow.database.repository import DataRepository

            engine = create_db_engine(self.settings.database_url)
            self._engine = engine
            migrate(engine)
            self._repo = DataRepository(session_factory(engine), self.clock)
        return self._repo

    def database_exists(self) -> bool:
        """False only for a SQLite database whose file is not there (nothing stored yet)."""
        from cosmos_workflow.database.engine import parse_url

        url = parse_url(self.settings.database_url)
        if url.get_backend_name() != "sqlite" or not url.database:
            return True
        return Path(url.database).is_file()

    def database_label(self) -> str:
        """The database URL, its password hidden."""
        from cosmos_workflow.database.engine import parse_url

        return parse_url(self.settings.database_url).render_as_string(hide_password=True)

    # -- adapters and executors ---------------------------------------------------
    def adapters(self) -> dict[str, ModelAdapter]:
        """Every model adapter, configured by the settings."""
        from cosmos_workflow.execution.adapters.registry import build_adapters

        return build_adapters(self.settings)

    def executor_for(self, target: Target) -> Executor:
        """A target's executor, made once per API (one connection per host)."""
        from cosmos_workflow.execution.targets.registry import ExecutorContext, make_executor

        if target.name not in self._executors:
            context = ExecutorContext(
                self.clock,
                self.commands,
                self.store.input_cache_dir,
                self.settings.scheduler.patience_s,
            )
            self._executors[target.name] = make_executor(target, context)
        return self._executors[target.name]

    def executor_named(self, name: str | None, what: str) -> Executor:
        """The executor of the configured target called ``name`` (where a run ran).

        Raises:
            ValidationFailure: no usable target has that name here.
        """
        for target in self.targets:
            if target.settings is not None and target.name == name:
                return self.executor_for(target.settings)
        known = ", ".join(t.name for t in self.targets if t.settings is not None)
        raise ValidationFailure(
            f"{what} runs on target {name!r}, which is not configured here "
            f"(configured: {known}); add it to conf/target/, or pass the target overrides "
            "that cosmos-batch was given with --set"
        )

    def pool_executors(self) -> dict[str, Executor]:
        """An executor for every target of the pool, by name."""
        return {target.name: self.executor_for(target) for target in self.settings.pool}

    def close(self) -> None:
        """Close connections to targets and the database's pooled connections."""
        for executor in self._executors.values():
            executor.close()
        self._executors.clear()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._repo = None

    # -- execution -------------------------------------------------------------
    def preflight(self) -> dict[str, CosmosError]:
        """Reach every target of the pool; those that do not answer start drained.

        Raises:
            CosmosError: no target answers (the first target's error).
        """
        unreachable: dict[str, CosmosError] = {}
        for name, executor in self.pool_executors().items():
            try:
                executor.preflight()
            except (NetworkFailure, ExecutionFailure) as exc:
                logger.warning("Target %s is unreachable: %s", name, exc)
                unreachable[name] = exc
        if len(unreachable) == len(self.settings.pool):
            raise next(iter(unreachable.values()))
        return unreachable

    def dispatch(
        self,
        runs: list[RunSpec],
        progress: ProgressSink,
        unreachable: dict[str, CosmosError],
        sweep_id: str | None = None,
    ) -> RunTally:
        """Execute queued runs (of sweep ``sweep_id``, if one) over the pool (engine/dispatch.py).

        The output tree's disk reserve is taken first (engine/io_faults.py).
        """
        from cosmos_workflow.engine.dispatch import DispatchContext, Dispatcher
        from cosmos_workflow.engine.io_faults import output_reserve
        from cosmos_workflow.engine.liveness import RunnerIdentity

        output_reserve(self.store).hold()

        executors = self.pool_executors()
        for executor in executors.values():
            executor.label_jobs(sweep_id)
        context = DispatchContext(
            repository=self.repository,
            store=self.store,
            executors=executors,
            targets=self.settings.pool,
            adapters=self.adapters(),
            progress=progress,
            settings=self.settings.scheduler,
            clock=self.clock,
            commands=self.commands,
            identity=RunnerIdentity.new(socket.gethostname(), os.getpid()),
            unreachable=unreachable,
        )
        return Dispatcher(context).run(runs)
