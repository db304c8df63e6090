"""The catalogue commands people coming from the original tool expect.

`segmentation` as a name of the seg control (`create prompt`, `prepare`),
notes naming every file of an input folder that is not used, `cosmos list
runs --prompt`, `cosmos delete ... --all` and a `cosmos-batch --help` of its
own. Commands run in-process on throwaway projects.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Project, tree_snapshot
from media import write_sequence
from test_cli import DEMO, assert_bad_input, ok_json, sha256, video_dir

SIZE = (64, 48)


def notes_of(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("note: ")]


# ---------------------------------------------------------------- create prompt: names


@pytest.mark.parametrize(
    "file_name", ["segmentation.mp4", "shot1_segmentation.mp4", "Take2-SEGMENTATION.mov"]
)
def test_segmentation_is_the_seg_control(project: Project, file_name: str) -> None:
    folder = video_dir(project, "scene", {"color.mp4": "forest_color", file_name: "forest_depth"})
    created = ok_json(project.cosmos("create", "prompt", "a misty forest", str(folder), "--json"))
    shown = project.cosmos_json("show", created["id"])
    assert set(shown["inputs"]["controls"]) == {"seg"}
    assert shown["inputs"]["controls"]["seg"]["sha256"] == sha256(folder / file_name)
    assert created["notes"] == []


def test_seg_and_segmentation_together_are_two_files_for_one_role(project: Project) -> None:
    folder = video_dir(
        project,
        "both",
        {
            "color.mp4": "forest_color",
            "seg.mp4": "forest_depth",
            "segmentation.mp4": "street_depth",
        },
    )
    before = tree_snapshot(project.outputs)
    done = project.cosmos("create", "prompt", "text", str(folder))
    assert_bad_input(done, "seg.mp4", "segmentation.mp4", "more than one video")
    assert tree_snapshot(project.outputs) == before


def test_files_that_are_not_used_are_named_in_notes(project: Project) -> None:
    folder = video_dir(
        project,
        "scene",
        {"color.mp4": "forest_color", "depth.mp4": "forest_depth", "other.mp4": "street_depth"},
    )
    (folder / "notes.txt").write_text("shot notes\n", encoding="utf-8")
    (folder / "color.0001.png").write_bytes(b"not used here")
    (folder / "frames").mkdir()
    done = project.cosmos("create", "prompt", "a forest", str(folder))
    assert done.returncode == 0, done.stderr
    notes = notes_of(done)
    assert len(notes) == 1, done.stderr
    for name in ("other.mp4", "notes.txt", "color.####.png (1 frame)", "frames/"):
        assert name in notes[0], notes[0]
    assert "color.mp4" not in notes[0] and "depth.mp4" not in notes[0]
    # The prompt is made of the recognised videos only.
    shown = project.cosmos_json("show", done.stdout.strip())
    assert set(shown["inputs"]["controls"]) == {"depth"}

    as_json = ok_json(project.cosmos("create", "prompt", "a forest", str(folder), "--json"))
    assert as_json["created"] is False
    [note] = as_json["notes"]
    assert "other.mp4" in note and "notes.txt" in note


def test_a_clean_folder_gives_no_note(project: Project) -> None:
    done = project.cosmos("create", "prompt", "a quiet bay", "inputs/demo/street")
    assert done.returncode == 0, done.stderr
    assert notes_of(done) == []


def test_many_unused_files_are_counted_not_all_listed(project: Project) -> None:
    folder = video_dir(project, "busy", {"color.mp4": "forest_color"})
    for number in range(40):
        (folder / f"take{number:02d}.txt").write_text("x", encoding="utf-8")
    done = project.cosmos("create", "prompt", "busy", str(folder))
    assert done.returncode == 0, done.stderr
    [note] = notes_of(done)
    assert "40 files" in note and "take00.txt" in note and "and 30 more" in note
    assert "take39.txt" not in note


# ---------------------------------------------------------------- prepare: names


def test_prepare_makes_seg_mp4_of_a_segmentation_sequence(project: Project) -> None:
    folder = project.root / "renders" / "shot1"
    write_sequence(folder, "color.{:04d}.png", range(1, 7), SIZE)
    write_sequence(folder, "segmentation.{:04d}.png", range(1, 7), SIZE)
    write_sequence(folder, "shot1_depth_{:04d}.png", range(1, 7), SIZE)
    dry = ok_json(project.cosmos("prepare", str(folder), "--dry-run", "--json"))
    assert sorted(v["modality"] for v in dry["videos"]) == ["color", "depth", "seg"]
    seg = next(v for v in dry["videos"] if v["modality"] == "seg")
    assert seg["pattern"] == "segmentation.####.png"
    assert seg["output"] == str(folder / "seg.mp4")
    assert dry["skipped"] == [] and dry["notes"] == []

    done = project.cosmos("prepare", str(folder))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.glob("*.mp4")) == ["color.mp4", "depth.mp4", "seg.mp4"]
    # Running it again notes nothing: the videos it made are its own.
    again = project.cosmos("prepare", str(folder), "--dry-run", "--force")
    assert again.returncode == 0, again.stderr
    assert notes_of(again) == []
    created = ok_json(project.cosmos("create", "prompt", "a shot", str(folder), "--json"))
    shown = project.cosmos_json("show", created["id"])
    assert set(shown["inputs"]["controls"]) == {"depth", "seg"}
    # The frames are not inputs of a prompt: create prompt names them, by pattern.
    [note] = created["notes"]
    assert note.startswith(f"18 files in {folder} not used"), note
    for pattern in ("color.####.png", "segmentation.####.png", "shot1_depth_####.png"):
        assert f"{pattern} (6 frames)" in note, note
    assert "color.0001.png" not in note


def test_seg_and_segmentation_sequences_are_two_sequences_for_one_modality(
    project: Project,
) -> None:
    folder = project.root / "shot"
    write_sequence(folder, "color.{:04d}.png", range(1, 4), SIZE)
    write_sequence(folder, "seg.{:04d}.png", range(1, 4), SIZE)
    write_sequence(folder, "segmentation.{:04d}.png", range(1, 4), SIZE)
    done = project.cosmos("prepare", str(folder), "--dry-run")
    assert done.returncode == 2, done.stderr
    assert "2 sequences for seg" in done.stderr
    assert "seg.####.png" in done.stderr and "segmentation.####.png" in done.stderr


def test_prepare_names_the_files_it_does_not_use(project: Project) -> None:
    folder = project.root / "shot"
    write_sequence(folder, "color.{:04d}.png", range(1, 4), SIZE)
    (folder / "notes.txt").write_text("render notes\n", encoding="utf-8")
    (folder / "reference.mov").write_bytes(b"a video the user keeps here")
    (folder / ".hidden").write_text("x", encoding="utf-8")
    (folder / "cache").mkdir()
    done = project.cosmos("prepare", str(folder), "--dry-run")
    assert done.returncode == 0, done.stderr
    [note] = notes_of(done)
    for name in ("notes.txt", "reference.mov", ".hidden", "cache/"):
        assert name in note, note
    assert "color.0001.png" not in note
    report = ok_json(project.cosmos("prepare", str(folder), "--dry-run", "--json"))
    assert any("notes.txt" in item for item in report["notes"])


# ---------------------------------------------------------------- list runs --prompt


@pytest.fixture(scope="module")
def demo_ids(demo_done: Project) -> dict[str, object]:
    prompts = demo_done.cosmos_json("list", "prompts")
    runs = demo_done.cosmos_json("list", "runs")
    by_name = {p["name"]: p["id"] for p in prompts}
    return {
        "prompts": by_name,
        "runs": {
            name: {r["id"] for r in runs if r["prompt_id"] == pid} for name, pid in by_name.items()
        },
    }


def test_list_runs_of_one_prompt_by_id_prefix_or_name(demo_done: Project, demo_ids: dict) -> None:
    forest_id = demo_ids["prompts"]["forest"]
    forest_runs = demo_ids["runs"]["forest"]
    assert len(forest_runs) == 6
    for given in (forest_id, forest_id[:8], "forest"):
        listed = demo_done.cosmos_json("list", "runs", "--prompt", given)
        assert {r["id"] for r in listed} == forest_runs, given
    limited = demo_done.cosmos_json("list", "runs", "--prompt", "street", "--limit", "2")
    assert len(limited) == 2 and {r["id"] for r in limited} <= demo_ids["runs"]["street"]
    assert demo_done.cosmos_json("list", "runs", "--prompt", "forest", "--status", "failed") == []
    text = demo_done.cosmos("list", "runs", "--prompt", "forest")
    assert text.returncode == 0, text.stderr
    assert all(run_id in text.stdout for run_id in forest_runs)
    assert not any(run_id in text.stdout for run_id in demo_ids["runs"]["street"])


def test_list_runs_of_a_name_many_prompts_share(demo_project: Project, demo_ids: dict) -> None:
    proj = demo_project
    other = ok_json(
        proj.cosmos(
            "create", "prompt", "another", "inputs/demo/street", "--name", "forest", "--json"
        )
    )
    assert other["id"] != demo_ids["prompts"]["forest"]
    ran = proj.cosmos("inference", other["id"], "--weight", "depth=0.5", "--json")
    new_run = ok_json(ran)["id"]
    listed = {r["id"] for r in proj.cosmos_json("list", "runs", "--prompt", "forest")}
    assert listed == demo_ids["runs"]["forest"] | {new_run}
    by_id = {r["id"] for r in proj.cosmos_json("list", "runs", "--prompt", other["id"])}
    assert by_id == {new_run}


def test_list_runs_prompt_is_the_whole_name_and_covers_prompts_made_from_it(
    demo_project: Project, demo_ids: dict
) -> None:
    proj = demo_project
    forest_runs = demo_ids["runs"]["forest"]
    # A longer name that starts with "forest" is another prompt's.
    longer = ok_json(
        proj.cosmos(
            "create", "prompt", "more trees", "inputs/demo/forest", "--name", "forest2", "--json"
        )
    )
    ran = ok_json(proj.cosmos("inference", longer["id"], "--weight", "depth=0.5", "--json"))
    # An enhanced prompt keeps its parent's name: its runs are the name's too.
    enhanced = proj.cosmos_json("enhance", demo_ids["prompts"]["forest"])["id"]
    made = ok_json(proj.cosmos("inference", enhanced, "--weight", "depth=0.5", "--json"))["id"]
    listed = {r["id"] for r in proj.cosmos_json("list", "runs", "--prompt", "forest")}
    assert ran["id"] not in listed
    assert made in listed and forest_runs <= listed
    by_longer = {r["id"] for r in proj.cosmos_json("list", "runs", "--prompt", "forest2")}
    assert by_longer == {ran["id"]}
    assert_bad_input(proj.cosmos("list", "runs", "--prompt", "fores"), "no prompt", "fores")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("list", "runs", "--prompt", "nowhere"), ("no prompt", "nowhere")),
        (("list", "runs", "--prompt", "ps_00000000"), ("no prompt", "ps_00000000")),
        (("list", "runs", "--prompt", "ps_"), ("ambiguous",)),
        (("list", "runs", "--prompt", ""), ("--prompt",)),
        (("list", "prompts", "--prompt", "forest"), ("--prompt", "runs")),
        (("list", "sweeps", "--prompt", "forest"), ("--prompt", "runs")),
    ],
)
def test_list_runs_prompt_bad_input(demo_done: Project, args: tuple, fragments: tuple) -> None:
    assert_bad_input(demo_done.cosmos(*args), *fragments)


# ---------------------------------------------------------------- delete --all


def listed_runs(project: Project) -> set[str]:
    return {r["id"] for r in project.cosmos_json("list", "runs")}


def test_delete_every_run_asks_how_many_and_keeps_outputs(demo_project: Project) -> None:
    proj = demo_project
    before = listed_runs(proj)
    outputs = tree_snapshot(proj.outputs / "runs")
    declined = proj.cosmos("delete", "run", "--all", input_text="n\n")
    assert declined.returncode == 1
    assert "12 runs" in declined.stderr and "nothing deleted" in declined.stderr
    assert listed_runs(proj) == before

    done = proj.cosmos("delete", "run", "--all", input_text="y\n")
    assert done.returncode == 0, done.stderr
    assert "deleted 12 runs" in done.stdout
    assert listed_runs(proj) == set()
    assert tree_snapshot(proj.outputs / "runs") == outputs, "folders are kept unless asked"
    assert len(proj.cosmos_json("list", "prompts")) == 2
    [sweep] = proj.cosmos_json("list", "sweeps")
    assert sweep["runs"] == 0
    again = proj.cosmos("delete", "run", "--all", "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing to delete" in again.stderr
    assert "deleted" not in again.stdout, "one answer, not two"


def test_delete_the_runs_that_match_the_filters(demo_project: Project, demo_ids: dict) -> None:
    proj = demo_project
    forest = demo_ids["runs"]["forest"]
    none_failed = proj.cosmos("delete", "run", "--all", "--status", "failed", "--yes", "--json")
    assert ok_json(none_failed)["deleted_runs"] == []
    done = proj.cosmos(
        "delete", "run", "--all", "--prompt", "forest", "--delete-outputs", "--yes", "--json"
    )
    result = ok_json(done)
    assert set(result["ids"]) == forest and set(result["deleted_runs"]) == forest
    assert set(result["removed_outputs"]) == forest
    assert listed_runs(proj) == demo_ids["runs"]["street"]
    for run_id in forest:
        assert not (proj.outputs / "runs" / run_id).exists()
    for run_id in demo_ids["runs"]["street"]:
        assert (proj.outputs / "runs" / run_id / "output.mp4").is_file()
    # The question counts the matching runs only.
    declined = proj.cosmos("delete", "run", "--all", "--status", "succeeded", input_text="n\n")
    assert "6 runs" in declined.stderr and "12" not in declined.stderr


def test_delete_every_prompt(demo_project: Project) -> None:
    proj = demo_project
    done = proj.cosmos("delete", "prompt", "--all", "--yes", "--json")
    result = ok_json(done)
    assert len(result["ids"]) == 2 and len(result["deleted_runs"]) == 12
    assert proj.cosmos_json("list", "prompts") == [] and listed_runs(proj) == set()


def test_delete_prompts_by_name(demo_project: Project, demo_ids: dict) -> None:
    proj = demo_project
    declined = proj.cosmos("delete", "prompt", "--all", "--prompt", "street", input_text="n\n")
    assert "1 prompt" in declined.stderr and "6 run" in declined.stderr, declined.stderr
    done = proj.cosmos("delete", "prompt", "--all", "--prompt", "street", "--yes")
    assert done.returncode == 0, done.stderr
    assert [p["name"] for p in proj.cosmos_json("list", "prompts")] == ["forest"]
    assert listed_runs(proj) == demo_ids["runs"]["forest"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("delete", "run"), ("--all",)),
        (("delete", "run", "rs_0", "--all"), ("--all",)),
        (("delete", "run", "rs_0", "--status", "failed"), ("--status", "--all")),
        (("delete", "run", "rs_0", "--prompt", "forest"), ("--prompt", "--all")),
        (("delete", "prompt", "--all", "--status", "failed"), ("--status", "runs")),
        (("delete", "run", "--all", "--prompt", "nowhere"), ("no prompt", "nowhere")),
        (("delete", "run", "--all", "--status", "done"), ("--status",)),
    ],
)
def test_delete_all_bad_input_changes_nothing(
    demo_done: Project, args: tuple, fragments: tuple
) -> None:
    before = tree_snapshot(demo_done.outputs)
    done = demo_done.cosmos(*args, "--yes")
    assert_bad_input(done, *fragments)
    assert tree_snapshot(demo_done.outputs) == before


def test_delete_all_without_a_database_creates_none(project: Project) -> None:
    done = project.cosmos("delete", "run", "--all", "--yes")
    assert done.returncode == 0, done.stderr
    assert "nothing to delete" in done.stderr
    assert not project.outputs.exists()


# ---------------------------------------------------------------- cosmos-batch --help


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_cosmos_batch_help_explains_experiments_dry_runs_grids_and_exit_codes(
    project: Project, flag: str
) -> None:
    project.write(
        "manifests/experiment/my_sweep.yaml",
        "# @package _global_\ndefaults:\n  - /prompts: demo\nname: mine\n"
        "description: 'My own sweep: seeds'\n",
    )
    done = project.batch(flag)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("Usage: cosmos-batch ")
    for fragment in (
        "+experiment=NAME",
        "dry_run=true",
        "-m",
        "model.seed=1,2,3",
        "target=",
        "--cfg job",
        "--hydra-help",
        "docs/user-guide.md",
    ):
        assert fragment in text, fragment
    lines = text.splitlines()
    for name, description in (
        ("demo", "Depth-weight and seed sweep over two scenes (simulated model)."),
        ("demo_stages", "Enhanced prompts"),
        ("my_sweep", "My own sweep: seeds"),
    ):
        assert any(line.split()[:1] == [name] and description in line for line in lines), name
    exit_codes = text.split("Exit codes:", 1)[1]
    for code in ("0", "1", "2", "3", "130"):
        assert any(line.split()[:1] == [code] for line in exit_codes.splitlines()), code
    assert "Powered by Hydra" not in text and "== Config ==" not in text
    assert not project.outputs.exists()


def test_cosmos_batch_help_outside_a_project_still_helps(tmp_path: Path, project: Project) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    stranger = Project(root=outside, env=project.env)
    done = stranger.batch("--help")
    assert done.returncode == 0, done.stderr
    assert "+experiment=NAME" in done.stdout
    assert "conf/config.yaml" in done.stdout  # where experiments would be found
    assert list(outside.iterdir()) == []


def test_hydra_help_is_still_there(project: Project) -> None:
    done = project.batch("--hydra-help")
    assert done.returncode == 0, done.stderr
    assert "Hydra" in done.stdout


HELP_LOADS = """
import sys
from cosmos_workflow.cli import batch
sys.argv = ["cosmos-batch", "--help"]
try:
    batch.main()
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
heavy = [name for name in {heavy!r} if name in sys.modules]
assert not heavy, heavy
"""


def test_cosmos_batch_help_loads_no_heavy_library(project: Project) -> None:
    # The process is under test: what a fresh one imports.
    heavy = ("hydra", "omegaconf", "sqlalchemy", "alembic", "paramiko", "av", "jinja2", "pydantic")
    done = subprocess.run(
        [sys.executable, "-c", HELP_LOADS.format(heavy=heavy)],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "demo_stages" in done.stdout


def test_demo_inputs_are_what_these_tests_assume() -> None:
    root = Path(__file__).resolve().parents[1]
    for relative in DEMO.values():
        assert (root / relative).is_file(), relative
    assert json.dumps(sorted(p.name for p in (root / "inputs" / "demo" / "street").iterdir())) == (
        '["color.mp4", "depth.mp4"]'
    )
    assert shutil.which("sha256sum"), "coreutils' sha256sum is needed by the checksum tests"
