"""A content-addressed cache of input files on this machine.

An input enters the cache only if its bytes still have the sha256 the run id
was computed from: a file edited after planning is refused, never used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.manifest.specs import InputFile
from cosmos_workflow.utils.disk import with_file_name

_CHUNK = 1024 * 1024


class InputChanged(ValidationFailure):
    """An input file no longer has the content it was planned with."""


class LocalInputCache:
    """Verified copies of input files, named by their sha256.

    Args:
        root: The cache folder (created on demand).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, item: InputFile) -> Path:
        """Where the cache keeps ``item``."""
        return self.root / item.stored_name

    def materialize(self, item: InputFile) -> Path:
        """Return the cached copy of ``item``, copying and verifying it first.

        Raises:
            InputChanged: the file's content no longer matches its sha256.
            ValidationFailure: the file is gone or cannot be read.
            OSError: the copy cannot be written (a full disk: the fault is
                this machine's, not the input's); it names the cached file.
        """
        cached = self.path_for(item)
        if cached.is_file():
            return cached
        try:
            return self._copy_in(item, cached)
        except OSError as exc:
            error = with_file_name(exc, cached)
            if error is exc:
                raise
            raise error from exc

    def _copy_in(self, item: InputFile, cached: Path) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".in.", dir=self.root)
        tmp = Path(tmp_name)
        try:
            digest = self._copy(item.path, fd)
            if digest != item.sha256:
                raise InputChanged(
                    f"input {item.path} changed since the runs were planned "
                    f"(sha256 {digest[:12]}..., expected {item.sha256[:12]}...); "
                    "run the command again to plan with the new content"
                )
            tmp.chmod(0o444)
            tmp.replace(cached)
        finally:
            tmp.unlink(missing_ok=True)
        return cached

    @staticmethod
    def _copy(source: Path, fd: int) -> str:
        """Copy ``source`` to ``fd``; return its sha256 (a write error is raised as it is)."""
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as dst:
            try:
                src = source.open("rb")
            except FileNotFoundError as exc:
                raise ValidationFailure(f"input file is gone: {source}") from exc
            except OSError as exc:
                raise ValidationFailure(f"cannot read input {source}: {exc}") from exc
            with src:
                while chunk := _read(src, source):
                    digest.update(chunk)
                    dst.write(chunk)
        return digest.hexdigest()


def _read(src: BinaryIO, source: Path) -> bytes:
    """The next chunk of an input file.

    Raises:
        ValidationFailure: it cannot be read.
    """
    try:
        return src.read(_CHUNK)
    except OSError as exc:
        raise ValidationFailure(f"cannot read input {source}: {exc}") from exc
