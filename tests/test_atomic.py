"""Atomic file writes: the content lands whole, or the old file stays as it was."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cosmos_workflow.utils.atomic import (
    move_atomic,
    publish,
    temp_file_beside,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
    write_yaml_atomic,
)


class Boom(RuntimeError):
    """Raised by a chunk iterable midway through a write."""


def failing_chunks(good: list[bytes], error: BaseException) -> Iterator[bytes]:
    """Yield ``good`` chunks, then raise ``error`` (a crash mid-write)."""
    yield from good
    raise error


def names_in(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden ones included."""
    return sorted(p.name for p in folder.iterdir())


def test_bytes_land_whole_and_replace_old_content(tmp_path: Path) -> None:
    target = tmp_path / "video.bin"
    write_bytes_atomic(target, b"first version")
    assert target.read_bytes() == b"first version"

    payload = os.urandom(300_000)
    write_bytes_atomic(target, payload)
    assert target.read_bytes() == payload
    assert names_in(tmp_path) == ["video.bin"]


def test_chunk_iterable_is_concatenated_in_order(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    chunks = [os.urandom(n) for n in (1, 4096, 0, 70_000, 3)]
    write_bytes_atomic(target, iter(chunks))
    assert target.read_bytes() == b"".join(chunks)
    assert names_in(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("error", [Boom("disk on fire"), KeyboardInterrupt()])
def test_failure_midway_keeps_old_content_and_leaves_no_temp_file(
    tmp_path: Path, error: BaseException
) -> None:
    target = tmp_path / "result.json"
    old = b'{"status": "succeeded"}\n' + os.urandom(1000)
    target.write_bytes(old)
    before = names_in(tmp_path)

    with pytest.raises(type(error)):
        write_bytes_atomic(target, failing_chunks([b"half of the ", b"new content"], error))

    assert target.read_bytes() == old
    assert names_in(tmp_path) == before


def test_failure_on_a_new_file_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "fresh" / "new.bin"
    with pytest.raises(Boom):
        write_bytes_atomic(target, failing_chunks([b"partial"], Boom("stop")))
    assert not target.exists()
    assert names_in(target.parent) == []


def test_parent_folders_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c" / "file.txt"
    write_text_atomic(target, "deep")
    assert target.read_text(encoding="utf-8") == "deep"


def test_text_is_written_as_utf8(tmp_path: Path) -> None:
    target = tmp_path / "prompt.txt"
    text = "Ein nebliger Wald, 森の道, café ☕\nzweite Zeile\n"
    write_text_atomic(target, text)
    assert target.read_bytes() == text.encode("utf-8")


def test_json_round_trips_and_is_independent_of_key_order(tmp_path: Path) -> None:
    data = {"seed": 5, "weights": {"depth": 0.6, "vis": None}, "text": "café", "ids": [3, 1]}
    reordered = {
        "ids": [3, 1],
        "text": "café",
        "weights": {"vis": None, "depth": 0.6},
        "seed": 5,
    }
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_json_atomic(first, data)
    write_json_atomic(second, reordered)
    assert json.loads(first.read_text(encoding="utf-8")) == data
    assert first.read_bytes() == second.read_bytes()
    assert "café" in first.read_text(encoding="utf-8")


def test_yaml_round_trips(tmp_path: Path) -> None:
    data = {"name": "demo", "sweep": {"grid": {"model.seed": [1, 2]}}, "text": "naïve"}
    target = tmp_path / "manifest.yaml"
    write_yaml_atomic(target, data)
    assert yaml.safe_load(target.read_text(encoding="utf-8")) == data


def test_new_file_gets_the_same_permissions_as_a_plain_write(tmp_path: Path) -> None:
    """Atomic files in a run folder must be as readable as any other file there."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x", encoding="utf-8")
    atomic = tmp_path / "atomic.txt"
    write_text_atomic(atomic, "x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_move_atomic_moves_into_new_folder_and_replaces(tmp_path: Path) -> None:
    src = tmp_path / "staging" / "output.mp4"
    src.parent.mkdir()
    payload = os.urandom(5000)
    src.write_bytes(payload)

    dst = tmp_path / "runs" / "rs_x" / "output.mp4"
    move_atomic(src, dst)
    assert dst.read_bytes() == payload
    assert not src.exists()

    replacement = tmp_path / "staging" / "second.mp4"
    replacement.write_bytes(b"replacement")
    move_atomic(replacement, dst)
    assert dst.read_bytes() == b"replacement"
    assert not replacement.exists()
    assert names_in(dst.parent) == ["output.mp4"]


def test_a_temp_file_beside_is_published_with_a_plain_mode_or_the_old_one(tmp_path: Path) -> None:
    """A library writes the temporary file; publish puts it in place like any atomic write."""
    plain = tmp_path / "plain.mp4"
    plain.write_bytes(b"x")
    target = tmp_path / "color.mp4"
    tmp = temp_file_beside(target)
    assert tmp.parent == tmp_path and tmp.name.startswith(".color.mp4.") and tmp.stat().st_size == 0
    tmp.write_bytes(b"new video")
    assert not target.exists(), "nothing in place before publish"
    publish(tmp, target)
    assert target.read_bytes() == b"new video"
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert names_in(tmp_path) == ["color.mp4", "plain.mp4"]

    target.chmod(0o640)
    again = temp_file_beside(target)
    again.write_bytes(b"replacement")
    publish(again, target)
    assert target.read_bytes() == b"replacement"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert names_in(tmp_path) == ["color.mp4", "plain.mp4"]


def test_rewriting_a_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    write_text_atomic(target, "first")
    target.chmod(0o640)
    write_text_atomic(target, "second")
    assert target.read_text() == "second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    write_bytes_atomic(target, b"third")
    assert target.read_bytes() == b"third"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
