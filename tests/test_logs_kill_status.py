"""`cosmos logs`, `cosmos kill` and `cosmos status` against real runs.

Local runs are real simulated-model processes; remote runs are containers
on the disposable test host (real sshd and dockerd in a network namespace).
A fake `nvidia-smi` (a shell script on the PATH) stands in for a GPU host.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project, make_project
from sshd import free_port, keygen
from test_cli import assert_bad_input, run_all

# Four runs in two jobs of two (the demo with one depth weight): forest and
# street share one model invocation per seed.
SMALL = ("+experiment=demo", "model.weights.depth=0.5")
FINAL = {"succeeded", "failed", "cancelled"}
# Seconds per video of a job that a test kills: long enough that the job is
# still running when a loaded machine has started `cosmos kill`.
SLOW_VIDEO_S = "10"
# Enough for an in-process `cosmos kill` to land before a job of two videos ends.
KILL_VIDEO_S = "5"

FAKE_NVIDIA_SMI = """#!/bin/sh
printf '0, NVIDIA H100 80GB HBM3, 1234, 81559, 37\\n'
printf '1, NVIDIA H100 80GB HBM3, 3, 81559, [N/A]\\n'
"""
FAILING_NVIDIA_SMI = """#!/bin/sh
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver" >&2
exit 9
"""
FAKE_GPUS = [
    {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "memory_used_mib": 1234,
        "memory_total_mib": 81559,
        "utilization_pct": 37,
    },
    {
        "index": 1,
        "name": "NVIDIA H100 80GB HBM3",
        "memory_used_mib": 3,
        "memory_total_mib": 81559,
        "utilization_pct": None,
    },
]


# ---------------------------------------------------------------- helpers


def install(folder: Path, script: str) -> Path:
    """Put an executable nvidia-smi script into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "nvidia-smi"
    path.write_text(script)
    path.chmod(0o755)
    return path


def db_rows(project: Project, query: str, *args: Any) -> list[tuple]:
    db = project.outputs / "cosmos.db"
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            rows = conn.execute(query, args).fetchall()
        conn.close()
    except sqlite3.OperationalError:  # the runner has not created the tables yet
        return []
    return rows


def status_of(project: Project, run_id: str) -> str:
    return db_rows(project, "SELECT status FROM runs WHERE id = ?", run_id)[0][0]


def wait_for_rows(project: Project, query: str, timeout: float = 90) -> list[tuple]:
    """Poll the database until ``query`` returns rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = db_rows(project, query)
        if rows:
            return rows
        time.sleep(0.05)
    raise AssertionError(f"nothing matched in {timeout}s: {query}")


def running_job(project: Project) -> tuple[str, list[str]]:
    """Wait for a job to run; return its id and its runs."""
    rows = wait_for_rows(project, "SELECT job_id FROM runs WHERE status = 'running'")
    job_id = rows[0][0]
    assert job_id and job_id.startswith("jb_"), rows
    runs = db_rows(project, "SELECT id FROM runs WHERE job_id = ? ORDER BY id", job_id)
    return job_id, [row[0] for row in runs]


def wait_for_log_line(path: Path, timeout: float = 60) -> None:
    """Wait until a job's log (in its work folder) has a line: its program runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and "\n" in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"no log line in {path} after {timeout}s")


def start_follow(project: Project, *args: str) -> subprocess.Popen:
    """Start `cosmos logs -f ARGS` in the background: stdout piped, stderr to a file."""
    errors = (project.root / "follow.err").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "cosmos_workflow.cli.main", "logs", "-f", *args],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )


def ledger_of_job(ledger: Path, job_id: str) -> list[dict]:
    """The videos that the simulated model produced in one job."""
    if not ledger.is_file():
        return []
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    return [line for line in lines if f"/{job_id}/" in line["output"]]


def assert_followed_live(project: Project, follower: subprocess.Popen, run_id: str) -> str:
    """The first line arrives while the run runs; the command ends with the run, exit 0."""
    first = follower.stdout.readline()
    assert "[simulated]" in first, first
    assert status_of(project, run_id) == "running", "the first line came after the run ended"
    rest = follower.stdout.read()  # (communicate() would lose what readline() buffered)
    assert follower.wait(timeout=120) == 0, (project.root / "follow.err").read_text()
    assert status_of(project, run_id) in FINAL
    text = first + rest
    log = (project.outputs / "runs" / run_id / "logs" / "run.log").read_text()
    assert "done: 2 video(s)" in log
    assert text == log, "the followed log differs from the run's log"
    return text


def target_status(data: dict, name: str) -> dict:
    return next(t for t in data["targets"] if t["name"] == name)


# ---------------------------------------------------------------- local target


def test_logs_follow_a_queued_local_run_live_until_it_ends(project: Project) -> None:
    # The follower (a process of its own) must be up before the queued run ends: at least
    # 3 videos' time (the first job's two, then the run's own) on a loaded machine.
    runner = project.start_batch(*SMALL, env={"COSMOS_SIMULATOR__PER_VIDEO_S": "2.5"})
    job_id, first_runs = running_job(project)
    queued = wait_for_rows(project, "SELECT id FROM runs WHERE status = 'queued' ORDER BY id")
    later = queued[0][0]
    # A queued run is waited for, then followed live (an id prefix is enough).
    follower = start_follow(project, later[:9])
    text = assert_followed_live(project, follower, later)
    assert job_id not in text
    assert runner.wait(timeout=120) == 0

    # Once finished, the run folder's log is printed.
    done = project.cosmos("logs", later)
    assert done.returncode == 0, done.stderr
    assert done.stdout == text
    earlier = project.cosmos("logs", first_runs[0])
    assert earlier.returncode == 0 and f"/{job_id}/" in earlier.stdout


def test_kill_a_local_run_stops_its_process_and_the_sweep_goes_on(project: Project) -> None:
    runner = project.start_batch(
        *SMALL, env={"COSMOS_SIMULATOR__PER_VIDEO_S": KILL_VIDEO_S}, capture=True
    )
    job_id, killed = running_job(project)
    wait_for_log_line(project.outputs / ".staging" / job_id / "logs" / "job.log")

    done = project.cosmos("kill", killed[0], "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted(report["cancelled"]) == killed
    [job] = report["jobs"]
    assert job["job_id"] == job_id and job["target"] == "local"
    assert job["stopped"].startswith("process "), job
    assert sorted(job["runs"]) == killed

    stdout, stderr = runner.communicate(timeout=120)
    assert runner.returncode == 1, stderr
    assert "2 executed (2 succeeded, 0 failed), 0 cached, 2 cancelled" in stdout
    # The model was stopped: it did not produce the job's two videos.
    assert len(ledger_of_job(project.ledger, job_id)) < 2
    runs = {r["id"]: r for r in project.cosmos_json("list", "runs")}
    for run_id, run in runs.items():
        if run_id in killed:
            assert run["status"] == "cancelled", run
            assert run["error_message"] == f"cancelled by cosmos kill {killed[0]}"
            folder = project.outputs / "runs" / run_id
            result = json.loads((folder / "result.json").read_text())
            assert result["status"] == "cancelled" and result["job_id"] == job_id
            assert "[simulated]" in (folder / "logs" / "run.log").read_text()
            assert not (folder / "output.mp4").exists()
        else:
            assert run["status"] == "succeeded", run
    assert not (project.outputs / ".staging" / job_id).exists()

    # Killing it again: nothing to kill. The next run executes only the cancelled runs.
    assert_bad_input(project.cosmos("kill", killed[1]), killed[1], "nothing to kill")
    again = project.batch(*SMALL)
    assert again.returncode == 0, again.stderr
    assert "2 executed (2 succeeded, 0 failed), 2 cached" in again.stdout


def test_logs_follow_of_a_killed_local_run_prints_its_whole_log(project: Project) -> None:
    # Two GPUs: the other job runs beside the killed one, not for 20 s after it.
    runner = project.start_batch(
        *SMALL,
        "target.gpus=[0,1]",
        env={"COSMOS_SIMULATOR__PER_VIDEO_S": SLOW_VIDEO_S},
        capture=True,
    )
    job_id, killed = running_job(project)
    wait_for_log_line(project.outputs / ".staging" / job_id / "logs" / "job.log")
    follower = start_follow(project, killed[0])
    first = follower.stdout.readline()
    assert "[simulated]" in first, first

    done = project.cosmos("kill", killed[0])
    assert done.returncode == 0, done.stderr
    rest = follower.stdout.read()
    assert follower.wait(timeout=120) == 0, (project.root / "follow.err").read_text()
    runner.communicate(timeout=120)
    assert status_of(project, killed[0]) == "cancelled"
    log = (project.outputs / "runs" / killed[0] / "logs" / "run.log").read_text()
    assert first + rest == log, "the followed log differs from the cancelled run's log"


@pytest.mark.parametrize(
    ("script", "gpus"),
    [(None, None), (FAKE_NVIDIA_SMI, FAKE_GPUS), (FAILING_NVIDIA_SMI, None)],
    ids=["absent", "present", "failing"],
)
def test_status_shows_the_local_gpus_from_nvidia_smi(
    project: Project, tmp_path: Path, script: str | None, gpus: list | None
) -> None:
    fake_bin = tmp_path / "bin"
    if script:
        install(fake_bin, script)
    env = {"PATH": f"{fake_bin}:{project.env['PATH']}"}
    data = json.loads(project.cosmos("status", "--json", env=env).stdout)
    local = target_status(data, "local")
    assert local["configured"] and local["reachable"] and local["kind"] == "local"
    assert local["gpus"] == gpus
    ssh = target_status(data, "ssh")
    assert not ssh["configured"] and "target.host" in ssh["problem"]

    text = project.cosmos("status", env=env)
    assert text.returncode == 0, text.stderr
    if gpus:
        assert "gpu 0: NVIDIA H100 80GB HBM3, 1234/81559 MiB used, 37% busy" in text.stdout
        assert "gpu 1: NVIDIA H100 80GB HBM3, 3/81559 MiB used, n/a% busy" in text.stdout
        assert "no GPU information" not in text.stdout
    else:
        assert "no GPU information" in text.stdout


def test_status_reports_an_unreachable_target_and_exits_3(
    demo_done: Project, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    port = free_port()
    key = keygen(tmp_path / "key")
    known_hosts.write_text(f"[127.0.0.1]:{port} {key.with_suffix('.pub').read_text()}")
    down = {
        "name": "gpu-down",
        "kind": "ssh",
        "host": "127.0.0.1",
        "port": port,
        "user": "nobody",
        "key_file": str(key),
        "known_hosts": str(known_hosts),
        "work_dir": "/srv/cosmos",
        "image": "cosmos:1",
        "connect_timeout": 5,
    }
    target_file = demo_done.write("conf/target/gpu_down.yaml", yaml.safe_dump(down))
    try:
        results = run_all(demo_done, {"json": ("status", "--json"), "text": ("status",)})
    finally:
        target_file.unlink()
    for done in results.values():
        assert done.returncode == 3, done.stderr
        assert "gpu-down" in done.stderr and "Traceback" not in done.stderr
    data = json.loads(results["json"].stdout)
    assert data["counts"]["succeeded"] == 12
    entry = target_status(data, "gpu-down")
    assert entry["configured"] and not entry["reachable"]
    assert "127.0.0.1" in entry["error"]
    assert target_status(data, "local")["reachable"]
    text = results["text"].stdout
    assert "12 succeeded" in text and "unreachable" in text


def test_unknown_ids_and_finished_runs_exit_2(demo_done: Project) -> None:
    runs = demo_done.cosmos_json("list", "runs")
    sweep = demo_done.cosmos_json("list", "sweeps")[0]["id"]
    finished = runs[0]["id"]
    results = run_all(
        demo_done,
        {
            "logs_unknown": ("logs", "rs_ffffffffffffffff"),
            "logs_follow_unknown": ("logs", "-f", "rs_ffff"),
            "logs_prompt": ("logs", runs[0]["prompt_id"]),
            "kill_unknown": ("kill", "rs_ffffffffffffffff"),
            "kill_sweep_unknown": ("kill", "--sweep", "sw_ffffffffffffffff"),
            "kill_sweep_of_a_run": ("kill", "--sweep", finished),
            "kill_finished": ("kill", finished[:10]),
            "kill_finished_sweep": ("kill", "--sweep", sweep),
            "logs_finished": ("logs", finished[:10]),
        },
    )
    assert_bad_input(results["logs_unknown"], "rs_ffffffffffffffff")
    assert_bad_input(results["logs_follow_unknown"], "rs_ffff")
    assert_bad_input(results["logs_prompt"], "expected a rs_ id")
    assert_bad_input(results["kill_unknown"], "rs_ffffffffffffffff")
    assert_bad_input(results["kill_sweep_unknown"], "sw_ffffffffffffffff")
    assert_bad_input(results["kill_sweep_of_a_run"], "expected a sw_ id")
    assert_bad_input(results["kill_finished"], finished, "succeeded", "nothing to kill")
    assert_bad_input(results["kill_finished_sweep"], sweep, "nothing to kill")
    logs = results["logs_finished"]
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == (demo_done.outputs / "runs" / finished / "logs" / "run.log").read_text()
    assert {r["status"] for r in demo_done.cosmos_json("list", "runs")} == {"succeeded"}


def test_a_run_on_a_target_that_is_not_configured_here_is_refused(project: Project) -> None:
    assert project.batch(*SMALL).returncode == 0
    run_id = project.cosmos_json("list", "runs")[0]["id"]
    with sqlite3.connect(project.outputs / "cosmos.db") as db:
        db.execute(
            "UPDATE runs SET status='running', target='gpu9', job_id='jb_000000000000' WHERE id=?",
            (run_id,),
        )
    for command in ("logs", "kill"):
        assert_bad_input(project.cosmos(command, run_id), "gpu9", "not configured", "--set")
    assert status_of(project, run_id) == "running", "a refused kill changed the run"


# ---------------------------------------------------------------- remote target


@pytest.fixture
def remote(host: Any, tmp_path: Path) -> Project:
    """A project whose conf/target/test_host.yaml selects the test host."""
    project = make_project(tmp_path / "proj")
    work_dir = tmp_path / "gpu-host" / "cosmos"
    # The ledger must be visible inside the container: put it in the work dir.
    project.env["COSMOS_SIMULATOR__LEDGER"] = str(work_dir / "ledger.jsonl")
    project.write("conf/target/test_host.yaml", yaml.safe_dump(host.target_config(work_dir)))
    return project


def remote_ledger(project: Project) -> Path:
    return Path(project.env["COSMOS_SIMULATOR__LEDGER"])


def our_containers(host: Any) -> list[str]:
    listed = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            "label=io.cosmos-workflow.job",
            "--format",
            "{{.Names}}",
        ],
        env=host.dockerd.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def wait_for_container(host: Any, name: str, timeout: float = 90) -> None:
    """Wait until the container runs on the test host."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Status}}", name],
            env=host.dockerd.env,
            capture_output=True,
            text=True,
        )
        if state.stdout.strip() == "running":
            return
        time.sleep(0.1)
    raise AssertionError(f"container {name} did not start in {timeout}s")


def wait_for_status(project: Project, ready: Any, timeout: float = 90) -> dict:
    """Poll `cosmos status --json` until ``ready(data)``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = project.cosmos("status", "--json")
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        if ready(data):
            return data
        time.sleep(0.2)
    raise AssertionError(f"status never showed what was expected in {timeout}s")


def test_status_and_logs_of_a_remote_sweep(host: Any, remote: Project) -> None:
    smi = install(host.bin_dir, FAKE_NVIDIA_SMI)
    try:
        runner = remote.start_batch(
            *SMALL, "target=test_host", env={"COSMOS_SIMULATOR__PER_VIDEO_S": "2"}
        )
        job_id, job_runs = running_job(remote)
        queued = wait_for_rows(remote, "SELECT id FROM runs WHERE status = 'queued' ORDER BY id")
        follower = start_follow(remote, queued[0][0])

        def container_runs(data: dict) -> bool:
            containers = target_status(data, "test-host")["containers"] or []
            return any(c["state"] == "running" for c in containers)

        data = wait_for_status(remote, container_runs)
        entry = target_status(data, "test-host")
        assert entry["reachable"] and entry["kind"] == "ssh"
        assert entry["gpus"] == FAKE_GPUS
        [container] = [c for c in entry["containers"] if c["state"] == "running"]
        job = container["labels"]["job"]
        assert container["name"] == f"cosmos-{job}"
        running = {r["id"]: r["job_id"] for r in data["running"]}
        assert sorted(container["labels"]["runs"].split(",")) == sorted(
            run_id for run_id, run_job in running.items() if run_job == job
        )
        assert target_status(data, "local")["gpus"] is None

        text = assert_followed_live(remote, follower, queued[0][0])
        assert runner.wait(timeout=180) == 0
    finally:
        smi.unlink()

    finished = remote.cosmos("logs", queued[0][0])
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == text
    assert job_id in remote.cosmos("logs", job_runs[0]).stdout
    after = remote.cosmos("status")
    assert after.returncode == 0, after.stderr
    assert "target test-host (ssh " in after.stdout
    assert "no containers of ours" in after.stdout
    assert "no GPU information" in after.stdout  # neither host has nvidia-smi now
    assert our_containers(host) == []

    # The target may also be given by overrides, as on the cosmos-batch command line.
    sets = [arg for override in host.overrides() for arg in ("--set", override)]
    data = remote.cosmos_json("status", *sets)
    entry = target_status(data, "test-host")
    assert entry["source"] == "conf/target/ssh.yaml with --set overrides"
    assert entry["reachable"] and entry["containers"] == []
    assert [t["name"] for t in data["targets"]].count("test-host") == 1
    assert "ssh" not in [t["name"] for t in data["targets"]]


def start_remote_job(
    host: Any, remote: Project, *overrides: str
) -> tuple[subprocess.Popen, str, list[str]]:
    """Start a slow sweep on the test host; return the runner, a running job and its runs."""
    runner = remote.start_batch(
        *SMALL,
        "target=test_host",
        *overrides,
        env={"COSMOS_SIMULATOR__PER_VIDEO_S": SLOW_VIDEO_S},
        capture=True,
    )
    job_id, runs = running_job(remote)
    wait_for_container(host, f"cosmos-{job_id}")
    return runner, job_id, runs


def test_kill_a_remote_run_stops_its_container_and_the_others_succeed(
    host: Any, remote: Project
) -> None:
    # Two slots: the other job runs beside the killed one, not for 20 s after it.
    runner, job_id, killed = start_remote_job(host, remote, "+target.gpus=[0,1]")
    done = remote.cosmos("kill", killed[1])
    assert done.returncode == 0, done.stderr
    assert f"container cosmos-{job_id}" in done.stdout
    assert "it held 2 runs" in done.stdout
    for run_id in killed:
        assert run_id in done.stdout

    stdout, stderr = runner.communicate(timeout=180)
    assert runner.returncode == 1, stderr
    assert "2 executed (2 succeeded, 0 failed), 0 cached, 2 cancelled" in stdout
    assert f"cosmos-{job_id}" not in our_containers(host)
    assert len(ledger_of_job(remote_ledger(remote), job_id)) < 2, "the container was not stopped"
    for run in remote.cosmos_json("list", "runs"):
        if run["id"] in killed:
            assert run["status"] == "cancelled", run
            result = json.loads((remote.outputs / "runs" / run["id"] / "result.json").read_text())
            assert result["status"] == "cancelled"
            assert result["exit_code"] == 137  # killed by the runtime (SIGKILL)
        else:
            assert run["status"] == "succeeded", run
    assert our_containers(host) == []


def test_kill_sweep_cancels_every_unfinished_run_and_the_runner_stops(
    host: Any, remote: Project
) -> None:
    runner, job_id, _ = start_remote_job(host, remote)
    sweep = db_rows(remote, "SELECT id FROM sweeps")[0][0]
    done = remote.cosmos("kill", "--sweep", sweep[:8], "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert len(report["cancelled"]) == 4
    assert [job["job_id"] for job in report["jobs"]] == [job_id]

    stdout, stderr = runner.communicate(timeout=60)
    assert runner.returncode == 1, stderr
    assert "0 executed (0 succeeded, 0 failed), 0 cached, 4 cancelled" in stdout
    statuses = {r["status"] for r in remote.cosmos_json("list", "runs")}
    assert statuses == {"cancelled"}
    # The running job was stopped and the queued one never started.
    ledger = remote_ledger(remote)
    produced = (
        [json.loads(line) for line in ledger.read_text().splitlines()] if ledger.exists() else []
    )
    assert len(produced) < 2 and all(f"/{job_id}/" in line["output"] for line in produced)
    assert our_containers(host) == []
    assert_bad_input(remote.cosmos("kill", "--sweep", sweep), "nothing to kill")
