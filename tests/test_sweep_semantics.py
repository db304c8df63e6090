"""How sweeps meet overrides, duplicates, deletions, replays and a second runner."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import Project, make_project
from test_demo_sweep import plan_ids, plan_states


def test_a_command_line_value_fixes_a_swept_key(project: Project) -> None:
    done = project.batch("+experiment=demo", "model.seed=7")
    assert done.returncode == 0, done.stderr
    assert "model.seed is set on the command line" in done.stdout
    runs = project.cosmos_json("list", "runs")
    assert len(runs) == 6
    seeds = {json.loads((Path(r["output_dir"]) / "spec.json").read_text())["seed"] for r in runs}
    assert seeds == {7}


def test_identical_prompts_with_other_names_are_reported(project: Project) -> None:
    prompts = yaml.safe_load((project.root / "manifests/prompts/demo.yaml").read_text())
    prompts["twin"] = dict(prompts["street"])
    project.write("manifests/prompts/demo.yaml", yaml.safe_dump(prompts))
    done = project.batch("+experiment=demo", "dry_run=true")
    assert done.returncode == 0, done.stderr
    assert len(plan_ids(done.stdout)) == 12
    assert "prompt 'twin' gives the same runs as prompt 'street'" in done.stdout


def test_deleted_runs_come_back_into_their_sweep(demo_project: Project) -> None:
    project = demo_project
    street = next(p for p in project.cosmos_json("list", "prompts") if p["name"] == "street")
    deleted = project.cosmos("delete", "prompt", street["id"], "--yes", "--delete-outputs")
    assert deleted.returncode == 0
    assert project.cosmos_json("list", "sweeps")[0]["runs"] == 6
    done = project.batch("+experiment=demo")
    assert "6 executed (6 succeeded, 0 failed), 6 cached" in done.stdout
    sweep = project.cosmos_json("list", "sweeps")[0]
    assert sweep["runs"] == 12 and sweep["counts"]["succeeded"] == 12


def test_runs_deleted_with_kept_outputs_are_adopted_back(demo_project: Project) -> None:
    project = demo_project
    street = next(p for p in project.cosmos_json("list", "prompts") if p["name"] == "street")
    assert project.cosmos("delete", "prompt", street["id"], "--yes").returncode == 0
    done = project.batch("+experiment=demo")
    assert "0 executed (0 succeeded, 0 failed), 12 cached" in done.stdout
    assert len(project.ledger_lines()) == 12
    assert project.cosmos_json("list", "sweeps")[0]["counts"]["succeeded"] == 12
    for run in project.cosmos_json("list", "runs"):
        if run["prompt_id"] != street["id"]:
            continue
        result = json.loads((Path(run["output_dir"]) / "result.json").read_text())
        assert run["attempts"] == 1 and run["target"] == "local" and run["exit_code"] == 0
        assert run["started_at"] == result["started_at"]
        assert run["finished_at"] == result["finished_at"]


def test_the_sweep_record_is_the_first_invocation(demo_project: Project) -> None:
    project = demo_project
    folder = next((project.outputs / "sweeps").iterdir())
    first = {name: (folder / name).read_text() for name in ("manifest.yaml", "overrides.yaml")}
    again = project.batch("+experiment=demo", "description=changed", "simulator.per_video_s=0")
    assert again.returncode == 0, again.stderr
    assert {name: (folder / name).read_text() for name in first} == first
    shown = project.cosmos_json("show", folder.name)
    assert shown["overrides"] == ["+experiment=demo"]


def test_a_saved_sweep_manifest_replays_to_the_same_runs(
    demo_done: Project, tmp_path: Path
) -> None:
    other = make_project(tmp_path / "replay")
    folder = next((demo_done.outputs / "sweeps").iterdir())
    shutil.copy(folder / "manifest.yaml", other.root / "manifests/experiment/replayed.yaml")
    done = other.batch("+experiment=replayed", "dry_run=true")
    assert done.returncode == 0, done.stderr
    executed = sorted(r["id"] for r in demo_done.cosmos_json("list", "runs"))
    assert sorted(plan_ids(done.stdout)) == executed


def test_passwords_in_overrides_are_not_stored(project: Project) -> None:
    url = f"sqlite:///{project.root}/other.db"
    done = project.batch("+experiment=demo", f"database.url={url}", "simulator.ledger=null")
    assert done.returncode == 0, done.stderr
    secret_url = "postgresql://user:hunter2@127.0.0.1:1/db"
    from cosmos_workflow.manifest.overrides import redact

    assert "hunter2" not in " ".join(redact([f"database.url={secret_url}", "model.seed=1"]))
    assert redact(["model.seed=1"]) == ["model.seed=1"]


def test_changed_outputs_of_a_succeeded_run_are_produced_again(demo_project: Project) -> None:
    project = demo_project
    victim = project.cosmos_json("list", "runs")[5]
    video = Path(victim["output_path"])
    video.write_bytes(video.read_bytes()[:-10])
    states = plan_states(project.batch("+experiment=demo", "dry_run=true").stdout)
    assert states[victim["id"]] == "to run"
    assert list(states.values()).count("cached") == 11
    done = project.batch("+experiment=demo")
    assert "1 executed (1 succeeded, 0 failed), 11 cached" in done.stdout
    check = subprocess.run(["sha256sum", "-c", "outputs.sha256"], cwd=video.parent)
    assert check.returncode == 0


def test_prompts_without_input_video_run_one_per_invocation(project: Project) -> None:
    project.write(
        "manifests/experiment/novideo.yaml",
        "# @package _global_\nname: novideo\n"
        "prompts:\n"
        "  a: {text: first, inputs: {controls: {depth: inputs/demo/street/depth.mp4}}}\n"
        "  b: {text: second, inputs: {controls: {depth: inputs/demo/forest/depth.mp4}}}\n"
        "model: {sigma_max: 80, weights: {depth: 0.5}}\n",
    )
    done = project.batch("+experiment=novideo")
    assert done.returncode == 0, done.stderr
    assert "2 executed (2 succeeded, 0 failed)" in done.stdout
    for run in project.cosmos_json("list", "runs"):
        result = json.loads((Path(run["output_dir"]) / "result.json").read_text())
        assert result["batch_size"] == 1


def test_a_second_runner_on_the_same_outputs_shares_the_sweep(project: Project) -> None:
    first = project.start_batch("+experiment=demo", env={"COSMOS_SIMULATOR__PER_VIDEO_S": "0.3"})
    try:
        project.wait_for_ledger(1)
        second = project.batch("+experiment=demo", env={"COSMOS_SIMULATOR__PER_VIDEO_S": "0.3"})
        assert second.returncode == 0, second.stderr
        # It waited for the first runner's runs and ran the rest: the sweep is whole.
        assert {r["status"] for r in project.cosmos_json("list", "runs")} == {"succeeded"}
    finally:
        first.wait(timeout=120)
    assert first.returncode == 0
    assert len(project.ledger_lines()) == 12


def test_runs_another_runner_finished_after_the_plan_are_not_queued_again(
    demo_project: Project,
) -> None:
    """A second runner plans while the first finishes a run; then it queues what it planned.

    The run was not cached when it planned, and is succeeded with its folder
    whole when it queues: it is not run again. Only a succeeded run whose
    outputs are gone now is.
    """
    from cosmos_workflow.api.cosmos_api import CosmosAPI
    from cosmos_workflow.sweeps.queue import queue_runs
    from cosmos_workflow.sweeps.workspace import Workspace

    runs = demo_project.cosmos_json("list", "runs")
    ids = sorted(run["id"] for run in runs)
    lost = runs[0]["id"]
    shutil.rmtree(Path(runs[0]["output_dir"]))
    api = CosmosAPI.from_project(demo_project.root, environ=demo_project.env)
    queue_runs(Workspace(api.settings), ids)
    statuses = {run["id"]: run["status"] for run in demo_project.cosmos_json("list", "runs")}
    assert statuses == {run_id: "queued" if run_id == lost else "succeeded" for run_id in ids}


def test_deleting_while_a_runner_executes_is_refused(project: Project) -> None:
    assert project.batch("+experiment=demo", "model.seed=5").returncode == 0
    victim = project.cosmos_json("list", "runs")[0]["id"]
    # Slow enough that the runner outlasts the deletion's 10 s wait for the lock.
    runner = project.start_batch("+experiment=demo", env={"COSMOS_SIMULATOR__PER_VIDEO_S": "3"})
    try:
        project.wait_for_ledger(7)
        refused = project.cosmos("delete", "run", victim, "--yes")
        assert refused.returncode == 1 and "another runner" in refused.stderr
    finally:
        runner.send_signal(signal.SIGINT)
        runner.wait(timeout=60)
    assert project.cosmos_json("show", victim)["status"] == "succeeded"
    assert project.cosmos("delete", "run", victim, "--yes").returncode == 0


def test_a_closed_pipe_ends_the_listing_quietly(demo_done: Project) -> None:
    script = (
        f"{sys.executable} -m cosmos_workflow.cli.main list runs | head -n 1 >/dev/null; "
        f"{sys.executable} -m cosmos_workflow.cli.batch +experiment=demo dry_run=true | head -n 1"
    )
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=demo_done.root,
        env=demo_done.env,
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_only_run_folders_with_their_outputs_count_as_cached(demo_project: Project) -> None:
    project = demo_project
    runs = project.outputs / "runs"
    emptied, partial = sorted(p.name for p in runs.iterdir())[3:5]
    shutil.rmtree(runs / emptied)
    (runs / emptied).mkdir()
    (runs / partial / "output.mp4").unlink()
    (runs / "notes.txt").write_text("a file of the user's among the run folders\n")
    states = plan_states(project.batch("+experiment=demo", "dry_run=true").stdout)
    assert len(states) == 12
    assert {run_id for run_id, state in states.items() if state == "to run"} == {emptied, partial}

    shutil.rmtree(runs)
    states = plan_states(project.batch("+experiment=demo", "dry_run=true").stdout)
    assert set(states.values()) == {"to run"} and len(states) == 12
