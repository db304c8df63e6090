"""What a simulated output shows: SIMULATED, its parameters, and a picture that changes with them.

The simulated model runs as a real subprocess; its videos are decoded with
PyAV (and played by Chromium), and the text in them is read back from the
decoded pixels with the program's 5x7 font.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from conftest import Project
from test_simulated_model import make_real_video, run_sim, write_json

from cosmos_workflow.execution.programs.h264_pcm import write_mp4
from cosmos_workflow.execution.programs.sim_frames import FONT, GLYPH_ADVANCE

av = pytest.importorskip("av")

WIDTH, HEIGHT = 256, 144
GLYPHS = {code: char for char, code in FONT.items()}
# Where the text is: the banner, the lines under it (twice the font size), the footer.
BANNER = (6, 2)
FIRST_LINE, LINE_HEIGHT = 22, 16
FOOTER = (4, 131)
# Where only the picture is: under the banner and above the footer, around the text.
PICTURE_ROWS = range(18, 128)
TEXT_BOX = (176, 76)  # the text lines are left of x and above y
# Visibly different: this share of the picture's pixels differ by more than 10 levels.
VISIBLE_SHARE = 0.1
ORIGIN = "http://simulated.test"


def plane_rows(plane: Any, width: int, height: int) -> list[bytes]:
    """The rows of a decoded plane, without their padding."""
    data = bytes(plane)
    return [data[r * plane.line_size : r * plane.line_size + width] for r in range(height)]


class Frame:
    """A decoded frame: its luma rows (to read the text) and its RGB picture."""

    def __init__(self, frame: Any) -> None:
        self.width, self.height = frame.width, frame.height
        self.rows = plane_rows(frame.planes[0], frame.width, frame.height)
        rgb = frame.reformat(format="rgb24")
        self.rgb = plane_rows(rgb.planes[0], 3 * frame.width, frame.height)

    def read(self, x: int, y: int, scale: int, right_aligned: bool = False) -> str:
        """The text at (x, y) in the program's font, up to the first cell that is no glyph."""
        text = ""
        step = GLYPH_ADVANCE * scale
        while 0 <= x and x + 5 * scale <= self.width:
            code = self.glyph_code(x, y, scale)
            if code not in GLYPHS:
                break
            text = GLYPHS[code] + text if right_aligned else text + GLYPHS[code]
            x += -step if right_aligned else step
        return text.strip()

    def glyph_code(self, x: int, y: int, scale: int) -> str:
        """The 7 rows of 5 bits (bright samples) at (x, y), in the font's hex form."""
        bits = [
            sum(16 >> c for c in range(5) if self.rows[y + r * scale][x + c * scale] > 180)
            for r in range(7)
        ]
        return "".join(f"{row:02X}" for row in bits)

    def lines(self) -> list[str]:
        """The text lines under the banner."""
        found = []
        for number in range(6):
            line = self.read(6, FIRST_LINE + LINE_HEIGHT * number, 2)
            if not line:
                break
            found.append(line)
        return found

    def picture(self) -> list[bytes]:
        """The RGB of each pixel of the picture (where there is no text)."""
        return [
            self.rgb[r][3 * x : 3 * x + 3]
            for r in PICTURE_ROWS
            for x in range(self.width)
            if x >= TEXT_BOX[0] or r >= TEXT_BOX[1]
        ]


def decode(video: Path) -> list[Frame]:
    """Every frame of ``video`` (or a picture file), decoded with PyAV."""
    with av.open(str(video)) as container:
        return [Frame(frame) for frame in container.decode(video=0)]


def changed_share(a: list[bytes], b: list[bytes]) -> float:
    """The share of pixels of which a colour differs by more than 10 levels."""
    changed = sum(
        1 for p, q in zip(a, b, strict=True) if max(map(abs, map(int.__sub__, p, q))) > 10
    )
    return changed / len(a)


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:6].upper()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a real 5-frame input video and a depth control video."""
    folder = tmp_path_factory.mktemp("pictures")
    make_real_video(folder / "color.mp4", frames=5)
    make_real_video(folder / "depth.mp4", frames=5)
    return folder


def simulate(work: Path, name: str, seed: int = 1, depth: Any = 0.3, **spec: Any) -> Path:
    """One simulated video of color.mp4 with a depth control; returns it."""
    spec = {
        "input_video_path": "color.mp4",
        "prompt": "a rainy street",
        "depth": {"control_weight": depth, "input_control": "depth.mp4"},
        **spec,
    }
    write_json(work / f"{name}.json", spec)
    args = ["--controlnet_specs", f"{name}.json", "--seed", str(seed), "--video_save_name", name]
    result = run_sim(args, work)
    assert result.returncode == 0, result.stderr
    return work / "outputs" / f"{name}.mp4"


def test_every_frame_says_simulated_and_shows_its_parameters(work: Path) -> None:
    frames = decode(simulate(work, "base", seed=7))
    assert len(frames) == 5  # as many as the input video
    for index, frame in enumerate(frames):
        assert (frame.width, frame.height) == (WIDTH, HEIGHT)
        assert frame.read(*BANNER, 2) == "SIMULATED"
        assert frame.lines() == ["SEED 7", "DEPTH 0.30", "PROMPT " + prompt_hash("a rainy street")]
        assert frame.read(*FOOTER, 1) == "35 STEPS GUIDANCE 5 SIGMA 70"
        assert frame.read(WIDTH - 4 - GLYPH_ADVANCE, FOOTER[1], 1, right_aligned=True) == (
            f"{index + 1}/5"
        )


def test_only_the_bottom_moves_from_frame_to_frame(work: Path) -> None:
    first, *_, last = decode(simulate(work, "moving"))
    changed = {r for r in range(HEIGHT) if first.rows[r] != last.rows[r]}
    assert changed and min(changed) >= FOOTER[1]  # the frame counter and the progress bar


@pytest.mark.parametrize(
    ("name", "change", "line"),
    [
        ("seed", {"seed": 2}, "SEED 2"),
        ("weight", {"depth": 0.8}, "DEPTH 0.80"),
        ("prompt", {"prompt": "a misty forest"}, "PROMPT " + prompt_hash("a misty forest")),
    ],
)
def test_each_parameter_changes_its_own_line_and_the_picture(
    work: Path, name: str, change: dict[str, Any], line: str
) -> None:
    base = decode(simulate(work, f"base_{name}"))[0]
    changed = decode(simulate(work, f"changed_{name}", **change))[0]
    before, after = base.lines(), changed.lines()
    assert line in after and line not in before
    assert [a for a, b in zip(before, after, strict=True) if a != b] == [
        b for b in before if b not in after
    ]
    assert len([b for b in after if b not in before]) == 1  # only its own line changed
    if name != "prompt":  # the prompt is only a hash: its picture is the input's
        assert changed_share(base.picture(), changed.picture()) > VISIBLE_SHARE


def test_a_larger_weight_shows_more_of_the_control_pattern(work: Path) -> None:
    pictures = [decode(simulate(work, f"w{w}", depth=w))[0].picture() for w in (0, 0.5, 1)]
    half, whole = changed_share(*pictures[:2]), changed_share(pictures[0], pictures[2])
    assert half > VISIBLE_SHARE and whole > half + VISIBLE_SHARE


def test_the_same_run_gives_the_same_bytes_in_any_folder(work: Path, tmp_path: Path) -> None:
    first = simulate(work, "again", seed=5).read_bytes()
    for name in ("color.mp4", "depth.mp4"):
        (tmp_path / name).write_bytes((work / name).read_bytes())
    assert simulate(tmp_path, "again", seed=5).read_bytes() == first
    assert simulate(work, "again", seed=6).read_bytes() != first


def test_a_weight_map_shows_as_map(work: Path) -> None:
    (work / "map.pt").write_bytes(b"weights")
    lines = decode(simulate(work, "map", depth="map.pt"))[0].lines()
    assert lines == ["SEED 1", "DEPTH MAP", "PROMPT " + prompt_hash("a rainy street")]


def test_many_controls_fit_the_picture(work: Path) -> None:
    spec = {
        "vis": {"control_weight": 0.2},
        "edge": {"control_weight": 0.6, "input_control": "color.mp4"},
        "keypoint": {"control_weight": 1.5},
        "seg": {"control_weight": 0.1, "input_control": "color.mp4"},
    }
    lines = decode(simulate(work, "many", **spec))[0].lines()
    hashed = "PROMPT " + prompt_hash("a rainy street")
    assert lines == ["SEED 1", "DEPTH 0.30", "VIS 0.20", "EDGE 0.60", "+2 MORE", hashed]


def test_the_demo_thumbnails_differ_along_each_axis(demo_done: Project) -> None:
    (sweep,) = demo_done.cosmos_json("list", "sweeps")
    shown = demo_done.cosmos_json("show", sweep["id"])
    thumbs = demo_done.outputs / "sweeps" / sweep["id"] / "thumbs"
    pictures = {}
    for run in shown["runs"]:
        (thumb,) = thumbs.glob(f"{run['id']}-*.jpg")
        (frame,) = decode(thumb)
        params = run["params"]
        key = (params["prompt"], params["model.weights.depth"], params["model.seed"])
        pictures[key] = frame.picture()
    assert len(pictures) == 12
    for (prompt, depth, seed), picture in pictures.items():
        neighbours = [
            ("street" if prompt == "forest" else "forest", depth, seed),
            (prompt, depth, 3 - seed),
            *[(prompt, other, seed) for other in (0.3, 0.5, 0.8) if other != depth],
        ]
        for other in neighbours:
            shared = changed_share(picture, pictures[other])
            assert shared > VISIBLE_SHARE, f"{other} looks like {prompt, depth, seed}"


def test_chromium_plays_a_simulated_video_to_its_end(work: Path, browser: Any) -> None:
    video = simulate(work, "played", seed=3).read_bytes()
    page = browser.new_page()
    # One origin for the page and the video, so the canvas may read the frame back.
    files = {"/": ("text/html", b'<video muted src="/v.mp4"></video><canvas></canvas>')}
    files["/v.mp4"] = ("video/mp4", video)
    page.route(
        f"{ORIGIN}/**",
        lambda route: route.fulfill(
            status=200,
            content_type=files[route.request.url[len(ORIGIN) :]][0],
            body=files[route.request.url[len(ORIGIN) :]][1],
        ),
    )
    try:
        page.goto(f"{ORIGIN}/")
        shown = page.evaluate(
            """() => new Promise(done => {
                const v = document.querySelector('video');
                const c = document.querySelector('canvas');
                let first = null;
                setTimeout(() => done({timeout: true, state: v.readyState}), 15000);
                v.onerror = () => done({error: v.error && v.error.code});
                v.onended = () => done({width: v.videoWidth, ended: true, pixel: first});
                const start = () => {
                    c.width = v.videoWidth; c.height = v.videoHeight;
                    const g = c.getContext('2d');
                    g.drawImage(v, 0, 0);
                    first = Array.from(g.getImageData(250, 8, 1, 1).data);
                    v.play();
                };
                if (v.readyState >= 2) start(); else v.onloadeddata = start;
            })"""
        )
    finally:
        page.close()
    assert shown.get("ended") is True, shown
    assert shown["width"] == WIDTH
    red, green, blue, _ = shown["pixel"]  # the SIMULATED banner
    assert red > 140 and green < 70 and blue < 70, shown["pixel"]


def test_the_writer_shows_exactly_the_samples_at_any_even_size() -> None:
    width, height, padded = 40, 22, (48, 32)  # not whole macroblocks: cropped
    luma = padded[0] * padded[1]
    frames = [
        (
            bytes(
                (x * 5 + y + i * 40) % 200 + 20 for y in range(padded[1]) for x in range(padded[0])
            ),
            bytes([90 + i]) * (luma // 4),
            bytes([160]) * (luma // 4),
        )
        for i in range(3)
    ]
    with av.open(io.BytesIO(write_mp4(frames, width, height, 24))) as container:
        decoded = list(container.decode(video=0))
    assert [(f.width, f.height) for f in decoded] == [(width, height)] * 3
    for frame, (y, u, _) in zip(decoded, frames, strict=True):
        rows = plane_rows(frame.planes[0], width, height)
        assert rows == [y[r * padded[0] : r * padded[0] + width] for r in range(height)]
        assert plane_rows(frame.planes[1], width // 2, height // 2)[0] == u[: width // 2]
    with pytest.raises(ValueError, match="even"):
        write_mp4(frames, 41, 22, 24)
    with pytest.raises(ValueError, match="at least one frame"):
        write_mp4([], width, height, 24)


def region(frame: Frame, rows: range, columns: range) -> list[bytes]:
    """The RGB of each pixel of a part of the picture."""
    return [frame.rgb[r][3 * x : 3 * x + 3] for r in rows for x in columns]


def corner(frame: Frame) -> list[bytes]:
    """The picture's bottom right corner, which a control of any weight above 0.2 covers."""
    return region(frame, range(112, 128), range(232, WIDTH))


def test_a_weight_of_zero_shows_nothing_of_its_control_and_more_weight_shows_it_stronger(
    work: Path,
) -> None:
    alone = decode(simulate(work, "alone", depth=0))[0]
    edge = {"edge": {"control_weight": 0, "input_control": "color.mp4"}}
    with_zero = decode(simulate(work, "zero_edge", depth=0, **edge))[0]
    # Under the text (which has one line more, "EDGE 0.00"), the same picture.
    below = (range(TEXT_BOX[1] + LINE_HEIGHT, PICTURE_ROWS.stop), range(WIDTH))
    assert changed_share(region(alone, *below), region(with_zero, *below)) == 0
    weak, strong = (decode(simulate(work, f"corner{w}", depth=w))[0] for w in (0.25, 1))
    # Both cover the corner; the stronger one shows its pattern more there.
    assert changed_share(corner(alone), corner(weak)) > 0.5
    assert changed_share(corner(weak), corner(strong)) > 0.5
