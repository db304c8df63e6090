"""Input videos are probed (PyAV) before any GPU time: `cosmos create prompt` and manifests.

Every input must open as a video with a decodable video stream and frames;
a prompt's control videos must match its input video in frame count,
resolution and fps. Bad input exits 2, names the file (and for manifests
the file and key path), and stores nothing.
"""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import Project, make_project
from media import write_audio_only, write_video

from cosmos_workflow.local_ai.probe import ProbeError, probe_video

# ---------------------------------------------------------------- probing


@pytest.mark.parametrize(
    ("frames", "size", "fps"), [(24, (64, 48), 24), (7, (32, 18), 30), (1, (16, 16), 12)]
)
def test_probe_reports_what_the_video_holds(
    tmp_path: Path, frames: int, size: tuple[int, int], fps: int
) -> None:
    info = probe_video(write_video(tmp_path / "v.mp4", frames, size, fps))
    assert (info.frames, info.width, info.height) == (frames, *size)
    assert info.fps == Fraction(fps)
    assert (info.codec, info.pixel_format) == ("h264", "yuv420p")


def test_probe_of_the_demo_inputs() -> None:
    demo = Path(__file__).resolve().parents[1] / "inputs" / "demo"
    for path in sorted(demo.glob("*/*.mp4")):
        info = probe_video(path)
        assert (info.frames, info.width, info.height, info.fps) == (24, 160, 88, 24), path


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "not a readable video"),
        (b"just some text, not a video\n", "not a readable video"),
        ("half", "not a readable video"),
        ("audio", "no video stream"),
    ],
)
def test_probe_refuses_what_is_not_a_usable_video(
    tmp_path: Path, content: bytes | str, fragment: str
) -> None:
    path = tmp_path / "in.mp4"
    if content == "audio":
        write_audio_only(path)
    elif content == "half":
        data = write_video(tmp_path / "good.mp4").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(ProbeError, match=fragment):
        probe_video(path)


# ---------------------------------------------------------------- create prompt


def assert_refused(done, *fragments: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert not re.search(r"\bps_[0-9a-f]{8,}", done.stdout)
    for fragment in fragments:
        assert fragment in done.stderr, f"{fragment!r} not in:\n{done.stderr}"


def good_pair(folder: Path) -> Path:
    write_video(folder / "color.mp4")
    write_video(folder / "depth.mp4")
    return folder


def broken_color(folder: Path) -> None:
    good_pair(folder)
    (folder / "color.mp4").write_bytes(os.urandom(4000))


def audio_only_control(folder: Path) -> None:
    good_pair(folder)
    write_audio_only(folder / "depth.mp4")


def fewer_frames(folder: Path) -> None:
    good_pair(folder)
    write_video(folder / "depth.mp4", frames=20)


def other_size(folder: Path) -> None:
    good_pair(folder)
    write_video(folder / "shot_seg.mp4", size=(32, 24))


def other_fps(folder: Path) -> None:
    good_pair(folder)
    write_video(folder / "edge.mp4", fps=30)


def two_bad_controls(folder: Path) -> None:
    good_pair(folder)
    write_video(folder / "depth.mp4", frames=12, size=(32, 24))
    (folder / "vis.mp4").write_bytes(b"")


CREATE_CASES = {
    "a color video that is not a video": (broken_color, ["color.mp4", "not a readable video"]),
    "a control without a video stream": (audio_only_control, ["depth.mp4", "no video stream"]),
    "a control with fewer frames": (fewer_frames, ["depth.mp4", "20 frames", "24 frames"]),
    "a control of another size": (other_size, ["shot_seg.mp4", "32x24", "64x48"]),
    "a control at another fps": (other_fps, ["edge.mp4", "30 fps", "24 fps"]),
    "two bad controls at once": (
        two_bad_controls,
        ["depth.mp4", "12 frames", "32x24", "vis.mp4", "not a readable video"],
    ),
}


@pytest.fixture(scope="module")
def refused_creates(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every bad `create prompt` on one fresh project."""
    proj = make_project(tmp_path_factory.mktemp("checks") / "proj")
    folders = {}
    for index, (case, (make, _)) in enumerate(sorted(CREATE_CASES.items())):
        folders[case] = proj.root / "videos" / f"case{index}"
        make(folders[case])
    results = {
        case: proj.cosmos("create", "prompt", "a scene", str(folder))
        for case, folder in folders.items()
    }
    return {"project": proj, "results": results}


@pytest.mark.parametrize("case", sorted(CREATE_CASES))
def test_create_prompt_refuses_bad_input_videos(refused_creates: dict, case: str) -> None:
    _, fragments = CREATE_CASES[case]
    assert_refused(refused_creates["results"][case], *fragments)


def test_refused_create_prompt_stores_nothing(refused_creates: dict) -> None:
    proj = refused_creates["project"]
    assert not proj.outputs.exists(), "not even a database"
    assert proj.cosmos_json("list", "prompts") == []


def test_create_prompt_accepts_matching_generated_videos(project: Project) -> None:
    folder = good_pair(project.root / "videos" / "fine")
    write_video(folder / "seg.mp4")
    done = project.cosmos("create", "prompt", "a scene", str(folder))
    assert done.returncode == 0, done.stderr
    assert set(project.cosmos_json("show", done.stdout.strip())["inputs"]["controls"]) == {
        "depth",
        "seg",
    }


# ---------------------------------------------------------------- manifests

EXPERIMENT = """\
# @package _global_
defaults:
  - /prompts: checked
name: checked
model: {weights: {depth: 0.5}}
sweep: {grid: {model.seed: [1, 2]}}
"""


def checked_project(root: Path, video: str, depth: str) -> Project:
    proj = make_project(root)
    proj.write("manifests/experiment/checked.yaml", EXPERIMENT)
    proj.write(
        "manifests/prompts/checked.yaml",
        "good:\n  text: a good street\n  inputs:\n"
        "    video: inputs/demo/street/color.mp4\n"
        "    controls: {depth: inputs/demo/street/depth.mp4}\n"
        f"scene:\n  text: a scene\n  inputs:\n    video: {video}\n"
        f"    controls: {{depth: {depth}}}\n",
    )
    return proj


def not_a_video(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a video")


def at_30_fps(path: Path) -> None:
    write_video(path, frames=24, size=(160, 88), fps=30)


STREET = "inputs/demo/street"
MANIFEST_CASES = {
    "a broken input video": (
        ("inputs/bad.mp4", f"{STREET}/depth.mp4", not_a_video),
        ["prompts.scene.inputs.video", "inputs/bad.mp4", "not a readable video"],
    ),
    "a control at another fps": (
        (f"{STREET}/color.mp4", "inputs/bad.mp4", at_30_fps),
        ["prompts.scene.inputs.controls.depth", "inputs/bad.mp4", "30 fps", "24 fps"],
    ),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_a_manifest_with_a_bad_input_is_refused_before_any_run(tmp_path: Path, case: str) -> None:
    (video, depth, make), fragments = MANIFEST_CASES[case]
    proj = checked_project(tmp_path / "proj", video, depth)
    make(proj.root / "inputs" / "bad.mp4")
    for args in ((), ("dry_run=true",)):
        done = proj.batch("+experiment=checked", *args)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert "manifests/prompts/checked.yaml" in done.stderr
        for fragment in fragments:
            assert fragment in done.stderr, f"{fragment!r} not in:\n{done.stderr}"
        assert "prompts.good" not in done.stderr
    assert proj.ledger_lines() == []
    assert not proj.outputs.exists()


def test_each_input_is_probed_once_per_command(project: Project) -> None:
    """A multirun of three jobs over the demo's two videos probes each video once."""
    done = project.batch(
        "-m", "+experiment=demo", "model.seed=1,2,3", "dry_run=true", "log_level=DEBUG"
    )
    assert done.returncode == 0, done.stderr
    probed = re.findall(r"probed video (\S+): ", done.stderr)
    # The demo's prompts use the color videos (their depth is computed by the model).
    demo = sorted(str(p) for p in (project.root / "inputs" / "demo").glob("*/color.mp4"))
    assert sorted(probed) == demo


def test_create_prompt_blames_the_control_not_the_input_video(project: Project) -> None:
    folder = project.root / "videos" / "shot"
    write_video(folder / "color.mp4")
    write_video(folder / "depth.mp4", frames=20)
    done = project.cosmos("create", "prompt", "a scene", str(folder))
    assert done.returncode == 2, done.stderr
    assert f"{folder / 'depth.mp4'} does not match the input video" in done.stderr
    assert "20 frames against 24 frames" in done.stderr
    assert not project.outputs.exists()


def test_a_control_only_prompt_whose_controls_disagree_is_refused(tmp_path: Path) -> None:
    proj = make_project(tmp_path / "proj")
    proj.write("manifests/experiment/checked.yaml", EXPERIMENT)
    proj.write(
        "manifests/prompts/checked.yaml",
        "scene:\n  text: a scene\n  inputs:\n"
        "    controls: {depth: inputs/d.mp4, seg: inputs/s.mp4}\n",
    )
    write_video(proj.root / "inputs" / "d.mp4", frames=24)
    write_video(proj.root / "inputs" / "s.mp4", frames=20)
    done = proj.batch("+experiment=checked", "dry_run=true")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "prompts.scene.inputs.controls.seg" in done.stderr
    assert "20 frames against 24 frames" in done.stderr
    assert not proj.outputs.exists()
