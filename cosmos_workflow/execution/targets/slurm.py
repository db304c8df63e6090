"""The slurm target: one scheduled job = one sbatch job on a Slurm cluster.

Per job: its folder ``<work_dir>/jobs/<job_id>/`` on the cluster's shared
file system is made first (spec files, inputs linked from the
content-addressed cache ``<work_dir>/cache/``, each input uploaded once per
cluster, and the batch script), then the job is submitted with sbatch and
its Slurm job id recorded in the folder right after. Slurm chooses the GPUs
(``--gres=gpu:N``; CUDA_VISIBLE_DEVICES comes from Slurm): the target's GPUs
are virtual slots ``0 .. max_gpus-1``, a pool with a capacity that the
scheduler and the GPU leases (keyed by the cluster) share among runners.

The job is followed by polling squeue (pending, with Slurm's reason, then
running, on its node) and tailing its log; its outcome comes from the
``outcome`` file the batch script writes (engine-independent of accounting
and of scontrol's short memory), classified by Slurm's final state:
CANCELLED -> the runs are cancelled, TIMEOUT -> failed ("time limit"),
NODE_FAIL or PREEMPTED -> transient (tried again). A runner that died finds
its jobs again by folder, recorded id, or job name; it never submits twice.
"""

from __future__ import annotations

import logging
import posixpath
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cosmos_workflow.config.target_kinds import SlurmTargetSettings
from cosmos_workflow.connection.remote import RemoteCommandError
from cosmos_workflow.errors import CosmosError, ExecutionFailure, NetworkFailure
from cosmos_workflow.execution.adapters.base import Invocation, JobLayout
from cosmos_workflow.execution.targets.base import (
    LOG_NAME,
    ExecutionResult,
    Executor,
    Leftover,
    LiveLog,
    TargetReport,
    stage_each,
    wait_while_starting,
)
from cosmos_workflow.execution.targets.registry import ExecutorContext
from cosmos_workflow.execution.targets.silence import HostSilence
from cosmos_workflow.execution.targets.slurm_login import LoginNode, login_node
from cosmos_workflow.execution.targets.slurm_queue import list_queue
from cosmos_workflow.execution.targets.slurm_script import (
    ENDED_BY_ITSELF,
    OUTCOME_NAME,
    PROGRAM_LOG,
    SCRIPT_NAME,
    SLURM_ERR,
    SLURM_ID_NAME,
    SQUEUE_FORMAT,
    STARTED_NAME,
    STOPPED_NAME,
    JobState,
    Outcome,
    batch_script,
    check_ended,
    job_name,
    parse_outcome,
    parse_state,
    sbatch_argv,
    state_line,
)
from cosmos_workflow.manifest.specs import InputFile
from cosmos_workflow.utils.clock import Clock

logger = logging.getLogger(__name__)

# How long a job that Slurm says is over may take to show its outcome file
# (a shared file system's attribute cache).
OUTCOME_WAIT_S = 10.0
# How long the login node may stay silent while jobs are followed (they run on
# meanwhile and are collected when it answers): scheduler.patience_s.
PATIENCE_S = 120.0


class SlurmExecutor(Executor):
    """Executor for a Slurm cluster reached through its login node.

    Its jobs are found again by any runner that reaches the cluster.

    Args:
        target: The target's settings.
        login: The cluster's login node.
        clock: Time source.
        patience_s: How long the login node may stay silent while jobs are followed.
    """

    def __init__(
        self,
        target: SlurmTargetSettings,
        login: LoginNode,
        clock: Clock,
        patience_s: float = PATIENCE_S,
    ) -> None:
        self.target_name = target.name
        self.machine = login.machine
        self._target = target
        self._login = login
        self._clock = clock
        self._patience_s = patience_s
        self._sweep_id: str | None = None

    @property
    def cache_dir(self) -> str:
        """The cluster's content-addressed input cache."""
        return posixpath.join(self._target.work_dir, "cache")

    def preflight(self) -> None:
        """Reach the login node now, so auth and host-key problems stop everything early."""
        self._login.connect()

    def probe(self) -> None:
        """Check that the login node answers."""
        self._login.check_alive()

    def close(self) -> None:
        """Close the connection to the login node."""
        self._login.close()

    def label_jobs(self, sweep_id: str | None) -> None:
        """The sweep the next jobs belong to: their ``--comment`` (squeue ``%k``)."""
        self._sweep_id = sweep_id

    def layout(self, job_id: str, staging: Path) -> JobLayout:
        """The job folder on the shared file system."""
        root = posixpath.join(self._target.work_dir, "jobs", job_id)
        return JobLayout(root=root, python=self._target.python)

    def stage_inputs(self, items: list[InputFile]) -> dict[str, CosmosError]:
        """Put inputs the cluster's cache lacks there, each verified by sha256."""
        return stage_each(items, lambda item: self._login.cache_input(item, self.cache_dir))

    # -- submitting ----------------------------------------------------------------
    def execute(
        self,
        invocation: Invocation,
        staging: Path,
        gpus: list[int],
        on_line: Callable[[str], None],
    ) -> ExecutionResult:
        """Make the job folder, submit the job, follow it to its end and bring back its results."""
        layout = self.layout(invocation.job_id, staging)
        try:
            self._prepare(invocation, layout)
        except BaseException:
            self._remove_folder(layout.root)
            raise
        slurm_id = self._submit(invocation.job_id, layout.root, len(gpus))
        return self._collect(invocation, staging, slurm_id, on_line)

    def _prepare(self, invocation: Invocation, layout: JobLayout) -> None:
        """The job folder: spec files, inputs linked from the cache, the batch script."""
        self._run(["mkdir", "-p", "--", layout.path("logs"), layout.path("inputs")])
        for relative, content in invocation.files.items():
            self._login.put(content, layout.path(relative))
        for relative, item in invocation.inputs.items():
            cached = self._login.cache_input(item, self.cache_dir)
            self._run(["ln", "-sfn", "--", cached, layout.path(relative)])
        script = batch_script(
            self._target,
            layout.root,
            invocation.argv,
            {**invocation.env, **self._target.env},
            invocation.workdir or layout.root,
            invocation.job_id,
        )
        self._login.put(script.encode(), layout.path(SCRIPT_NAME))

    def _submit(self, job_id: str, job_dir: str, num_gpus: int) -> str:
        """sbatch the job; record its Slurm id in the folder at once.

        Raises:
            ExecutionFailure: sbatch refused the job (a bad partition, account, ...).
        """
        comment = self._sweep_id or job_id
        argv = sbatch_argv(self._target, job_dir, job_id, num_gpus, comment=comment)
        done = self._login.run(argv)
        slurm_id = done.stdout.strip().split(";")[0]
        if done.exit_code != 0 or not slurm_id.isdigit():
            self._remove_folder(job_dir)
            raise ExecutionFailure(
                f"sbatch refused job {job_id} on {self.target_name}: "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )
        self._login.put(f"{slurm_id}\n".encode(), posixpath.join(job_dir, SLURM_ID_NAME))
        logger.info("Job %s is Slurm job %s on %s", job_id, slurm_id, self.target_name)
        return slurm_id

    # -- following -----------------------------------------------------------------
    def reattach(
        self,
        invocation: Invocation,
        staging: Path,
        started_at: datetime,
        on_line: Callable[[str], None],
    ) -> ExecutionResult | None:
        """Find a job an earlier runner submitted (by recorded id, or by name); follow it.

        A job that ran but whose id was never recorded and that Slurm has
        forgotten is collected from its outcome. A folder whose job was never
        submitted is removed: the job runs again (as a new job).
        """
        slurm_id = self._slurm_id(invocation.job_id)
        if slurm_id is None:
            layout = self.layout(invocation.job_id, staging)
            if self._read(layout.path(STARTED_NAME)) is None:
                self._remove_folder(layout.root)
                return None
            slurm_id = ""
        logger.info("Re-attaching to Slurm job %s (%s)", slurm_id, invocation.job_id)
        result = self._collect(invocation, staging, slurm_id, on_line)
        return ExecutionResult(result.exit_code, started_at, result.finished_at, result.log_path)

    def _slurm_id(self, job_id: str) -> str | None:
        """The Slurm id of a job: recorded in its folder, else found by its name in squeue.

        A job found by name has its id recorded now. None: no folder, or a
        folder whose job was never submitted (it cannot be submitted later).
        """
        job_dir = self.layout(job_id, Path()).root
        recorded = self._read(posixpath.join(job_dir, SLURM_ID_NAME))
        if recorded is not None and recorded.strip().isdigit():
            return recorded.strip()
        if self._login.run(["test", "-d", job_dir]).exit_code != 0:
            # Released (its runs are recorded), or never made.
            return None
        done = self._run(["squeue", "-h", "-t", "all", f"--name={job_name(job_id)}", "-o", "%i"])
        found = [word for word in done.stdout.split() if word.isdigit()]
        if not found:
            return None
        self._login.put(f"{found[0]}\n".encode(), posixpath.join(job_dir, SLURM_ID_NAME))
        return found[0]

    def _collect(
        self,
        invocation: Invocation,
        staging: Path,
        slurm_id: str,
        on_line: Callable[[str], None],
    ) -> ExecutionResult:
        """Follow the job to its end, fetch its log and outputs, and classify how it ended."""
        layout = self.layout(invocation.job_id, staging)
        said: list[str] = []
        with self._login.watched():
            final = self._follow(slurm_id, layout, on_line, said)
        # A job that ended by itself has written its outcome; one ended by Slurm may not have.
        outcome = self._outcome(layout, wait=final is None or final.state in ENDED_BY_ITSELF)
        log_path = staging / LOG_NAME
        self._fetch_log(layout, log_path, said)
        if final is not None and final.state == "CANCELLED" and self._stopped_by_us(layout):
            # Stopped by `cosmos kill`, Ctrl-C or a runner that quit: a program that ended.
            now = self._clock.now()
            ended = outcome or Outcome(-signal.SIGTERM, now, now, "")
            return ExecutionResult(ended.exit_code, ended.started_at, ended.finished_at, log_path)
        self._classify(slurm_id, final, outcome, layout)
        assert outcome is not None
        self._download_outputs(invocation, staging, layout)
        return ExecutionResult(outcome.exit_code, outcome.started_at, outcome.finished_at, log_path)

    def _stopped_by_us(self, layout: JobLayout) -> bool:
        return self._read(layout.path(STOPPED_NAME)) is not None

    def _follow(
        self, slurm_id: str, layout: JobLayout, on_line: Callable[[str], None], said: list[str]
    ) -> JobState | None:
        """Poll the job until it is over; pass its log lines on as they come.

        A line is passed on (and added to ``said``) each time the job's state
        changes: queued with Slurm's reason, running on its node.

        Returns:
            Its final state, or None if Slurm no longer knows it (over long ago).
        """
        offset = 0
        job_id = layout.root.rsplit("/", 1)[-1]
        silence = HostSilence(self.target_name, job_id, self._patience_s, self._clock)
        while True:
            try:
                if silence.silent_s:
                    self._login.check_alive()
                state = self.job_state(slurm_id)
                offset = self._tail(layout.path(PROGRAM_LOG), offset, on_line)
            except (NetworkFailure, RemoteCommandError) as exc:
                # The job runs on on the cluster; it is collected when the login node answers.
                if not silence.lost(exc):
                    raise NetworkFailure(
                        f"{self.target_name}: the login node was silent for "
                        f"{silence.silent_s:.0f} s (scheduler.patience_s); Slurm job {slurm_id} "
                        "may still run there"
                    ) from exc
                time.sleep(self._target.poll_s)
                continue
            silence.answered()
            if state is None or not state.active:
                return state
            news = state_line(slurm_id, state)
            if not said or news != said[-1]:
                # Shown to the user (a job queued in Slurm, and why) and kept in the job's log.
                logger.info("%s: %s", job_id, news.removeprefix("[slurm] "))
                on_line(news)
                said.append(news)
            time.sleep(self._target.poll_s)

    def job_state(self, slurm_id: str) -> JobState | None:
        """The job's state in squeue; None if Slurm no longer knows it (or its id is unknown)."""
        if not slurm_id:
            return None
        done = self._login.run(["squeue", "-h", "-t", "all", "-j", slurm_id, "-o", SQUEUE_FORMAT])
        if done.exit_code != 0:
            if "invalid job id" in done.stderr.lower():
                return None
            # slurmctld busy or restarting: as if the login node did not answer (wait).
            raise NetworkFailure(f"squeue failed on {self.target_name}: {done.stderr.strip()}")
        states = [parse_state(line) for line in done.stdout.splitlines()]
        return next((state for state in states if state is not None), None)

    def _tail(self, path: str, offset: int, on_line: Callable[[str], None]) -> int:
        """Pass on the complete lines of ``path`` after byte ``offset``; the new offset."""
        done = self._login.run(["tail", "-c", f"+{offset + 1}", "--", path])
        if done.exit_code != 0 or not done.stdout:
            return offset
        text = done.stdout
        complete = text[: text.rfind("\n") + 1]
        for line in complete.splitlines():
            on_line(line)
        return offset + len(complete.encode("utf-8"))

    def _outcome(self, layout: JobLayout, wait: bool) -> Outcome | None:
        """The outcome the batch script wrote (waiting a little for it to show, if ``wait``)."""
        deadline = time.monotonic() + (OUTCOME_WAIT_S if wait else 0.0)
        while True:
            text = self._read(layout.path(OUTCOME_NAME))
            outcome = parse_outcome(text) if text is not None else None
            if outcome is not None or time.monotonic() >= deadline:
                return outcome
            time.sleep(0.2)

    def _classify(
        self, slurm_id: str, final: JobState | None, outcome: Outcome | None, layout: JobLayout
    ) -> None:
        """Raise for a job that did not end by itself (slurm_script.py); return if it did."""
        started = outcome is not None or self._read(layout.path(STARTED_NAME)) is not None
        where = f"Slurm job {slurm_id or '(id unknown)'} on {self.target_name}"
        check_ended(where, final, outcome, started, self._target.time_limit)

    def _fetch_log(self, layout: JobLayout, log_path: Path, said: list[str]) -> None:
        """The job's states, the program's whole log, and Slurm's own messages (time limit, ...)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("".join(f"{line}\n" for line in said), encoding="utf-8")
        for name in (PROGRAM_LOG, SLURM_ERR):
            text = self._read(layout.path(name))
            if text:
                with log_path.open("a", encoding="utf-8") as handle:
                    handle.write(text)

    def _download_outputs(self, invocation: Invocation, staging: Path, layout: JobLayout) -> None:
        """Bring back every output the program wrote, listed in one round trip."""
        wanted = {
            layout.path(relative): relative
            for outputs in invocation.outputs.values()
            for relative in (outputs.video, *outputs.extras.values(), *outputs.controls.values())
        }
        listed = self._login.run(["find", *wanted, "-maxdepth", "0", "-type", "f"])
        for far in sorted(set(listed.stdout.splitlines()) & set(wanted)):
            self._login.fetch(far, staging / wanted[far])

    # -- helpers -------------------------------------------------------------------
    def _run(self, argv: list[str]) -> object:
        """Run a command on the login node; raise if it fails."""
        done = self._login.run(argv)
        if done.exit_code != 0:
            raise ExecutionFailure(
                f"{argv[0]} failed on {self.target_name}: {done.stderr.strip()[-500:]}"
            )
        return done

    def _read(self, path: str) -> str | None:
        """A small file's text on the cluster; None if it is not there."""
        done = self._login.run(["cat", "--", path])
        return done.stdout if done.exit_code == 0 else None

    def _remove_folder(self, job_dir: str) -> None:
        try:
            self._login.run(["rm", "-rf", "--", job_dir])
        except CosmosError as exc:
            logger.warning("Could not remove %s on %s: %s", job_dir, self.target_name, exc)

    # -- stopping, cleaning, reporting ---------------------------------------------
    def release(self, job_id: str, staging: Path) -> None:
        """Remove the job's folder on the cluster (and its Slurm job, if it is still there)."""
        self._login.run(["scancel", f"--name={job_name(job_id)}"])
        self._remove_folder(self.layout(job_id, staging).root)

    def leftovers(self) -> list[Leftover]:
        """Our job folders on the cluster (``<work_dir>/jobs/jb_*``), of any job."""
        jobs = posixpath.join(self._target.work_dir, "jobs")
        listed = self._login.run(
            ["find", jobs, "-mindepth", "1", "-maxdepth", "1", "-type", "d", "-name", "jb_*"]
        )
        # Only lines that are one of our folders count, whatever else a login prints.
        return [
            Leftover(posixpath.basename(line), "job folder", line)
            for line in sorted(set(listed.stdout.splitlines()))
            if posixpath.dirname(line) == jobs and posixpath.basename(line).startswith("jb_")
        ]

    def stop_job(self, job_id: str, staging: Path) -> str | None:
        """scancel the job (waiting, a bounded time, for a job about to be submitted)."""
        wait_while_starting(staging, lambda: self._slurm_id(job_id) is not None)
        slurm_id = self._slurm_id(job_id)
        if slurm_id is None:
            return None
        state = self.job_state(slurm_id)
        if state is None or not state.active:
            return None
        self._scancel(job_id, slurm_id)
        return f"Slurm job {slurm_id} on {self.target_name}"

    def kill_now(self, job_id: str, staging: Path) -> None:
        """scancel the job at once (a runner that quits)."""
        slurm_id = self._slurm_id(job_id)
        if slurm_id is not None:
            self._scancel(job_id, slurm_id)

    def _scancel(self, job_id: str, slurm_id: str) -> None:
        """Cancel a job, saying first (in its folder) that we did: not a cancel from outside."""
        stopped = self.layout(job_id, Path()).path(STOPPED_NAME)
        self._login.put(f"{self._clock.now().isoformat()}\n".encode(), stopped)
        self._login.run(["scancel", slurm_id])

    def describe(self) -> TargetReport:
        """The cluster as the login node sees it (pending and running jobs: cosmos status)."""
        try:
            self._login.check_alive()
        except NetworkFailure as exc:
            return TargetReport(
                self.target_name, "slurm", self._login.label, reachable=False, error=str(exc)
            )
        try:
            jobs = list_queue(self._login.run, self._target.partition)
        except (RuntimeError, CosmosError) as exc:
            return TargetReport(self.target_name, "slurm", self._login.label, error=str(exc))
        return TargetReport(self.target_name, "slurm", self._login.label, queued_jobs=jobs)

    def job_log(
        self,
        job_id: str,
        staging: Path,
        on_line: Callable[[str], None],
        keep_going: Callable[[], bool] | None,
    ) -> LiveLog | None:
        """The job's log on the shared file system (followed while the job is not over)."""
        layout = self.layout(job_id, staging)
        slurm_id = self._slurm_id(job_id)
        if slurm_id is None:
            return None
        lines = 0

        def count(line: str) -> None:
            nonlocal lines
            lines += 1
            on_line(line)

        offset = self._tail(layout.path(PROGRAM_LOG), 0, count)
        while keep_going is not None and keep_going():
            state = self.job_state(slurm_id)
            offset = self._tail(layout.path(PROGRAM_LOG), offset, count)
            if state is None or not state.active:
                break
            time.sleep(self._target.poll_s)
        return LiveLog(lines, complete=False)


def make_slurm_executor(target: SlurmTargetSettings, context: ExecutorContext) -> SlurmExecutor:
    """Build the executor (and its login node, reached on first use) of a slurm target."""
    login = login_node(target.login, context.commands)
    return SlurmExecutor(target, login, context.clock, patience_s=context.patience_s)
