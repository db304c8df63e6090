"""Thumbnails of output videos: one frame decoded with PyAV, kept while the video is unchanged."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from cosmos_workflow.outputs.thumbnails import ThumbnailStore
from cosmos_workflow.utils.hashing import sha256_file

REPO = Path(__file__).resolve().parents[1]
DEMO_VIDEO = REPO / "inputs" / "demo" / "street" / "color.mp4"


def make_gray_video(path: Path, width: int, height: int, levels: list[int]) -> None:
    """An H.264 MP4 whose frame i is uniformly gray at levels[i]; every frame a keyframe."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = 1
        for index, level in enumerate(levels):
            frame = av.VideoFrame(width, height, "gray")
            plane = frame.planes[0]
            plane.update(bytes([level]) * (plane.line_size * height))
            frame.pts = index
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def decode_image(path: Path) -> tuple[int, int, float]:
    """Width, height and mean luma of an image file, decoded with PyAV."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    gray = frame.reformat(format="gray")
    plane = gray.planes[0]
    data = bytes(plane)
    rows = [
        data[y * plane.line_size : y * plane.line_size + gray.width] for y in range(gray.height)
    ]
    mean = sum(sum(row) for row in rows) / (gray.width * gray.height)
    return frame.width, frame.height, mean


@pytest.fixture
def gray_video(tmp_path: Path) -> Path:
    video = tmp_path / "gray.mp4"
    make_gray_video(video, 640, 360, [20 + 25 * i for i in range(9)])
    return video


def test_a_thumbnail_is_a_small_jpeg_of_the_middle_frame(tmp_path: Path, gray_video: Path) -> None:
    store = ThumbnailStore(tmp_path / "thumbs")
    thumb = store.thumbnail("rs_a", gray_video, sha256_file(gray_video))
    assert thumb is not None and thumb.parent == tmp_path / "thumbs"
    assert thumb.read_bytes()[:2] == b"\xff\xd8"  # JPEG
    width, height, mean = decode_image(thumb)
    assert (width, height) == (320, 180)  # scaled down, aspect kept
    assert abs(mean - (20 + 25 * 4)) < 10  # frame 4 of 9
    assert (store.made, store.reused, store.failed) == (1, 0, 0)


def test_a_small_video_is_not_scaled_up(tmp_path: Path) -> None:
    store = ThumbnailStore(tmp_path / "thumbs")
    thumb = store.thumbnail("rs_b", DEMO_VIDEO, sha256_file(DEMO_VIDEO))
    with av.open(str(DEMO_VIDEO)) as container:
        size = (container.streams.video[0].width, container.streams.video[0].height)
    assert thumb is not None and decode_image(thumb)[:2] == size


def test_an_unchanged_video_reuses_its_thumbnail_and_a_changed_one_replaces_it(
    tmp_path: Path, gray_video: Path
) -> None:
    folder = tmp_path / "thumbs"
    first = ThumbnailStore(folder).thumbnail("rs_a", gray_video, sha256_file(gray_video))
    before = first.stat().st_mtime_ns

    again = ThumbnailStore(folder)
    assert again.thumbnail("rs_a", gray_video, sha256_file(gray_video)) == first
    assert first.stat().st_mtime_ns == before
    assert (again.made, again.reused) == (0, 1)

    make_gray_video(gray_video, 320, 240, [200] * 5)
    changed = ThumbnailStore(folder)
    second = changed.thumbnail("rs_a", gray_video, sha256_file(gray_video))
    assert second != first and second.is_file() and not first.exists()
    assert decode_image(second)[:2] == (320, 240)
    assert changed.made == 1
    # Another run's thumbnail is its own.
    other = changed.thumbnail("rs_b", DEMO_VIDEO, sha256_file(DEMO_VIDEO))
    assert second.is_file() and other.is_file()
    assert sorted(p.name for p in folder.iterdir()) == sorted([second.name, other.name])


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_a_video_that_does_not_decode_has_no_thumbnail(tmp_path: Path, content: bytes) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(content)
    store = ThumbnailStore(tmp_path / "thumbs")
    assert store.thumbnail("rs_c", broken, sha256_file(broken)) is None
    assert store.failed == 1
    assert list((tmp_path / "thumbs").glob("*")) == []


def test_a_missing_video_has_no_thumbnail(tmp_path: Path) -> None:
    store = ThumbnailStore(tmp_path / "thumbs")
    assert store.thumbnail("rs_d", tmp_path / "gone.mp4", "0" * 64) is None
    assert store.failed == 1


@pytest.mark.parametrize(
    ("key", "checksum"),
    [
        ("rs_a", "/../../../../escaped" + "0" * 44),
        ("rs_a", "../" + "a" * 61),
        ("../rs_a", "a" * 64),
        ("rs_a/..", "a" * 64),
        ("rs_a", "A" * 64),
    ],
)
def test_a_name_that_could_leave_the_folder_is_refused(
    tmp_path: Path, gray_video: Path, key: str, checksum: str
) -> None:
    store = ThumbnailStore(tmp_path / "deep" / "thumbs")
    with pytest.raises(ValueError, match="not a run id and sha256"):
        store.thumbnail(key, gray_video, checksum)


def test_make_all_counts_each_video_once_and_each_thumbnail_returns_its_result(
    tmp_path: Path, gray_video: Path
) -> None:
    folder = tmp_path / "thumbs"
    folder.mkdir()
    stale, other = folder / f"rs_a-{'0' * 16}.jpg", folder / f"rs_z-{'1' * 16}.jpg"
    stale.write_bytes(b"an older video's")
    other.write_bytes(b"another run's")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    videos = [
        ("rs_a", gray_video, sha256_file(gray_video)),
        ("rs_b", DEMO_VIDEO, sha256_file(DEMO_VIDEO)),
        ("rs_c", broken, sha256_file(broken)),
    ]
    store = ThumbnailStore(folder)
    store.make_all(videos, workers=3)
    assert (store.made, store.reused, store.failed) == (2, 0, 1)
    found = [store.thumbnail(*video) for video in videos]
    assert found[0] and found[1] and found[2] is None
    assert (store.made, store.reused, store.failed) == (2, 0, 1), "counted twice"
    assert {path.name for path in folder.iterdir()} == {found[0].name, found[1].name, other.name}
    again = ThumbnailStore(folder)
    again.make_all(videos)
    assert [again.thumbnail(*video) for video in videos] == found
    assert (again.made, again.reused, again.failed) == (0, 2, 1)


def test_one_store_sees_the_thumbnails_it_made(tmp_path: Path, gray_video: Path) -> None:
    store = ThumbnailStore(tmp_path / "thumbs")
    first = store.thumbnail("rs_a", gray_video, sha256_file(gray_video))
    assert store.thumbnail("rs_a", gray_video, sha256_file(gray_video)) == first
    assert (store.made, store.reused) == (1, 1)
    make_gray_video(gray_video, 320, 240, [200] * 5)
    second = store.thumbnail("rs_a", gray_video, sha256_file(gray_video))
    assert second is not None and second != first and not first.exists()
