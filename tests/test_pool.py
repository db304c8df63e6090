"""Sweeps over a pool of targets: every GPU busy, crashes resumed, runners sharing one queue.

Real cosmos-batch processes, real SQLite, real simulated-model processes
(and the disposable SSH + Docker host where the test is about a remote host).
The simulated model's ledger counts every video it made.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project, make_project

from cosmos_workflow.execution.targets.docker import LABEL_PREFIX

TWO_HOSTS = "targets=[{name:a,gpus:[0,1]},{name:b,gpus:[2,3]}]"
SLOW = {"COSMOS_SIMULATOR__PER_VIDEO_S": "0.3", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0.2"}


def results(project: Project) -> list[dict[str, Any]]:
    return [
        json.loads(path.read_text()) for path in (project.outputs / "runs").glob("*/result.json")
    ]


def most_at_once(records: list[dict[str, Any]]) -> int:
    """The largest number of jobs whose execution overlapped in time."""
    jobs = {}
    for record in records:
        jobs[record["job_id"]] = (
            datetime.fromisoformat(record["started_at"]),
            datetime.fromisoformat(record["finished_at"]),
        )
    edges = sorted(
        [(start, 1) for start, _ in jobs.values()] + [(end, -1) for _, end in jobs.values()]
    )
    busy = best = 0
    for _, step in edges:
        busy += step
        best = max(best, busy)
    return best


def assert_all_succeeded_once(project: Project, count: int = 12) -> None:
    runs = project.cosmos_json("list", "runs")
    assert len(runs) == count and {r["status"] for r in runs} == {"succeeded"}
    for run in runs:
        check = subprocess.run(
            ["sha256sum", "-c", "--quiet", "outputs.sha256"], cwd=run["output_dir"]
        )
        assert check.returncode == 0, "a run marked succeeded has unverified outputs"
    assert len(project.ledger_lines()) == count, "a video was made twice (or never)"


def test_a_pool_of_two_targets_keeps_all_four_gpus_busy(project: Project) -> None:
    done = project.batch("+experiment=demo", TWO_HOSTS, env=SLOW)
    assert done.returncode == 0, done.stderr
    assert "12 executed (12 succeeded, 0 failed)" in done.stdout
    records = results(project)
    slots = {(r["target"], tuple(r["gpus"])) for r in records}
    assert {target for target, _ in slots} == {"a", "b"}
    assert {gpu for _, gpus in slots for gpu in gpus} == {0, 1, 2, 3}
    assert most_at_once(records) >= 3, "the jobs ran one after another"
    devices = {line["cuda_visible_devices"] for line in project.ledger_lines()}
    assert devices == {"0", "1", "2", "3"}
    assert_all_succeeded_once(project)


def test_a_run_that_needs_two_gpus_gets_two_of_one_host(project: Project) -> None:
    done = project.batch("+experiment=demo", TWO_HOSTS, "model.num_gpus=2", env=SLOW)
    assert done.returncode == 0, done.stderr
    records = results(project)
    assert {(r["target"], tuple(r["gpus"])) for r in records} <= {("a", (0, 1)), ("b", (2, 3))}
    assert most_at_once(records) == 2


def test_a_run_that_needs_more_gpus_than_any_target_is_refused(project: Project) -> None:
    done = project.batch("+experiment=demo", TWO_HOSTS, "model.num_gpus=3")
    assert done.returncode == 2
    assert "model.num_gpus" in done.stderr and "3 GPUs" in done.stderr
    assert not project.ledger.exists()


def test_a_slow_target_is_given_less_work(project: Project) -> None:
    pool = "targets=[{name:fast,gpus:[0]},{name:slow,gpus:[1],env:{COSMOS_SIMULATOR_SPEED:'0.2'}}]"
    done = project.batch("+experiment=demo", pool, "scheduler.batching=false", env=SLOW)
    assert done.returncode == 0, done.stderr
    per_target = {"fast": 0, "slow": 0}
    for record in results(project):
        per_target[record["target"]] += 1
    assert per_target["fast"] >= 2 * per_target["slow"], per_target


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_at_random_moments_loses_nothing_and_runs_nothing_twice(
    project: Project, seed: int
) -> None:
    rng = random.Random(seed)
    for _ in range(3):
        process = project.start_batch("+experiment=demo", TWO_HOSTS, env=SLOW)
        time.sleep(rng.uniform(0.3, 2.5))
        os.kill(process.pid, signal.SIGKILL)  # the runner only: its jobs go on
        process.wait()
    done = project.batch("+experiment=demo", TWO_HOSTS, env=SLOW)
    assert done.returncode == 0, done.stderr
    assert project.cosmos_json("list", "runs", "--status", "running") == []
    assert_all_succeeded_once(project)
    assert list((project.outputs / ".staging").glob("jb_*")) == []


def test_two_runners_on_one_sweep_share_it_and_run_nothing_twice(project: Project) -> None:
    first = project.start_batch("+experiment=demo", TWO_HOSTS, env=SLOW, capture=True)
    second = project.start_batch("+experiment=demo", TWO_HOSTS, env=SLOW, capture=True)
    _, err_first = first.communicate(timeout=240)
    _, err_second = second.communicate(timeout=240)
    assert first.returncode == 0, err_first
    assert second.returncode == 0, err_second
    assert_all_succeeded_once(project)


def test_two_runners_on_overlapping_sweeps_run_shared_runs_once(project: Project) -> None:
    first = project.start_batch("+experiment=demo", "model.seed=1", env=SLOW, capture=True)
    second = project.start_batch("+experiment=demo", env=SLOW, capture=True)
    for process in (first, second):
        _, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr
    assert_all_succeeded_once(project)


def test_a_multirun_grid_is_one_sweep_over_every_gpu(project: Project) -> None:
    done = project.batch(
        "-m", "+experiment=demo", "model.seed=1,2,3", "model.guidance=5,7", TWO_HOSTS, env=SLOW
    )
    assert done.returncode == 0, done.stderr
    sweeps = project.cosmos_json("list", "sweeps")
    assert len(sweeps) == 1 and sweeps[0]["runs"] == 36
    records = results(project)
    assert {gpu for r in records for gpu in r["gpus"]} == {0, 1, 2, 3}
    assert most_at_once(records) >= 3, "the jobs ran one after another"
    assert_all_succeeded_once(project, count=36)


@pytest.mark.parametrize("trees", ["one output tree", "two output trees (two machines)"])
def test_two_runners_on_postgresql_run_nothing_twice(
    project: Project, pg_url: str, trees: str
) -> None:
    env = {**SLOW, "COSMOS_DATABASE__URL": pg_url}
    second_env = dict(env)
    if trees.startswith("two"):
        second_env["COSMOS_PATHS__OUTPUTS"] = str(project.root / "machine-b-outputs")
    first = project.start_batch("+experiment=demo", TWO_HOSTS, env=env, capture=True)
    second = project.start_batch("+experiment=demo", TWO_HOSTS, env=second_env, capture=True)
    for process in (first, second):
        _, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr
    listed = project.cosmos("list", "runs", "--json", env={"COSMOS_DATABASE__URL": pg_url})
    runs = json.loads(listed.stdout)
    assert len(runs) == 12 and {r["status"] for r in runs} == {"succeeded"}
    assert len(project.ledger_lines()) == 12, "a run was executed twice"
    again = project.batch("+experiment=demo", env=second_env)
    assert again.returncode == 0 and "12 cached" in again.stdout, again.stdout + again.stderr


# The batch of two (both runs fail) is tried 1 + retries times, then each run
# alone once (fault isolation: the retries were spent).
@pytest.mark.parametrize(("retries", "attempts"), [(0, 2), (2, 4)])
def test_a_failing_model_is_tried_again_only_as_often_as_configured(
    project: Project, retries: int, attempts: int
) -> None:
    done = project.batch(
        "+experiment=demo",
        "simulator.fail_on_seed=2",
        f"scheduler.retries.deterministic={retries}",
        "scheduler.retries.backoff_s=0",
    )
    assert done.returncode == 1
    runs = project.cosmos_json("list", "runs")
    failed = [r for r in runs if r["status"] == "failed"]
    assert len(failed) == 6
    assert {r["attempts"] for r in failed} == {attempts}
    assert {r["attempts"] for r in runs if r["status"] == "succeeded"} == {1}


def test_two_runners_with_fast_heartbeats_never_take_each_other_for_dead(
    project: Project,
) -> None:
    beats = ["scheduler.heartbeat_s=0.2", "scheduler.runner_timeout_s=1"]
    env = {"COSMOS_SIMULATOR__PER_VIDEO_S": "1.2", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"}
    first = project.start_batch("+experiment=demo", *beats, env=env, capture=True)
    project.wait_for_ledger(1)
    second = project.start_batch("+experiment=demo", *beats, env=env, capture=True)
    for process in (first, second):
        _, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr
        assert "re-attaching" not in stderr
    assert_all_succeeded_once(project)


def test_ctrl_c_cancels_the_pool_and_stops_its_jobs_within_seconds(project: Project) -> None:
    process = project.start_batch(
        "+experiment=demo",
        TWO_HOSTS,
        env={"COSMOS_SIMULATOR__PER_VIDEO_S": "5", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"},
        capture=True,
    )
    project.wait_for_ledger(1)
    pressed = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert time.monotonic() - pressed < 5
    statuses = [r["status"] for r in project.cosmos_json("list", "runs")]
    assert "running" not in statuses and "queued" not in statuses
    assert "cancelled" in statuses
    made = len(project.ledger_lines())
    time.sleep(6)
    assert len(project.ledger_lines()) == made, "a model went on after Ctrl-C"
    again = project.batch("+experiment=demo", TWO_HOSTS)
    assert again.returncode == 0, again.stderr
    assert {r["status"] for r in project.cosmos_json("list", "runs")} == {"succeeded"}


# -- a remote host going down mid-sweep ------------------------------------------
@pytest.fixture
def pool_project(tmp_path: Path, host: Any) -> Iterator[tuple[Project, Path]]:
    project = make_project(tmp_path / "proj")
    work_dir = tmp_path / "gpu-host" / "cosmos"
    work_dir.mkdir(parents=True)
    # One ledger for the local target and the host's containers (same file system).
    project.env["COSMOS_SIMULATOR__LEDGER"] = str(work_dir / "ledger.jsonl")
    config = host.target_config(work_dir, name="gpu-host")
    config["connect_timeout"] = 2
    project.write("conf/target/gpu-host.yaml", yaml.safe_dump(config))
    yield project, work_dir
    # A host cut off (or left by a second Ctrl-C) keeps its containers (a known
    # limit): remove them, so the shared test host starts clean for the next test.
    docker = {**os.environ, **host.dockerd.env}
    ours = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL_PREFIX}job"],
        env=docker,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if ours:
        subprocess.run(["docker", "rm", "-f", *ours], env=docker, capture_output=True, check=True)


def start_slow(project: Project, *args: str, per_video_s: float) -> subprocess.Popen:
    """The demo in the background, each video taking ``per_video_s`` (no model load)."""
    env = {"COSMOS_SIMULATOR__PER_VIDEO_S": str(per_video_s), "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"}
    return project.start_batch("+experiment=demo", *args, env=env, capture=True)


def test_a_host_cut_off_mid_sweep_has_its_runs_finish_elsewhere(
    host: Any, pool_project: tuple[Project, Path]
) -> None:
    project, work_dir = pool_project
    ledger = work_dir / "ledger.jsonl"
    # A patience of 2 s (not 120): the host's jobs move as soon as it is silent that long.
    runner = start_slow(
        project,
        "targets=[gpu-host,local]",
        "scheduler.retries.backoff_s=0.5",
        "scheduler.patience_s=2",
        per_video_s=1,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = ledger.read_text().splitlines() if ledger.exists() else []
            if any(str(work_dir) in json.loads(line)["output"] for line in lines):
                break
            time.sleep(0.1)
        else:
            pytest.fail("no job started on the host")
        host.set_link(False)
        stdout, stderr = runner.communicate(timeout=240)
    finally:
        host.set_link(True)
    assert runner.returncode == 0, stderr
    assert "gpu-host is unreachable" in stderr
    assert "12 executed (12 succeeded, 0 failed)" in stdout
    runs = project.cosmos_json("list", "runs")
    assert {r["status"] for r in runs} == {"succeeded"}
    moved = [r for r in runs if r["attempts"] > 1]
    assert moved, "no run was interrupted on the host"
    assert {r["target"] for r in moved} == {"local"}


def test_a_second_ctrl_c_quits_at_once_while_jobs_cannot_be_stopped(
    host: Any, pool_project: tuple[Project, Path]
) -> None:
    project, work_dir = pool_project
    ledger = work_dir / "ledger.jsonl"
    runner = start_slow(project, "targets=[gpu-host]", per_video_s=3)
    try:
        project.wait_for_ledger(1, ledger=ledger)
        host.set_link(False)  # its containers can be neither followed nor stopped now
        os.killpg(runner.pid, signal.SIGINT)
        time.sleep(1.0)
        assert runner.poll() is None, "the first Ctrl-C did not wait for the jobs to stop"
        pressed = time.monotonic()
        os.killpg(runner.pid, signal.SIGINT)
        _, stderr = runner.communicate(timeout=30)
        quit_s = time.monotonic() - pressed
    finally:
        host.set_link(True)
    assert runner.returncode == 130, stderr
    assert quit_s < 5, f"the second Ctrl-C took {quit_s:.1f}s"
    statuses = {r["status"] for r in project.cosmos_json("list", "runs")}
    assert "running" not in statuses and "queued" not in statuses
