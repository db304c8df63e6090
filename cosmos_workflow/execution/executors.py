"""Executors: run an adapter's invocation on a target and stage its results.

Everything above this interface is target-agnostic: the runner hands over an
:class:`Invocation` and a local staging folder, and afterwards finds the
outputs and the log in that folder, whichever host did the work.
"""

from __future__ import annotations

import logging
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.errors import CosmosError, ExecutionFailure
from cosmos_workflow.execution.adapters.base import Invocation, JobLayout
from cosmos_workflow.manifest.specs import InputFile
from cosmos_workflow.transfer.input_cache import LocalInputCache
from cosmos_workflow.utils.atomic import write_bytes_atomic
from cosmos_workflow.utils.clock import Clock

logger = logging.getLogger(__name__)

LOG_NAME = "logs/job.log"


@dataclass(frozen=True)
class ExecutionResult:
    """How one invocation ended."""

    exit_code: int
    started_at: datetime
    finished_at: datetime
    log_path: Path


class Executor(ABC):
    """Runs invocations on one target."""

    target_name: str

    def preflight(self) -> None:
        """Check the target is reachable before any work (nothing to check by default)."""
        return None

    def close(self) -> None:
        """Release connections (none by default)."""
        return None

    @abstractmethod
    def layout(self, job_id: str, staging: Path) -> JobLayout:
        """Where the job's files are, as the program will see them."""

    @abstractmethod
    def stage_inputs(self, items: list[InputFile]) -> dict[str, CosmosError]:
        """Make inputs readable by the program, verified by sha256.

        Returns:
            The failures, by the sha256 of the input that could not be staged.
        """

    @abstractmethod
    def execute(
        self,
        invocation: Invocation,
        staging: Path,
        gpus: list[int],
        on_line: Callable[[str], None],
    ) -> ExecutionResult:
        """Run ``invocation``; afterwards ``staging`` holds its outputs and log."""


class LocalExecutor(Executor):
    """Runs invocations as local processes, in the staging folder itself.

    Args:
        target_name: Name shown in results and status.
        commands: The local command wrapper.
        inputs: Verified, content-addressed copies of the input files.
        clock: Time source for the timestamps.
    """

    def __init__(
        self,
        target_name: str,
        commands: LocalCommandExecutor,
        inputs: LocalInputCache,
        clock: Clock,
    ) -> None:
        self.target_name = target_name
        self._commands = commands
        self._inputs = inputs
        self._clock = clock

    def stage_inputs(self, items: list[InputFile]) -> dict[str, CosmosError]:
        """Copy inputs into the local cache, checking each sha256."""
        failures: dict[str, CosmosError] = {}
        for item in items:
            try:
                self._inputs.materialize(item)
            except CosmosError as exc:
                failures[item.sha256] = exc
        return failures

    def layout(self, job_id: str, staging: Path) -> JobLayout:
        """The staging folder is the job folder; Python is this interpreter."""
        return JobLayout(root=str(staging.resolve()), python=sys.executable)

    def execute(
        self,
        invocation: Invocation,
        staging: Path,
        gpus: list[int],
        on_line: Callable[[str], None],
    ) -> ExecutionResult:
        """Place verified inputs and spec files, run the command, stream its log.

        Raises:
            InputChanged: an input no longer has its planned content.
        """
        for relative, content in invocation.files.items():
            write_bytes_atomic(staging / relative, content)
        for relative, item in invocation.inputs.items():
            link = staging / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(self._inputs.materialize(item))
        log_path = staging / LOG_NAME
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **invocation.env,
            "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in gpus),
            "PYTHONUNBUFFERED": "1",
        }
        cwd = Path(invocation.workdir) if invocation.workdir else staging
        if not cwd.is_dir():
            raise ExecutionFailure(
                f"the program's working folder {cwd} does not exist on {self.target_name}; "
                "set adapters.<adapter>.workspace to the model's checkout"
            )
        started = self._clock.now()
        logger.debug("Starting job %s: %s", invocation.job_id, invocation.argv)
        with log_path.open("w", encoding="utf-8") as log:

            def tee(line: str) -> None:
                log.write(line + "\n")
                log.flush()
                on_line(line)

            exit_code = self._commands.stream(invocation.argv, tee, cwd=cwd, env=env)
        return ExecutionResult(exit_code, started, self._clock.now(), log_path)
