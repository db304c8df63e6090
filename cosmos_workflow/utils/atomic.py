"""Atomic file writes: a crash never leaves a half-written file in place."""

from __future__ import annotations

import functools
import json
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cosmos_workflow.utils.disk import with_file_name


@functools.cache
def _default_file_mode() -> int:
    """0o666 minus the process umask, read once (umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _target_mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return _default_file_mode()


def write_bytes_atomic(path: Path, chunks: bytes | Iterable[bytes]) -> None:
    """Write bytes to ``path`` through a temporary file in the same folder.

    The data is flushed and fsynced, then renamed over ``path``. If anything
    fails, the temporary file is removed and ``path`` keeps its old content.
    The file gets the mode of the file it replaces, or the umask's default.

    Args:
        path: Destination file.
        chunks: The content, whole or as an iterable of chunks.

    Raises:
        OSError: it cannot be written; the error names ``path`` (a write to
            a full disk names no file of itself).
    """
    try:
        _write_bytes_atomic(path, chunks)
    except OSError as exc:
        error = with_file_name(exc, path)
        if error is exc:
            raise
        raise error from exc


def _write_bytes_atomic(path: Path, chunks: bytes | Iterable[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, _target_mode(path))
        with os.fdopen(fd, "wb") as handle:
            if isinstance(chunks, bytes):
                handle.write(chunks)
            else:
                for chunk in chunks:
                    handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_yaml_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as block-style YAML atomically, keys in given order."""
    import yaml

    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    write_text_atomic(path, text)


def move_atomic(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` with one rename (same file system)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    src.replace(dst)


def temp_file_beside(path: Path) -> Path:
    """A new, empty temporary file in ``path``'s folder (the folder must exist).

    Write it (e.g. with a library that wants a file name), then :func:`publish`
    it over ``path``, or delete it.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp_name)


def publish(tmp: Path, path: Path) -> None:
    """Flush a finished temporary file to disk and rename it over ``path``.

    It gets the mode of the file it replaces, or the umask's default.
    """
    with tmp.open("rb+") as handle:
        os.fsync(handle.fileno())
    tmp.chmod(_target_mode(path))
    tmp.replace(path)
