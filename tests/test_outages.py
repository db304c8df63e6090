"""Long outages of a remote host: nothing runs twice, nothing is left behind.

Real cosmos-batch processes against the disposable test host (tests/testhost.py),
whose link is cut for longer than the patience (scheduler.patience_s, scaled
down to seconds). The simulated model's ledger counts every video it made.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project, make_project

from cosmos_workflow.execution.targets.docker import LABEL_PREFIX

# A patience of 3 s, probes every second, never given up during a test's cut.
PATIENT = [
    "scheduler.patience_s=3",
    "scheduler.retries.backoff_s=0.5",
    "scheduler.retries.max_backoff_s=1",
    "scheduler.retries.transient=30",
]
# Longer than the patience, and than the five quick re-attach tries the runner had before.
CUT_S = 8.0


def our_containers(host: Any) -> list[str]:
    """Names of the containers of ours on the test host (running or not)."""
    docker = {**os.environ, **host.dockerd.env}
    done = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={LABEL_PREFIX}job", "--format", "{{.Names}}"],
        env=docker,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def remove_containers(host: Any) -> None:
    names = our_containers(host)
    if names:
        docker = {**os.environ, **host.dockerd.env}
        subprocess.run(["docker", "rm", "-f", *names], env=docker, capture_output=True, check=True)


def job_folders(work_dir: Path) -> list[str]:
    jobs = work_dir / "jobs"
    return sorted(p.name for p in jobs.iterdir()) if jobs.is_dir() else []


@pytest.fixture
def outage_project(tmp_path: Path, host: Any) -> Iterator[tuple[Project, Path]]:
    """A project whose conf/target/gpu-host.yaml is the test host (6 slots, 1 s connect timeout)."""
    project = make_project(tmp_path / "proj")
    work_dir = tmp_path / "gpu-host" / "cosmos"
    work_dir.mkdir(parents=True)
    # One ledger for the local target and the host's containers (same file system).
    project.env["COSMOS_SIMULATOR__LEDGER"] = str(work_dir / "ledger.jsonl")
    config = host.target_config(work_dir, name="gpu-host")
    config.update(connect_timeout=1, gpus=[0, 1, 2, 3, 4, 5])
    project.write("conf/target/gpu-host.yaml", yaml.safe_dump(config))
    yield project, work_dir
    host.set_link(True)
    remove_containers(host)


def ledger_lines(work_dir: Path) -> list[dict[str, Any]]:
    path = work_dir / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def on_host(work_dir: Path) -> list[dict[str, Any]]:
    return [line for line in ledger_lines(work_dir) if str(work_dir) in line["output"]]


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.05)


def cut_while_running(
    project: Project, work_dir: Path, host: Any, *args: str
) -> subprocess.CompletedProcess:
    """Run the demo; once the host made its first video, cut its link for CUT_S seconds."""
    env = {"COSMOS_SIMULATOR__PER_VIDEO_S": "1", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"}
    runner = project.start_batch("+experiment=demo", *args, *PATIENT, env=env, capture=True)
    try:
        wait_for(lambda: on_host(work_dir) or runner.poll() is not None)
        assert runner.poll() is None, runner.communicate()
        host.set_link(False)
        time.sleep(CUT_S)
        host.set_link(True)
        stdout, stderr = runner.communicate(timeout=60)
    finally:
        host.set_link(True)
        if runner.poll() is None:
            runner.kill()
    return subprocess.CompletedProcess(runner.args, runner.returncode, stdout, stderr)


def test_one_target_cut_longer_than_the_patience_runs_nothing_twice(
    host: Any, outage_project: tuple[Project, Path]
) -> None:
    project, work_dir = outage_project
    done = cut_while_running(project, work_dir, host, "target=gpu-host")
    assert done.returncode == 0, done.stderr
    assert "12 executed (12 succeeded, 0 failed)" in done.stdout
    # Every video made once: the jobs left on the silent host were followed
    # again when it answered, never started a second time there.
    videos = ledger_lines(work_dir)
    assert len(videos) == 12, [line["output"] for line in videos]
    print(done.stderr)
    jobs = {Path(line["output"]).relative_to(work_dir / "jobs").parts[0] for line in videos}
    assert len(jobs) == 6, "a job's container was started twice"
    runs = project.cosmos_json("list", "runs")
    assert {r["status"] for r in runs} == {"succeeded"}
    # One line per change of state, no tracebacks.
    assert "silent since" in done.stderr and "answers again" in done.stderr
    assert "Traceback" not in done.stderr
    assert "re-attaching (" not in done.stderr
    # Nothing left on the host.
    assert our_containers(host) == [] and job_folders(work_dir) == []


def test_two_targets_cut_moves_the_work_and_keeps_one_verified_result(
    host: Any, outage_project: tuple[Project, Path]
) -> None:
    project, work_dir = outage_project
    done = cut_while_running(project, work_dir, host, "targets=[gpu-host,local]")
    assert done.returncode == 0, done.stderr
    assert "12 executed (12 succeeded, 0 failed)" in done.stdout
    runs = project.cosmos_json("list", "runs")
    assert len(runs) == 12 and {r["status"] for r in runs} == {"succeeded"}
    for run in runs:
        check = subprocess.run(
            ["sha256sum", "-c", "--quiet", "outputs.sha256"], cwd=run["output_dir"]
        )
        assert check.returncode == 0
        result = json.loads((Path(run["output_dir"]) / "result.json").read_text())
        assert result["target"] == run["target"]
    assert "moved" not in done.stderr or "Traceback" not in done.stderr
    # What the silent host kept is gone after the next command.
    gc = project.cosmos("gc")
    assert gc.returncode == 0, gc.stderr
    assert our_containers(host) == [] and job_folders(work_dir) == []
