"""Encode a PNG sequence into an H.264 mp4 (yuv420p) with PyAV (imported to encode).

The encoder runs on one thread with bit-exact muxing, so the same frames
give the same bytes on every machine (the same prompt id, since inputs are
identified by their sha256). Each frame is decoded here and only here (the
checks before read its header), so damaged image data is found here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from cosmos_workflow.errors import ExecutionFailure, ValidationFailure
from cosmos_workflow.local_ai.probe import error_reason

if TYPE_CHECKING:
    import av

CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"
# Near-lossless for a model input; "threads 1" keeps the output byte-identical everywhere.
CODEC_OPTIONS = {"crf": "18", "preset": "medium", "threads": "1"}
MUXER_OPTIONS = {"fflags": "+bitexact"}


def _read_frame(path: Path, size: tuple[int, int]) -> av.VideoFrame:
    """Decode one PNG frame; it must have the size its header was checked at."""
    import av

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0), None)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ValidationFailure(f"{path} is not a readable PNG ({error_reason(exc)})") from exc
    if frame is None:
        raise ValidationFailure(f"{path} is not a readable PNG (no image decodes)")
    if (frame.width, frame.height) != size:
        raise ValidationFailure(f"{path} changed while the videos were being made")
    return frame


def encode_png_sequence(
    frames: Sequence[Path],
    dest: Path,
    fps: int,
    size: tuple[int, int],
    on_frame: Callable[[], None],
) -> None:
    """Write ``frames`` (in order) as an H.264 mp4 at ``fps`` to ``dest``.

    Args:
        frames: The PNG files, one per frame, their headers already checked.
        dest: The file to write (a temporary name; the caller renames it).
        fps: Frames per second.
        size: (width, height) of every frame; both even.
        on_frame: Called after each frame is encoded.

    Raises:
        ValidationFailure: a frame does not decode, or changed since it was checked.
        ExecutionFailure: the encoder failed.
    """
    import av
    from av.video.reformatter import ColorRange

    width, height = size
    try:
        with av.open(str(dest), mode="w", format="mp4", options=MUXER_OPTIONS) as container:
            stream = container.add_stream(CODEC, rate=fps)
            stream.width, stream.height = width, height
            stream.pix_fmt = PIXEL_FORMAT
            stream.codec_context.options = dict(CODEC_OPTIONS)
            for index, path in enumerate(frames):
                # PNG pixels are full range; H.264 players expect limited range.
                frame = _read_frame(path, size).reformat(
                    format=PIXEL_FORMAT, src_color_range="JPEG", dst_color_range="MPEG"
                )
                frame.color_range = ColorRange.MPEG
                # Frame i at i/fps (a decoded PNG carries its demuxer's time base).
                frame.time_base = Fraction(1, fps)
                frame.pts = index
                for packet in stream.encode(frame):
                    container.mux(packet)
                on_frame()
            for packet in stream.encode(None):
                container.mux(packet)
    except av.FFmpegError as exc:
        raise ExecutionFailure(f"encoding {dest.name} failed: {exc}") from exc
