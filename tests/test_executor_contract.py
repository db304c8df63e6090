"""The executor contract: what the engine relies on from every kind of target.

Every test runs once per kind, on a real target of that kind: the local
target (processes on this machine), the ssh target (the test host: a real
sshd and a private dockerd in a network namespace) and the slurm target (a
private one-node Slurm cluster whose login node is the test host's sshd). The job is the simulated
model, rendered by its adapter as the job runner would render it; each
executor is built through the kind registry, as the API builds it.

To put a new kind under the contract, write a harness for it (a generator
like :func:`local_harness` that yields a :class:`Harness`) and add it to
:data:`HARNESSES`; a test below fails while a registered kind has none.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from test_demo_sweep import free_box_metadata
from test_simulated_model import sha256_of

from cosmos_workflow.config.settings import SimulatorSettings, Target
from cosmos_workflow.config.target_kinds import (
    LocalTargetSettings,
    SlurmTargetSettings,
    SSHTargetSettings,
)
from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.errors import CosmosError, NetworkFailure
from cosmos_workflow.execution.adapters.base import Invocation
from cosmos_workflow.execution.adapters.simulated import SimulatedAdapter
from cosmos_workflow.execution.programs.simulated_model import EXIT_SIMULATED_FAILURE
from cosmos_workflow.execution.targets.base import LOG_NAME, ExecutionResult, Executor
from cosmos_workflow.execution.targets.gpus import GpuInfo
from cosmos_workflow.execution.targets.registry import (
    EXECUTOR_FACTORIES,
    ExecutorContext,
    make_executor,
)
from cosmos_workflow.manifest.models import ModelConfig
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, ResolvedPrompt, RunSpec
from cosmos_workflow.utils.clock import SystemClock

REPO = Path(__file__).resolve().parents[1]
DEMO_INPUTS = REPO / "inputs" / "demo" / "street"
SEED = 7
# The simulated model with every other parameter at the manifest's default.
MODEL: dict[str, Any] = ModelConfig(
    adapter="simulated", version="1", seed=SEED, weights={"depth": 0.5}
).model_dump()
NVIDIA_SMI = "#!/bin/sh\necho '0, NVIDIA A100-SXM4-40GB, 1024, 40960, 7'\n"
# How long a test waits for a job to get somewhere (a container start takes a while).
WAIT_S = 90.0


class RunnerLost(Exception):
    """Raised from a log callback: the runner that followed the job is gone."""


@dataclass
class Harness:
    """A target of one kind, ready for jobs.

    Attributes:
        target: The target's settings.
        context: What its executor factory is given.
        staging_root: Where the runner would keep job work folders.
        install_gpu_tool: Puts a program called nvidia-smi where the target finds it.
        unreachable: Settings of a target of this kind that cannot be reached
            (None: every target of the kind can be reached, e.g. this machine).
        lists_gpus: False for a kind whose GPUs no program on the target lists
            (a cluster's scheduler chooses them for each job).
    """

    target: Target
    context: ExecutorContext
    staging_root: Path
    install_gpu_tool: Callable[[str], None]
    unreachable: Target | None = None
    lists_gpus: bool = True
    executors: list[Executor] = field(default_factory=list)
    jobs: list[tuple[str, Path]] = field(default_factory=list)

    def executor(self) -> Executor:
        """A new executor of the target, as a new runner (or `cosmos kill`) would make one."""
        executor = make_executor(self.target, self.context)
        self.executors.append(executor)
        return executor

    def clean_up(self) -> None:
        """Leave nothing of the test's jobs running on the target, and close every executor."""
        cleaner = self.executor()
        for job_id, staging in self.jobs:
            cleaner.kill_now(job_id, staging)
            cleaner.release(job_id, staging)
        for executor in self.executors:
            executor.close()


def _context(tmp_path: Path) -> ExecutorContext:
    return ExecutorContext(SystemClock(), LocalCommandExecutor(), tmp_path / "input-cache")


def local_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """This machine; its nvidia-smi is whatever the PATH finds."""
    monkeypatch = request.getfixturevalue("monkeypatch")
    tools = tmp_path / "bin"

    def install(script: str) -> None:
        _write_tool(tools / "nvidia-smi", script)
        monkeypatch.setenv("PATH", f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}")

    yield Harness(LocalTargetSettings(name="contract-local"), _context(tmp_path), tmp_path, install)


def ssh_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """The test host; its own programs (nvidia-smi) come first on the PATH of its sessions."""
    host = request.getfixturevalue("host")
    config = host.target_config(tmp_path / "gpu-host" / "cosmos", name="contract-ssh")
    target = SSHTargetSettings.model_validate(config)
    closed = SSHTargetSettings.model_validate({**config, "port": _closed_port(host.sshd.port)})
    tool = host.bin_dir / "nvidia-smi"

    def install(script: str) -> None:
        _write_tool(tool, script)

    try:
        yield Harness(target, _context(tmp_path), tmp_path, install, unreachable=closed)
    finally:
        tool.unlink(missing_ok=True)


def slurm_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """The test host's Slurm cluster (tests/slurm.py), its sshd the login node."""
    import slurm

    host = request.getfixturevalue("host")
    cluster = request.getfixturevalue("slurm_host")
    work = cluster.work_dir / f"contract-{uuid.uuid4().hex[:8]}"
    work.mkdir(mode=0o777)
    work.chmod(0o777)
    config = {
        "name": "contract-slurm",
        "kind": "slurm",
        "login": slurm.login(host),
        "partition": cluster.partition,
        "max_gpus": cluster.gpus,
        "work_dir": str(work),
        "launcher": "bare",
        "setup": f". {cluster.activate}",
        "python": "python",
        "poll_s": 0.2,
    }
    target = SlurmTargetSettings.model_validate(config)
    login = {**config["login"], "port": _closed_port(host.sshd.port)}
    closed = SlurmTargetSettings.model_validate({**config, "login": login})
    try:
        yield Harness(
            target, _context(tmp_path), tmp_path, _no_tool, unreachable=closed, lists_gpus=False
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _no_tool(script: str) -> None:
    """A target whose GPUs no program lists (its scheduler chooses them)."""


# kind -> its harness; every kind in the registry has one.
HARNESSES: dict[str, Callable[[pytest.FixtureRequest, Path], Iterator[Harness]]] = {
    "local": local_harness,
    "ssh": ssh_harness,
    "slurm": slurm_harness,
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    made = HARNESSES[request.param](request, tmp_path)
    found = next(made)
    try:
        yield found
    finally:
        found.clean_up()
        made.close()


# -- helpers ---------------------------------------------------------------------
def _closed_port(taken: int) -> int:
    """A port nothing listens on (bound here for a moment, then released), not ``taken``."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port != taken:
            return port


def _write_tool(path: Path, script: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script, encoding="utf-8")
    path.chmod(0o755)


def _input(tmp_path: Path, name: str) -> InputFile:
    """A copy of a demo input (a test may change it), with its sha256."""
    copy = tmp_path / "inputs" / name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_INPUTS / name, copy)
    return InputFile(copy, hashlib.sha256(copy.read_bytes()).hexdigest())


def _runs(tmp_path: Path, count: int = 2, depth_video: bool = True) -> list[RunSpec]:
    """``count`` runs that share one job (same model, same inputs, their own prompts).

    Without ``depth_video`` the program computes their depth control itself.
    """
    controls = {"depth": _input(tmp_path, "depth.mp4")} if depth_video else {}
    inputs = PromptInputSet(video=_input(tmp_path, "color.mp4"), controls=controls)
    return [
        RunSpec(
            prompt=ResolvedPrompt(f"p{i}", f"a street, take {i}", None, inputs),
            model=dict(MODEL),
        )
        for i in range(count)
    ]


@dataclass
class Job:
    """One job's invocation and its work folder, as the job runner makes them."""

    invocation: Invocation
    staging: Path
    runs: list[RunSpec]

    @property
    def job_id(self) -> str:
        return self.invocation.job_id


def _job(
    harness: Harness,
    executor: Executor,
    tmp_path: Path,
    runs: list[RunSpec] | None = None,
    **simulator: Any,
) -> Job:
    """Stage the inputs and render a job (of two runs by default) for ``executor``'s target."""
    runs = runs or _runs(tmp_path)
    items = {item.sha256: item for run in runs for item in run.prompt.inputs.files()}
    assert executor.stage_inputs(list(items.values())) == {}
    job_id = f"jb_{uuid.uuid4().hex[:12]}"
    staging = harness.staging_root / "staging" / job_id
    staging.mkdir(parents=True)
    harness.jobs.append((job_id, staging))
    timing = {"model_load_s": 0, "per_video_s": 0, **simulator}
    adapter = SimulatedAdapter(SimulatorSettings(**timing))
    invocation = adapter.render(job_id, runs, executor.layout(job_id, staging))
    return Job(invocation, staging, runs)


def _finish(executor: Executor, job: Job) -> None:
    """What the runner does once the job's runs are recorded."""
    executor.release(job.job_id, job.staging)
    shutil.rmtree(job.staging, ignore_errors=True)


def _assert_outputs(job: Job, result: ExecutionResult) -> None:
    """Each run's outputs are in the staging folder, made from the staged inputs."""
    assert result.exit_code == 0
    assert result.started_at <= result.finished_at
    assert result.log_path == job.staging / LOG_NAME
    for run in job.runs:
        outputs = job.invocation.outputs[run.id]
        source = run.prompt.inputs.video
        assert source is not None
        # The simulated model's video is drawn from its staged input video.
        made = free_box_metadata(job.staging / outputs.video)
        assert made["source_sha256"] == source.sha256 == sha256_of(source.path)
        prompt = (job.staging / outputs.extras["prompt"]).read_text(encoding="utf-8")
        assert prompt == run.prompt.text


def _start(
    executor: Executor, job: Job, on_line: Callable[[str], None]
) -> tuple[threading.Thread, dict[str, Any]]:
    """Execute ``job`` in a thread (as the dispatcher does); the dict gets its result or error."""
    ended: dict[str, Any] = {}

    def work() -> None:
        try:
            ended["result"] = executor.execute(job.invocation, job.staging, [0], on_line)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            ended["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, ended


def _line_seen(text: str) -> tuple[threading.Event, Callable[[str], None]]:
    """A log callback, and an event set once a line containing ``text`` has come."""
    seen = threading.Event()

    def on_line(line: str) -> None:
        if text in line:
            seen.set()

    return seen, on_line


# -- the contract ------------------------------------------------------------------
def test_every_registered_kind_is_under_the_contract() -> None:
    assert set(HARNESSES) == set(EXECUTOR_FACTORIES)


def test_preflight_passes_on_a_reachable_target_and_close_releases_it(harness: Harness) -> None:
    executor = harness.executor()
    assert executor.target_name == harness.target.name
    executor.preflight()
    executor.probe()
    executor.close()


def test_preflight_refuses_a_target_that_cannot_be_reached(harness: Harness) -> None:
    if harness.unreachable is None:
        pytest.skip(f"a {harness.target.kind} target is always reachable")
    executor = make_executor(harness.unreachable, harness.context)
    try:
        with pytest.raises(NetworkFailure):
            executor.preflight()
    finally:
        executor.close()


def test_inputs_are_staged_once_and_verified_by_sha256(harness: Harness, tmp_path: Path) -> None:
    executor = harness.executor()
    good = _input(tmp_path, "color.mp4")
    assert executor.stage_inputs([good]) == {}
    assert executor.stage_inputs([good]) == {}, "staging a staged input again must not fail"

    other = _input(tmp_path, "depth.mp4")
    lying = InputFile(other.path, "0" * 64)
    gone = InputFile(tmp_path / "inputs" / "gone.mp4", "f" * 64)
    failures = executor.stage_inputs([lying, gone, other])
    assert set(failures) == {lying.sha256, gone.sha256}
    assert all(isinstance(error, CosmosError) for error in failures.values())
    assert not isinstance(failures[lying.sha256], NetworkFailure)


def test_a_job_runs_to_its_exit_code_with_its_log_and_outputs(
    harness: Harness, tmp_path: Path
) -> None:
    executor = harness.executor()
    job = _job(harness, executor, tmp_path)
    lines: list[str] = []
    result = executor.execute(job.invocation, job.staging, [0], lines.append)

    _assert_outputs(job, result)
    log = result.log_path.read_text(encoding="utf-8").splitlines()
    assert lines and set(lines) <= set(log)
    assert any("[simulated]" in line for line in log)
    assert sum(line.startswith("[simulated] wrote ") for line in lines) == len(job.runs)

    _finish(executor, job)
    assert executor.job_log(job.job_id, job.staging, lines.append, None) is None
    assert executor.stop_job(job.job_id, job.staging) is None


def test_control_videos_the_program_computed_come_back_and_absent_ones_are_no_error(
    harness: Harness, tmp_path: Path
) -> None:
    executor = harness.executor()
    job = _job(harness, executor, tmp_path, runs=_runs(tmp_path, depth_video=False))
    # One optional control the program does not write (it has no seg control).
    outputs = {
        run_id: replace(found, controls={**found.controls, "seg": f"{found.video}.seg.mp4"})
        for run_id, found in job.invocation.outputs.items()
    }
    job = replace(job, invocation=replace(job.invocation, outputs=outputs))
    result = executor.execute(job.invocation, job.staging, [0], lambda line: None)

    _assert_outputs(job, result)
    for run in job.runs:
        controls = job.invocation.outputs[run.id].controls
        assert set(controls) == {"depth", "seg"}
        depth = (job.staging / controls["depth"]).read_bytes()
        source = run.prompt.inputs.video
        assert source is not None and depth.startswith(source.path.read_bytes())
        assert not (job.staging / controls["seg"]).exists()
    _finish(executor, job)


def test_a_failing_program_reports_its_exit_code_and_its_log(
    harness: Harness, tmp_path: Path
) -> None:
    executor = harness.executor()
    job = _job(harness, executor, tmp_path, fail_on_seed=SEED)
    result = executor.execute(job.invocation, job.staging, [0], lambda line: None)
    try:
        assert result.exit_code == EXIT_SIMULATED_FAILURE
        assert f"simulated failure for seed {SEED}" in result.log_path.read_text(encoding="utf-8")
    finally:
        _finish(executor, job)


def test_kill_stops_a_running_job_and_its_log_is_live_meanwhile(
    harness: Harness, tmp_path: Path
) -> None:
    runner = harness.executor()
    job = _job(harness, runner, tmp_path, model_load_s=120)
    loading, on_line = _line_seen("loading model")
    thread, ended = _start(runner, job, on_line)
    assert loading.wait(WAIT_S), "the program did not start"

    # `cosmos logs` and `cosmos kill` come from another process, with an executor of their own.
    control = harness.executor()
    control.preflight()
    shown: list[str] = []
    live = control.job_log(job.job_id, job.staging, shown.append, None)
    assert live is not None and live.lines == len(shown) >= 1
    assert any("loading model" in line for line in shown)

    stopped: dict[str, str | None] = {}
    stopper = threading.Thread(
        target=lambda: stopped.update(what=control.stop_job(job.job_id, job.staging))
    )
    stopper.start()
    thread.join(WAIT_S)
    assert not thread.is_alive(), "the job did not end when it was stopped"
    assert "error" not in ended, ended.get("error")
    assert ended["result"].exit_code != 0
    _finish(runner, job)
    stopper.join(WAIT_S)
    assert stopped["what"], "stop_job said nothing was running"
    assert control.stop_job(job.job_id, job.staging) is None


def test_a_job_is_found_again_after_its_runner_lost_it(harness: Harness, tmp_path: Path) -> None:
    lost = harness.executor()
    job = _job(harness, lost, tmp_path, model_load_s=3)

    def die(line: str) -> None:
        raise RunnerLost(line)

    with pytest.raises(RunnerLost):
        lost.execute(job.invocation, job.staging, [0], die)

    # The next runner: a new executor. A target whose jobs can be found from
    # anywhere finds them without the first runner's work folder.
    runner = harness.executor()
    staging = job.staging
    if not runner.jobs_on_this_machine:
        staging = harness.staging_root / "elsewhere" / job.job_id
        staging.mkdir(parents=True)
    again = Job(job.invocation, staging, job.runs)
    lines: list[str] = []
    started_at = SystemClock().now()
    result = runner.reattach(job.invocation, staging, started_at, lines.append)
    assert result is not None, "the job was not found again"
    _assert_outputs(again, result)
    assert result.started_at == started_at
    assert "[simulated] model loaded" in result.log_path.read_text(encoding="utf-8")
    _finish(runner, again)
    shutil.rmtree(job.staging, ignore_errors=True)


def test_a_job_that_never_started_is_not_found(harness: Harness, tmp_path: Path) -> None:
    executor = harness.executor()
    job = _job(harness, executor, tmp_path)
    never: list[str] = []
    try:
        started = SystemClock().now()
        assert executor.reattach(job.invocation, job.staging, started, never.append) is None
        assert executor.job_log(job.job_id, job.staging, never.append, None) is None
    finally:
        _finish(executor, job)
    # Its work folder is gone: the job will not start (kill does not wait for it).
    assert executor.stop_job(job.job_id, job.staging) is None
    assert never == []


def test_the_gpus_of_the_target_are_listed(harness: Harness) -> None:
    if not harness.lists_gpus:
        pytest.skip(f"a {harness.target.kind} target's scheduler chooses its GPUs for each job")
    harness.install_gpu_tool(NVIDIA_SMI)
    report = harness.executor().describe()
    assert report.name == harness.target.name
    assert report.kind == harness.target.kind
    assert report.reachable and report.error is None
    assert report.gpus == [GpuInfo(0, "NVIDIA A100-SXM4-40GB", 1024, 40960, 7)]


def test_an_unreachable_target_is_reported_not_raised(harness: Harness) -> None:
    if harness.unreachable is None:
        pytest.skip(f"a {harness.target.kind} target is always reachable")
    executor = make_executor(harness.unreachable, harness.context)
    try:
        report = executor.describe()
    finally:
        executor.close()
    assert not report.reachable and report.error
