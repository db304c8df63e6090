"""`cosmos prepare`: PNG sequences to one mp4 per modality, checked first.

The frames are real PNG files made by FFmpeg (PyAV); the videos are decoded
frame by frame to prove what went in and in which order.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import Project, tree_snapshot
from media import Decoded, decode, level, noise_png_bytes, png_bytes, write_sequence

from cosmos_workflow.errors import ExecutionFailure
from cosmos_workflow.local_ai.prepare import prepare_inputs, publish_videos

SIZE = (64, 48)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_frames_in_order(video: Decoded, count: int) -> None:
    """Frame i of the video is frame i of the sequence (its red level, within coding loss)."""
    assert video.frames == count
    for index, red in enumerate(video.reds):
        assert abs(red - level(index)) <= 4, (index, red, level(index))


def assert_refused(done, *fragments: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) <= 24, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, f"{fragment!r} not in:\n{done.stderr}"


def houdini(folder: Path, frames: int = 24) -> Path:
    write_sequence(folder, "color.{:04d}.png", range(1, frames + 1), SIZE)
    write_sequence(folder, "depth.{:04d}.png", range(1, frames + 1), SIZE, pix_fmt="gray16be")
    return folder


# ---------------------------------------------------------------- the happy paths


def test_a_houdini_folder_gives_videos_that_create_prompt_accepts(project: Project) -> None:
    folder = houdini(project.root / "renders" / "shot1")
    done = project.cosmos("prepare", str(folder))
    assert done.returncode == 0, done.stderr
    assert "made 2 video(s)" in done.stdout
    # Plain progress lines when stderr is not a terminal, with an ETA.
    assert re.search(r"^encoding 2 video\(s\): \d+/\d+ after .*; eta ", done.stderr, re.M), (
        done.stderr
    )
    for modality in ("color", "depth"):
        assert modality in done.stdout and str(folder / f"{modality}.mp4") in done.stdout
        video = decode(folder / f"{modality}.mp4")
        assert (video.codec, video.pix_fmt) == ("h264", "yuv420p")
        assert (video.width, video.height, video.fps) == (*SIZE, 24)
        if modality == "color":
            assert_frames_in_order(video, 24)
        else:
            assert video.frames == 24

    created = project.cosmos("create", "prompt", "a street at dusk", str(folder))
    assert created.returncode == 0, created.stderr
    shown = project.cosmos_json("show", created.stdout.strip())
    assert shown["name"] == "shot1"
    assert shown["inputs"]["video"]["sha256"] == sha256(folder / "color.mp4")
    assert shown["inputs"]["controls"]["depth"]["sha256"] == sha256(folder / "depth.mp4")
    assert set(shown["inputs"]["controls"]) == {"depth"}


def test_frame_underscore_names_are_the_color_modality(project: Project) -> None:
    folder = project.root / "frames"
    write_sequence(folder, "frame_{:03d}.png", range(0, 12), SIZE)
    out = project.root / "videos"
    done = project.cosmos("prepare", str(folder), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [v["modality"] for v in report["videos"]] == ["color"]
    video = report["videos"][0]
    assert video["pattern"] == "frame_###.png"
    assert (video["frames"], video["first_frame"], video["last_frame"]) == (12, 0, 11)
    assert video["output"] == str(out / "color.mp4")
    assert sorted(p.name for p in out.iterdir()) == ["color.mp4"]
    assert_frames_in_order(decode(out / "color.mp4"), 12)
    assert all(p.suffix == ".png" for p in folder.iterdir()), "--out: the source folder is kept"


def test_other_name_styles_and_paddings_line_up_by_frame_number(project: Project) -> None:
    """<modality>_<digits>, a shot prefix, bare numbers; padding may differ per modality."""
    folder = project.root / "mixed"
    write_sequence(folder, "{:d}.png", range(8, 18), SIZE)  # bare numbers: color
    write_sequence(folder, "shot1.depth.{:05d}.png", range(8, 18), SIZE)
    write_sequence(folder, "seg_{:d}.png", range(8, 18), SIZE)
    write_sequence(folder, "Edge.{:04d}.png", range(8, 18), SIZE)
    report = prepare_json(project, folder)
    by_modality = {v["modality"]: v for v in report["videos"]}
    assert sorted(by_modality) == ["color", "depth", "edge", "seg"]
    for video in by_modality.values():
        assert (video["frames"], video["first_frame"], video["last_frame"]) == (10, 8, 17)
        assert_frames_in_order(decode(Path(video["output"])), 10)
    assert by_modality["depth"]["pattern"] == "shot1.depth.#####.png"


def prepare_json(project: Project, folder: Path, *args: str) -> dict:
    done = project.cosmos("prepare", str(folder), *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_fps_sets_the_rate_and_keeps_every_frame(project: Project) -> None:
    folder = project.root / "fast"
    write_sequence(folder, "color.{:04d}.png", range(1, 16), SIZE)
    report = prepare_json(project, folder, "--fps", "30")
    assert report["fps"] == 30 and report["videos"][0]["fps"] == 30
    video = decode(folder / "color.mp4")
    assert video.fps == 30
    assert_frames_in_order(video, 15)


@pytest.mark.parametrize("fps", ["0", "-1", "abc", "2.5", "241"])
def test_a_bad_fps_is_refused(project: Project, fps: str) -> None:
    folder = project.root / "f"
    write_sequence(folder, "color.{:04d}.png", range(1, 3), SIZE)
    done = project.cosmos("prepare", str(folder), "--fps", fps)
    assert done.returncode == 2, done.stderr
    assert "--fps" in done.stderr
    assert not (folder / "color.mp4").exists()


def test_dry_run_prints_the_plan_and_writes_nothing(project: Project) -> None:
    folder = houdini(project.root / "shot")
    out = project.root / "not-yet"
    before = tree_snapshot(project.root)

    plain = project.cosmos("prepare", str(folder), "--out", str(out), "--dry-run")
    as_json = project.cosmos("prepare", str(folder), "--out", str(out), "--dry-run", "--json")

    assert plain.returncode == 0, plain.stderr
    assert as_json.returncode == 0, as_json.stderr
    assert tree_snapshot(project.root) == before
    assert not out.exists()
    lines = plain.stdout.splitlines()
    assert "would make 2 video(s)" in plain.stdout and "dry run" in plain.stdout
    for modality in ("color", "depth"):
        line = next(line for line in lines if str(out / f"{modality}.mp4") in line)
        for fragment in (modality, "24 frames", "1-24", "64x48", "24 fps"):
            assert fragment in line, (fragment, line)
    report = json.loads(as_json.stdout)
    assert report["dry_run"] is True and report["fps"] == 24
    assert report["source"] == str(folder) and report["out"] == str(out)
    assert [
        (v["modality"], v["frames"], v["width"], v["height"], v["fps"], v["output"])
        for v in report["videos"]
    ] == [
        ("color", 24, 64, 48, 24, str(out / "color.mp4")),
        ("depth", 24, 64, 48, 24, str(out / "depth.mp4")),
    ]


def test_existing_videos_are_kept_unless_force(project: Project) -> None:
    folder = houdini(project.root / "shot", frames=6)
    assert project.cosmos("prepare", str(folder)).returncode == 0
    first = sha256(folder / "color.mp4")
    # New frames, same names: a second prepare must not silently replace the videos.
    write_sequence(folder, "color.{:04d}.png", range(1, 7), (32, 24))
    write_sequence(folder, "depth.{:04d}.png", range(1, 7), (32, 24))
    for args in ((), ("--dry-run",)):
        again = project.cosmos("prepare", str(folder), *args)
        assert_refused(again, str(folder / "color.mp4"), "--force")
        assert sha256(folder / "color.mp4") == first

    forced = project.cosmos("prepare", str(folder), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (decode(folder / "color.mp4").width, decode(folder / "depth.mp4").width) == (32, 32)


def test_the_same_frames_give_the_same_bytes(project: Project) -> None:
    """Re-preparing unchanged frames gives identical videos, so the same prompt id."""
    folder = houdini(project.root / "shot", frames=8)
    one, two = project.root / "one", project.root / "two"
    assert project.cosmos("prepare", str(folder), "--out", str(one)).returncode == 0
    assert project.cosmos("prepare", str(folder), "--out", str(two)).returncode == 0
    for name in ("color.mp4", "depth.mp4"):
        assert sha256(one / name) == sha256(two / name)


def test_an_extra_pass_is_skipped_with_a_warning(project: Project) -> None:
    folder = houdini(project.root / "shot", frames=5)
    write_sequence(folder, "normal.{:04d}.png", range(1, 6), SIZE)
    write_sequence(folder, "albedo.{:04d}.png", range(1, 3), (30, 20))  # not checked: skipped
    (folder / "notes.txt").write_text("render notes\n")
    done = project.cosmos("prepare", str(folder))
    assert done.returncode == 0, done.stderr
    assert "normal.####.png" in done.stderr and "albedo.####.png" in done.stderr
    assert "skipped" in done.stderr
    assert sorted(p.name for p in folder.glob("*.mp4")) == ["color.mp4", "depth.mp4"]
    report = prepare_json(project, folder, "--dry-run", "--force")
    assert sorted(s["pattern"] for s in report["skipped"]) == ["albedo.####.png", "normal.####.png"]
    assert {s["frames"] for s in report["skipped"]} == {5, 2}


def test_a_video_of_a_modality_that_has_no_frames_now_is_named(project: Project) -> None:
    folder = houdini(project.root / "shot", frames=5)
    assert project.cosmos("prepare", str(folder)).returncode == 0
    for frame in folder.glob("depth.*.png"):
        frame.unlink()
    done = project.cosmos("prepare", str(folder), "--force")
    assert done.returncode == 0, done.stderr
    assert f"note: {folder / 'depth.mp4'} is older than these frames" in done.stderr
    assert "color.mp4 is older" not in done.stderr
    assert (folder / "depth.mp4").is_file(), "kept: it is the user's to remove"


def test_data_after_the_end_of_a_png_is_accepted(project: Project) -> None:
    """Some tools append metadata after IEND; FFmpeg decodes such a frame."""
    folder = houdini(project.root / "shot", frames=4)
    frame = folder / "color.0002.png"
    frame.write_bytes(frame.read_bytes() + b"tool metadata" * 10)
    done = project.cosmos("prepare", str(folder))
    assert done.returncode == 0, done.stderr
    assert len(decode(folder / "color.mp4").reds) == 4


# ---------------------------------------------------------------- refused input


def missing_frame(folder: Path) -> None:
    houdini(folder, frames=12)
    (folder / "color.0007.png").unlink()
    for number in (9, 10, 11):
        (folder / f"depth.{number:04d}.png").unlink()


def size_between_modalities(folder: Path) -> None:
    write_sequence(folder, "color.{:04d}.png", range(1, 6), SIZE)
    write_sequence(folder, "depth.{:04d}.png", range(1, 6), (32, 24))


def size_inside_a_modality(folder: Path) -> None:
    houdini(folder, frames=6)
    (folder / "depth.0004.png").write_bytes(png_bytes(32, 24, 50))


def frame_count(folder: Path) -> None:
    write_sequence(folder, "color.{:04d}.png", range(1, 11), SIZE)
    write_sequence(folder, "depth.{:04d}.png", range(1, 9), SIZE)


def not_lined_up(folder: Path) -> None:
    write_sequence(folder, "color.{:04d}.png", range(1, 6), SIZE)
    write_sequence(folder, "depth.{:04d}.png", range(0, 5), SIZE)


def unsupported_names(folder: Path) -> None:
    houdini(folder, frames=3)
    (folder / "color-0004.png").write_bytes(png_bytes(*SIZE, 10))
    (folder / "thumbnail.png").write_bytes(png_bytes(*SIZE, 10))


def duplicate_numbers(folder: Path) -> None:
    houdini(folder, frames=4)
    (folder / "color.3.png").write_bytes(png_bytes(*SIZE, 10))


def unreadable_png(folder: Path) -> None:
    houdini(folder, frames=4)
    (folder / "depth.0002.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def jpeg_named_png(folder: Path) -> None:
    houdini(folder, frames=3)
    import av

    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = 64, 48, "yuvj420p"
    codec.time_base = Fraction(1, 24)
    frame = av.VideoFrame(64, 48, "yuvj420p")
    data = b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])
    (folder / "color.0002.png").write_bytes(data)


def other_image_format(folder: Path) -> None:
    write_sequence(folder, "color.{:04d}.png", range(1, 4), SIZE)
    for number in range(1, 4):
        (folder / f"depth.{number:04d}.exr").write_bytes(b"v/1\x01 not decoded")


def odd_size(folder: Path) -> None:
    write_sequence(folder, "color.{:04d}.png", range(1, 4), (63, 47))


def two_sequences_for_one_modality(folder: Path) -> None:
    write_sequence(folder, "color.{:04d}.png", range(1, 4), SIZE)
    write_sequence(folder, "take2.color.{:04d}.png", range(1, 4), SIZE)


def empty(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "readme.txt").write_text("nothing here\n")


def only_unknown_passes(folder: Path) -> None:
    write_sequence(folder, "normal.{:04d}.png", range(1, 4), SIZE)


REFUSED = {
    "a missing frame": (
        missing_frame,
        ["color.####.png", "missing frame(s) 7 (color.0007.png)", "9-11", "depth.0009.png"],
    ),
    "a size mismatch between modalities": (
        size_between_modalities,
        ["color 64x48", "depth 32x24", "resolution"],
    ),
    "a size mismatch inside one modality": (
        size_inside_a_modality,
        ["depth.####.png", "depth.0004.png", "32x24", "64x48"],
    ),
    "a frame count mismatch": (frame_count, ["frame counts differ", "color 10", "depth 8"]),
    "frame numbers that do not line up": (not_lined_up, ["line up", "color 1-5", "depth 0-4"]),
    "an unsupported name pattern": (
        unsupported_names,
        ["color-0004.png", "thumbnail.png", "color.0001.png", "frame_000.png"],
    ),
    "a duplicate frame number": (duplicate_numbers, ["frame 3", "color.0003.png", "color.3.png"]),
    "an unreadable PNG": (unreadable_png, ["depth.0002.png", "not a readable PNG"]),
    "a JPEG named .png": (jpeg_named_png, ["color.0002.png", "not a PNG"]),
    "frames that are not PNG": (other_image_format, ["depth.0001.exr", "PNG"]),
    "an odd frame size": (odd_size, ["63x47", "even"]),
    "two sequences for one modality": (
        two_sequences_for_one_modality,
        ["color.####.png", "take2.color.####.png"],
    ),
    "an empty folder": (empty, ["no PNG frames", "color.0001.png"]),
    "no modality that cosmos uses": (only_unknown_passes, ["normal.####.png", "color"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_frames_are_refused_naming_the_files_and_nothing_is_written(
    project: Project, case: str
) -> None:
    make, fragments = REFUSED[case]
    folder = project.root / "shot"
    make(folder)
    before = tree_snapshot(project.root)
    for args in ((), ("--dry-run", "--json")):
        done = project.cosmos("prepare", str(folder), *args)
        assert_refused(done, *fragments)
        assert done.stdout == ""
    assert tree_snapshot(project.root) == before
    assert not [p for p in folder.iterdir() if not p.name.endswith((".png", ".exr", ".txt"))]


def test_a_missing_folder_or_an_out_that_is_a_file_is_refused(project: Project) -> None:
    assert_refused(project.cosmos("prepare", str(project.root / "nowhere")), "nowhere")
    folder = houdini(project.root / "shot", frames=2)
    blocker = project.write("blocker", "a file\n")
    assert_refused(project.cosmos("prepare", str(folder), "--out", str(blocker)), "blocker")
    assert not list(folder.glob("*.mp4"))


def test_ctrl_c_while_encoding_leaves_nothing_behind(project: Project) -> None:
    folder = project.root / "long"
    folder.mkdir()
    for number in range(1, 121):
        (folder / f"color.{number:04d}.png").write_bytes(noise_png_bytes(640, 352, number))
    process = subprocess.Popen(
        [sys.executable, "-m", "cosmos_workflow.cli.main", "prepare", str(folder)],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not list(folder.glob(".color.mp4.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(folder.glob(".color.mp4.*.tmp")), "the encoding never started"
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "nothing was written" in stderr
    assert "Traceback" not in stderr
    assert sorted(p.suffix for p in folder.iterdir()) == [".png"] * 120


# ---------------------------------------------------------------- checking and publishing


class RecordingProgress:
    """A StepProgress (utils/step_progress.py) that records every call in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, what: str, total: int | None) -> None:
        self.events.append(("start", what, total))

    def advance(self, steps: int = 1) -> None:
        self.events.append(("advance", steps))

    def finish(self) -> None:
        self.events.append(("finish",))

    def phases(self) -> list[tuple[str, int | None, int]]:
        """(what, total, steps done) of each started operation, in order."""
        phases: list[tuple[str, int | None, int]] = []
        for event in self.events:
            if event[0] == "start":
                phases.append((event[1], event[2], 0))
            elif event[0] == "advance":
                what, total, done = phases[-1]
                phases[-1] = (what, total, done + event[1])
        return phases


def test_the_check_reports_progress_before_the_encoding(tmp_path: Path) -> None:
    folder = houdini(tmp_path / "shot", frames=6)
    progress = RecordingProgress()
    prepare_inputs(folder, progress=progress)
    (checking, total, done), (encoding, frames, encoded) = progress.phases()
    assert "checking" in checking and "12" in checking
    assert (total, done) == (12, 12), "one step per frame checked, before the encoding starts"
    assert "encoding" in encoding and (frames, encoded) == (12, 12)
    assert progress.events.count(("finish",)) == 2
    assert progress.events.index(("finish",)) < progress.events.index(("start", encoding, 12))

    dry = RecordingProgress()
    prepare_inputs(folder, dry_run=True, force=True, progress=dry)
    assert dry.phases() == [(checking, 12, 12)]


def test_the_cli_shows_the_check_before_the_encoding(project: Project) -> None:
    folder = houdini(project.root / "shot", frames=4)
    done = project.cosmos("prepare", str(folder))
    assert done.returncode == 0, done.stderr
    assert "checking 8 frame(s)" in done.stderr, done.stderr
    assert done.stderr.index("checking") < done.stderr.index("encoding")


@pytest.mark.parametrize(
    "pix_fmt", ["rgb24", "rgba", "rgb48be", "rgba64be", "gray", "gray16be", "ya8", "monob"]
)
def test_every_kind_of_png_passes_the_check(tmp_path: Path, pix_fmt: str) -> None:
    folder = tmp_path / "shot"
    write_sequence(folder, "color.{:04d}.png", range(1, 4), SIZE, pix_fmt=pix_fmt)
    plan = prepare_inputs(folder, dry_run=True)
    assert [(v.frames[0].name, v.width, v.height) for v in plan.videos] == [
        ("color.0001.png", *SIZE)
    ]


def png_chunks(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, length, type) of each chunk of a PNG file."""
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        chunks.append((offset, length, kind))
        offset += 12 + length
    return chunks


def damaged_image_data(data: bytes) -> bytes:
    """The PNG with its image data zeroed: a sound header and end, chunk CRCs right."""
    offset, length, _ = next(c for c in png_chunks(data) if c[2] == b"IDAT")
    zeros = bytes(length)
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + zeros))
    return data[: offset + 8] + zeros + crc + data[offset + 12 + length :]


CUT = {
    "cut in half": lambda data: data[: len(data) // 2],
    "missing its end (IEND)": lambda data: data[: png_chunks(data)[-1][0]],
}


def with_ihdr(data: bytes, change: Callable[[bytes, bytes, bytes], tuple]) -> bytes:
    """The PNG with its first chunk (type, fields, CRC) changed."""
    kind, fields, crc = change(data[12:16], data[16:29], data[29:33])
    return data[:12] + kind + fields + crc + data[33:]


def ihdr_crc(kind: bytes, fields: bytes) -> bytes:
    return struct.pack(">I", zlib.crc32(kind + fields))


def unknown_colour_type(kind: bytes, fields: bytes, crc: bytes) -> tuple:
    fields = fields[:9] + b"\x05" + fields[10:]
    return kind, fields, ihdr_crc(kind, fields)


DAMAGED_IHDR = {
    "a wrong crc": lambda kind, fields, crc: (kind, fields, bytes([crc[0] ^ 1]) + crc[1:]),
    "an unknown colour type": unknown_colour_type,
    "another chunk first": lambda kind, fields, crc: (
        b"IHDX",
        fields,
        ihdr_crc(b"IHDX", fields),
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_IHDR))
def test_a_damaged_png_header_is_refused_by_the_check(project: Project, case: str) -> None:
    folder = houdini(project.root / "shot", frames=4)
    frame = folder / "color.0002.png"
    frame.write_bytes(with_ihdr(frame.read_bytes(), DAMAGED_IHDR[case]))
    out = project.root / "videos"
    before = tree_snapshot(project.root)
    for args in (("--dry-run",), ()):
        done = project.cosmos("prepare", str(folder), "--out", str(out), *args)
        assert_refused(done, "color.0002.png", "IHDR header is missing or damaged")
    assert tree_snapshot(project.root) == before
    assert not out.exists()


@pytest.mark.parametrize("case", sorted(CUT))
def test_a_cut_png_is_refused_by_the_check(project: Project, case: str) -> None:
    folder = houdini(project.root / "shot", frames=4)
    frame = folder / "depth.0003.png"
    frame.write_bytes(CUT[case](frame.read_bytes()))
    out = project.root / "videos"
    before = tree_snapshot(project.root)
    for args in ((), ("--dry-run",)):
        done = project.cosmos("prepare", str(folder), "--out", str(out), *args)
        assert_refused(done, "depth.0003.png", "not a readable PNG")
    assert tree_snapshot(project.root) == before
    assert not out.exists()


def test_damaged_image_data_fails_the_encoding_and_leaves_nothing(project: Project) -> None:
    """A frame whose header is sound but whose pixels do not decode: found at encoding time."""
    folder = houdini(project.root / "shot", frames=4)
    frame = folder / "depth.0002.png"
    frame.write_bytes(damaged_image_data(frame.read_bytes()))
    out = project.root / "videos"
    before = tree_snapshot(project.root)
    done = project.cosmos("prepare", str(folder), "--out", str(out))
    assert_refused(done, "depth.0002.png", "not a readable PNG", "nothing was written")
    assert done.stdout == ""
    assert tree_snapshot(project.root) == before
    assert not out.exists()


def test_a_failure_moving_an_old_video_aside_keeps_the_old_set(project: Project) -> None:
    folder = houdini(project.root / "shot", frames=4)
    assert project.cosmos("prepare", str(folder)).returncode == 0
    old_color = sha256(folder / "color.mp4")
    # depth.mp4 cannot be replaced: it is a folder that holds a file.
    (folder / "depth.mp4").unlink()
    (folder / "depth.mp4").mkdir()
    (folder / "depth.mp4" / "keep.txt").write_text("kept\n")
    write_sequence(folder, "color.{:04d}.png", range(1, 5), (32, 24))
    write_sequence(folder, "depth.{:04d}.png", range(1, 5), (32, 24))
    before = tree_snapshot(folder)

    done = project.cosmos("prepare", str(folder), "--force")

    assert sha256(folder / "color.mp4") == old_color
    assert (folder / "depth.mp4" / "keep.txt").read_text() == "kept\n"
    assert tree_snapshot(folder) == before, "no new video, no temporary or moved-aside file"
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "depth.mp4" in done.stderr and "no video was replaced" in done.stderr, done.stderr


def finished_set(folder: Path, old: dict[str, bytes]) -> list[tuple[Path, Path]]:
    """Old videos (mode 0o640) and finished temporary new ones, as publish_videos takes them."""
    folder.mkdir()
    for name, content in old.items():
        (folder / name).write_bytes(content)
        (folder / name).chmod(0o640)
    pairs = []
    for name in ("color.mp4", "depth.mp4"):
        tmp = folder / f".{name}.new.tmp"
        tmp.write_bytes(b"new " + name.encode())
        pairs.append((tmp, folder / name))
    return pairs


def fail_on_second(error: BaseException):
    """A publish function that publishes the first video for real, then fails."""
    calls = []

    def publish_file(tmp: Path, path: Path) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise error
        tmp.replace(path)

    return publish_file


OLD_SETS = {
    "both videos existed": {"color.mp4": b"old color", "depth.mp4": b"old depth"},
    "depth is new": {"color.mp4": b"old color"},
}


@pytest.mark.parametrize("old_set", sorted(OLD_SETS))
@pytest.mark.parametrize("error", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_publishing_is_all_or_nothing(tmp_path: Path, old_set: str, error: BaseException) -> None:
    old = OLD_SETS[old_set]
    pairs = finished_set(tmp_path / "out", old)
    expected = ExecutionFailure if isinstance(error, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        publish_videos(pairs, publish_file=fail_on_second(error))
    for tmp, _ in pairs:
        tmp.unlink(missing_ok=True)  # the caller deletes its temporary files
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == old
    assert all(stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == 0o640 for name in old)


def test_publishing_replaces_the_whole_set_and_keeps_modes(tmp_path: Path) -> None:
    pairs = finished_set(tmp_path / "out", OLD_SETS["both videos existed"])
    publish_videos(pairs)
    found = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert found == {"color.mp4": b"new color.mp4", "depth.mp4": b"new depth.mp4"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in (tmp_path / "out").iterdir())
