"""The ssh target: runs invocations in containers on a GPU host over SSH.

Per job: the spec files go to ``<work_dir>/jobs/<job_id>/``, inputs come from
the host's content-addressed cache (``<work_dir>/cache/``, uploaded once per
host and verified), the model runs in a detached, labelled container whose
log is followed live, and the outputs and log come back verified, whatever
the exit code. A dropped connection is reopened and the runner re-attaches to
the same container; it never starts a second one.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from cosmos_workflow.config.target_kinds import SSHTargetSettings
from cosmos_workflow.connection.remote import RemoteCommandExecutor
from cosmos_workflow.connection.ssh import SSHEndpoint, SSHManager, parse_jump
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
from cosmos_workflow.execution.targets.docker import (
    ContainerSpec,
    DockerCommandBuilder,
    DockerExecutor,
)
from cosmos_workflow.execution.targets.gpus import query_gpus
from cosmos_workflow.execution.targets.registry import ExecutorContext
from cosmos_workflow.execution.targets.silence import HostSilence
from cosmos_workflow.manifest.specs import InputFile
from cosmos_workflow.transfer.files import FileTransferService
from cosmos_workflow.utils.clock import Clock

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


def container_name(job_id: str) -> str:
    """The name of a job's container."""
    return f"cosmos-{job_id}"


def endpoints(target: SSHTargetSettings) -> tuple[SSHEndpoint, SSHEndpoint | None]:
    """The SSH endpoint of a target, and of its jump host if any."""
    endpoint = SSHEndpoint(
        host=target.host,
        port=target.port,
        user=target.user,
        key_file=Path(target.key_file).expanduser() if target.key_file else None,
        known_hosts=Path(target.known_hosts).expanduser(),
        use_agent=target.use_agent,
        connect_timeout=target.connect_timeout,
    )
    jump = parse_jump(target.jump_host, endpoint) if target.jump_host else None
    return endpoint, jump


class RemoteExecutor(Executor):
    """Executor for an SSH + Docker (or Podman) host.

    Its jobs are containers found again by label, from any machine that reaches the host.

    Args:
        target: The target's settings.
        ssh: The shared connection to the host.
        clock: Time source.
        reattach_wait_s: Seconds between re-attach attempts after a drop.
        patience_s: How long a silent host is waited for before a job is given back.
        check_every_s: Seconds between checks that the host answers, while a job runs.
    """

    def __init__(
        self,
        target: SSHTargetSettings,
        ssh: SSHManager,
        clock: Clock,
        reattach_wait_s: float = 1.0,
        patience_s: float = 120.0,
        check_every_s: float = 5.0,
    ) -> None:
        self.target_name = target.name
        via = f"{target.jump_host}/" if target.jump_host else ""
        self.machine = f"ssh:{via}{target.host.lower()}:{target.port}"
        self._target = target
        self._ssh = ssh
        self._remote = RemoteCommandExecutor(ssh)
        self._files = FileTransferService(ssh, self._remote)
        self._docker = DockerExecutor(
            self._remote, DockerCommandBuilder(target.runtime), env=target.runtime_env or None
        )
        self._clock = clock
        self._reattach_wait_s = reattach_wait_s
        self._patience_s = patience_s
        self._check_every_s = check_every_s
        self._watch_lock = threading.Lock()
        self._watched = 0
        self._watch_stop = threading.Event()

    @property
    def cache_dir(self) -> str:
        """The host's content-addressed input cache."""
        return posixpath.join(self._target.work_dir, "cache")

    def preflight(self) -> None:
        """Connect now, so auth and host-key problems stop everything early."""
        self._ssh.connect()

    def probe(self) -> None:
        """Connect if need be, and check that the host answers within the connect timeout."""
        self._ssh.connect()
        self._ssh.check_alive(self._target.connect_timeout)

    def layout(self, job_id: str, staging: Path) -> JobLayout:
        """The job folder on the host, mounted at the same path in the container."""
        root = posixpath.join(self._target.work_dir, "jobs", job_id)
        return JobLayout(root=root, python=self._target.python)

    def stage_inputs(self, items: list[InputFile]) -> dict[str, CosmosError]:
        """Upload inputs the host's cache lacks, each verified by sha256."""
        return stage_each(items, lambda item: self._files.ensure_cached(item, self.cache_dir))

    def execute(
        self,
        invocation: Invocation,
        staging: Path,
        gpus: list[int],
        on_line: Callable[[str], None],
    ) -> ExecutionResult:
        """Upload the job, run its container, bring back outputs and log."""
        layout = self.layout(invocation.job_id, staging)
        name = container_name(invocation.job_id)
        spec = ContainerSpec(
            name=name,
            image=self._target.image,
            argv=invocation.argv,
            labels={"job": invocation.job_id, "runs": ",".join(sorted(invocation.outputs))},
            gpus=gpus if self._target.gpu_flags else None,
            mounts={self._target.work_dir: self._target.work_dir, **self._target.mounts},
            # The model may not change the verified inputs that other runs share.
            read_only={self.cache_dir: self.cache_dir},
            env={**invocation.env, **self._target.env},
            workdir=invocation.workdir or layout.root,
            shm_size=self._target.shm_size,
            ipc=self._target.ipc,
            network=self._target.network,
        )
        started = self._clock.now()
        try:
            # A failed upload or start leaves nothing on the host.
            self._upload_job(invocation, staging, layout)
            self._docker.start(spec)
        except BaseException:
            self._cleanup(name, layout)
            raise
        return self._collect(invocation, staging, started, on_line)

    def reattach(
        self,
        invocation: Invocation,
        staging: Path,
        started_at: datetime,
        on_line: Callable[[str], None],
    ) -> ExecutionResult | None:
        """Find the job's container by label; follow it to its end and bring back its results."""
        if not self._docker.find({"job": invocation.job_id}):
            return None
        logger.info("Re-attaching to %s on %s", container_name(invocation.job_id), self.target_name)
        return self._collect(invocation, staging, started_at, on_line)

    def _collect(
        self,
        invocation: Invocation,
        staging: Path,
        started: datetime,
        on_line: Callable[[str], None],
    ) -> ExecutionResult:
        """Follow the container to its exit, then download its outputs (it stays until release).

        Both are watched and wait for a silent host up to the patience: a cut
        while the outputs come back does not give a finished job back at once.
        """
        log_path = staging / LOG_NAME
        log_path.parent.mkdir(parents=True, exist_ok=True)
        job_id = invocation.job_id
        layout = self.layout(job_id, staging)
        with self._watchdog():
            exit_code = self._follow_and_wait(job_id, log_path, on_line)
            finished = self._clock.now()
            self._patiently(job_id, lambda: self._download_outputs(invocation, staging, layout))
        return ExecutionResult(exit_code, started, finished, log_path)

    @contextlib.contextmanager
    def _watchdog(self) -> Iterator[None]:
        """While jobs are followed, check every few seconds that the host still answers.

        A host cut off the network sends nothing, not even a reset: without
        this check the log streams would wait for TCP to give up. One check
        per host, however many jobs run there.
        """
        with self._watch_lock:
            self._watched += 1
            if self._watched == 1:
                self._watch_stop = threading.Event()
                threading.Thread(
                    target=self._watch,
                    args=(self._watch_stop,),
                    name=f"watch-{self.target_name}",
                    daemon=True,
                ).start()
        try:
            yield
        finally:
            with self._watch_lock:
                self._watched -= 1
                if self._watched == 0:
                    self._watch_stop.set()

    def _watch(self, stop: threading.Event) -> None:
        while not stop.wait(self._check_every_s):
            with contextlib.suppress(NetworkFailure):
                self._ssh.check_alive(self._target.connect_timeout)

    def release(self, job_id: str, staging: Path) -> None:
        """Remove the job's container and its folder on the host."""
        self._cleanup(container_name(job_id), self.layout(job_id, staging))

    def _upload_job(self, invocation: Invocation, staging: Path, layout: JobLayout) -> None:
        for relative, content in invocation.files.items():
            local = staging / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(content)
            self._files.upload(local, layout.path(relative))
        links = []
        for relative, item in invocation.inputs.items():
            cached = self._files.ensure_cached(item, self.cache_dir)
            links.append((cached, layout.path(relative)))
        if links:
            self._remote.run(["mkdir", "-p", "--", layout.path("inputs")], check=True)
            for cached, link in links:
                self._remote.run(["ln", "-sfn", "--", cached, link], check=True)

    def _follow_and_wait(self, job_id: str, log_path: Path, on_line: Callable[[str], None]) -> int:
        """Follow the log live; after a dropped connection, re-attach to the same container.

        Lines already passed on are not repeated after a re-attach. The log
        file is the container's whole log, fetched once it has exited.
        """
        name = container_name(job_id)
        delivered = 0

        def attempt() -> int:
            seen = 0

            def forward(line: str) -> None:
                nonlocal seen, delivered
                seen += 1
                if seen > delivered:
                    delivered += 1
                    on_line(line)

            self._docker.follow_logs(name, forward)
            code = self._docker.wait(name)
            log_path.write_text(self._full_log(name), encoding="utf-8")
            return code

        return self._patiently(job_id, attempt)

    def _patiently(self, job_id: str, work: Callable[[], _T]) -> _T:
        """``work()``, done again after a dropped connection while the host is silent.

        A silent host is waited for up to the patience (execution/targets/silence.py).

        Raises:
            NetworkFailure: it stayed silent longer; the job is given back.
        """
        silence = HostSilence(self._target.name, job_id, self._patience_s, self._clock)
        while True:
            try:
                if silence.silent_s:
                    self._ssh.connect()
                    self._ssh.check_alive(self._target.connect_timeout)
                    silence.answered()
                return work()
            except NetworkFailure as exc:
                if not silence.lost(exc):
                    raise NetworkFailure(
                        f"{self._target.name} was silent for {silence.silent_s:.0f} s "
                        f"(scheduler.patience_s); container {container_name(job_id)} may "
                        "still be running there"
                    ) from exc
                time.sleep(self._reattach_wait_s)

    def _full_log(self, name: str) -> str:
        builder = DockerCommandBuilder(self._target.runtime)
        done = self._remote.run(
            builder.logs(name, follow=False), env=self._target.runtime_env or None
        )
        return done.stdout + done.stderr

    def _download_outputs(self, invocation: Invocation, staging: Path, layout: JobLayout) -> None:
        """Bring back every output the program wrote, asked for in one round trip.

        The optional ones (the prompt text, computed control videos) only when it did.
        """
        wanted = {
            layout.path(relative): relative
            for outputs in invocation.outputs.values()
            for relative in (outputs.video, *outputs.extras.values(), *outputs.controls.values())
        }
        # find names the regular files among them (the others are an error on
        # stderr); only lines that are one of our paths count, whatever else is printed.
        listed = self._remote.run(["find", *wanted, "-maxdepth", "0", "-type", "f"])
        for far in sorted(set(listed.stdout.splitlines()) & set(wanted)):
            self._files.download(far, staging / wanted[far])

    def _cleanup(self, name: str, layout: JobLayout) -> None:
        """Remove the container and the job folder; one failing does not skip the other."""
        for step in (
            lambda: self._docker.remove(name),
            lambda: self._remote.run(["rm", "-rf", "--", layout.root]),
        ):
            try:
                step()
            except CosmosError as exc:
                logger.warning("Could not clean up %s on %s: %s", name, self._target.name, exc)

    def leftovers(self) -> list[Leftover]:
        """Our containers (by label) and job folders (``<work_dir>/jobs/jb_*``) on the host."""
        found = [
            Leftover(
                info.labels["job"],
                "container",
                info.name,
                info.running,
                tuple(r for r in info.labels.get("runs", "").split(",") if r),
            )
            for info in self._docker.list_ours()
            if info.labels.get("job")
        ]
        jobs = posixpath.join(self._target.work_dir, "jobs")
        listed = self._remote.run(
            ["find", jobs, "-mindepth", "1", "-maxdepth", "1", "-type", "d", "-name", "jb_*"]
        )
        # Only lines that are one of our folders count, whatever else a login prints.
        for line in sorted(set(listed.stdout.splitlines())):
            if posixpath.dirname(line) == jobs and posixpath.basename(line).startswith("jb_"):
                found.append(Leftover(posixpath.basename(line), "job folder", line))
        return found

    def describe(self) -> TargetReport:
        """The host's GPUs (nvidia-smi), our containers and how many job folders are there."""
        address = self._ssh.endpoint.label
        try:
            self._ssh.connect()
            gpus = query_gpus(self._remote)
        except NetworkFailure as exc:
            return TargetReport(self.target_name, "ssh", address, reachable=False, error=str(exc))
        try:
            containers = self._docker.list_ours()
            folders = sum(item.what == "job folder" for item in self.leftovers())
        except (ExecutionFailure, NetworkFailure) as exc:
            return TargetReport(self.target_name, "ssh", address, error=str(exc), gpus=gpus)
        return TargetReport(
            self.target_name, "ssh", address, gpus=gpus, containers=containers, job_folders=folders
        )

    def job_log(
        self,
        job_id: str,
        staging: Path,
        on_line: Callable[[str], None],
        keep_going: Callable[[], bool] | None,
    ) -> LiveLog | None:
        """The container's log (``logs -f`` follows it until the container exits)."""
        name = container_name(job_id)
        if not self._docker.find({"job": job_id}):
            return None
        lines = 0

        def count(line: str) -> None:
            nonlocal lines
            lines += 1
            on_line(line)

        self._docker.follow_logs(name, count, follow=keep_going is not None)
        return LiveLog(lines, complete=True)

    def stop_job(self, job_id: str, staging: Path) -> str | None:
        """Kill the job's container (the runner following it removes it).

        A container still in state ``created`` (``docker run -d`` passes
        through it) cannot be killed yet: wait until it runs.
        """
        wait_while_starting(staging, lambda: self._job_container_started(job_id))
        stopped = [
            info.name
            for info in self._docker.find({"job": job_id})
            if info.running and self._docker.kill(info.name)
        ]
        if not stopped:
            return None
        return f"container {', '.join(stopped)} on {self._ssh.endpoint.label}"

    def _job_container_started(self, job_id: str) -> bool:
        """True once the job has a container and none of them is still being created."""
        containers = self._docker.find({"job": job_id})
        return bool(containers) and all(info.state != "created" for info in containers)

    def close(self) -> None:
        """Close the connection."""
        self._ssh.close()


def make_remote_executor(target: SSHTargetSettings, context: ExecutorContext) -> RemoteExecutor:
    """Build the executor (and its connection, opened on first use) for an ssh target."""
    endpoint, jump = endpoints(target)
    return RemoteExecutor(
        target, SSHManager(endpoint, jump), context.clock, patience_s=context.patience_s
    )
