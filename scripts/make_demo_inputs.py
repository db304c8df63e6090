#!/usr/bin/env python3
"""Generate the demo's small input videos with PyAV, deterministically.

For each scene (street, forest) this writes ``color.mp4`` and ``depth.mp4``
under ``inputs/demo/SCENE/``: H.264, yuv420p, 160x88, 24 fps, 24 frames, a few
KB each. Content is seeded per scene: a vertical colour gradient with a moving
shape. The depth video is grayscale (near = bright): a ground plane that gets
brighter towards the bottom of the frame, and the moving shape brighter still.

Usage:
    python scripts/make_demo_inputs.py [--out DIR]   (default: REPO/inputs/demo)
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av

WIDTH = 160
HEIGHT = 88
FPS = 24
FRAMES = 24
CRF = "30"
MAX_BYTES = 20_000
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "inputs" / "demo"

Color = tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    """Seeded description of one demo scene.

    Attributes:
        name: Folder name.
        top: Gradient colour at the top row.
        bottom: Gradient colour at the bottom row.
        shape: Colour of the moving shape.
        round_shape: Draw a disc (True) or a box (False).
        radius: Half-size of the shape in pixels.
        start: Start position (x, y) of the shape's centre.
        velocity: Movement per frame (dx, dy) in pixels.
        horizon: Row where the depth ground plane starts.
        shape_depth: Gray level of the shape in the depth video.
    """

    name: str
    top: Color
    bottom: Color
    shape: Color
    round_shape: bool
    radius: int
    start: tuple[float, float]
    velocity: tuple[float, float]
    horizon: int
    shape_depth: int


def _jitter(rng: random.Random, base: Color, spread: int) -> Color:
    """Return base shifted by a seeded random amount per channel.

    Args:
        rng: Seeded random generator.
        base: Base colour.
        spread: Maximum shift per channel.

    Returns:
        The clamped colour.
    """
    r, g, b = (max(0, min(255, c + rng.randint(-spread, spread))) for c in base)
    return (r, g, b)


def make_scene(name: str, seed: int) -> Scene:
    """Build a scene whose details are drawn from a seeded generator.

    Args:
        name: "street" or "forest".
        seed: Seed for the scene's random details.

    Returns:
        The scene.

    Raises:
        ValueError: For an unknown scene name.
    """
    rng = random.Random(seed)  # noqa: S311 - deterministic content, not security
    if name == "street":
        return Scene(
            name=name,
            top=_jitter(rng, (120, 160, 220), 20),
            bottom=_jitter(rng, (70, 70, 75), 10),
            shape=_jitter(rng, (200, 40, 40), 30),
            round_shape=False,
            radius=rng.randint(9, 12),
            start=(-12.0, 60.0 + rng.uniform(-4, 4)),
            velocity=(rng.uniform(7.0, 8.0), rng.uniform(-0.3, 0.3)),
            horizon=40,
            shape_depth=235,
        )
    if name == "forest":
        return Scene(
            name=name,
            top=_jitter(rng, (150, 200, 140), 20),
            bottom=_jitter(rng, (30, 80, 30), 15),
            shape=_jitter(rng, (240, 220, 60), 20),
            round_shape=True,
            radius=rng.randint(7, 10),
            start=(170.0, 30.0 + rng.uniform(-4, 4)),
            velocity=(-rng.uniform(6.5, 7.5), rng.uniform(0.8, 1.2)),
            horizon=30,
            shape_depth=220,
        )
    raise ValueError(f"unknown scene {name!r}")


def _inside(scene: Scene, frame: int, x: int, y: int) -> bool:
    """Tell whether pixel (x, y) lies inside the moving shape at a frame.

    Args:
        scene: The scene.
        frame: Frame index.
        x: Column.
        y: Row.

    Returns:
        True if the pixel is covered by the shape.
    """
    cx = scene.start[0] + scene.velocity[0] * frame
    cy = scene.start[1] + scene.velocity[1] * frame
    dx, dy = x - cx, y - cy
    if scene.round_shape:
        return dx * dx + dy * dy <= scene.radius * scene.radius
    return abs(dx) <= scene.radius * 1.6 and abs(dy) <= scene.radius * 0.7


def color_pixel(scene: Scene, frame: int, x: int, y: int) -> Color:
    """Colour of one pixel of the colour video.

    Args:
        scene: The scene.
        frame: Frame index.
        x: Column.
        y: Row.

    Returns:
        RGB colour.
    """
    if _inside(scene, frame, x, y):
        return scene.shape
    t = y / (HEIGHT - 1)
    shade = 0.9 + 0.1 * (x / (WIDTH - 1))
    r, g, b = (
        int((a + (b_ - a) * t) * shade) for a, b_ in zip(scene.top, scene.bottom, strict=True)
    )
    return (r, g, b)


def depth_pixel(scene: Scene, frame: int, x: int, y: int) -> Color:
    """Gray level of one pixel of the depth video (near = bright).

    Args:
        scene: The scene.
        frame: Frame index.
        x: Column.
        y: Row.

    Returns:
        RGB colour with equal channels.
    """
    if _inside(scene, frame, x, y):
        level = scene.shape_depth
    elif y < scene.horizon:
        level = 16
    else:
        level = 40 + int(160 * (y - scene.horizon) / (HEIGHT - 1 - scene.horizon))
    return (level, level, level)


def rgb_frames(scene: Scene, depth: bool) -> Iterator[av.VideoFrame]:
    """Yield the frames of one video as yuv420p VideoFrames.

    Args:
        scene: The scene.
        depth: Render the depth video instead of the colour video.

    Yields:
        One frame per time step.
    """
    pixel = depth_pixel if depth else color_pixel
    for index in range(FRAMES):
        frame = av.VideoFrame(WIDTH, HEIGHT, "rgb24")
        plane = frame.planes[0]
        padding = bytes(plane.line_size - WIDTH * 3)
        rows = bytearray()
        for y in range(HEIGHT):
            for x in range(WIDTH):
                rows.extend(pixel(scene, index, x, y))
            rows.extend(padding)
        plane.update(bytes(rows))
        frame.pts = index
        yield frame.reformat(format="yuv420p")


def write_video(path: Path, frames: Iterator[av.VideoFrame]) -> None:
    """Encode frames to an H.264 MP4 file deterministically.

    Args:
        path: Output file; its folder is created.
        frames: yuv420p frames.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    with av.open(str(temp), mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = WIDTH
        stream.height = HEIGHT
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = {"crf": CRF, "preset": "veryslow", "threads": "1"}
        for frame in frames:
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    temp.replace(path)


def check_video(path: Path) -> int:
    """Decode a written video and check its format.

    Args:
        path: The MP4 file.

    Returns:
        The number of decoded frames.

    Raises:
        RuntimeError: If the file does not match the expected format.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        frames = list(container.decode(stream))
    first = frames[0]
    problems = []
    if codec != "h264":
        problems.append(f"codec {codec}")
    if (first.width, first.height) != (WIDTH, HEIGHT):
        problems.append(f"size {first.width}x{first.height}")
    if first.format.name != "yuv420p":
        problems.append(f"pixel format {first.format.name}")
    if len(frames) != FRAMES:
        problems.append(f"{len(frames)} frames")
    if path.stat().st_size >= MAX_BYTES:
        problems.append(f"{path.stat().st_size} bytes")
    if path.read_bytes()[4:8] != b"ftyp":
        problems.append("no ftyp box first")
    if problems:
        raise RuntimeError(f"{path}: unexpected {', '.join(problems)}")
    return len(frames)


def main() -> None:
    """Generate and check all demo videos."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args()
    for seed, name in enumerate(("street", "forest"), start=1):
        scene = make_scene(name, seed)
        for kind in ("color", "depth"):
            path = args.out / name / f"{kind}.mp4"
            write_video(path, rgb_frames(scene, depth=kind == "depth"))
            frames = check_video(path)
            print(f"{path}: {path.stat().st_size} bytes, {frames} frames")


if __name__ == "__main__":
    main()
