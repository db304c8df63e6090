"""Long outages of a remote host: nothing runs twice, nothing is left behind.

Real cosmos-batch processes against the disposable test host (tests/testhost.py),
whose link is cut for longer than the patience (scheduler.patience_s, scaled
down to seconds). The simulated model's ledger counts every video it made.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
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
CUT_S = 10.0
# A killed runner's GPU leases are free after a few seconds (its model may still run: not at once).
BEATS = ["scheduler.heartbeat_s=0.5", "scheduler.runner_timeout_s=4"]
# Runs that wait to be started (again).
QUEUED = "SELECT count(*) FROM runs WHERE status = 'queued'"


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
    assert "Traceback" not in done.stderr
    # Some runs moved to the local target; the copies left on the silent host
    # were stopped when it answered, or are removed by the next command.
    assert {r["target"] for r in runs} == {"gpu-host", "local"}
    gc = project.cosmos("gc")
    assert gc.returncode == 0, gc.stderr
    assert our_containers(host) == [] and job_folders(work_dir) == []


def docker(host: Any, *args: str) -> str:
    env = {**os.environ, **host.dockerd.env}
    done = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def leave_container(host: Any, job_id: str, runs: str) -> None:
    """A container of ours that exited, as a runner that quit leaves it."""
    labels = ["--label", f"{LABEL_PREFIX}job={job_id}", "--label", f"{LABEL_PREFIX}runs={runs}"]
    name = ["--name", f"cosmos-{job_id}", "--network", "none"]
    docker(host, "run", "-d", *name, *labels, host.image, "sh", "-c", "exit 0")


def test_gc_never_touches_a_live_runners_jobs(
    host: Any, outage_project: tuple[Project, Path]
) -> None:
    project, work_dir = outage_project
    slow = {"COSMOS_SIMULATOR__PER_VIDEO_S": "1.5", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"}
    runner = project.start_batch("+experiment=demo", "target=gpu-host", env=slow, capture=True)
    try:
        wait_for(lambda: len(our_containers(host)) == 6 or runner.poll() is not None)
        live = project.cosmos_json("gc")
        stdout, stderr = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert live["removed"] == []
    assert {item["why"] for item in live["kept"]} == {"a live runner uses it"}
    assert [i for i in live["kept"] if i["what"] == "container"]
    assert runner.returncode == 0, stderr
    assert "12 executed (12 succeeded, 0 failed)" in stdout
    assert len(ledger_lines(work_dir)) == 12
    assert our_containers(host) == [] and job_folders(work_dir) == []


def test_gc_removes_what_no_live_runner_owns_and_nothing_else(
    host: Any, outage_project: tuple[Project, Path]
) -> None:
    project, work_dir = outage_project
    done = project.batch("+experiment=demo", "target=gpu-host")
    assert done.returncode == 0, done.stderr
    assert our_containers(host) == [] and job_folders(work_dir) == []

    # What runners that quit left: a container and job folder of a job of
    # ours, a staging folder; and a container and folder that this project's
    # database does not know (another project's, sharing the host).
    run_id = project.cosmos_json("list", "runs")[0]["id"]
    leave_container(host, "jb_left00000001", run_id)
    (work_dir / "jobs" / "jb_left00000001" / "inputs").mkdir(parents=True)
    (project.outputs / ".staging" / "jb_left00000002").mkdir(parents=True)
    leave_container(host, "jb_foreign000001", "rs_0000000000000000")
    (work_dir / "jobs" / "jb_foreign000002").mkdir(parents=True)

    dry = project.cosmos_json("gc", "--dry-run")
    would = sorted((item["what"], item["job_id"]) for item in dry["removed"])
    assert would == [
        ("container", "jb_left00000001"),
        ("job folder", "jb_left00000001"),
        ("staging folder", "jb_left00000002"),
    ]
    assert sorted(our_containers(host)) == ["cosmos-jb_foreign000001", "cosmos-jb_left00000001"]
    assert job_folders(work_dir) == ["jb_foreign000002", "jb_left00000001"]
    status = project.cosmos_json("status")
    counted = next(t for t in status["targets"] if t["name"] == "gpu-host")
    assert len(counted["containers"]) == 2 and counted["job_folders"] == 2
    assert status["staging_folders"] == 1

    done = project.cosmos("gc")
    assert done.returncode == 0, done.stderr
    assert "removed 3, kept 2" in done.stdout
    assert our_containers(host) == ["cosmos-jb_foreign000001"]
    assert job_folders(work_dir) == ["jb_foreign000002"]
    assert not (project.outputs / ".staging" / "jb_left00000002").exists()
    again = project.cosmos_json("gc")
    assert again["removed"] == []
    # The runs the container named keep their outcome.
    assert {r["status"] for r in project.cosmos_json("list", "runs")} == {"succeeded"}


def test_gc_removes_what_a_stopped_runner_left_of_jobs_whose_runs_it_recorded(
    host: Any, outage_project: tuple[Project, Path]
) -> None:
    """A runner killed after recording a job, before removing its container and folder."""
    project, work_dir = outage_project
    done = project.batch("+experiment=demo", "target=gpu-host")
    assert done.returncode == 0, done.stderr
    runs = project.cosmos_json("list", "runs")
    job_id = runs[0]["job_id"]
    mine = ",".join(run["id"] for run in runs if run["job_id"] == job_id)
    leave_container(host, job_id, mine)
    (work_dir / "jobs" / job_id / "inputs").mkdir(parents=True)

    report = project.cosmos_json("gc")
    removed = sorted((item["what"], item["job_id"]) for item in report["removed"])
    assert removed == [("container", job_id), ("job folder", job_id)]
    assert report["kept"] == []
    assert our_containers(host) == [] and job_folders(work_dir) == []
    assert {r["status"] for r in project.cosmos_json("list", "runs")} == {"succeeded"}


def test_a_runner_killed_during_upload_leaves_no_job_folder_after_the_next_command(
    host: Any, outage_project: tuple[Project, Path], tmp_path: Path
) -> None:
    project, work_dir = outage_project
    # The job folders' input links are made slowly: the runner is killed while
    # its jobs are uploaded (folders on the host, no container yet). Each ln
    # leaves a mark when it starts and when it is done.
    marks = tmp_path / "ln-marks"
    marks.mkdir()
    slow_ln = host.bin_dir / "ln"
    slow_ln.write_text(
        f'#!/bin/sh\ntouch {marks}/start.$$\nsleep 2\n/bin/ln "$@"\ns=$?\n'
        f"touch {marks}/done.$$\nexit $s\n"
    )
    slow_ln.chmod(0o755)
    try:
        runner = project.start_batch("+experiment=demo", "target=gpu-host", *BEATS, capture=True)
        try:
            wait_for(lambda: job_folders(work_dir) or runner.poll() is not None)
            assert runner.poll() is None, runner.communicate()
            os.killpg(runner.pid, signal.SIGKILL)
            runner.communicate(timeout=10)
        finally:
            if runner.poll() is None:
                runner.kill()
        assert job_folders(work_dir) and not our_containers(host)
    finally:
        slow_ln.unlink()
    # The links the killed runner asked for are made (or failed), however loaded the machine.
    wait_for(lambda: len(list(marks.glob("start.*"))) == len(list(marks.glob("done.*"))))
    done = project.batch("+experiment=demo", "target=gpu-host", *BEATS)
    assert done.returncode == 0, done.stderr
    assert "12 executed (12 succeeded, 0 failed)" in done.stdout
    assert len(ledger_lines(work_dir)) == 12
    assert job_folders(work_dir) == [] and our_containers(host) == []
    assert list((project.outputs / ".staging").glob("jb_*")) == []


def test_a_second_ctrl_c_on_a_remote_sweep_then_the_same_command_runs_nothing_twice(
    host: Any, outage_project: tuple[Project, Path]
) -> None:
    project, work_dir = outage_project
    env = {"COSMOS_SIMULATOR__PER_VIDEO_S": "4", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"}
    runner = project.start_batch("+experiment=demo", "target=gpu-host", env=env, capture=True)
    try:
        # Every job has made its first video, none its second (4 s later: the
        # runner quits, and the videos are counted, well before on a busy machine).
        wait_for(lambda: len(ledger_lines(work_dir)) >= 6 or runner.poll() is not None)
        os.killpg(runner.pid, signal.SIGINT)
        time.sleep(0.1)
        os.killpg(runner.pid, signal.SIGINT)
        _, stderr = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130, stderr
    made = len(ledger_lines(work_dir))
    assert made < 12
    done = project.batch("+experiment=demo", "target=gpu-host")
    assert done.returncode == 0, done.stderr
    runs = project.cosmos_json("list", "runs")
    assert len(runs) == 12 and {r["status"] for r in runs} == {"succeeded"}
    # The videos the first command's containers made were adopted, not made again.
    assert len(ledger_lines(work_dir)) == 12
    assert our_containers(host) == [] and job_folders(work_dir) == []
    assert list((project.outputs / ".staging").glob("jb_*")) == []


def test_a_host_given_up_then_the_same_command_adopts_what_its_containers_made(
    host: Any, outage_project: tuple[Project, Path]
) -> None:
    project, work_dir = outage_project
    # Given up quickly: a patience of 2 s, then one probe.
    give_up = ["scheduler.patience_s=2", "scheduler.retries.transient=1"]
    give_up.append("scheduler.retries.backoff_s=0.5")
    env = {"COSMOS_SIMULATOR__PER_VIDEO_S": "1", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"}
    runner = project.start_batch("+experiment=demo", "target=gpu-host", *give_up, env=env)
    try:
        wait_for(lambda: on_host(work_dir) or runner.poll() is not None)
        host.set_link(False)
        runner.wait(timeout=25)
    finally:
        host.set_link(True)
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 1
    assert {r["status"] for r in project.cosmos_json("list", "runs")} == {"failed"}
    # The containers went on while the host was cut off, and finished.
    wait_for(lambda: len(ledger_lines(work_dir)) == 12)
    done = project.batch("+experiment=demo", "target=gpu-host")
    assert done.returncode == 0, done.stderr
    runs = project.cosmos_json("list", "runs")
    assert {r["status"] for r in runs} == {"succeeded"}
    assert len(ledger_lines(work_dir)) == 12, "a video was made again"
    assert our_containers(host) == [] and job_folders(work_dir) == []


def db_count(project: Project, query: str) -> int:
    with sqlite3.connect(project.outputs / "cosmos.db", timeout=10) as conn:
        return conn.execute(query).fetchone()[0]


def test_a_silent_hosts_gpus_stay_leased_while_its_containers_may_run(
    host: Any, outage_project: tuple[Project, Path]
) -> None:
    """Another runner that still reaches the host must not put a second model on those GPUs."""
    project, work_dir = outage_project
    env = {"COSMOS_SIMULATOR__PER_VIDEO_S": "1", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"}
    runner = project.start_batch(
        "+experiment=demo", "target=gpu-host", *PATIENT, env=env, capture=True
    )
    try:
        wait_for(lambda: on_host(work_dir) or runner.poll() is not None)
        assert runner.poll() is None, runner.communicate()
        host.set_link(False)
        # The runner gave every job of the silent host back: their runs wait again.
        wait_for(lambda: db_count(project, QUEUED) == 12 or runner.poll() is not None)
        time.sleep(1.0)  # the runner has taken note of each (a lease dropped is gone by then)
        leased = db_count(project, "SELECT count(*) FROM gpu_leases")
        host.set_link(True)
        stdout, stderr = runner.communicate(timeout=60)
    finally:
        host.set_link(True)
        if runner.poll() is None:
            runner.kill()
    assert leased == 6, "the GPUs of containers that may still run were given back"
    assert runner.returncode == 0, stderr
    assert "12 executed (12 succeeded, 0 failed)" in stdout
    assert len(ledger_lines(work_dir)) == 12
    assert db_count(project, "SELECT count(*) FROM gpu_leases") == 0


def test_a_cut_while_outputs_come_back_is_waited_out_and_nothing_runs_again(
    host: Any, outage_project: tuple[Project, Path], tmp_path: Path
) -> None:
    """The containers finished; their outputs are being listed when the link drops (for less
    than the patience): the download is done once the host answers, the runs do not move."""
    project, work_dir = outage_project
    started = tmp_path / "listing-started"
    slow_find = host.bin_dir / "find"
    # Only the listing of a job's outputs is slow (find ... -maxdepth 0 -type f).
    slow_find.write_text(
        '#!/bin/sh\ncase "$*" in *"-maxdepth 0"*) touch '
        f'{started}; sleep 3;; esac\nexec /usr/bin/find "$@"\n'
    )
    slow_find.chmod(0o755)
    patient = ["scheduler.patience_s=12", *PATIENT[1:]]
    env = {"COSMOS_SIMULATOR__PER_VIDEO_S": "1", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"}
    args = ("+experiment=demo", "targets=[gpu-host,local]", *patient)
    try:
        runner = project.start_batch(*args, env=env, capture=True)
        try:
            wait_for(lambda: started.exists() or runner.poll() is not None)
            host.set_link(False)
            time.sleep(4)
            host.set_link(True)
            stdout, stderr = runner.communicate(timeout=60)
        finally:
            host.set_link(True)
            if runner.poll() is None:
                runner.kill()
    finally:
        slow_find.unlink()
    assert runner.returncode == 0, stderr
    assert "12 executed (12 succeeded, 0 failed)" in stdout
    assert "given back" not in stderr
    assert len(ledger_lines(work_dir)) == 12, "a run was executed again"
    assert our_containers(host) == [] and job_folders(work_dir) == []
