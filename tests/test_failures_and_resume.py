"""Failures keep their logs, interrupted sweeps resume, outputs are never lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import Project

from cosmos_workflow.engine.leftovers import ORPHAN


def test_failed_runs_keep_logs_and_exit_code_and_others_go_on(project: Project) -> None:
    done = project.batch("+experiment=demo", "simulator.fail_on_seed=2")
    assert done.returncode == 1, done.stderr
    assert "0 executed" not in done.stdout
    assert "6 executed" not in done.stdout and "12 executed (6 succeeded, 6 failed)" in done.stdout

    runs = project.cosmos_json("list", "runs")
    by_status: dict[str, list[dict]] = {}
    for run in runs:
        by_status.setdefault(run["status"], []).append(run)
    assert {k: len(v) for k, v in by_status.items()} == {"succeeded": 6, "failed": 6}
    for run in by_status["failed"]:
        folder = Path(run["output_dir"])
        assert str(folder) in done.stdout, "failed run folder not listed in the summary"
        assert run["exit_code"] == 17 and run["error_class"] == "execution"
        assert "17" in run["error_message"]
        assert "simulated failure for seed 2" in (folder / "logs" / "run.log").read_text()
        result = json.loads((folder / "result.json").read_text())
        assert result["status"] == "failed" and result["exit_code"] == 17
        assert not (folder / "output.mp4").exists()
        spec = json.loads((folder / "spec.json").read_text())
        assert spec["seed"] == 2
    for run in by_status["succeeded"]:
        assert json.loads((Path(run["output_dir"]) / "spec.json").read_text())["seed"] == 1

    again = project.batch("+experiment=demo")
    assert again.returncode == 0, again.stderr
    assert "6 executed (6 succeeded, 0 failed), 6 cached" in again.stdout
    retried = {r["id"]: r for r in project.cosmos_json("list", "runs")}
    for run in by_status["failed"]:
        assert retried[run["id"]]["status"] == "succeeded"
        # In its batch of two, alone (fault isolation found it failing), and now.
        assert retried[run["id"]]["attempts"] == 3
        assert retried[run["id"]]["error_message"] is None
    for run in by_status["succeeded"]:
        assert retried[run["id"]]["attempts"] == 1


def test_cached_outputs_are_never_rewritten(demo_project: Project) -> None:
    project = demo_project
    videos = sorted((project.outputs / "runs").glob("*/output.mp4"))
    stamps = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in videos}
    assert project.batch("+experiment=demo").returncode == 0
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in videos} == stamps


def test_kill_9_mid_sweep_then_rerun_finishes_without_double_success(project: Project) -> None:
    process = project.start_batch("+experiment=demo", env={"COSMOS_SIMULATOR__PER_VIDEO_S": "0.4"})
    project.wait_for_ledger(3)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    produced_before = len(project.ledger_lines())
    assert 3 <= produced_before < 12, "the kill did not land mid-sweep"
    states = {r["status"] for r in project.cosmos_json("list", "runs")}
    assert "running" in states, "the killed sweep left no run in progress"
    done_before = {r["id"]: r for r in project.cosmos_json("list", "runs", "--status", "succeeded")}
    # `cosmos gc` meanwhile keeps the job still running: the next run follows it.
    report = project.cosmos_json("gc")
    assert ("staging folder", ORPHAN) in {(i["what"], i["why"]) for i in report["kept"]}, report
    assert [i for i in report["removed"] if i["what"] == "staging folder"] == [], report

    done = project.batch("+experiment=demo")
    assert done.returncode == 0, done.stderr
    assert f"{12 - len(done_before)} executed" in done.stdout
    assert f"{len(done_before)} cached" in done.stdout
    runs = project.cosmos_json("list", "runs")
    assert {r["status"] for r in runs} == {"succeeded"} and len(runs) == 12
    assert project.cosmos_json("list", "runs", "--status", "running") == []
    for run in runs:
        folder = Path(run["output_dir"])
        check = subprocess.run(["sha256sum", "-c", "outputs.sha256"], cwd=folder)
        assert check.returncode == 0, "a run marked succeeded has unverified outputs"
        if run["id"] in done_before:
            assert (
                run["attempts"] == 1 and run["finished_at"] == done_before[run["id"]]["finished_at"]
            )
    # The job that was running when the runner died kept running on its own and
    # was re-attached: every video was made exactly once, none twice.
    assert len(project.ledger_lines()) == 12


def test_outputs_written_before_a_crash_are_adopted_not_rerun(demo_project: Project) -> None:
    """A crash after result.json but before the database commit loses nothing."""
    project = demo_project
    victim = project.cosmos_json("list", "runs")[0]["id"]
    with sqlite3.connect(project.outputs / "cosmos.db") as db:
        db.execute("UPDATE runs SET status='running' WHERE id=?", (victim,))
    done = project.batch("+experiment=demo")
    assert done.returncode == 0, done.stderr
    assert "0 executed (0 succeeded, 0 failed), 12 cached" in done.stdout
    assert len(project.ledger_lines()) == 12
    assert project.cosmos_json("show", victim)["status"] == "succeeded"


def test_tampered_outputs_are_not_trusted(demo_project: Project) -> None:
    """Outputs whose checksum no longer matches are executed again."""
    project = demo_project
    victim = project.cosmos_json("list", "runs")[0]["id"]
    with sqlite3.connect(project.outputs / "cosmos.db") as db:
        db.execute("UPDATE runs SET status='failed' WHERE id=?", (victim,))
    video = project.outputs / "runs" / victim / "output.mp4"
    video.write_bytes(video.read_bytes() + b"corrupt")
    done = project.batch("+experiment=demo")
    assert done.returncode == 0, done.stderr
    assert "1 executed (1 succeeded, 0 failed), 11 cached" in done.stdout
    check = subprocess.run(["sha256sum", "-c", "outputs.sha256"], cwd=video.parent)
    assert check.returncode == 0


def test_a_run_folder_without_its_video_is_not_trusted(demo_project: Project) -> None:
    """A record whose outputs are all there but its main one (the video) is run again."""
    project = demo_project
    victim = project.cosmos_json("list", "runs")[0]["id"]
    with sqlite3.connect(project.outputs / "cosmos.db") as db:
        db.execute("UPDATE runs SET status='failed' WHERE id=?", (victim,))
    folder = project.outputs / "runs" / victim
    (folder / "output.mp4").unlink()
    (folder / "output.txt").write_text("a note\n", encoding="utf-8")
    digest = subprocess.run(
        ["sha256sum", "output.txt"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout
    (folder / "outputs.sha256").write_text(digest, encoding="utf-8")
    result = json.loads((folder / "result.json").read_text())
    result["outputs"] = {"output.txt": len("a note\n")}
    (folder / "result.json").write_text(json.dumps(result))
    done = project.batch("+experiment=demo")
    assert done.returncode == 0, done.stderr
    assert "1 executed (1 succeeded, 0 failed), 11 cached" in done.stdout
    assert (folder / "output.mp4").is_file()
    assert json.loads((folder / "result.json").read_text())["main_output"] == "output.mp4"


def test_ctrl_c_cancels_unfinished_runs_and_a_rerun_finishes(project: Project) -> None:
    process = project.start_batch(
        "+experiment=demo", env={"COSMOS_SIMULATOR__PER_VIDEO_S": "0.4"}, capture=True
    )
    project.wait_for_ledger(2)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "cancelled" in stderr
    statuses = [r["status"] for r in project.cosmos_json("list", "runs")]
    assert "running" not in statuses and "queued" not in statuses
    assert "cancelled" in statuses
    rows = [
        json.loads(line)
        for line in next((project.outputs / "sweeps").iterdir())
        .joinpath("runs.jsonl")
        .read_text()
        .splitlines()
    ]
    assert sorted(r["status"] for r in rows) == sorted(statuses)

    done = project.batch("+experiment=demo")
    assert done.returncode == 0, done.stderr
    assert {r["status"] for r in project.cosmos_json("list", "runs")} == {"succeeded"}


def test_a_deleted_run_folder_is_produced_again(demo_project: Project) -> None:
    project = demo_project
    victim = project.cosmos_json("list", "runs")[3]["id"]
    shutil.rmtree(project.outputs / "runs" / victim)
    done = project.batch("+experiment=demo")
    assert done.returncode == 0, done.stderr
    assert "1 executed (1 succeeded, 0 failed), 11 cached" in done.stdout
    assert victim in done.stderr and "outputs are gone" in done.stderr
    shown = project.cosmos_json("show", victim)
    assert shown["status"] == "succeeded" and shown["attempts"] == 2
    assert Path(shown["output_path"]).is_file()


@pytest.mark.parametrize("change", ["edit", "directory"])
def test_an_input_edited_after_planning_is_never_used(project: Project, change: str) -> None:
    """The runner checks every input's sha256 as it copies it for the model."""
    from cosmos_workflow.api.cosmos_api import CosmosAPI
    from cosmos_workflow.config.manager import ConfigManager
    from cosmos_workflow.config.project import ProjectPaths
    from cosmos_workflow.config.sources import ConfigSources
    from cosmos_workflow.manifest.models import Manifest

    root = project.root
    composed = yaml.safe_load(project.batch("+experiment=demo", "--cfg", "job").stdout)
    settings = ConfigManager(ProjectPaths(root), project.env).settings(composed)
    api = CosmosAPI(settings)
    manifest = ConfigManager.manifest_part(composed)
    assert Manifest.model_validate(manifest).name == "demo"
    plan = api.plan_sweep(manifest, [], ConfigSources([], "test"))

    video = root / "inputs/demo/forest/color.mp4"
    if change == "edit":
        video.write_bytes(video.read_bytes() + b"edited after planning")
    else:
        video.unlink()
        video.mkdir()
    summary = api.run_sweep(plan)

    forest = {r.id for r in plan.runs if r.prompt.name == "forest"}
    assert set(summary.tally.failed) == forest
    assert len(summary.tally.succeeded) == 6
    for run_id in forest:
        shown = api.show(run_id)
        assert shown["status"] == "failed" and shown["error_class"] == "validation"
        assert "changed since the runs were planned" in shown["error_message"] or (
            change == "directory" and "cannot read input" in shown["error_message"]
        )
        assert not (api.store.run_dir(run_id) / "output.mp4").exists()
    assert all("forest" not in line["prompt"] for line in project.ledger_lines())
