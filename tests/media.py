"""Real media for tests, made with PyAV: PNG frames, tiny H.264 videos, and what they hold.

Frame ``i`` of a generated sequence or video is a flat colour whose red level
is ``level(i)``, so a test can tell from a decoded video which frames went in
and in which order.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av


def level(index: int) -> int:
    """The red level of frame ``index`` (distinct for the first 24 frames, well apart)."""
    return 16 + (index * 9) % 224


def rgb_frame(width: int, height: int, red: int) -> av.VideoFrame:
    """A flat rgb24 frame."""
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    row = bytes([red, 90, 160]) * width + bytes(plane.line_size - 3 * width)
    plane.update(row * height)
    return frame


def png_bytes(width: int, height: int, red: int, pix_fmt: str = "rgb24") -> bytes:
    """A PNG image (rgb24, or e.g. gray16be like a depth pass) encoded by FFmpeg."""
    frame = rgb_frame(width, height, red)
    if pix_fmt != "rgb24":
        frame = frame.reformat(format=pix_fmt)
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, pix_fmt
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])


def noise_png_bytes(width: int, height: int, seed: int) -> bytes:
    """A PNG of seeded noise (slow to encode: for tests that need a long encoding)."""
    rng = random.Random(seed)
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    padding = bytes(plane.line_size - 3 * width)
    plane.update(b"".join(rng.randbytes(3 * width) + padding for _ in range(height)))
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "rgb24"
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])


def write_sequence(
    folder: Path,
    name: str,
    numbers: Iterable[int],
    size: tuple[int, int] = (64, 48),
    pix_fmt: str = "rgb24",
) -> list[Path]:
    """Write PNG frames named ``name.format(number)``, e.g. ``"color.{:04d}.png"``.

    Frame number n gets the red level of ``level(n - first number)``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    numbers = list(numbers)
    written = []
    for number in numbers:
        path = folder / name.format(number)
        path.write_bytes(png_bytes(*size, level(number - numbers[0]), pix_fmt))
        written.append(path)
    return written


def write_video(
    path: Path, frames: int = 24, size: tuple[int, int] = (64, 48), fps: int = 24
) -> Path:
    """A tiny H.264 mp4 (yuv420p)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            frame = rgb_frame(*size, level(index)).reformat(format="yuv420p")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_audio_only(path: Path) -> Path:
    """An mp4 with one AAC audio stream and no video stream."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=48000)
        for index in range(10):
            frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
            frame.planes[0].update(bytes(frame.planes[0].buffer_size))
            frame.sample_rate = 48000
            frame.pts = index * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@dataclass(frozen=True)
class Decoded:
    """What a video holds, read by decoding every frame."""

    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: Fraction
    reds: list[int]

    @property
    def frames(self) -> int:
        return len(self.reds)


def decode(path: Path) -> Decoded:
    """Decode a whole video: codec, size, rate, and each frame's mean red level."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        reds = []
        for frame in container.decode(stream):
            rgb = frame.reformat(format="rgb24")
            plane = rgb.planes[0]
            data = bytes(plane)
            row = plane.line_size
            values = [data[y * row + 3 * x] for y in range(rgb.height) for x in range(rgb.width)]
            reds.append(round(sum(values) / len(values)))
            first = frame
        return Decoded(
            codec=stream.codec_context.name,
            pix_fmt=first.format.name,
            width=first.width,
            height=first.height,
            fps=stream.average_rate,
            reds=reds,
        )
