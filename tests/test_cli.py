"""The `cosmos` CLI, run in-process on throwaway project copies.

Every command goes through a real Hydra composition, a real SQLite database
and, for `inference`, the real simulated-model process.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, copy_project, make_project, tree_snapshot

PROMPT_ID = re.compile(r"\bps_[0-9a-f]{8,}\b")
RUN_ID = re.compile(r"\brs_[0-9a-f]{8,}\b")

DEMO = {
    "forest_color": "inputs/demo/forest/color.mp4",
    "forest_depth": "inputs/demo/forest/depth.mp4",
    "street_color": "inputs/demo/street/color.mp4",
    "street_depth": "inputs/demo/street/depth.mp4",
}
STATUSES = ("pending", "queued", "running", "succeeded", "failed", "cancelled")


# ---------------------------------------------------------------- helpers


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def video_dir(project: Project, name: str, files: dict[str, str]) -> Path:
    """A folder of real demo videos under new names: {file name: DEMO key}."""
    folder = project.root / "videos" / name
    folder.mkdir(parents=True)
    for file_name, source in files.items():
        shutil.copyfile(project.root / DEMO[source], folder / file_name)
    return folder


def run_all(project: Project, commands: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """Run independent `cosmos` commands (in this process, one after another); results by key."""
    return {key: project.cosmos(*args) for key, args in commands.items()}


def ok_json(done: subprocess.CompletedProcess) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_bad_input(done: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2 with a short, clear message that contains every fragment."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    message = done.stderr
    assert "Traceback" not in message, message
    assert len(message.splitlines()) <= 10, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), f"{fragment!r} not in {message!r}"


def run_dirs(project: Project) -> set[str]:
    runs = project.outputs / "runs"
    return {p.name for p in runs.iterdir()} if runs.is_dir() else set()


def new_project(factory: pytest.TempPathFactory, name: str) -> Project:
    return make_project(factory.mktemp(name) / "proj")


# ---------------------------------------------------------------- create prompt


@pytest.fixture(scope="module")
def prompts_proj(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return new_project(tmp_path_factory, "prompts")


def test_create_prompt_detects_roles_and_checksums(prompts_proj: Project) -> None:
    proj = prompts_proj
    folder = video_dir(
        proj,
        "scene1",
        {
            "color.mp4": "forest_color",
            "depth.mp4": "forest_depth",
            "shot1_seg.mp4": "street_depth",
            "VIS.MP4": "street_color",
            "other.mp4": "forest_depth",  # no role in its name: not used (a note says so)
        },
    )
    (folder / "notes.txt").write_text("not a video\n", encoding="utf-8")

    done = proj.cosmos("create", "prompt", "a misty forest at dawn", str(folder))
    assert done.returncode == 0, done.stderr
    # The files it does not use are named, never passed over in silence.
    not_used = next(line for line in done.stderr.splitlines() if line.startswith("note: "))[6:]
    assert "2 files" in not_used and "notes.txt, other.mp4" in not_used
    assert PROMPT_ID.fullmatch(done.stdout.strip()), done.stdout
    prompt_id = done.stdout.strip()

    shown = proj.cosmos_json("show", prompt_id)
    assert shown["id"] == prompt_id
    assert shown["text"] == "a misty forest at dawn"
    assert shown["runs"] == []
    inputs = shown["inputs"]
    assert Path(inputs["video"]["path"]).resolve() == (folder / "color.mp4").resolve()
    assert inputs["video"]["sha256"] == sha256(folder / "color.mp4")
    expected = {"depth": "depth.mp4", "seg": "shot1_seg.mp4", "vis": "VIS.MP4"}
    assert set(inputs["controls"]) == set(expected)
    for role, file_name in expected.items():
        control = inputs["controls"][role]
        assert Path(control["path"]).resolve() == (folder / file_name).resolve()
        assert control["sha256"] == sha256(folder / file_name)

    copy = proj.root / "videos" / "scene1-copy"
    shutil.copytree(folder, copy)
    # The same prompt again: same id, nothing new.
    again = proj.cosmos("create", "prompt", "a misty forest at dawn", str(folder), "--json")
    # Identity is content: the same files in another folder give the same id.
    copied = proj.cosmos("create", "prompt", "a misty forest at dawn", str(copy))
    # Other text: another prompt.
    other = proj.cosmos("create", "prompt", "a misty forest at dusk", str(folder))
    assert ok_json(again) == {"id": prompt_id, "created": False, "notes": [not_used]}
    assert copied.returncode == 0, copied.stderr
    assert copied.stdout.strip() == prompt_id
    assert other.returncode == 0, other.stderr
    other_id = other.stdout.strip()
    assert PROMPT_ID.fullmatch(other_id)
    assert other_id != prompt_id


def test_create_prompt_matches_role_names_case_insensitively_with_separators(
    prompts_proj: Project,
) -> None:
    folder = video_dir(
        prompts_proj, "scene2", {"Color.MP4": "street_color", "take3-EDGE.mp4": "street_depth"}
    )
    done = prompts_proj.cosmos("create", "prompt", "a wet street", str(folder))
    assert done.returncode == 0, done.stderr
    shown = prompts_proj.cosmos_json("show", done.stdout.strip())
    assert shown["inputs"]["video"]["sha256"] == sha256(folder / "Color.MP4")
    assert set(shown["inputs"]["controls"]) == {"edge"}
    assert shown["inputs"]["controls"]["edge"]["sha256"] == sha256(folder / "take3-EDGE.mp4")


@pytest.fixture(scope="module")
def bad_create(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every bad `create prompt` at once, on a project that holds nothing else."""
    proj = new_project(tmp_path_factory, "badcreate")
    no_color = video_dir(
        proj, "nocolor", {"depth.mp4": "forest_depth", "a_seg.mp4": "street_depth"}
    )
    two = video_dir(
        proj,
        "twocolor",
        {
            "color.mp4": "forest_color",
            "take2_color.mp4": "street_color",
            "depth.mp4": "forest_depth",
        },
    )
    good = video_dir(proj, "good", {"color.mp4": "forest_color"})
    before = tree_snapshot(proj.outputs)
    results = run_all(
        proj,
        {
            "no_color": ("create", "prompt", "text", str(no_color)),
            "two_for_one_role": ("create", "prompt", "text", str(two)),
            "not_a_folder": ("create", "prompt", "text", str(good / "color.mp4")),
            "missing_folder": ("create", "prompt", "text", str(proj.root / "nowhere")),
            "empty_text": ("create", "prompt", "   ", str(good)),
        },
    )
    return {
        "results": results,
        "before": before,
        "after": tree_snapshot(proj.outputs),
        "folders": {"no_color": no_color, "two": two, "good": good},
    }


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("no_color", ("no color video", "nocolor")),
        ("two_for_one_role", ("color.mp4", "take2_color.mp4")),
        ("not_a_folder", ("not a folder", "color.mp4")),
        ("missing_folder", ("nowhere",)),
        ("empty_text", ("empty",)),
    ],
)
def test_create_prompt_bad_input_exits_2(
    bad_create: dict[str, Any], case: str, fragments: tuple[str, ...]
) -> None:
    done = bad_create["results"][case]
    assert_bad_input(done, *fragments)
    assert not PROMPT_ID.search(done.stdout)


def test_create_prompt_bad_input_writes_nothing(bad_create: dict[str, Any]) -> None:
    assert bad_create["after"] == bad_create["before"]


# ---------------------------------------------------------------- inference


@dataclass
class Inferred:
    proj: Project
    prompt_id: str
    first: subprocess.CompletedProcess
    ledger_after_first: list[dict[str, Any]]


@pytest.fixture(scope="module")
def inferred(tmp_path_factory: pytest.TempPathFactory) -> Inferred:
    """A prompt with a depth control, and one inference of it (seed 5, depth 0.6)."""
    proj = new_project(tmp_path_factory, "infer")
    folder = video_dir(proj, "forest", {"color.mp4": "forest_color", "depth.mp4": "forest_depth"})
    created = proj.cosmos("create", "prompt", "a forest trail, simulated", str(folder))
    assert created.returncode == 0, created.stderr
    prompt_id = created.stdout.strip()
    assert proj.ledger_lines() == []
    first = proj.cosmos("inference", prompt_id, "--weight", "depth=0.6", "--seed", "5")
    return Inferred(proj, prompt_id, first, proj.ledger_lines())


def first_run_id(inferred: Inferred) -> str:
    match = RUN_ID.search(inferred.first.stdout)
    assert match, inferred.first.stdout
    return match.group(0)


def test_inference_executes_once_and_writes_its_run_folder(inferred: Inferred) -> None:
    proj, done = inferred.proj, inferred.first
    assert done.returncode == 0, done.stderr
    run_id = first_run_id(inferred)
    run_dir = proj.outputs / "runs" / run_id
    assert str(run_dir) in done.stdout
    assert run_dir.is_dir()

    spec = json.loads((run_dir / "spec.json").read_text(encoding="utf-8"))
    assert spec["seed"] == 5
    assert spec["depth"]["control_weight"] == 0.6
    for absent in ("vis", "edge", "seg"):
        assert absent not in spec
    assert (run_dir / "output.mp4").is_file()
    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    assert result["status"] == "succeeded"

    # Exactly one execution of the simulated model, for this seed.
    assert len(inferred.ledger_after_first) == 1
    assert inferred.ledger_after_first[0]["seed"] == 5

    shown = proj.cosmos_json("show", run_id)
    assert shown["status"] == "succeeded"
    assert shown["prompt_id"] == inferred.prompt_id
    assert shown["attempts"] == 1
    assert shown["spec"]["model"]["seed"] == 5
    assert shown["spec"]["model"]["weights"]["depth"] == 0.6
    assert shown["sweeps"] == []


def test_same_inference_again_is_cached_also_by_id_prefix(inferred: Inferred) -> None:
    proj = inferred.proj
    run_id = first_run_id(inferred)
    run_dir = proj.outputs / "runs" / run_id
    ledger = len(proj.ledger_lines())
    files = tree_snapshot(run_dir)

    again = proj.cosmos("inference", inferred.prompt_id, "--weight", "depth=0.6", "--seed", "5")
    assert again.returncode == 0, again.stderr
    assert RUN_ID.search(again.stdout).group(0) == run_id
    assert "cached" in again.stdout.lower()

    prefix = inferred.prompt_id[:7]
    by_prefix = proj.cosmos("inference", prefix, "--seed", "5", "--weight", "depth=0.6", "--json")
    data = ok_json(by_prefix)
    assert data["id"] == run_id
    assert data["cached"] is True
    assert data["status"] == "succeeded"

    assert len(proj.ledger_lines()) == ledger
    assert tree_snapshot(run_dir) == files


def test_a_different_seed_executes_a_new_run(inferred: Inferred) -> None:
    proj = inferred.proj
    ledger = len(proj.ledger_lines())
    data = ok_json(
        proj.cosmos(
            "inference", inferred.prompt_id, "--weight", "depth=0.6", "--seed", "6", "--json"
        )
    )
    assert RUN_ID.fullmatch(data["id"])
    assert data["id"] != first_run_id(inferred)
    assert data["cached"] is False
    assert data["status"] == "succeeded"
    lines = proj.ledger_lines()
    assert len(lines) == ledger + 1
    assert lines[-1]["seed"] == 6
    spec = json.loads((Path(data["output_dir"]) / "spec.json").read_text(encoding="utf-8"))
    assert spec["seed"] == 6
    assert spec["depth"]["control_weight"] == 0.6


def test_inference_bad_input_exits_2_and_runs_nothing(inferred: Inferred) -> None:
    proj = inferred.proj
    ledger = len(proj.ledger_lines())
    folders = run_dirs(proj)
    results = run_all(
        proj,
        {
            "no_weight": (
                "inference",
                inferred.prompt_id,
                "--seed",
                "9",
                "--set",
                "inference.default_weight=null",
            ),
            "unknown_prompt": ("inference", "ps_ffffffffffffffff", "--weight", "depth=0.5"),
            "bad_weight": ("inference", inferred.prompt_id, "--weight", "bad"),
        },
    )
    assert_bad_input(results["no_weight"], "depth", "weight")
    assert_bad_input(results["unknown_prompt"], "ps_ffffffffffffffff")
    assert_bad_input(results["bad_weight"], "bad")
    for done in results.values():
        assert not RUN_ID.search(done.stdout)
    assert len(proj.ledger_lines()) == ledger
    assert run_dirs(proj) == folders


# ---------------------------------------------------------------- list / show / status


@pytest.fixture(scope="module")
def demo_queries(demo_done: Project) -> dict[str, Any]:
    """Read-only queries on the demo project, run concurrently."""
    base = run_all(
        demo_done,
        {
            "runs": ("list", "runs", "--json"),
            "prompts": ("list", "prompts", "--json"),
            "sweeps": ("list", "sweeps", "--json"),
        },
    )
    runs, sweeps = ok_json(base["runs"]), ok_json(base["sweeps"])
    some_run = runs[-1]["id"]
    sweep_prefix = sweeps[0]["id"][:7] if sweeps else "sw_none"
    more = run_all(
        demo_done,
        {
            "limit5": ("list", "runs", "--limit", "5", "--json"),
            "failed": ("list", "runs", "--status", "failed", "--json"),
            "succeeded": ("list", "runs", "--status", "succeeded", "--json"),
            "prompts_status": ("list", "prompts", "--status", "failed"),
            "show_sweep": ("show", sweep_prefix, "--json"),
            "show_run": ("show", some_run, "--json"),
            "show_prompt": ("show", runs[0]["prompt_id"], "--json"),
            "show_unknown": ("show", "rs_0000000000000000"),
            "status": ("status", "--json"),
            "status_text": ("status",),
        },
    )
    return {**base, **more}


def test_list_runs_shows_the_12_succeeded_runs_with_their_outputs(
    demo_queries: dict[str, Any],
) -> None:
    runs = ok_json(demo_queries["runs"])
    assert len(runs) == 12
    assert len({r["id"] for r in runs}) == 12
    for run in runs:
        assert RUN_ID.fullmatch(run["id"])
        assert run["status"] == "succeeded"
        assert run["output_path"] and Path(run["output_path"]).is_file()
        assert Path(run["output_path"]).parent.name == run["id"]
    assert len({r["prompt_id"] for r in runs}) == 2


def test_list_runs_limit_and_status_filters(demo_queries: dict[str, Any]) -> None:
    all_ids = {r["id"] for r in ok_json(demo_queries["runs"])}
    limited = ok_json(demo_queries["limit5"])
    assert len(limited) == 5
    assert {r["id"] for r in limited} <= all_ids
    assert ok_json(demo_queries["failed"]) == []
    succeeded = ok_json(demo_queries["succeeded"])
    assert {r["id"] for r in succeeded} == all_ids


def test_status_filter_on_prompts_is_refused(demo_queries: dict[str, Any]) -> None:
    assert_bad_input(demo_queries["prompts_status"], "--status")


def test_list_prompts_and_sweeps(demo_done: Project, demo_queries: dict[str, Any]) -> None:
    prompts = ok_json(demo_queries["prompts"])
    assert sorted(p["name"] for p in prompts) == ["forest", "street"]
    run_prompts = {r["prompt_id"] for r in ok_json(demo_queries["runs"])}
    assert {p["id"] for p in prompts} == run_prompts
    for prompt in prompts:
        color = demo_done.root / "inputs" / "demo" / prompt["name"] / "color.mp4"
        assert prompt["inputs"]["video"]["sha256"] == sha256(color)

    sweeps = ok_json(demo_queries["sweeps"])
    assert len(sweeps) == 1
    assert sweeps[0]["name"] == "demo"
    assert sweeps[0]["runs"] == 12
    assert sweeps[0]["counts"]["succeeded"] == 12
    assert sum(sweeps[0]["counts"].values()) == 12


def test_show_sweep_lists_its_runs_with_params(demo_queries: dict[str, Any]) -> None:
    sweep = ok_json(demo_queries["show_sweep"])
    assert sweep["id"] == ok_json(demo_queries["sweeps"])[0]["id"]
    runs = sweep["runs"]
    assert len(runs) == 12
    assert {r["id"] for r in runs} == {r["id"] for r in ok_json(demo_queries["runs"])}
    assert all(r["status"] == "succeeded" for r in runs)
    combos = {
        (r["params"]["prompt"], r["params"]["model.weights.depth"], r["params"]["model.seed"])
        for r in runs
    }
    assert combos == set(itertools.product(["forest", "street"], [0.3, 0.5, 0.8], [1, 2]))


def test_show_run_has_its_sweep_and_spec(demo_queries: dict[str, Any]) -> None:
    run = ok_json(demo_queries["show_run"])
    sweep = ok_json(demo_queries["show_sweep"])
    assert run["sweeps"] == [sweep["id"]]
    assert run["spec"]["id"] == run["id"]
    params = next(r["params"] for r in sweep["runs"] if r["id"] == run["id"])
    assert run["spec"]["model"]["seed"] == params["model.seed"]
    assert run["spec"]["model"]["weights"]["depth"] == params["model.weights.depth"]
    prompts = {p["id"]: p["name"] for p in ok_json(demo_queries["prompts"])}
    assert prompts[run["prompt_id"]] == params["prompt"]
    assert run["status"] == "succeeded"
    assert run["attempts"] == 1


def test_show_prompt_lists_its_runs(demo_queries: dict[str, Any]) -> None:
    prompt = ok_json(demo_queries["show_prompt"])
    runs = ok_json(demo_queries["runs"])
    assert sorted(prompt["runs"]) == sorted(r["id"] for r in runs if r["prompt_id"] == prompt["id"])
    assert len(prompt["runs"]) == 6


def test_show_unknown_id_exits_2(demo_queries: dict[str, Any]) -> None:
    assert_bad_input(demo_queries["show_unknown"], "rs_0000000000000000")


def test_status_counts_match_and_nothing_runs(demo_queries: dict[str, Any]) -> None:
    status = ok_json(demo_queries["status"])
    runs = ok_json(demo_queries["runs"])
    expected = {s: sum(1 for r in runs if r["status"] == s) for s in STATUSES}
    assert status["counts"] == expected
    assert status["running"] == []
    text = demo_queries["status_text"]
    assert text.returncode == 0, text.stderr
    assert "12 succeeded" in text.stdout
    assert "nothing is running" in text.stdout


# ---------------------------------------------------------------- delete


@pytest.fixture(scope="module")
def deletable(demo_template: Project, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Its own demo project: these tests change the database."""
    return copy_project(demo_template, tmp_path_factory.mktemp("delete") / "proj")


def runs_by_prompt(proj: Project) -> dict[str, tuple[str, list[str]]]:
    """Prompt name -> (prompt id, its run ids), from `cosmos list`."""
    queries = run_all(
        proj, {"prompts": ("list", "prompts", "--json"), "runs": ("list", "runs", "--json")}
    )
    names = {p["id"]: p["name"] for p in ok_json(queries["prompts"])}
    grouped: dict[str, tuple[str, list[str]]] = {name: (pid, []) for pid, name in names.items()}
    for run in ok_json(queries["runs"]):
        grouped[names[run["prompt_id"]]][1].append(run["id"])
    return grouped


def test_delete_run_asks_and_keeps_outputs_unless_asked(deletable: Project) -> None:
    proj = deletable
    street = sorted(runs_by_prompt(proj)["street"][1])
    kept_run, gone_run, untouched = street[0], street[1], street[2:]
    kept_dir, gone_dir = proj.outputs / "runs" / kept_run, proj.outputs / "runs" / gone_run

    declined = proj.cosmos("delete", "run", kept_run, input_text="n\n")
    assert declined.returncode != 0
    assert kept_run in declined.stderr  # the question names what would go

    # Still there after "n": a confirmed delete of the same run succeeds.
    accepted = proj.cosmos("delete", "run", kept_run, input_text="y\n")
    removed = proj.cosmos("delete", "run", gone_run[:10], "--yes", "--delete-outputs")
    assert accepted.returncode == 0, accepted.stderr
    assert removed.returncode == 0, removed.stderr
    assert kept_dir.is_dir() and (kept_dir / "output.mp4").is_file()
    assert not gone_dir.exists()

    listed = {r["id"] for r in proj.cosmos_json("list", "runs")}
    assert kept_run not in listed
    assert gone_run not in listed
    assert set(untouched) <= listed
    assert len(listed) == 10


def test_delete_prompt_removes_it_and_all_its_runs(deletable: Project) -> None:
    proj = deletable
    grouped = runs_by_prompt(proj)
    prompt_id, forest = grouped["forest"]
    others = grouped["street"][1]
    assert len(forest) == 6

    done = proj.cosmos("delete", "prompt", prompt_id, "--yes")
    assert done.returncode == 0, done.stderr

    queries = run_all(
        proj,
        {
            "runs": ("list", "runs", "--json"),
            "prompts": ("list", "prompts", "--json"),
            "sweeps": ("list", "sweeps", "--json"),
            "show_prompt": ("show", prompt_id),
        },
    )
    assert sorted(r["id"] for r in ok_json(queries["runs"])) == sorted(others)
    assert prompt_id not in {p["id"] for p in ok_json(queries["prompts"])}
    sweeps = ok_json(queries["sweeps"])
    assert [s["runs"] for s in sweeps] == [len(others)]
    assert_bad_input(queries["show_prompt"], prompt_id)
    # Outputs are kept unless asked.
    for run_id in forest:
        assert (proj.outputs / "runs" / run_id / "output.mp4").is_file()


# ---------------------------------------------------------------- no project


def test_commands_outside_a_project_say_what_to_do(tmp_path: Path, demo_done: Project) -> None:
    outside = tmp_path / "somewhere" / "else"
    outside.mkdir(parents=True)
    env = {k: v for k, v in demo_done.env.items() if k != "COSMOS_PROJECT_DIR"}
    stranger = Project(root=outside, env=env)
    listed = stranger.cosmos("list", "runs")
    status = stranger.cosmos("status")
    bad_env = stranger.cosmos("status", env={"COSMOS_PROJECT_DIR": str(outside)})
    # The variable is used when set, from any folder.
    pointed = stranger.cosmos(
        "list", "prompts", "--json", env={"COSMOS_PROJECT_DIR": str(demo_done.root)}
    )
    for done in (listed, status):
        assert_bad_input(done, "conf/config.yaml", "COSMOS_PROJECT_DIR")
    assert_bad_input(bad_env, "COSMOS_PROJECT_DIR", str(outside))
    assert list(outside.iterdir()) == []
    assert sorted(p["name"] for p in ok_json(pointed)) == ["forest", "street"]
