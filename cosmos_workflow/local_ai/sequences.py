"""Find PNG frame sequences in a folder by their file names (and name the other files).

Supported names (the frame number last, before ``.png``):

    <modality>.<digits>.png     Houdini style: color.0001.png, depth.0001.png
    <modality>_<digits>.png     color_0001.png, depth_1.png
    frame_<digits>.png          frame_000.png: the color modality
    <digits>.png                0001.png: the color modality

``<modality>`` may carry a prefix, like the video names `cosmos create
prompt` reads: ``shot1.depth.0001.png`` and ``shot1_depth_0001.png`` are
depth frames (the modality is the last ``.``/``_``/``-`` separated word, any
case; ``segmentation`` is seg). Zero-padding may differ between modalities (frames line up by
number). A sequence whose modality is not one cosmos uses (normal, albedo...)
is found but not a modality: the caller skips it.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cosmos_workflow.local_ai.video_dir import ROLES, role_named
from cosmos_workflow.utils.words import counted

MODALITIES: tuple[str, ...] = ROLES
# The whole name before the number that means "the color frames".
COLOR_STEMS = frozenset({"", "frame"})
PNG = ".png"
# Other still-image formats: found frames of these are refused, not ignored.
OTHER_IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".exr", ".tif", ".tiff", ".bmp", ".tga", ".webp", ".dpx", ".hdr"}
)
SUPPORTED_NAMES = (
    "<modality>.<digits>.png (color.0001.png), <modality>_<digits>.png (depth_0001.png), "
    "frame_<digits>.png (frame_000.png) or <digits>.png"
)
_FRAME_NAME = re.compile(r"(?:(?P<stem>.+)(?P<sep>[._]))?(?P<digits>\d+)\.png", re.IGNORECASE)
_WORDS = re.compile(r"[._-]")
# How many names a note on unused files lists before "and N more".
SHOWN_NAMES = 10


@dataclass(frozen=True)
class Frame:
    """One numbered frame file."""

    number: int
    digits: int
    path: Path


@dataclass
class FrameSequence:
    """The frames of one name pattern, e.g. ``color.####.png``.

    Attributes:
        stem: The name before the separator and number (``color``, ``shot1.depth``, ``""``).
        sep: The separator before the number (``.``, ``_`` or ``""``).
        modality: The modality cosmos uses (color, vis, edge, depth, seg), or None.
        frames: The frames, by number (duplicate numbers kept, in name order).
    """

    stem: str
    sep: str
    modality: str | None
    frames: list[Frame] = field(default_factory=list)

    @property
    def pattern(self) -> str:
        """The name pattern with one ``#`` per digit (the padding most frames use)."""
        widths = Counter(frame.digits for frame in self.frames)
        width = max(widths, key=lambda digits: (widths[digits], digits), default=1)
        return f"{self.stem}{self.sep}{'#' * width}{PNG}"

    def name_of(self, number: int, like: Frame) -> str:
        """The file name frame ``number`` would have, padded like ``like``."""
        return f"{self.stem}{self.sep}{number:0{like.digits}d}{PNG}"


@dataclass
class FolderScan:
    """What a folder holds.

    Attributes:
        sequences: Every sequence found, in name order.
        unsupported: PNG files whose name is not a supported pattern.
        other_images: Files of another still-image format (jpg, exr...).
    """

    sequences: list[FrameSequence]
    unsupported: list[Path]
    other_images: list[Path]


def modality_of(stem: str) -> str | None:
    """The modality a name stem means, or None (not one cosmos uses).

    ``segmentation`` (any case) is the seg modality, as in video names.
    """
    lowered = stem.lower()
    if lowered in COLOR_STEMS:
        return "color"
    return role_named(_WORDS.split(lowered)[-1])


def scan_folder(folder: Path) -> FolderScan:
    """Group the PNG files of ``folder`` into sequences by name pattern.

    Files that are neither PNG nor another image format (videos, text, hidden
    files) and sub-folders are ignored. Patterns are compared without case.
    """
    groups: dict[tuple[str, str], FrameSequence] = {}
    unsupported: list[Path] = []
    other_images: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix in OTHER_IMAGE_SUFFIXES:
            other_images.append(path)
            continue
        if suffix != PNG:
            continue
        found = _FRAME_NAME.fullmatch(path.name)
        if found is None:
            unsupported.append(path)
            continue
        stem, sep, digits = found.group("stem") or "", found.group("sep") or "", found["digits"]
        key = (stem.lower(), sep)
        if key not in groups:
            groups[key] = FrameSequence(stem, sep, modality_of(stem))
        groups[key].frames.append(Frame(int(digits), len(digits), path))
    for sequence in groups.values():
        sequence.frames.sort(key=lambda frame: (frame.number, frame.path.name))
    return FolderScan(list(groups.values()), unsupported, other_images)


def missing_numbers(numbers: list[int]) -> list[tuple[int, int]]:
    """The gaps in sorted frame numbers, as inclusive ranges: [1, 2, 5, 9] -> [(3, 4), (6, 8)]."""
    gaps = []
    for before, after in itertools.pairwise(numbers):
        if after > before + 1:
            gaps.append((before + 1, after - 1))
    return gaps


def format_ranges(ranges: list[tuple[int, int]]) -> str:
    """``7, 9-11``."""
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def unused_note(folder: Path, used: set[Path], why: str) -> str | None:
    """A note naming the entries of ``folder`` that are not in ``used`` (None: there are none).

    Every entry counts, hidden files and sub-folders (``name/``) too: a file
    that is not used is said, never passed over in silence. Frames are
    named by their pattern (``color.####.png (24 frames)``).

    Args:
        folder: The input folder.
        used: The files the command uses (or makes).
        why: Why the others are not used, for the note.
    """
    unused = [path for path in sorted(folder.iterdir()) if path not in used]
    if not unused:
        return None
    names = _names_of(unused)
    shown = ", ".join(names[:SHOWN_NAMES])
    if len(names) > SHOWN_NAMES:
        shown += f" and {len(names) - SHOWN_NAMES} more"
    folders = sum(1 for path in unused if path.is_dir())
    counts = [
        counted(count, noun)
        for count, noun in ((len(unused) - folders, "file"), (folders, "folder"))
        if count
    ]
    return f"{' and '.join(counts)} in {folder} not used ({why}): {shown}"


def _names_of(paths: list[Path]) -> list[str]:
    """How a note names ``paths``: frames by pattern, folders with a slash, odd names quoted."""
    items: list[str | FrameSequence] = []
    groups: dict[tuple[str, str], FrameSequence] = {}
    for path in paths:
        found = _FRAME_NAME.fullmatch(path.name) if path.is_file() else None
        if found is None:
            name = f"{path.name}/" if path.is_dir() else path.name
            items.append(name if name.isprintable() else repr(name))
            continue
        stem, sep, digits = found.group("stem") or "", found.group("sep") or "", found["digits"]
        if (stem.lower(), sep) not in groups:
            groups[stem.lower(), sep] = FrameSequence(stem, sep, None)
            items.append(groups[stem.lower(), sep])
        groups[stem.lower(), sep].frames.append(Frame(int(digits), len(digits), path))
    return [
        item if isinstance(item, str) else f"{item.pattern} ({counted(len(item.frames), 'frame')})"
        for item in items
    ]
