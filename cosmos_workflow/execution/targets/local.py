"""The local target: runs invocations as processes on this machine.

A job's folder is its staging folder itself: the spec files are written
there, inputs are linked from the verified local input cache, and the model
runs under a supervisor (programs/local_job.py) in a session of its own,
which outlives the runner and records the exit code in the folder. The next
runner on this machine re-attaches from that folder.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from cosmos_workflow.config.target_kinds import LocalTargetSettings
from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.errors import CosmosError, ExecutionFailure
from cosmos_workflow.execution.adapters.base import Invocation, JobLayout
from cosmos_workflow.execution.programs import PROGRAMS_DIR
from cosmos_workflow.execution.programs.local_job import (
    ABANDONED_NAME,
    PID_NAME,
    START_NAME,
    STARTED_NAME,
    claim_start,
)
from cosmos_workflow.execution.targets.base import (
    LOG_NAME,
    START_WAIT_S,
    ExecutionResult,
    Executor,
    LiveLog,
    TargetReport,
    stage_each,
    wait_while_starting,
)
from cosmos_workflow.execution.targets.gpus import query_gpus
from cosmos_workflow.execution.targets.registry import ExecutorContext
from cosmos_workflow.manifest.specs import InputFile
from cosmos_workflow.transfer.input_cache import LocalInputCache
from cosmos_workflow.utils.atomic import write_bytes_atomic, write_text_atomic
from cosmos_workflow.utils.clock import Clock
from cosmos_workflow.utils.tail import tail_lines

logger = logging.getLogger(__name__)

# The local program's exit code, written by its supervisor when it ends.
EXIT_NAME = "job.exit"
# The supervisor of local programs (a standard-library script run with this interpreter).
SUPERVISOR = PROGRAMS_DIR / "local_job.py"
# How often a local job's log is read while it runs.
FOLLOW_POLL_S = 0.02
# How long a stopped local model may take to exit before it is killed outright.
STOP_GRACE_S = 10.0


class LocalExecutor(Executor):
    """Runs invocations as local processes, in the staging folder itself.

    Its jobs are found again from their staging folder, on this machine only.

    Args:
        target_name: Name shown in results and status.
        commands: The local command wrapper.
        inputs: Verified, content-addressed copies of the input files.
        clock: Time source for the timestamps.
        env: Environment of the model processes (the target's ``env``).
    """

    jobs_on_this_machine = True

    def __init__(
        self,
        target_name: str,
        commands: LocalCommandExecutor,
        inputs: LocalInputCache,
        clock: Clock,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.target_name = target_name
        self.machine = f"local:{socket.gethostname()}"
        self._commands = commands
        self._inputs = inputs
        self._clock = clock
        self._env = dict(env or {})

    def stage_inputs(self, items: list[InputFile]) -> dict[str, CosmosError]:
        """Copy inputs into the local cache, checking each sha256."""
        return stage_each(items, self._inputs.materialize)

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
        """Place verified inputs and spec files, start the program detached, follow its log.

        The program runs under a supervisor (local_job) in a session of its
        own: it outlives this runner, and the next runner re-attaches to it.

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
            **self._env,
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
        token = staging / START_NAME
        write_text_atomic(token, f"{invocation.job_id}\n")
        # -S -E: the supervisor needs the standard library only, and starts faster without site.
        supervisor = [sys.executable, "-S", "-E", str(SUPERVISOR), str(log_path.resolve())]
        supervisor += [str((staging / EXIT_NAME).resolve()), str(token.resolve()), "--"]
        process = self._commands.spawn_detached([*supervisor, *invocation.argv], cwd=cwd, env=env)
        exit_code = self._follow(staging, process.running, on_line)
        return ExecutionResult(exit_code, started, self._clock.now(), log_path)

    def reattach(
        self,
        invocation: Invocation,
        staging: Path,
        started_at: datetime,
        on_line: Callable[[str], None],
    ) -> ExecutionResult | None:
        """Follow a job left by an earlier runner in its work folder, if it is there.

        A job whose supervisor never took its start token is given up for good
        (the token is taken away, so it cannot start later): it runs again.
        """
        if not (staging / STARTED_NAME).is_file() and claim_start(
            staging / START_NAME, ABANDONED_NAME
        ):
            return None
        deadline = time.monotonic() + START_WAIT_S
        process = self._process_of(staging)
        while process is None and not (staging / EXIT_NAME).is_file():
            if not (staging / STARTED_NAME).is_file() or time.monotonic() > deadline:
                return None
            time.sleep(FOLLOW_POLL_S)
            process = self._process_of(staging)
        pid, cwd = process or (0, staging)
        exit_code = self._follow(staging, lambda: self._commands.alive(pid, cwd), on_line)
        return ExecutionResult(exit_code, started_at, self._clock.now(), staging / LOG_NAME)

    def _follow(
        self, staging: Path, running: Callable[[], bool], on_line: Callable[[str], None]
    ) -> int | None:
        """Pass on the job's log until its program ends; return the exit code.

        A supervisor that ended without recording one (killed outright, or it
        could not start on a full disk) gives None: the code is not known.
        """
        exit_file = staging / EXIT_NAME
        log_path = staging / LOG_NAME
        log_path.touch()

        def keep_going() -> bool:
            return not exit_file.is_file() and running()

        tail_lines(log_path, on_line, keep_going, poll_s=FOLLOW_POLL_S)
        try:
            return int(exit_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None

    def _process_of(self, staging: Path) -> tuple[int, Path] | None:
        """The job's supervisor process, from its pid file, if it still runs."""
        process = _pid_file(staging)
        return process if process is not None and self._commands.alive(*process) else None

    def describe(self) -> TargetReport:
        """This machine's GPUs; the local target runs no containers."""
        return TargetReport(
            self.target_name, "local", "this machine", gpus=query_gpus(self._commands)
        )

    def job_log(
        self,
        job_id: str,
        staging: Path,
        on_line: Callable[[str], None],
        keep_going: Callable[[], bool] | None,
    ) -> LiveLog | None:
        """Read (and follow) the job's log file in its work folder."""
        try:
            lines = tail_lines(staging / LOG_NAME, on_line, keep_going)
        except FileNotFoundError:
            return None
        return LiveLog(lines, complete=False)

    def kill_now(self, job_id: str, staging: Path) -> None:
        """SIGKILL the job's supervisor and program (they would outlive the runner).

        A supervisor that has not taken its start token yet never will.
        """
        claim_start(staging / START_NAME, ABANDONED_NAME)
        process = self._process_of(staging)
        if process is not None:
            self._commands.kill(*process)

    def stop_job(self, job_id: str, staging: Path) -> str | None:
        """SIGTERM the job's model process; SIGKILL if it is still there after a grace period.

        The job is over once the runner has recorded it and removed its work folder.
        """
        wait_while_starting(staging, (staging / PID_NAME).is_file)
        process = _pid_file(staging)
        if process is None:
            return None
        pid, cwd = process
        if not self._commands.terminate(pid, cwd):
            return None
        deadline = time.monotonic() + STOP_GRACE_S
        while staging.is_dir() and time.monotonic() < deadline:
            time.sleep(0.1)
        if staging.is_dir() and self._commands.kill(pid, cwd):
            logger.warning("Process %d ignored SIGTERM for %.0fs; killed it", pid, STOP_GRACE_S)
        return f"process {pid}"


def _pid_file(staging: Path) -> tuple[int, Path] | None:
    """The pid and working folder a local job's supervisor wrote, if it did."""
    try:
        pid_text, cwd_text = (staging / PID_NAME).read_text(encoding="utf-8").splitlines()[:2]
        return int(pid_text), Path(cwd_text)
    except (OSError, ValueError):
        return None


def make_local_executor(target: LocalTargetSettings, context: ExecutorContext) -> LocalExecutor:
    """Build the executor of a local target (inputs in this machine's input cache)."""
    cache = LocalInputCache(context.input_cache_dir)
    return LocalExecutor(target.name, context.commands, cache, context.clock, env=target.env)
