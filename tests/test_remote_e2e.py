"""The demo over SSH and Docker on the disposable test host (scripts/test-host):
a network namespace with its own address, a real sshd and a private dockerd.

The "remote host" shares this machine's file system, but the runner only
reaches it through SSH (commands, transfers) and Docker (containers).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import testhost
from conftest import Project, make_project
from sshd import keygen
from test_demo_sweep import RUN_FILES, plan_ids


def overrides(host: testhost.TestHost, work_dir: Path, **changes: str) -> list[str]:
    values = dict(o.split("=", 1) for o in host.overrides())
    values["target.work_dir"] = str(work_dir)
    values.update(changes)
    return [f"{key}={value}" for key, value in values.items()]


@pytest.fixture
def remote_project(tmp_path: Path) -> tuple[Project, Path]:
    project = make_project(tmp_path / "proj")
    work_dir = tmp_path / "gpu-host" / "cosmos"
    # The ledger must be visible inside the container: put it in the work dir.
    project.env["COSMOS_SIMULATOR__LEDGER"] = str(work_dir / "ledger.jsonl")
    return project, work_dir


def ledger(work_dir: Path) -> list[dict]:
    path = work_dir / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_demo_over_ssh_and_docker_gives_the_local_layout(host, remote_project) -> None:
    project, work_dir = remote_project
    done = project.batch("+experiment=demo", *overrides(host, work_dir))
    assert done.returncode == 0, done.stderr
    assert "12 executed (12 succeeded, 0 failed), 0 cached" in done.stdout
    assert len(ledger(work_dir)) == 12

    runs = project.cosmos_json("list", "runs")
    assert {r["status"] for r in runs} == {"succeeded"} and len(runs) == 12
    for run in runs:
        folder = Path(run["output_dir"])
        present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        assert RUN_FILES <= present
        check = subprocess.run(["sha256sum", "-c", "outputs.sha256"], cwd=folder)
        assert check.returncode == 0
        result = json.loads((folder / "result.json").read_text())
        assert result["target"] == "test-host" and result["exit_code"] == 0
        spec = json.loads((folder / "spec.json").read_text())
        assert spec["input_video_path"].startswith(str(work_dir / "jobs"))
        assert "[simulated]" in (folder / "logs" / "run.log").read_text()

    # Each input crossed the wire once: 4 files in the host's cache, and a
    # second sweep over the same inputs uploads none of them again.
    cache = sorted((work_dir / "cache").iterdir())
    assert len(cache) == 4
    inodes = {p.name: p.stat().st_ino for p in cache}
    again = project.batch("+experiment=demo", *overrides(host, work_dir), "model.seed=9")
    assert again.returncode == 0, again.stderr
    assert {p.name: p.stat().st_ino for p in (work_dir / "cache").iterdir()} == inodes
    left = list((work_dir / "jobs").iterdir())
    assert left == [], f"job folders were left on the host: {done.stderr}\n{again.stderr}"


def test_the_image_that_runs_is_part_of_the_run_id(host, remote_project) -> None:
    project, work_dir = remote_project
    remote = project.batch("+experiment=demo", "dry_run=true", *overrides(host, work_dir))
    other = project.batch(
        "+experiment=demo", "dry_run=true", *overrides(host, work_dir, **{"target.image": "x:2"})
    )
    local = project.batch("+experiment=demo", "dry_run=true")
    ids = [set(plan_ids(done.stdout)) for done in (remote, other, local)]
    assert all(len(found) == 12 for found in ids)
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_a_dropped_connection_reattaches_and_runs_nothing_twice(host, remote_project) -> None:
    project, work_dir = remote_project
    runner = project.start_batch(
        "+experiment=demo",
        *overrides(host, work_dir),
        env={"COSMOS_SIMULATOR__PER_VIDEO_S": "1"},
        capture=True,
    )
    project.wait_for_ledger(1, ledger=work_dir / "ledger.jsonl")
    # Kill the SSH sessions on the host (not the listening sshd): every
    # channel of the runner's connection drops while a container runs.
    sessions = subprocess.run(
        ["pgrep", "-f", f"sshd: {host.sshd.user}"], capture_output=True, text=True
    ).stdout.split()
    assert sessions, "no SSH session to drop"
    for pid in sessions:
        os.kill(int(pid), signal.SIGKILL)
    stdout, stderr = runner.communicate(timeout=240)
    assert runner.returncode == 0, stderr
    assert "re-attaching" in stderr
    assert "12 executed (12 succeeded, 0 failed)" in stdout
    assert len(ledger(work_dir)) == 12, "a run was executed twice"


def test_a_failing_container_keeps_its_log_and_the_rest_go_on(host, remote_project) -> None:
    project, work_dir = remote_project
    done = project.batch("+experiment=demo", *overrides(host, work_dir), "simulator.fail_on_seed=2")
    assert done.returncode == 1, done.stderr
    assert "12 executed (6 succeeded, 6 failed)" in done.stdout
    for run in project.cosmos_json("list", "runs", "--status", "failed"):
        assert run["exit_code"] == 17
        log = (Path(run["output_dir"]) / "logs" / "run.log").read_text()
        assert "simulated failure for seed 2" in log


def test_a_refused_key_exits_3_and_leaves_nothing_on_the_host(
    host, remote_project, tmp_path: Path
) -> None:
    project, work_dir = remote_project
    stranger = keygen(tmp_path / "stranger")
    done = project.batch(
        "+experiment=demo", *overrides(host, work_dir, **{"target.key_file": str(stranger)})
    )
    assert done.returncode == 3, done.stderr
    assert "authentication" in done.stderr and "Traceback" not in done.stderr
    assert not work_dir.exists()


def test_an_unknown_host_key_exits_3(host, remote_project, tmp_path: Path) -> None:
    project, work_dir = remote_project
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    done = project.batch(
        "+experiment=demo", *overrides(host, work_dir, **{"target.known_hosts": str(empty)})
    )
    assert done.returncode == 3, done.stderr
    assert "ssh-keyscan" in done.stderr and str(empty) in done.stderr
    assert empty.read_text() == "" and not work_dir.exists()
