"""The pictures of the simulated model: what it was asked, drawn so that a person sees it.

No neural network runs in the simulated model, so its videos say so: every
frame shows SIMULATED in a red banner and the parameters that matter when
comparing runs (seed, each control's weight, a short hash of the prompt),
and the picture itself changes with them, so that a sweep's grid differs
along each axis:

- the input video picks the background (a gradient and a disc, from its
  sha256), so different inputs look different;
- each control blends its own pattern over it with the control's weight
  (depth: grey terraces, bright near the bottom; edge: a grid of lines;
  seg: flat regions; ...), so a larger weight shows more of the pattern;
- the seed picks a tint and a block-noise pattern over everything.

A progress bar and a frame counter at the bottom move from frame to frame.
Everything is integer arithmetic on the inputs: the same card gives the same
samples. Standard library only: shipped beside simulated_model.py.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

WIDTH = 256
HEIGHT = 144
# Luma and chroma of the drawing colours (BT.601, limited range).
WHITE = 235
BLACK = 16
NEUTRAL = 128
BANNER_RGB = (176, 24, 32)
BANNER_HEIGHT = 18
LINE_HEIGHT = 16
FOOTER_TOP = HEIGHT - 14
BAR_HEIGHT = 3
TINT_PERCENT = 30
# A weight of 1 blends this much of a control's pattern in (the input always shows).
PATTERN_SHARE = 0.8
NOISE_AMPLITUDE = 14

# A 5x7 font: each glyph is 7 rows of 5 bits (the high bit leftmost), in hex.
# fmt: off
FONT = {
    "A": "0E11111F111111", "B": "1E11111E11111E", "C": "0E11101010110E",
    "D": "1E11111111111E", "E": "1F10101E10101F", "F": "1F10101E101010",
    "G": "0E11101711110F", "H": "1111111F111111", "I": "0E04040404040E",
    "J": "0702020202120C", "K": "11121418141211", "L": "1010101010101F",
    "M": "111B1515111111", "N": "11111915131111", "O": "0E11111111110E",
    "P": "1E11111E101010", "Q": "0E11111115120D", "R": "1E11111E141211",
    "S": "0F10100E01011E", "T": "1F040404040404", "U": "1111111111110E",
    "V": "11111111110A04", "W": "1111111515150A", "X": "11110A040A1111",
    "Y": "11110A04040404", "Z": "1F01020408101F", "0": "0E11131519110E",
    "1": "040C040404040E", "2": "0E11010204081F", "3": "1F02040201110E",
    "4": "02060A121F0202", "5": "1F101E0101110E", "6": "0608101E11110E",
    "7": "1F010204080808", "8": "0E11110E11110E", "9": "0E11110F01020C",
    " ": "00000000000000", ".": "00000000000C0C", ",": "00000000000C04",
    "-": "0000001F000000", "+": "0004041F040400", "/": "01010204081010",
    ":": "000C0C000C0C00", "=": "00001F001F0000", "_": "0000000000001F",
    "?": "0E110102040004", "#": "0A0A1F0A1F0A0A", "(": "02040808080402",
    ")": "08040202020408", "%": "18190204081303", "!": "04040404040004",
    "'": "04040800000000", "*": "0004150E150400",
}
# fmt: on
GLYPH_ADVANCE = 6


@dataclass(frozen=True)
class Card:
    """What one simulated video shows.

    Attributes:
        lines: Text lines under the SIMULATED banner (drawn twice the font size).
        footer: One small text line at the bottom.
        seed: Picks the tint and the noise pattern.
        weights: (control key, weight from 0 to 1) pairs, each blending its pattern in.
        source: Bytes naming the input (its sha256): pick the background.
        frames: Number of frames.
    """

    lines: tuple[str, ...]
    footer: str
    seed: int
    weights: tuple[tuple[str, float], ...]
    source: bytes
    frames: int


def yuv(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    """BT.601 limited-range Y, Cb, Cr of an RGB colour (0-255 each)."""
    r, g, b = (_clamp(rgb[0]), _clamp(rgb[1]), _clamp(rgb[2]))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


def _clamp(value: float) -> float:
    """``value`` held within 0..255."""
    return 0.0 if value < 0.0 else 255.0 if value > 255.0 else value


def control_pattern(key: str, fx: float, fy: float, cx: int, cy: int) -> tuple[float, ...]:
    """The RGB of control ``key``'s pattern at a point (fractions and 2x2-cell indices)."""
    if key == "depth":
        band = int((0.4 * fx + 0.6 * fy) * 10)
        level = (60 + 195 * band / 10) * (0.25 if band % 2 else 1)
        return (level, level, level)
    if key == "edge":
        line = cx % 12 == 0 or cy % 12 == 0
        return (250, 250, 250) if line else (10, 10, 10)
    if key == "seg":
        region = (int(fx * 3) + 3 * int(fy * 2)) % 6
        return ((230, 60, 60), (60, 200, 80), (60, 90, 230), (230, 200, 40), (180, 60, 200))[
            region % 5
        ]
    if key == "vis":
        level = 128 + 100 * math.sin(fx * 6 * math.pi)
        return (level, level, level)
    if key == "keypoint":
        dot = (cx % 16 - 8) ** 2 + (cy % 16 - 8) ** 2 <= 5
        return (255, 255, 60) if dot else (20, 20, 40)
    if key == "upscale":
        return (220, 220, 220) if (cx // 2 + cy // 2) % 2 else (40, 40, 40)
    if key == "hdmap":
        return (240, 240, 90) if (cx + cy) // 4 % 3 == 0 else (30, 30, 30)
    level = 230 if (cx * 7 + cy * 13) % 17 == 0 else 20
    return (level, level, level)


def base_planes(card: Card) -> tuple[bytearray, bytearray, bytearray]:
    """The still picture (without the text), in 4:2:0 planes, one colour per 2x2 cell.

    The input's picture is a vertical gradient and a disc, both from its
    sha256; each control blends its pattern in; the seed's tint and block
    noise go over everything. What depends on the row or the column only is
    worked out once (the simulated model draws every output it writes).
    """
    cells_x, cells_y = WIDTH // 2, HEIGHT // 2
    source = card.source
    top, bottom = source[0:3], source[3:6]
    disc = [60 + c * 0.75 for c in source[6:9]]
    centre_x, centre_y = 0.25 + source[9] / 512, 0.3 + source[10] / 640
    # The patterns take the input's colour, so different inputs differ at any weight.
    hue = [0.35 + 0.65 * c / max(1, *bottom) for c in bottom]
    # A control covers the share ``weight`` of the picture (from the bottom
    # right) and shows more strongly the larger it is.
    blends = [
        (key, 1 - weight, PATTERN_SHARE * (0.3 + 0.7 * weight)) for key, weight in card.weights
    ]
    tint = colorsys.hsv_to_rgb((card.seed * 0.618034) % 1.0, 0.85, 1.0)
    tint_r, tint_g, tint_b = (255 * t * TINT_PERCENT / 100 for t in tint)
    rng = random.Random(card.seed)  # noqa: S311 (a picture's noise, not a secret)
    noise = [rng.randint(-NOISE_AMPLITUDE, NOISE_AMPLITUDE) for _ in range(cells_x * cells_y // 16)]
    columns = [cx / cells_x for cx in range(cells_x)]
    disc_x = [(fx - centre_x) ** 2 * 3 for fx in columns]
    y_plane, u_plane, v_plane = bytearray(WIDTH * HEIGHT), bytearray(), bytearray()
    for cy in range(cells_y):
        fy = cy / cells_y
        gradient = [40 + (t * (1 - fy) + b * fy) * 0.7 for t, b in zip(top, bottom, strict=True)]
        disc_y = (fy - centre_y) ** 2
        noise_row = (cy // 4) * (cells_x // 4)
        lumas = bytearray(WIDTH)
        for cx, fx in enumerate(columns):
            r, g, b = disc if disc_x[cx] + disc_y <= 0.04 else gradient
            for key, uncovered, share in blends:
                if 0.4 * fx + 0.6 * fy >= uncovered:
                    pr, pg, pb = control_pattern(key, fx, fy, cx, cy)
                    r += (pr * hue[0] - r) * share
                    g += (pg * hue[1] - g) * share
                    b += (pb * hue[2] - b) * share
            shift = noise[noise_row + cx // 4]
            luma, cb, cr = yuv(
                (
                    r * (100 - TINT_PERCENT) / 100 + tint_r + shift,
                    g * (100 - TINT_PERCENT) / 100 + tint_g + shift,
                    b * (100 - TINT_PERCENT) / 100 + tint_b + shift,
                )
            )
            lumas[2 * cx] = lumas[2 * cx + 1] = luma
            u_plane.append(cb)
            v_plane.append(cr)
        at = 2 * cy * WIDTH
        y_plane[at : at + WIDTH] = y_plane[at + WIDTH : at + 2 * WIDTH] = lumas
    return y_plane, u_plane, v_plane


def fill(planes: tuple[bytearray, ...], box: tuple[int, int, int, int], colour: tuple) -> None:
    """Paint the even-aligned box (x, y, w, h) in one Y, Cb, Cr colour."""
    x, y, w, h = box
    luma, cb, cr = colour
    for row in range(y, y + h):
        planes[0][row * WIDTH + x : row * WIDTH + x + w] = bytes([luma]) * w
    for row in range(y // 2, (y + h) // 2):
        at = row * (WIDTH // 2) + x // 2
        planes[1][at : at + w // 2] = bytes([cb]) * (w // 2)
        planes[2][at : at + w // 2] = bytes([cr]) * (w // 2)


def darken(planes: tuple[bytearray, ...], box: tuple[int, int, int, int]) -> None:
    """Make the box (x, y, w, h, even-aligned) dark and grey, so text on it reads well."""
    x, y, w, h = box
    for row in range(y, y + h):
        at = row * WIDTH + x
        planes[0][at : at + w] = bytes(BLACK + (s - BLACK) // 3 for s in planes[0][at : at + w])
    for plane in planes[1:]:
        for row in range(y // 2, (y + h) // 2):
            at = row * (WIDTH // 2) + x // 2
            part = plane[at : at + w // 2]
            plane[at : at + w // 2] = bytes(NEUTRAL + (s - NEUTRAL) // 3 for s in part)


def text(planes: tuple[bytearray, ...], x: int, y: int, words: str, scale: int) -> None:
    """Draw ``words`` in white at (x, y) (even), each font pixel ``scale`` x ``scale`` samples."""
    for index, char in enumerate(words.upper()):
        glyph = FONT.get(char, FONT["?"])
        left = x + index * GLYPH_ADVANCE * scale
        for row in range(7):
            bits = int(glyph[2 * row : 2 * row + 2], 16)
            for column in range(5):
                if bits & (0x10 >> column):
                    gx, gy = left + column * scale, y + row * scale
                    if gx + scale <= WIDTH and gy + scale <= HEIGHT:
                        for dy in range(scale):
                            at = (gy + dy) * WIDTH + gx
                            planes[0][at : at + scale] = bytes([WHITE]) * scale
                        if scale % 2 == 0:
                            fill(planes, (gx, gy, scale, scale), (WHITE, NEUTRAL, NEUTRAL))


def still(card: Card) -> tuple[bytearray, bytearray, bytearray]:
    """The picture every frame shares: background, patterns, tint, banner and text."""
    planes = base_planes(card)
    fill(planes, (0, 0, WIDTH, BANNER_HEIGHT), yuv(BANNER_RGB))
    text(planes, 6, 2, "SIMULATED", 2)
    if card.lines:
        longest = max(len(line) for line in card.lines)
        box_width = min(WIDTH, 2 * GLYPH_ADVANCE * longest + 10)
        darken(planes, (0, BANNER_HEIGHT, box_width, LINE_HEIGHT * len(card.lines) + 4))
        for number, line in enumerate(card.lines):
            text(planes, 6, BANNER_HEIGHT + 4 + LINE_HEIGHT * number, line, 2)
    darken(planes, (0, FOOTER_TOP, WIDTH, HEIGHT - FOOTER_TOP))
    text(planes, 4, FOOTER_TOP + 1, card.footer, 1)
    return planes


def frames(card: Card) -> Iterator[tuple[bytes, bytes, bytes]]:
    """Every frame's planes: the still picture, a progress bar and the frame number."""
    shared = still(card)
    for index in range(card.frames):
        planes = tuple(bytearray(p) for p in shared)
        done = WIDTH * (index + 1) // card.frames // 2 * 2
        fill(planes, (0, HEIGHT - BAR_HEIGHT - 1, done, BAR_HEIGHT + 1), (WHITE, NEUTRAL, NEUTRAL))
        counter = f"{index + 1}/{card.frames}"
        text(planes, WIDTH - 4 - GLYPH_ADVANCE * len(counter), FOOTER_TOP + 1, counter, 1)
        yield bytes(planes[0]), bytes(planes[1]), bytes(planes[2])


def prompt_hash(prompt: str) -> str:
    """Six hex digits of the prompt's sha256: enough to tell prompts apart at a glance."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:6].upper()
