"""Prompt enhancement and 4K upscaling, end to end with the simulated model.

`cosmos enhance` runs the prompt upsampler and stores its text as a NEW
prompt linked to the original; `cosmos upscale` makes a run whose input is
another run's output, linked to it. Links show in both directions, survive
listing, and deleting a parent asks about its children. A manifest asks for
both as stages.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project
from test_demo_sweep import free_box_metadata
from test_report import cells, parse

# The staged demo without its upscale stage (made once per session: ran_once).
UPSCALE_LATER = ("+experiment=demo_stages", "stages.upscale=null")


def create_prompt(project: Project, text: str, scene: str = "street") -> str:
    done = project.cosmos("create", "prompt", text, f"inputs/demo/{scene}")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def infer(project: Project, prompt_id: str, *args: str) -> str:
    done = project.cosmos("inference", prompt_id, "--weight", "depth=0.4", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["id"]


def show(project: Project, object_id: str) -> dict[str, Any]:
    return project.cosmos_json("show", object_id)


def ledger_count(project: Project) -> int:
    return len(project.ledger_lines())


def stage_members(project: Project, sweep_id: str) -> dict[str, list[str]]:
    """The run ids of a sweep by stage (main: its own runs), in sweep order."""
    found: dict[str, list[str]] = {"main": [], "enhance": [], "upscale": []}
    for run in show(project, sweep_id)["runs"]:
        found[run["stage"]].append(run["id"])
    return found


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    """Poll ``condition`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


# -- enhance ---------------------------------------------------------------------
def test_enhance_makes_a_new_prompt_linked_both_ways(project: Project) -> None:
    original = create_prompt(project, "A quiet harbor at dawn")
    data = project.cosmos_json("enhance", original)
    new = data["id"]
    assert new.startswith("ps_") and new != original
    assert data["created"] is True and data["parent_id"] == original
    assert data["run"]["status"] == "succeeded" and data["run"]["cached"] is False

    child, parent = show(project, new), show(project, original)
    assert child["parent_id"] == original
    assert child["origin"]["kind"] == "enhanced"
    assert child["origin"]["run"] == data["run"]["id"]
    assert child["text"].startswith("A quiet harbor at dawn.")
    assert "SIMULATED prompt upsampler" in child["text"]
    # Same inputs as the original: the video was the upsampler's context.
    assert child["inputs"] == parent["inputs"]
    assert [c["id"] for c in parent["children"]] == [new]
    assert parent["parent_id"] is None

    # The upsampler's run holds the text it made, checksummed like any output.
    run_dir = Path(data["output_dir"])
    assert (run_dir / "output.txt").read_text().strip() == child["text"]
    assert subprocess.run(["sha256sum", "-c", "outputs.sha256"], cwd=run_dir).returncode == 0
    run = show(project, data["run"]["id"])
    assert run["adapter"] == "simulated_upsampler"
    assert run["output_path"] == str(run_dir / "output.txt")

    listed = {p["id"]: p for p in project.cosmos_json("list", "prompts")}
    assert listed[new]["parent_id"] == original and listed[original]["parent_id"] is None
    plain = project.cosmos("list", "prompts")
    assert f"enhanced from {original}" in plain.stdout


def test_enhancing_again_is_cached_and_the_context_video_matters(project: Project) -> None:
    street = create_prompt(project, "A quiet harbor at dawn", "street")
    forest = create_prompt(project, "A quiet harbor at dawn", "forest")
    first = project.cosmos_json("enhance", street)
    again = project.cosmos_json("enhance", street[:8])
    assert again["id"] == first["id"] and again["created"] is False
    assert again["run"]["cached"] is True
    other = project.cosmos_json("enhance", forest)
    assert other["id"] != first["id"]
    assert show(project, other["id"])["text"] != show(project, first["id"])["text"]


def test_an_enhanced_prompt_runs_like_any_prompt(project: Project) -> None:
    original = create_prompt(project, "Snow on a mountain pass")
    new = project.cosmos_json("enhance", original)["id"]
    run_id = infer(project, new)
    spec = show(project, run_id)["spec"]
    assert spec["prompt"]["id"] == new
    assert "SIMULATED prompt upsampler" in spec["prompt"]["text"]


def test_enhance_refuses_bad_input(project: Project) -> None:
    original = create_prompt(project, "A bridge in fog")
    unknown = project.cosmos("enhance", "ps_0000000000000000")
    assert unknown.returncode == 2 and "no prompt" in unknown.stderr
    not_a_prompt = project.cosmos("enhance", "rs_1234")
    assert not_a_prompt.returncode == 2
    other_model = project.cosmos("enhance", original, "--set", "model=transfer2.5")
    assert other_model.returncode == 2
    assert "no prompt upsampler" in other_model.stderr
    assert ledger_count(project) == 0
    assert project.cosmos_json("list", "prompts")[0]["id"] == original
    assert len(project.cosmos_json("list", "prompts")) == 1


# -- upscale -------------------------------------------------------------------------
def test_upscale_makes_a_linked_run_from_the_parent_output(project: Project) -> None:
    prompt = create_prompt(project, "A canal at night")
    parent = infer(project, prompt, "--seed", "4")
    done = project.cosmos("upscale", parent[:10], "--weight", "0.7", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    child = data["id"]
    assert child != parent and data["parent_run_id"] == parent
    assert data["status"] == "succeeded"

    child_view, parent_view = show(project, child), show(project, parent)
    assert child_view["parent_run_id"] == parent
    assert child_view["adapter"] == "simulated_upscaler"
    assert [c["id"] for c in parent_view["children"]] == [child]
    assert parent_view["parent_run_id"] is None

    parent_video = Path(parent_view["output_path"]).read_bytes()
    child_dir = Path(child_view["output_dir"])
    spec = json.loads((child_dir / "spec.json").read_text())
    controls = {k for k, v in spec.items() if isinstance(v, dict)}
    assert controls == {"upscale"}
    assert spec["upscale"] == {"control_weight": 0.7}
    assert spec["num_steps"] == 10 and spec["seed"] == 4
    assert spec["prompt"] == "A canal at night"
    # The simulated model draws its picture from its input: the parent's video.
    meta = free_box_metadata(child_dir / "output.mp4")
    assert meta["source_sha256"] == hashlib.sha256(parent_video).hexdigest()
    assert "upscale" in json.dumps(meta)
    assert subprocess.run(["sha256sum", "-c", "outputs.sha256"], cwd=child_dir).returncode == 0
    # The upscale's input is a prompt of its own, linked to the parent's prompt.
    input_prompt = show(project, child_view["prompt_id"])
    assert input_prompt["origin"] == {"kind": "upscale_input", "run": parent}
    assert input_prompt["parent_id"] == prompt

    text = project.cosmos("show", parent).stdout
    assert child in text
    listed = {r["id"]: r for r in project.cosmos_json("list", "runs")}
    assert listed[child]["parent_run_id"] == parent


def test_upscale_identity_follows_weight_and_prompt(project: Project) -> None:
    parent = infer(project, create_prompt(project, "A desert road"))
    first = project.cosmos_json("upscale", parent)
    again = project.cosmos_json("upscale", parent)
    assert again["id"] == first["id"] and again["cached"] is True
    heavier = project.cosmos_json("upscale", parent, "--weight", "0.9")
    worded = project.cosmos_json("upscale", parent, "--prompt", "sharp 4K detail")
    assert len({first["id"], heavier["id"], worded["id"]}) == 3
    spec = json.loads((Path(worded["output_dir"]) / "spec.json").read_text())
    assert spec["prompt"] == "sharp 4K detail"
    assert spec["upscale"] == {"control_weight": 0.5}


def test_upscale_refuses_what_cannot_be_upscaled(project: Project) -> None:
    prompt = create_prompt(project, "A storm over fields")
    failed = project.cosmos(
        "inference",
        prompt,
        "--weight",
        "depth=0.4",
        "--seed",
        "9",
        env={"COSMOS_SIMULATOR__FAIL_ON_SEED": "9"},
    )
    assert failed.returncode == 1
    failed_id = project.cosmos_json("list", "runs", "--status", "failed")[0]["id"]
    refused = project.cosmos("upscale", failed_id)
    assert refused.returncode == 2 and "only a succeeded run" in refused.stderr

    parent = infer(project, prompt)
    child = project.cosmos_json("upscale", parent)["id"]
    twice = project.cosmos("upscale", child)
    assert twice.returncode == 2 and "no 4K upscaler" in twice.stderr
    negative = project.cosmos("upscale", parent, "--weight", "-1")
    assert negative.returncode == 2

    Path(show(project, parent)["output_dir"], "output.mp4").write_bytes(b"changed")
    gone = project.cosmos("upscale", parent, "--weight", "0.8")
    assert gone.returncode == 2 and "do not match their checksums" in gone.stderr
    ids = {r["id"] for r in project.cosmos_json("list", "runs")}
    assert ids == {failed_id, parent, child}


# -- deletion rules ------------------------------------------------------------------
@pytest.fixture
def family(project: Project) -> tuple[Project, dict[str, str]]:
    prompt = create_prompt(project, "A lighthouse in rain")
    enhanced = project.cosmos_json("enhance", prompt)["id"]
    parent = infer(project, prompt)
    child = project.cosmos_json("upscale", parent)["id"]
    ids = {"prompt": prompt, "enhanced": enhanced, "parent": parent, "child": child}
    return project, ids


def test_deleting_a_parent_run_asks_and_can_keep_its_children(family) -> None:
    project, ids = family
    done = project.cosmos("delete", "run", ids["parent"], input_text="y\nn\n")
    assert done.returncode == 0, done.stderr
    assert ids["child"] in done.stderr and "Delete them too" in done.stderr
    runs = {r["id"]: r for r in project.cosmos_json("list", "runs")}
    assert ids["parent"] not in runs
    assert runs[ids["child"]]["parent_run_id"] is None
    assert Path(show(project, ids["child"])["output_dir"], "output.mp4").is_file()


def test_deleting_a_parent_run_with_its_children(family) -> None:
    project, ids = family
    done = project.cosmos("delete", "run", ids["parent"], input_text="y\ny\n")
    assert done.returncode == 0, done.stderr
    runs = {r["id"] for r in project.cosmos_json("list", "runs")}
    assert ids["parent"] not in runs and ids["child"] not in runs


def test_yes_keeps_children_unless_asked(family) -> None:
    project, ids = family
    kept = project.cosmos_json("delete", "run", ids["parent"], "--yes")
    assert kept["deleted_runs"] == [ids["parent"]]
    assert ids["child"] in {r["id"] for r in project.cosmos_json("list", "runs")}
    gone = project.cosmos_json("delete", "prompt", ids["prompt"], "--yes", "--with-children")
    assert ids["enhanced"] in gone["deleted_prompts"]
    left = {p["id"] for p in project.cosmos_json("list", "prompts")}
    assert ids["prompt"] not in left and ids["enhanced"] not in left
    # The upscale's input prompt was made from the deleted prompt: it went too.
    assert left == set()
    assert project.cosmos_json("list", "runs") == []


def test_deleting_a_prompt_unlinks_its_enhanced_prompt(family) -> None:
    project, ids = family
    done = project.cosmos("delete", "prompt", ids["prompt"], "--yes")
    assert done.returncode == 0, done.stderr
    enhanced = show(project, ids["enhanced"])
    assert enhanced["parent_id"] is None
    assert enhanced["origin"]["kind"] == "enhanced"
    assert "a deleted prompt" in project.cosmos("list", "prompts").stdout


def test_refusing_the_question_deletes_nothing(family) -> None:
    project, ids = family
    before = project.cosmos_json("list", "runs")
    done = project.cosmos("delete", "run", ids["parent"], input_text="n\n")
    assert done.returncode == 1
    assert project.cosmos_json("list", "runs") == before


# -- stages in a manifest --------------------------------------------------------------
def test_a_manifest_enhances_first_and_upscales_after(project: Project, ran_once) -> None:
    planned = project.batch("+experiment=demo_stages", "dry_run=true")
    assert planned.returncode == 0, planned.stderr
    assert "2 prompt(s) are enhanced first" in planned.stdout
    assert "stages.upscale" in planned.stdout
    assert ledger_count(project) == 0

    # The same command run for real (once per session; a copy of that project).
    project = ran_once("+experiment=demo_stages")
    done = project.first_run
    assert done.returncode == 0, done.stderr
    assert "6 runs: 6 executed (6 succeeded, 0 failed)" in done.stdout
    assert "upscale stage: 6 upscale runs: 6 executed (6 succeeded, 0 failed)" in done.stdout
    (sweep,) = project.cosmos_json("list", "sweeps")
    assert sweep["runs"] == 6 and sweep["counts"]["succeeded"] == 6
    assert sweep["stages"] == {"enhance": 2, "upscale": 6}
    runs = {r["id"]: r for r in project.cosmos_json("list", "runs", "--limit", "100")}
    by_stage = stage_members(project, sweep["id"])
    members = by_stage["main"]
    assert len(members) == 6
    upscales = {}
    for run_id in members:
        prompt = show(project, runs[run_id]["prompt_id"])
        assert prompt["origin"]["kind"] == "enhanced"
        assert prompt["origin"]["run"] in by_stage["enhance"]
        assert "SIMULATED prompt upsampler" in prompt["text"]
        children = show(project, run_id)["children"]
        assert len(children) == 1 and children[0]["adapter"] == "simulated_upscaler"
        upscales[run_id] = children[0]["id"]
    adapters = sorted(r["adapter"] for r in runs.values())
    assert adapters.count("simulated_upsampler") == 2
    assert adapters.count("simulated_upscaler") == 6
    # The stages' runs are members of the sweep: the enhancements and the upscales.
    assert sorted(by_stage["enhance"]) == sorted(
        r["id"] for r in runs.values() if r["adapter"] == "simulated_upsampler"
    )
    assert sorted(by_stage["upscale"]) == sorted(upscales.values())
    listed = [json.loads(line) for line in (Path(sweep["output_dir"]) / "runs.jsonl").open()]
    assert [(row["id"], row["stage"]) for row in listed] == [
        (run_id, stage) for stage in ("main", "enhance", "upscale") for run_id in by_stage[stage]
    ]
    assert all(row["status"] == "succeeded" for row in listed)
    # The report shows the sweep's own runs, each with a link to its 4K upscale.
    report = Path(sweep["output_dir"]) / "report.html"
    page = parse(report)
    assert [dd.text() for dd in page.iter("dd", id="stages")] == [
        "2 enhance run(s), 6 upscale run(s)"
    ]
    assert sorted(cells(page)) == sorted(upscales), "one cell per run of the sweep, no upscale"
    assert upscale_links(report) == {
        run_id: [f"../../runs/{child}/output.mp4"] for run_id, child in upscales.items()
    }
    for child in upscales.values():
        assert (report.parent / "../../runs" / child / "output.mp4").is_file()

    # Everything is cached the second time; the dry run now shows the real ids.
    lines = ledger_count(project)
    planned = project.batch("+experiment=demo_stages", "dry_run=true")
    assert all(run_id in planned.stdout for run_id in members)
    assert "enhanced first" not in planned.stdout
    again = project.batch("+experiment=demo_stages")
    assert again.returncode == 0, again.stderr
    assert "0 executed" in again.stdout and "6 cached" in again.stdout
    assert ledger_count(project) == lines


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stages.upscale.weight=-1", "stages.upscale.weight"),
        ("stages.enhance=maybe", "stages.enhance"),
        ("model=transfer2.5", "no prompt upsampler"),
    ],
)
def test_bad_stages_are_refused_before_anything_runs(
    project: Project, override: str, message: str
) -> None:
    done = project.batch("+experiment=demo_stages", override)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert ledger_count(project) == 0
    assert not (project.outputs / "runs").exists()


def test_enhance_and_upscale_work_on_the_demo_sweep(demo_done: Project) -> None:
    prompts = demo_done.cosmos_json("list", "prompts")
    runs = demo_done.cosmos_json("list", "runs")
    assert len(prompts) == 2 and len(runs) == 12
    for prompt in prompts:
        enhanced = demo_done.cosmos_json("enhance", prompt["id"])
        assert show(demo_done, enhanced["id"])["parent_id"] == prompt["id"]
    upscaled = demo_done.cosmos_json("upscale", runs[0]["id"])
    assert upscaled["status"] == "succeeded"
    assert show(demo_done, upscaled["id"])["parent_run_id"] == runs[0]["id"]
    # The demo sweep itself is untouched: its 12 runs are still cached.
    again = demo_done.batch("+experiment=demo")
    assert again.returncode == 0 and "12 cached" in again.stdout


# -- failures and edges --------------------------------------------------------------
def test_a_failed_enhancement_makes_no_prompt(project: Project) -> None:
    original = create_prompt(project, "A village FAILME at noon")
    env = {"COSMOS_SIMULATOR__FAIL_ON_PROMPT": "FAILME"}
    done = project.cosmos("enhance", original, "--json", env=env)
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["id"] is None and data["run"]["status"] == "failed"
    assert [p["id"] for p in project.cosmos_json("list", "prompts")] == [original]


def test_a_prompt_that_looks_like_a_flag_is_enhanced(project: Project) -> None:
    created = project.cosmos("create", "prompt", "--", "-dawn", "inputs/demo/street")
    assert created.returncode == 0, created.stderr
    original = created.stdout.strip()
    new = project.cosmos_json("enhance", original)["id"]
    assert show(project, new)["text"].startswith("-dawn. [SIMULATED")


def test_a_changed_upsampler_output_is_never_used(project: Project) -> None:
    original = create_prompt(project, "A pier in wind")
    first = project.cosmos_json("enhance", original)
    text = Path(first["output_dir"], "output.txt")
    good = text.read_text()
    text.write_text(good.replace("pier", "PIER"))  # same size, other content
    again = project.cosmos_json("enhance", original)
    assert again["id"] == first["id"] and again["created"] is False
    assert show(project, again["id"])["text"] == good.strip()
    assert len(project.cosmos_json("list", "prompts")) == 2


def test_an_infinite_weight_is_refused(project: Project) -> None:
    parent = infer(project, create_prompt(project, "A valley"))
    done = project.cosmos("upscale", parent, "--weight", "inf")
    assert done.returncode == 2
    assert len(project.cosmos_json("list", "runs")) == 1


def test_the_children_question_names_every_descendant(project: Project) -> None:
    prompt = create_prompt(project, "A ferry at dusk")
    enhanced = project.cosmos_json("enhance", prompt)["id"]
    enhanced_run = infer(project, enhanced)
    upscale = project.cosmos_json("upscale", enhanced_run)
    upscale_prompt = show(project, upscale["id"])["prompt_id"]
    own_run = infer(project, prompt)
    done = project.cosmos("delete", "prompt", prompt, input_text="y\ny\n")
    assert done.returncode == 0, done.stderr
    for descendant in (enhanced, enhanced_run, upscale["id"], upscale_prompt):
        assert descendant in done.stderr
    assert own_run not in done.stderr.split("made from it")[1]
    assert project.cosmos_json("list", "prompts") == []
    assert project.cosmos_json("list", "runs") == []


def test_a_run_deleted_with_its_children_leaves_no_orphan_prompt(project: Project) -> None:
    prompt = create_prompt(project, "A quarry")
    parent = infer(project, prompt)
    upscale = project.cosmos_json("upscale", parent)["id"]
    done = project.cosmos_json("delete", "run", parent, "--yes", "--with-children")
    assert set(done["deleted_runs"]) == {parent, upscale}
    assert [p["id"] for p in project.cosmos_json("list", "prompts")] == [prompt]


def test_an_upsampler_failure_in_a_stage_stops_the_sweep(project: Project) -> None:
    env = {"COSMOS_SIMULATOR__FAIL_ON_PROMPT": "neon"}
    done = project.batch("+experiment=demo_stages", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "prompt upsampler failed for 1 prompt(s)" in done.stderr
    assert ledger_count(project) == 0, "no video was made"
    assert project.cosmos_json("list", "sweeps") == []


def test_an_upscale_stage_goes_on_past_a_run_it_cannot_upscale(ran_once) -> None:
    project = ran_once(*UPSCALE_LATER)
    sweep = project.cosmos_json("list", "sweeps")[0]
    members = stage_members(project, sweep["id"])["main"]
    video = Path(show(project, members[0])["output_dir"], "output.mp4")
    data = bytearray(video.read_bytes())
    data[100] ^= 0xFF
    video.write_bytes(bytes(data))
    done = project.batch("+experiment=demo_stages")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "5 upscale runs: 5 executed (5 succeeded, 0 failed), 0 cached, 1 not upscaled" in (
        done.stdout
    )
    assert f"not upscaled: {members[0]}" in done.stdout
    assert "cosmos delete run" in done.stdout
    for run_id in members[1:]:
        assert len(show(project, run_id)["children"]) == 1
    assert show(project, members[0])["children"] == []
    # Each cell of the report links the upscale of its own run.
    links = upscale_links(Path(sweep["output_dir"]) / "report.html")
    assert links[members[0]] == [], "its output changed: not upscaled"
    for run_id in members[1:]:
        (child,) = show(project, run_id)["children"]
        assert links[run_id] == [f"../../runs/{child['id']}/output.mp4"], run_id


def test_stages_of_a_model_without_upscaler_are_refused_at_planning(project: Project) -> None:
    done = project.batch(
        "+experiment=demo_stages", "stages.enhance=false", "model=transfer2.5", "dry_run=true"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no 4K upscaler" in done.stderr


def test_multirun_jobs_must_agree_on_stages(project: Project) -> None:
    done = project.batch("-m", "+experiment=demo_stages", "stages.enhance=true,false")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "different stages" in done.stderr
    assert "Traceback" not in done.stderr
    assert ledger_count(project) == 0


def test_kill_sweep_and_status_cover_the_upscale_stage(ran_once) -> None:
    project = ran_once(*UPSCALE_LATER)
    (sweep,) = project.cosmos_json("list", "sweeps")
    # The same manifest with its upscale stage: the sweep's runs are cached, its
    # upscales (slow now) make the same sweep go on.
    runner = project.start_batch(
        "+experiment=demo_stages", env={"COSMOS_SIMULATOR__PER_VIDEO_S": "30"}, capture=True
    )

    def upscale_running() -> list[str]:
        runs = show(project, sweep["id"])["runs"]
        return [r["id"] for r in runs if r["stage"] == "upscale" and r["status"] == "running"]

    running = wait_for(upscale_running, "an upscale run of the sweep running")
    status = project.cosmos_json("status")
    (active,) = status["active_sweeps"]
    assert active["id"] == sweep["id"] and active["stage"] == "upscale"
    assert active["counts"]["succeeded"] == active["counts"]["total"] == 6
    assert active["stages"]["upscale"]["total"] == 6
    assert active["stages"]["upscale"]["running"] >= 1
    assert set(running) <= {r["id"] for r in status["running"]}
    text = project.cosmos("status").stdout
    assert re.search(r"^  upscale stage: 0 succeeded, [1-6] running, .* of 6; eta ", text, re.M)
    listed = project.cosmos("list", "sweeps").stdout
    assert "6 runs: 6 succeeded (+2 enhance) (+6 upscale)" in listed
    killed = project.cosmos("kill", "--sweep", sweep["id"][:9], "--json")
    assert killed.returncode == 0, killed.stderr
    cancelled = json.loads(killed.stdout)["cancelled"]
    upscales = stage_members(project, sweep["id"])["upscale"]
    assert len(upscales) == 6 and sorted(cancelled) == sorted(upscales)
    stdout, stderr = runner.communicate(timeout=120)
    assert runner.returncode == 1, stdout + stderr
    assert "6 upscale runs: 0 executed (0 succeeded, 0 failed), 0 cached, 6 cancelled" in stdout
    assert {r["status"] for r in show(project, sweep["id"])["runs"] if r["stage"] == "main"} == {
        "succeeded"
    }
    assert project.cosmos_json("status")["active_sweeps"] == []


def test_a_prompt_typed_by_hand_is_never_taken_for_a_child(project: Project) -> None:
    original = create_prompt(project, "A quiet harbor at dawn")
    enhanced = project.cosmos_json("enhance", original)["id"]
    text = show(project, enhanced)["text"]
    assert project.cosmos("delete", "prompt", enhanced, "--yes").returncode == 0
    # The same text and inputs typed in by hand: the same prompt id.
    assert create_prompt(project, text) == enhanced
    again = project.cosmos_json("enhance", original)
    assert again["id"] == enhanced and again["created"] is False
    assert again["run"]["cached"] is True
    assert show(project, enhanced)["parent_id"] is None
    assert show(project, enhanced)["origin"] is None
    assert show(project, original)["children"] == []
    gone = project.cosmos_json("delete", "prompt", original, "--yes", "--with-children")
    assert gone["deleted_prompts"] == []
    assert [p["id"] for p in project.cosmos_json("list", "prompts")] == [enhanced]


def test_an_enhanced_prompt_whose_parent_came_back_is_linked_again(project: Project) -> None:
    original = create_prompt(project, "A quiet harbor at dawn")
    enhanced = project.cosmos_json("enhance", original)["id"]
    assert project.cosmos("delete", "prompt", original, "--yes").returncode == 0
    assert show(project, enhanced)["parent_id"] is None
    assert create_prompt(project, "A quiet harbor at dawn") == original
    again = project.cosmos_json("enhance", original)
    assert again["id"] == enhanced and again["created"] is False
    assert show(project, enhanced)["parent_id"] == original
    assert [c["id"] for c in show(project, original)["children"]] == [enhanced]


def test_a_failed_enhancement_rewrites_no_other_sweep_report(ran_once) -> None:
    # The same runs without enhancement: the sweep id the stages' plan starts from.
    project = ran_once("+experiment=demo_stages", "stages.enhance=false", "stages.upscale=null")
    (sweep,) = project.cosmos_json("list", "sweeps")
    report = Path(sweep["output_dir"]) / "report.html"
    before = report.read_bytes()
    failed = project.batch(
        "+experiment=demo_stages", env={"COSMOS_SIMULATOR__FAIL_ON_PROMPT": "neon"}
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "prompt upsampler failed" in failed.stderr
    assert "report: " not in failed.stdout
    assert report.read_bytes() == before
    assert [s["id"] for s in project.cosmos_json("list", "sweeps")] == [sweep["id"]]


def test_a_multirun_with_enhancement_records_the_sweep_it_stored(project: Project) -> None:
    done = project.batch(
        "-m",
        "+experiment=demo_stages",
        "model.weights.depth=0.5",
        "model.seed=1,2",
        "stages.upscale=null",
        "hydra.sweep.dir=multi",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (sweep,) = project.cosmos_json("list", "sweeps")
    record = yaml.safe_load((project.root / "multi" / "cosmos_sweep.yaml").read_text())
    (entry,) = record["sweeps"]
    assert entry["id"] == sweep["id"]
    assert entry["outputs"] == sweep["output_dir"]
    members = stage_members(project, sweep["id"])["main"]
    recorded = [run_id for job in entry["jobs"] for run_id in job["runs"]]
    assert sorted(recorded) == sorted(members) and len(members) == 4
    for run_id in recorded:
        assert show(project, show(project, run_id)["prompt_id"])["origin"]["kind"] == "enhanced"


def test_a_staged_sweep_runs_again_after_its_enhancement_runs_are_gone(ran_once) -> None:
    args = UPSCALE_LATER
    project = ran_once(*args)
    (sweep,) = project.cosmos_json("list", "sweeps")
    enhancements = stage_members(project, sweep["id"])["enhance"]
    texts = {
        run_id: (project.outputs / "runs" / run_id / "output.txt").stat().st_mtime_ns
        for run_id in enhancements
    }
    assert len(texts) == 2
    # Deleted from the database (their folders are kept), then a new database.
    for run_id in enhancements:
        assert project.cosmos("delete", "run", run_id, "--yes").returncode == 0
    for step in ("deleted runs", "new database"):
        if step == "new database":
            (project.outputs / "cosmos.db").unlink()
        again = project.batch(*args)
        assert again.returncode == 0, (step, again.stdout + again.stderr)
        assert "6 runs: 0 executed (0 succeeded, 0 failed), 6 cached" in again.stdout, step
        assert sorted(stage_members(project, sweep["id"])["enhance"]) == sorted(enhancements)
        for run_id, mtime in texts.items():
            assert show(project, run_id)["status"] == "succeeded", step
            assert (project.outputs / "runs" / run_id / "output.txt").stat().st_mtime_ns == mtime


def upscale_links(report: Path) -> dict[str, list[str]]:
    """The 4K links of each cell of a report, by run id."""
    return {
        run_id: [a.attrs["href"] for a in figure.iter("a", class_="upscale-video")]
        for run_id, figure in cells(parse(report)).items()
    }


def test_a_failed_upscale_shows_its_status_not_a_video(ran_once) -> None:
    project = ran_once(*UPSCALE_LATER)
    done = project.batch("+experiment=demo_stages", env={"COSMOS_SIMULATOR__FAIL_ON_SEED": "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "6 upscale runs: 6 executed (0 succeeded, 6 failed)" in done.stdout
    (sweep,) = project.cosmos_json("list", "sweeps")
    figures = cells(parse(Path(sweep["output_dir"]) / "report.html"))
    assert len(figures) == 6
    for figure in figures.values():
        assert figure.attrs["data-status"] == "succeeded"
        assert list(figure.iter("a", class_="upscale-video")) == []
        (line,) = figure.iter("p", class_="upscale")
        assert "failed" in line.text()
