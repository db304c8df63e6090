"""What a video holds, read with PyAV (FFmpeg), never by hand.

A video is usable when it opens, has a video stream whose codec FFmpeg can
decode, holds at least one frame and its first frame decodes. Frames are
counted by demuxing (no decoding), so probing a long video stays cheap.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

logger = logging.getLogger(__name__)


class ProbeError(Exception):
    """A file is not a usable video (or PNG frame); the message says why."""


@dataclass(frozen=True)
class VideoInfo:
    """The facts of a video that inputs must agree on."""

    frames: int
    width: int
    height: int
    fps: Fraction
    codec: str
    pixel_format: str | None

    @property
    def size(self) -> str:
        """``WIDTHxHEIGHT``."""
        return f"{self.width}x{self.height}"

    @property
    def fps_text(self) -> str:
        """The rate as a short number: ``24``, ``29.97``."""
        return format_fps(self.fps)

    def __str__(self) -> str:
        return (
            f"{self.frames} frames, {self.size}, {self.fps_text} fps, {self.codec}"
            f" {self.pixel_format or ''}".rstrip()
        )


def format_fps(fps: Fraction) -> str:
    """``24`` for whole rates, else two decimals (``29.97``)."""
    return str(fps.numerator) if fps.denominator == 1 else f"{float(fps):.2f}"


def error_reason(exc: Exception) -> str:
    """Why a file could not be read, in FFmpeg's or the OS's own words.

    The errno and the file name that PyAV and the OS add are left out.
    """
    return getattr(exc, "strerror", None) or str(exc)


def probe_video(path: Path) -> VideoInfo:
    """Open a video and read its frame count, size, rate, codec and pixel format.

    Raises:
        ProbeError: it does not open, has no video stream, its codec cannot
            be decoded, it holds no frame, or its first frame does not decode.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ProbeError("has no video stream")
            stream = container.streams.video[0]
            codec = stream.codec_context
            if codec is None or not codec.name:
                raise ProbeError("its video codec cannot be decoded by FFmpeg")
            fps = stream.average_rate or stream.guessed_rate or stream.base_rate
            frames = sum(1 for packet in container.demux(stream) if packet.size)
            name, width, height, pix_fmt = codec.name, codec.width, codec.height, codec.pix_fmt
        if frames == 0:
            raise ProbeError("holds no frames")
        with av.open(str(path)) as container:
            first = next(container.decode(video=0), None)
    except ProbeError:
        raise
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ProbeError(f"not a readable video ({error_reason(exc)})") from exc
    if first is None:
        raise ProbeError("not a readable video (no frame decodes)")
    if not fps:
        raise ProbeError("has no frame rate")
    return VideoInfo(
        frames=frames,
        width=width or first.width,
        height=height or first.height,
        fps=Fraction(fps),
        codec=name,
        pixel_format=pix_fmt or first.format.name,
    )


class ProbeCache:
    """Probes each distinct content once, by its sha256 (thread-safe).

    A usable video's facts depend only on its content, so they are kept for
    the life of the cache: the jobs of a multirun, and the prompts of a
    manifest that share a video, probe it once. A failed probe is not kept
    (the next look probes again: the file may have been fixed, or the error
    was the file system's, not the content's).
    """

    def __init__(self) -> None:
        self._results: dict[str, VideoInfo] = {}
        self._lock = threading.Lock()

    def video(self, path: Path, sha256: str) -> VideoInfo:
        """The facts of the video with this content (probed on first use).

        Raises:
            ProbeError: the content is not a usable video.
        """
        with self._lock:
            found = self._results.get(sha256)
        if found is None:
            found = probe_video(path)
            logger.debug("probed video %s: %s", path, found)
            with self._lock:
                self._results[sha256] = found
        return found
