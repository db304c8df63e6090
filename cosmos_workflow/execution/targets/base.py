"""The executor interface: what every target kind implements.

Everything above this interface is target-agnostic: the job runner
(engine/runner.py) hands over an :class:`~cosmos_workflow.execution.adapters.base.Invocation`
and a local staging folder, and afterwards finds the outputs and the log in
that folder, whichever host did the work; run control (engine/control.py)
shows a running job's log and stops it; the dispatcher (engine/dispatch.py)
checks and probes targets and re-attaches to jobs that a runner lost.

A new kind of target is a subclass of :class:`Executor` in a module of its
own (execution/targets/<kind>.py) with a factory registered in
execution/targets/registry.py; tests/test_executor_contract.py is the
contract it must pass.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from cosmos_workflow.errors import CosmosError
from cosmos_workflow.execution.adapters.base import Invocation, JobLayout
from cosmos_workflow.execution.targets.docker import ContainerInfo
from cosmos_workflow.execution.targets.gpus import GpuInfo
from cosmos_workflow.execution.targets.slurm_queue import QueuedJob
from cosmos_workflow.manifest.specs import InputFile

# Where a job's log is in its staging folder, once the executor has fetched it.
LOG_NAME = "logs/job.log"
# How long `cosmos kill` waits for a job whose work folder exists to start its program.
START_WAIT_S = 30.0


@dataclass(frozen=True)
class TargetReport:
    """What a target says about itself for `cosmos status`.

    Attributes:
        name: The target's name.
        kind: The target's kind (``local``, ``ssh``, ...).
        address: Where it is (``this machine`` or user@host:port).
        reachable: False if the host could not be reached or refused us.
        error: Why it is unreachable, or what could not be listed.
        gpus: The GPUs nvidia-smi reports; None when there is no GPU information.
        containers: Our containers there (running or not); None where the
            target runs no containers (local) or they could not be listed.
        queued_jobs: Our jobs in a cluster scheduler's queue (pending or
            running); None where there is no scheduler or it could not be asked.
        job_folders: How many job folders of ours are on the target (None:
            the target has none of its own, or they could not be listed).
    """

    name: str
    kind: str
    address: str
    reachable: bool = True
    error: str | None = None
    gpus: list[GpuInfo] | None = None
    containers: list[ContainerInfo] | None = None
    queued_jobs: list[QueuedJob] | None = None
    job_folders: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "address": self.address,
            "reachable": self.reachable,
            "error": self.error,
            "gpus": None if self.gpus is None else [gpu.to_dict() for gpu in self.gpus],
            "containers": None
            if self.containers is None
            else [container.to_dict() for container in self.containers],
            "queued_jobs": None
            if self.queued_jobs is None
            else [job.to_dict() for job in self.queued_jobs],
            "job_folders": self.job_folders,
        }


@dataclass(frozen=True)
class Leftover:
    """Something of a job's left on a target: a container or a job folder.

    Attributes:
        job_id: The job it belongs to (its label or folder name).
        what: ``container`` or ``job folder``.
        name: The container's name or the folder's path.
        running: True if a program still runs in it (a running container).
        runs: The runs a container's label names (empty for a folder).
    """

    job_id: str
    what: str
    name: str
    running: bool = False
    runs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "job_id": self.job_id,
            "what": self.what,
            "name": self.name,
            "running": self.running,
        }


@dataclass(frozen=True)
class LiveLog:
    """What a job's live log delivered.

    Attributes:
        lines: Complete lines passed on.
        complete: True if those are the whole log (the program has exited);
            False if the end must be read from the run folder's copy.
    """

    lines: int
    complete: bool


@dataclass(frozen=True)
class ExecutionResult:
    """How one invocation ended.

    Attributes:
        exit_code: The program's exit code (negative: killed by that signal; None:
            its supervisor ended without recording it).
        started_at: When the job started.
        finished_at: When its program ended.
        log_path: The job's whole log, in the staging folder.
    """

    exit_code: int | None
    started_at: datetime
    finished_at: datetime
    log_path: Path


def wait_while_starting(staging: Path, started: Callable[[], bool]) -> None:
    """Wait (a bounded time) while a job's work folder exists but its program has not started.

    The runner makes the work folder before its last look at cancellations,
    so a job in that state either drops its cancelled runs (and removes the
    folder) or starts its program: wait for one or the other, to stop it.
    """
    deadline = time.monotonic() + START_WAIT_S
    while staging.is_dir() and not started() and time.monotonic() < deadline:
        time.sleep(0.2)


class Executor(ABC):
    """Runs the invocations of jobs on one target.

    One executor serves one target for one API (one connection per host);
    the dispatcher calls it from several threads at once, one job per call.
    A job is known by its job id and its staging folder, a local work folder
    that the runner makes before the job and removes once every run of the
    job is recorded; another process (`cosmos kill`, `cosmos logs`, the next
    runner) finds the job with a fresh executor from the same two.

    Errors: :class:`~cosmos_workflow.errors.NetworkFailure` means the target
    could not be reached (the dispatcher drains it and tries the job
    elsewhere); any other :class:`~cosmos_workflow.errors.CosmosError` fails
    the job. A program that exits non-zero is not an error: its exit code is
    the result.

    Attributes:
        target_name: The target's name (recorded with every run it executes).
        machine: The machine whose GPUs its jobs use, the same for every runner
            and target that reach it (the key of its GPU leases: two runners
            never put two jobs on one of its GPUs).
        jobs_on_this_machine: True if the jobs run on the runner's own machine
            and are found again from their staging folder there (so only a
            runner on the same machine can re-attach to them); False if any
            runner that reaches the target can find them (e.g. containers by label).
    """

    target_name: str
    machine: str
    jobs_on_this_machine: ClassVar[bool] = False

    def preflight(self) -> None:
        """Check the target is reachable before any work (nothing to check by default).

        Raises:
            NetworkFailure: it cannot be reached (or refuses us).
        """
        return None

    def probe(self) -> None:
        """Check that a target that did not answer answers again (raises if not)."""
        self.preflight()

    def close(self) -> None:
        """Release connections (none by default); the executor may be used again after."""
        return None

    def label_jobs(self, sweep_id: str | None) -> None:
        """Say which sweep the jobs started from now on belong to (a scheduler may show it).

        Nothing by default; the slurm target puts it in each job's ``--comment``.
        """
        return None

    @abstractmethod
    def layout(self, job_id: str, staging: Path) -> JobLayout:
        """Where the job's files are, as the program will see them (the adapter renders with it)."""

    @abstractmethod
    def stage_inputs(self, items: list[InputFile]) -> dict[str, CosmosError]:
        """Make inputs readable by the program, verified by sha256 (content-addressed).

        An input staged once is not copied again; a file whose content does
        not have its sha256 is never used.

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
        """Start ``invocation``'s program on ``gpus`` and follow it to its end.

        The program runs detached: it outlives a runner that dies while
        following it, and :meth:`reattach` finds it again. Each log line is
        passed to ``on_line`` as it comes.

        Returns:
            Its exit code, times and log; afterwards ``staging`` holds the
            outputs the program wrote (whatever its exit code) and its log.
        """

    @abstractmethod
    def reattach(
        self,
        invocation: Invocation,
        staging: Path,
        started_at: datetime,
        on_line: Callable[[str], None],
    ) -> ExecutionResult | None:
        """Find a job that an earlier runner started; wait for it and stage its results.

        Args:
            invocation: The job, rendered again (same job id, same runs).
            staging: A local work folder for its outputs and log.
            started_at: When the job started.
            on_line: Receives the log lines that come from now on.

        Returns:
            As :meth:`execute`; None if the job is gone from the target (it
            must run again; it will not start later).
        """

    def release(self, job_id: str, staging: Path) -> None:
        """Remove what the job left on the target, once its outcome is recorded (nothing here)."""
        return None

    def leftovers(self) -> list[Leftover]:
        """Containers and job folders of ours on the target, of any job (none by default).

        A target whose jobs live only in their local staging folders has none
        of its own (`cosmos gc` looks at those folders itself).

        Raises:
            NetworkFailure: the target cannot be reached.
        """
        return []

    def kill_now(self, job_id: str, staging: Path) -> None:
        """Kill a job's program at once, without waiting (a runner that quits; nothing here)."""
        return None

    @abstractmethod
    def describe(self) -> TargetReport:
        """GPUs (and our containers) of the target; an unreachable host is reported, not raised."""

    @abstractmethod
    def job_log(
        self,
        job_id: str,
        staging: Path,
        on_line: Callable[[str], None],
        keep_going: Callable[[], bool] | None,
    ) -> LiveLog | None:
        """Pass a running job's log to ``on_line``.

        Args:
            job_id: The job.
            staging: The job's local work folder.
            on_line: Receives each line.
            keep_going: None prints what exists; otherwise the log is
                followed until the job ends (or ``keep_going()`` turns false).

        Returns:
            None if the job has no live log on the target (not started yet, or over).
        """

    @abstractmethod
    def stop_job(self, job_id: str, staging: Path) -> str | None:
        """Stop a job's program now; the runner following it sees it end (non-zero).

        A job whose program is about to start is waited for (a bounded
        time), so that it is stopped rather than left to start.

        Returns:
            What was stopped (for messages), or None if nothing of the job was running.
        """


def stage_each(
    items: list[InputFile], put: Callable[[InputFile], object]
) -> dict[str, CosmosError]:
    """Stage each input with ``put``; the failures by sha256 (the others are staged).

    The shared loop of every kind's ``stage_inputs``.
    """
    failures: dict[str, CosmosError] = {}
    for item in items:
        try:
            put(item)
        except CosmosError as exc:
            failures[item.sha256] = exc
    return failures
