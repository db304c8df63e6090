"""The web app's read models (api/run_views.py, api/input_views.py) and detached launches.

What a run's page, the inputs page and the queue page are given, on the
demo's database and outputs; and `cosmos` commands started in the
background (api/launch.py): in a session of their own, logged, outliving
their starter.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project

from cosmos_workflow.api import CosmosAPI
from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.errors import ExecutionFailure, NotFoundFailure, ValidationFailure

DEMO_AXES = {"prompt", "model.seed", "model.weights.depth"}


def _api(project: Project) -> CosmosAPI:
    api = CosmosAPI.from_project(project.root, environ=project.env, all_targets=True)
    api.web.launch.environ = project.env
    return api


@pytest.fixture(scope="module")
def demo_api(demo_done: Project) -> Iterator[CosmosAPI]:
    with _api(demo_done) as api:
        yield api


def _wait(predicate, timeout: float = 25.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- a run ---------------------------------------------------------------------------------
def test_a_run_shows_its_inputs_computed_controls_texts_and_what_differs(
    demo_api: CosmosAPI,
) -> None:
    run = demo_api.list_runs(limit=1)[0]
    view = demo_api.web.runs.run(run["id"][:10])

    assert view["id"] == run["id"]
    assert Path(view["output_path"]).is_file()
    assert Path(view["input_video"]).name == "color.mp4"
    assert set(view["controls_computed"]) == {"depth"}
    assert Path(view["controls_computed"]["depth"]).is_file()
    assert view["prompt"]["text"] and view["original_prompt"] is None
    differs = {p["key"] for p in view["params"] if p["differs"]}
    assert differs == DEMO_AXES
    same = {p["key"] for p in view["params"] if not p["differs"]}
    assert {"model.num_steps", "model.guidance"} <= same
    assert view["sweeps"][0]["siblings"] == 12
    assert '"seed"' in view["texts"]["spec"] and "simulated_model" in view["texts"]["command"]
    assert view["log_path"].endswith("logs/run.log")
    assert view["parent"] is None and view["children"] == []


def test_a_run_view_refuses_other_ids_and_unknown_runs(demo_api: CosmosAPI) -> None:
    prompt = demo_api.list_prompts(limit=1)[0]["id"]
    with pytest.raises(ValidationFailure):
        demo_api.web.runs.run(prompt)
    with pytest.raises(NotFoundFailure):
        demo_api.web.runs.run("rs_ffffffffffffffff")


def test_an_upscale_and_an_enhanced_prompt_link_both_ways(demo_project: Project) -> None:
    with _api(demo_project) as api:
        parent = api.list_runs(limit=1)[0]["id"]
        prompt = api.list_runs(limit=1)[0]["prompt_id"]
    assert demo_project.cosmos("upscale", parent).returncode == 0
    enhanced = demo_project.cosmos_json("enhance", prompt)["id"]
    assert demo_project.cosmos("inference", enhanced, "--weight", "depth=0.5").returncode == 0
    with _api(demo_project) as api:
        child = api.web.runs.run(parent)["children"]
        assert [c["adapter"] for c in child] == ["simulated_upscaler"]
        assert api.web.runs.run(child[0]["id"])["parent"]["id"] == parent
        made = api.list_runs(prompt=enhanced)[0]["id"]
        view = api.web.runs.run(made)
        assert view["original_prompt"]["id"] == prompt
        assert view["sweeps"] == []
        assert [p["id"] for p in api.web.runs.run(parent)["enhanced_prompts"]] == [enhanced]
        # The prompts page's filters.
        views = api.web.runs
        assert [p["id"] for p in views.prompts(enhanced=True)] == [enhanced]
        assert enhanced not in {p["id"] for p in views.prompts(enhanced=False)}
        assert {p["id"] for p in views.prompts("MISTY pine")} >= {prompt, enhanced}
        assert views.prompts(with_runs=False) == []
        listed = {p["id"]: p for p in views.prompts(with_runs=True)}
        assert listed[prompt]["runs"] == {
            "succeeded": 7
        }  # 6 of the demo, 1 enhancement and listed[enhanced]["runs_total"] == 1


# -- inputs -----------------------------------------------------------------------------
def test_inputs_lists_each_folder_with_probed_videos_prompts_and_runs(demo_api: CosmosAPI) -> None:
    found = demo_api.web.inputs.inputs()
    folders = {f["relative"]: f for f in found["folders"]}
    assert set(folders) == {"demo/forest", "demo/street"}
    forest = folders["demo/forest"]
    videos = {v["role"]: v for v in forest["videos"]}
    assert set(videos) == {"color", "depth"}
    assert videos["color"]["info"]["frames"] > 0 and videos["color"]["info"]["codec"] == "h264"
    assert [p["name"] for p in videos["color"]["prompts"]] == ["forest"]
    assert [p["name"] for p in forest["prompts"]] == ["forest"]
    assert forest["runs_total"] == 6
    assert {f["relative"] for f in demo_api.web.inputs.inputs("street")["folders"]} == {
        "demo/street"
    }
    assert demo_api.web.inputs.folders() == [f["path"] for f in found["folders"]]


def test_an_input_thumbnail_is_made_once_and_only_for_input_videos(
    demo_api: CosmosAPI, demo_done: Project
) -> None:
    video = demo_done.root / "inputs" / "demo" / "forest" / "color.mp4"
    thumb = demo_api.web.inputs.thumbnail(str(video))
    assert thumb.read_bytes()[:2] == b"\xff\xd8"
    assert thumb.is_relative_to(demo_done.outputs)
    assert demo_api.web.inputs.thumbnail(str(video)) == thumb
    output = demo_api.list_runs(limit=1)[0]["output_path"]
    for refused in (output, "/etc/passwd", str(video.parent / ".." / "missing.mp4")):
        with pytest.raises(NotFoundFailure):
            demo_api.web.inputs.thumbnail(refused)


# -- launches and the queue -------------------------------------------------------------------
def test_a_launch_checks_its_choices_before_starting_anything(demo_project: Project) -> None:
    with _api(demo_project) as api:
        with pytest.raises(ValidationFailure, match="at least one prompt"):
            api.web.launch.inference([], {})
        with pytest.raises(ValidationFailure, match="seed must be a number"):
            api.web.launch.inference(["forest"], {"seed": "x"})
        with pytest.raises(ValidationFailure, match="unknown inference options"):
            api.web.launch.inference(["forest"], {"colour": 1})
        with pytest.raises(ValidationFailure, match="no-such-prompt"):
            api.web.launch.inference(["no-such-prompt"], {})
    assert not (demo_project.outputs / "launches").exists()


def test_a_launch_that_stops_early_says_why_from_its_log(demo_project: Project) -> None:
    with _api(demo_project) as api:
        # Planned here with good settings; the command itself is given a bad one.
        api.web.launch.environ = {**demo_project.env, "COSMOS_SIMULATOR__PER_VIDEO_S": "slow"}
        run_id = api.list_runs(limit=1)[0]["id"]
        with pytest.raises(ExecutionFailure, match=r"simulator\.per_video_s"):
            api.web.launch.upscale(run_id)


def test_a_launched_sweep_runs_detached_shows_in_the_queue_and_outlives_its_launcher(
    demo_project: Project,
) -> None:
    slow = {**demo_project.env, "COSMOS_SIMULATOR__PER_VIDEO_S": "1.0"}
    with _api(demo_project) as api:
        api.web.launch.environ = slow
        launched = api.web.launch.inference(
            ["forest", "street"], {"seed": 41, "weights": {"depth": 0.25}}
        )
        assert os.getsid(launched.pid) == launched.pid != os.getsid(0)
        assert Path(f"/proc/{launched.pid}/fd/0").resolve() == Path("/dev/null")
        assert launched.log.parent == demo_project.outputs / "launches"
        assert launched.sweep_id.startswith("sw_") and len(launched.run_ids) == 2

        def running_job() -> bool:
            return any(t["jobs"] for t in api.web.runs.queue()["targets"])

        _wait(running_job, what="a running job in the queue")
        queue = api.web.runs.queue()
        local = next(t for t in queue["targets"] if t["name"] == "local")
        job = local["jobs"][0]
        assert set(job["run_ids"]) <= set(launched.run_ids)
        assert job["sweeps"][0]["id"] == launched.sweep_id
        assert local["gpu_list"][0]["index"] == 0 and local["gpu_list"][0]["jobs"]
        assert [s["id"] for s in queue["sweeps"]] == [launched.sweep_id]
    # The API that launched it is closed: the sweep goes on and finishes.
    with _api(demo_project) as api:

        def finished() -> bool:
            runs = [api.show(run_id)["status"] for run_id in launched.run_ids]
            return all(status == "succeeded" for status in runs)

        _wait(finished, timeout=25, what="the launched runs to succeed")
    _wait(lambda: not LocalCommandExecutor.process_exists(launched.pid), what="the command's end")
    assert "2 succeeded" in launched.log.read_text()


def test_the_queue_lists_queued_runs_in_order(demo_project: Project) -> None:
    with _api(demo_project) as api:
        plan = api.plan_inference(
            ["forest", "street"], {**api.composed["model"], "seed": 77, "weights": {"depth": 0.5}}
        )
        api.submit(plan.plan)
        # What a runner does before it dispatches them.
        api.repository.enqueue([run.id for run in plan.plan.runs])
        queued = api.web.runs.queue()["queued"]
        assert [r["id"] for r in queued] == sorted(
            (r.id for r in plan.plan.runs),
            key=lambda i: (api.show(i)["created_at"], i),
        )
        assert {r["prompt_name"] for r in queued} == {"forest", "street"}


def test_a_run_shows_the_control_videos_its_prompt_gave(demo_project: Project) -> None:
    folder = demo_project.root / "inputs" / "demo" / "forest"
    with _api(demo_project) as api:
        prompt = api.create_prompt("forest with its depth", folder, name="given").id
    assert demo_project.cosmos("inference", prompt, "--weight", "depth=0.5").returncode == 0
    with _api(demo_project) as api:
        view = api.web.runs.run(api.list_runs(prompt=prompt)[0]["id"])
    assert view["controls_given"] == {"depth": str(folder / "depth.mp4")}
    assert view["sweeps"] == [] and view["original_prompt"] is None
