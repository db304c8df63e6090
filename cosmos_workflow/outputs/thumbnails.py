"""Thumbnails of output videos for sweep reports: one frame, decoded with PyAV, as a JPEG.

PyAV is imported when a thumbnail is made (not to find one made before).

A thumbnail is named after its run and the first hex digits of its video's
sha256 (``<run_id>-<sha256[:16]>.jpg``), so it is made once and kept while the
video is unchanged; a new video of the run replaces it. Thumbnails live in
the sweep folder, never in run folders (those are checksummed).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

from cosmos_workflow.utils.atomic import write_bytes_atomic
from cosmos_workflow.utils.hashing import SHA256_HEX

logger = logging.getLogger(__name__)

THUMB_WIDTH = 320
CHECKSUM_DIGITS = 16
# What may name a thumbnail (run ids): nothing that leaves the folder.
SAFE_KEY = re.compile(r"[A-Za-z0-9_]+")


class ThumbnailStore:
    """Makes and finds the thumbnails in one folder, counting what it did.

    :meth:`make_all` lists the folder once and works in threads (a report);
    :meth:`thumbnail` alone looks for one file (a request of the web app).

    Args:
        folder: Where the thumbnails are (created when the first one is made).
        width: Largest thumbnail width in pixels (smaller videos keep their size).
        make: Make missing thumbnails (False: only find those made before).
    """

    def __init__(self, folder: Path, width: int = THUMB_WIDTH, make: bool = True) -> None:
        self.folder = folder
        self.width = width
        self.make = make
        self.made = 0
        self.reused = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._names: dict[str, set[str]] | None = None
        self._prepared: dict[tuple[str, str], Path | None] = {}

    def thumbnail(self, key: str, video: Path, checksum: str) -> Path | None:
        """The thumbnail of ``video``, made if the folder has none for this checksum.

        Args:
            key: Whose video it is (a run id); part of the file name.
            video: The video file.
            checksum: The video's sha256 (hex), as recorded next to it.

        Returns:
            The thumbnail file, or None if the video cannot be read or decoded,
            or the thumbnail cannot be written (a warning says why), or it
            is missing and the store makes none.

        Raises:
            ValueError: ``key`` or ``checksum`` could name a file outside the folder.
        """
        _check(key, checksum)
        with self._lock:
            if (key, checksum) in self._prepared:
                return self._prepared.pop((key, checksum))
        return self._provide(key, video, checksum)

    def make_all(self, videos: list[tuple[str, Path, str]], workers: int = 0) -> None:
        """Find or make the thumbnails of many videos at once (PyAV decodes in threads).

        The next :meth:`thumbnail` of each returns what was found or made
        here (counted here, once).

        Args:
            videos: (key, video, checksum) of each, as :meth:`thumbnail` takes them.
            workers: Threads (0: one per core, at most 4).

        Raises:
            ValueError: a key or checksum could name a file outside the folder.
        """
        for key, _, checksum in videos:
            _check(key, checksum)
        self._list_folder()

        def prepare(item: tuple[str, Path, str]) -> None:
            found = self._provide(*item)
            with self._lock:
                self._prepared[(item[0], item[2])] = found

        threads = workers or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(threads, thread_name_prefix="thumbnail") as pool:
            list(pool.map(prepare, videos))

    def _provide(self, key: str, video: Path, checksum: str) -> Path | None:
        """Find or make one thumbnail, counting which (see :meth:`thumbnail`)."""
        path = self.folder / f"{key}-{checksum[:CHECKSUM_DIGITS]}.jpg"
        if self._exists(key, path):
            self._count("reused")
            return path
        if not self.make:
            return None
        import av

        try:
            write_bytes_atomic(path, frame_jpeg(video, self.width))
        except (av.FFmpegError, OSError, ValueError, IndexError, StopIteration) as exc:
            logger.warning("No thumbnail of %s: %s", video, exc)
            self._count("failed")
            return None
        for stale in self._others(key, path):
            stale.unlink(missing_ok=True)
        self._count("made")
        return path

    def _exists(self, key: str, path: Path) -> bool:
        """True if the folder has ``path``: from the listing (:meth:`make_all`), else asked."""
        with self._lock:
            if self._names is not None:
                return path.name in self._names.get(key, ())
        return path.is_file()

    def _others(self, key: str, path: Path) -> list[Path]:
        """``key``'s thumbnails other than ``path`` (now its only one in the listing)."""
        with self._lock:
            if self._names is not None:
                names, self._names[key] = self._names.get(key, set()), {path.name}
                return [self.folder / name for name in names if name != path.name]
        return [stale for stale in self.folder.glob(f"{key}-*.jpg") if stale != path]

    def _list_folder(self) -> None:
        """List the folder once, so that many thumbnails are looked up without a stat each."""
        names: dict[str, set[str]] = {}
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    owner, dash, _ = entry.name.rpartition("-")
                    if dash and entry.name.endswith(".jpg"):
                        names.setdefault(owner, set()).add(entry.name)
        except FileNotFoundError:
            pass
        with self._lock:
            self._names = names

    def _count(self, what: str) -> None:
        with self._lock:
            if what == "made":
                self.made += 1
            elif what == "reused":
                self.reused += 1
            else:
                self.failed += 1


def _check(key: str, checksum: str) -> None:
    """Refuse a key or checksum that could name a file outside the folder.

    Raises:
        ValueError: ``key`` is not a run id, or ``checksum`` not a sha256.
    """
    if not SAFE_KEY.fullmatch(key) or not SHA256_HEX.fullmatch(checksum):
        raise ValueError(f"not a run id and sha256: {key!r}, {checksum!r}")


def frame_jpeg(video: Path, width: int) -> bytes:
    """One frame of ``video`` as JPEG bytes, at most ``width`` pixels wide.

    The frame is the keyframe at or before the middle of the video (one
    seek, one decode: cheap for long videos); for a video with a single
    keyframe, that is its first frame.

    Raises:
        av.FFmpegError, OSError: the file cannot be opened or decoded.
        IndexError: it has no video stream. StopIteration: no frame decodes.
    """
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        if stream.duration:
            container.seek((stream.start_time or 0) + stream.duration // 2, stream=stream)
        frame = next(container.decode(stream))
    out_width = min(width, frame.width)
    out_height = max(2, round(frame.height * out_width / frame.width / 2) * 2)
    out_width -= out_width % 2
    scaled = frame.reformat(width=out_width, height=out_height, format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = out_width, out_height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"qmin": "2", "qmax": "6"}
    packets = [*encoder.encode(scaled), *encoder.encode(None)]
    return b"".join(bytes(packet) for packet in packets)
