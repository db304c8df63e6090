"""DockerCommandBuilder and DockerExecutor against a real, private dockerd."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from dockerd import IMAGE, Dockerd, start_dockerd
from test_ssh import INJECTION_CORPUS

from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.errors import ExecutionFailure, ValidationFailure
from cosmos_workflow.execution.targets.docker import (
    LABEL_PREFIX,
    ContainerSpec,
    DockerCommandBuilder,
    DockerExecutor,
)


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Dockerd:
    daemon = start_dockerd(tmp_path_factory.mktemp("dockerd"))
    yield daemon
    daemon.stop()


@pytest.fixture
def docker(dockerd: Dockerd) -> DockerExecutor:
    return DockerExecutor(LocalCommandExecutor(), DockerCommandBuilder("docker"), env=dockerd.env)


def spec(argv: list[str], **changes) -> ContainerSpec:
    fields = {
        "name": f"cw-test-{uuid.uuid4().hex[:10]}",
        "image": IMAGE,
        "argv": argv,
        "labels": {"sweep": "sw_test", "run": "rs_test"},
        "network": "none",
    }
    fields.update(changes)
    return ContainerSpec(**fields)


def test_detached_container_logs_exit_code_and_removal(docker: DockerExecutor) -> None:
    job = spec(["sh", "-c", "echo first; sleep 0.3; echo second >&2; exit 7"])
    assert docker.start(job)
    lines: list[str] = []
    docker.follow_logs(job.name, lines.append)
    assert lines == ["first", "second"]
    assert docker.wait(job.name) == 7
    docker.remove(job.name)
    with pytest.raises(ExecutionFailure):
        docker.wait(job.name)


def test_containers_are_found_by_label_and_killed(docker: DockerExecutor) -> None:
    sweep = f"sw_{uuid.uuid4().hex[:8]}"
    jobs = [spec(["sleep", "30"], labels={"sweep": sweep, "run": f"rs_{i}"}) for i in range(2)]
    other = spec(["sleep", "30"], labels={"sweep": "sw_other", "run": "rs_9"})
    for job in [*jobs, other]:
        docker.start(job)
    try:
        found = docker.find({"sweep": sweep})
        assert sorted(c.name for c in found) == sorted(j.name for j in jobs)
        assert all(c.running for c in found)
        assert [c.name for c in docker.find({"sweep": sweep, "run": "rs_1"})] == [jobs[1].name]
        started = time.monotonic()
        assert all(docker.kill(job.name) for job in jobs)
        assert time.monotonic() - started < 10
        assert {c.state for c in docker.find({"sweep": sweep})} == {"exited"}
        assert docker.kill(jobs[0].name) is False
    finally:
        for job in [*jobs, other]:
            docker.remove(job.name)
    assert docker.find({"sweep": sweep}) == []


def test_mounts_env_and_workdir_reach_the_container(docker: DockerExecutor, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("from the host")
    job = spec(
        ["sh", "-c", 'cat in.txt; echo " $GREETING"; echo done > out.txt'],
        mounts={str(tmp_path): "/job"},
        env={"GREETING": "hello; $(touch /job/canary)"},
        workdir="/job",
        shm_size="64m",
    )
    docker.start(job)
    lines: list[str] = []
    docker.follow_logs(job.name, lines.append)
    assert docker.wait(job.name) == 0
    docker.remove(job.name)
    assert lines == ["from the host hello; $(touch /job/canary)"]
    assert (tmp_path / "out.txt").read_text() == "done\n"
    assert not (tmp_path / "canary").exists()


def test_arguments_reach_the_container_intact(docker: DockerExecutor, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    values = [v.replace("{canary}", "/job/canary") for v in INJECTION_CORPUS]
    job = spec(["printf", "%s\\n", *values], mounts={str(tmp_path): "/job"})
    docker.start(job)
    out: list[str] = []
    docker.follow_logs(job.name, out.append)
    assert docker.wait(job.name) == 0
    docker.remove(job.name)
    assert "\n".join(out) == "\n".join(values)
    assert not canary.exists()


def test_a_missing_image_is_refused_without_pulling(docker: DockerExecutor) -> None:
    with pytest.raises(ExecutionFailure, match="could not start"):
        docker.start(spec(["true"], image="cosmos-workflow-test/absent:1"))


def test_a_name_is_never_started_twice(docker: DockerExecutor) -> None:
    job = spec(["sleep", "5"])
    docker.start(job)
    try:
        with pytest.raises(ExecutionFailure):
            docker.start(job)
    finally:
        docker.remove(job.name)


def test_logs_can_be_followed_while_the_container_runs(docker: DockerExecutor) -> None:
    job = spec(["sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.3; done"])
    docker.start(job)
    seen: list[tuple[float, str]] = []
    follower = threading.Thread(
        target=docker.follow_logs, args=(job.name, lambda s: seen.append((time.monotonic(), s)))
    )
    follower.start()
    follower.join(timeout=20)
    assert docker.wait(job.name) == 0
    docker.remove(job.name)
    assert [line for _, line in seen] == ["tick 1", "tick 2", "tick 3"]
    assert seen[-1][0] - seen[0][0] > 0.4, "lines arrived all at once, not live"


def test_gpu_flags_come_from_the_target_only() -> None:
    docker_argv = DockerCommandBuilder("docker").run(spec(["true"], gpus=[0, 2]))
    assert docker_argv[docker_argv.index("--gpus") + 1] == '"device=0,2"'
    podman_argv = DockerCommandBuilder("podman").run(spec(["true"], gpus=[1]))
    assert podman_argv[0] == "podman" and "nvidia.com/gpu=1" in podman_argv
    none_argv = DockerCommandBuilder("docker").run(spec(["true"], gpus=None))
    assert "--gpus" not in none_argv and "--device" not in none_argv
    labelled = DockerCommandBuilder("docker").run(spec(["true"]))
    assert f"{LABEL_PREFIX}run=rs_test" in labelled and "--pull=never" in labelled
    with pytest.raises(ValidationFailure):
        DockerCommandBuilder("lxc")  # type: ignore[arg-type]
    with pytest.raises(ValidationFailure):
        DockerCommandBuilder("docker").run(spec(["true"], mounts={"/a:b": "/c"}))
