"""Control videos the model computes itself are outputs of their run.

Transfer1 computes a control that has no control video (depth, seg, keypoint,
vis, edge) from the input video and saves it; the simulated model does the
same. The demo's prompts bring no depth video, so each demo run keeps the
depth its model computed as control_depth.mp4: in outputs.sha256 and
result.json, in `cosmos show`, linked from the report, and checked like every
other output before a run counts as cached.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import yaml
from conftest import Project
from test_demo_sweep import free_box_metadata, plan_states
from test_report import cells, parse

CONTROL = "control_depth.mp4"


def run_folders(project: Project) -> dict[str, Path]:
    return {run["id"]: Path(run["output_dir"]) for run in project.cosmos_json("list", "runs")}


def listed_sums(folder: Path) -> dict[str, str]:
    """outputs.sha256 as name -> digest."""
    lines = (folder / "outputs.sha256").read_text(encoding="utf-8").splitlines()
    return {name: digest for digest, _, name in (line.partition("  ") for line in lines)}


def result_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "result.json").read_text(encoding="utf-8"))


def prompt_folder(project: Project, name: str, depth: bool) -> str:
    """A prompt made with `cosmos create prompt` from a demo color video (and its depth)."""
    folder = project.root / "videos" / name
    folder.mkdir(parents=True)
    shutil.copyfile(project.root / "inputs/demo/street/color.mp4", folder / "color.mp4")
    if depth:
        shutil.copyfile(project.root / "inputs/demo/street/depth.mp4", folder / "depth.mp4")
    created = project.cosmos("create", "prompt", f"a street, {name}", str(folder))
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def inference(project: Project, prompt_id: str, *args: str, env: dict | None = None) -> Path:
    """`cosmos inference`: the folder of its run, which succeeded."""
    done = project.cosmos("inference", prompt_id, *args, env=env)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[0]
    assert project.cosmos_json("show", run_id)["status"] == "succeeded"
    return project.outputs / "runs" / run_id


# ---------------------------------------------------------------- the demo


def test_each_demo_run_keeps_the_depth_its_model_computed(demo_done: Project) -> None:
    by_prompt: dict[str, set[bytes]] = {}
    for folder in run_folders(demo_done).values():
        assert CONTROL in listed_sums(folder)
        check = subprocess.run(
            ["sha256sum", "-c", "outputs.sha256"], cwd=folder, capture_output=True, text=True
        )
        assert check.returncode == 0 and f"{CONTROL}: OK" in check.stdout, check.stdout
        result = result_of(folder)
        assert result["controls"] == {"depth": CONTROL}
        assert result["outputs"][CONTROL] == (folder / CONTROL).stat().st_size
        spec = yaml.safe_load((folder / "run.yaml").read_text(encoding="utf-8"))
        source = Path(spec["prompt"]["inputs"]["video"]["path"])
        data = (folder / CONTROL).read_bytes()
        assert data.startswith(source.read_bytes()), "computed from the run's input video"
        made = free_box_metadata(folder / CONTROL)
        assert made["simulated"] is True and made["control"] == "depth"
        by_prompt.setdefault(spec["prompt"]["name"], set()).add(data)
    # Same inputs, same bytes: every run of a prompt has the same depth, the prompts differ.
    assert sorted(len(found) for found in by_prompt.values()) == [1, 1]
    assert len(set.union(*by_prompt.values())) == 2


def test_cosmos_show_lists_the_computed_controls(demo_done: Project) -> None:
    for run_id, folder in run_folders(demo_done).items():
        shown = demo_done.cosmos_json("show", run_id)
        assert shown["controls"] == {"depth": str(folder / CONTROL)}
    run_id, folder = next(iter(run_folders(demo_done).items()))
    text = demo_done.cosmos("show", run_id)
    assert text.returncode == 0, text.stderr
    assert "controls:" in text.stdout and str(folder / CONTROL) in text.stdout


def test_the_report_cell_links_the_computed_control(demo_done: Project) -> None:
    (sweep,) = demo_done.cosmos_json("list", "sweeps")
    path = Path(sweep["output_dir"]) / "report.html"
    figures = cells(parse(path))
    assert len(figures) == 12
    for run_id, figure in figures.items():
        (link,) = figure.iter("a", class_="control-video")
        assert link.text() == "depth"
        assert link.attrs["href"] == f"../../runs/{run_id}/{CONTROL}"
        assert (path.parent / link.attrs["href"]).resolve().is_file()


# ---------------------------------------------------------------- checked like every output


def test_a_deleted_control_video_makes_its_run_execute_again(demo_project: Project) -> None:
    project = demo_project
    victim, folder = sorted(run_folders(project).items())[0]
    before = (folder / CONTROL).read_bytes()
    (folder / CONTROL).unlink()
    states = plan_states(project.batch("+experiment=demo", "dry_run=true").stdout)
    assert {run_id for run_id, state in states.items() if state == "to run"} == {victim}

    done = project.batch("+experiment=demo")
    assert done.returncode == 0, done.stderr
    assert "1 executed (1 succeeded, 0 failed), 11 cached" in done.stdout
    assert (folder / CONTROL).read_bytes() == before, "the same run makes the same bytes"
    assert subprocess.run(["sha256sum", "-c", "outputs.sha256"], cwd=folder).returncode == 0


def test_a_tampered_control_video_is_not_trusted(demo_project: Project) -> None:
    """A folder whose control video no longer matches its checksum is not adopted."""
    project = demo_project
    victim, folder = sorted(run_folders(project).items())[-1]
    with sqlite3.connect(project.outputs / "cosmos.db") as db:
        db.execute("UPDATE runs SET status='failed' WHERE id=?", (victim,))
    control = folder / CONTROL
    data = control.read_bytes()
    control.write_bytes(data[:-7] + b"changed")  # the same size: only sha256 sees it
    done = project.batch("+experiment=demo")
    assert done.returncode == 0, done.stderr
    assert "1 executed (1 succeeded, 0 failed), 11 cached" in done.stdout
    assert control.read_bytes() == data
    assert subprocess.run(["sha256sum", "-c", "outputs.sha256"], cwd=folder).returncode == 0


def test_a_run_that_fails_when_run_again_keeps_no_earlier_control_video(
    demo_project: Project,
) -> None:
    """A failed run's folder holds no output of an earlier success, control videos included."""
    project = demo_project
    victim, folder = sorted(run_folders(project).items())[0]
    seed = yaml.safe_load((folder / "run.yaml").read_text(encoding="utf-8"))["model"]["seed"]
    (folder / "output.mp4").unlink()
    done = project.batch("+experiment=demo", f"simulator.fail_on_seed={seed}")
    assert done.returncode == 1, done.stderr
    assert "1 executed (0 succeeded, 1 failed), 11 cached" in done.stdout
    assert project.cosmos_json("show", victim)["status"] == "failed"
    assert not list(folder.glob("control_*"))
    assert not (folder / "outputs.sha256").exists()
    assert project.cosmos_json("show", victim)["controls"] == {}


# ---------------------------------------------------------------- when nothing is computed


def test_a_run_with_its_own_control_video_gets_no_computed_one(project: Project) -> None:
    own = prompt_folder(project, "own-depth", depth=True)
    folder = inference(project, own, "--weight", "depth=0.6")
    assert not list(folder.glob("control_*"))
    assert result_of(folder)["controls"] == {}
    assert set(listed_sums(folder)) == {"output.mp4", "output.txt"}
    assert project.cosmos_json("show", folder.name)["controls"] == {}

    # Its depth is its own; the vis control it has no video for is computed.
    both = inference(project, own, "--weight", "depth=0.6", "--weight", "vis=0.3")
    assert sorted(p.name for p in both.glob("control_*")) == ["control_vis.mp4"]
    assert result_of(both)["controls"] == {"vis": "control_vis.mp4"}
    assert free_box_metadata(both / "control_vis.mp4")["control"] == "vis"


def test_a_control_the_program_did_not_write_does_not_fail_the_run(project: Project) -> None:
    """An optional output: kept when the program wrote it, not an error when it did not.

    Under LOCAL_RANK=1 the program names its depth depth_input_control_1.mp4,
    not the rank-0 file the adapter expects.
    """
    prompt_id = prompt_folder(project, "no-depth", depth=False)
    folder = inference(project, prompt_id, "--weight", "depth=0.6", env={"LOCAL_RANK": "1"})
    assert not list(folder.glob("control_*"))
    assert result_of(folder)["controls"] == {}
    assert set(listed_sums(folder)) == {"output.mp4", "output.txt"}
    assert project.cosmos_json("show", folder.name)["controls"] == {}
    again = project.cosmos("inference", prompt_id, "--weight", "depth=0.6")
    assert again.returncode == 0 and "(cached)" in again.stdout, "its outputs are complete"
