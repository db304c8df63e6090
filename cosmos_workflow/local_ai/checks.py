"""Input checks, before anything is encoded or any GPU time is spent.

Input videos (`cosmos create prompt` and the plan of every manifest, its dry
run too): every file is a usable video, and a prompt's videos agree in frame
count, resolution and fps. Each distinct file is probed once (see
:class:`~cosmos_workflow.local_ai.probe.ProbeCache`).

PNG sequences (`cosmos prepare`): numbering without gaps or duplicates, one
even size, and every modality alike. Each frame's header is read, not its
pixels (a PNG signature, a sound IHDR chunk, an IEND chunk at the end): the
pixels are decoded once, by the encoder.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cosmos_workflow.errors import Problem, ValidationFailure
from cosmos_workflow.local_ai.probe import ProbeCache, ProbeError, VideoInfo, error_reason
from cosmos_workflow.local_ai.sequences import (
    MODALITIES,
    SUPPORTED_NAMES,
    FolderScan,
    Frame,
    FrameSequence,
    format_ranges,
    missing_numbers,
)
from cosmos_workflow.manifest.specs import VIDEO_ROLE, InputVideo
from cosmos_workflow.utils.step_progress import NullStepProgress, StepProgress

# What `cosmos create prompt` calls the input video in a folder.
COLOR = "color"


def _describe(video: InputVideo) -> str:
    if video.role == VIDEO_ROLE:
        return f"the input video {video.shown}"
    return f"the {video.role} control video {video.shown}"


def _differences(info: VideoInfo, reference: VideoInfo) -> list[str]:
    found = []
    if info.frames != reference.frames:
        found.append(f"{info.frames} frames against {reference.frames} frames")
    if (info.width, info.height) != (reference.width, reference.height):
        found.append(f"{info.size} against {reference.size}")
    if info.fps != reference.fps:
        found.append(f"{info.fps_text} fps against {reference.fps_text} fps")
    return found


def check_prompt_videos(videos: Sequence[InputVideo], probes: ProbeCache) -> list[Problem]:
    """Problems of one prompt's input videos, each at the place the file is named.

    Every file must be a usable video. The first one (the input video, else
    the first control) is the reference: every other must have its frame
    count, resolution and fps.

    Args:
        videos: The prompt's files, the input video first.
        probes: Where probe results are kept.
    """
    problems = []
    infos: list[tuple[InputVideo, VideoInfo]] = []
    for video in videos:
        try:
            infos.append((video, probes.video(video.path, video.sha256)))
        except ProbeError as exc:
            problems.append(Problem(video.where, f"{video.shown}: {exc}"))
    if not infos or infos[0][0] is not videos[0]:
        return problems
    reference, expected = infos[0]
    for video, info in infos[1:]:
        differences = _differences(info, expected)
        if differences:
            problems.append(
                Problem(
                    video.where,
                    f"{video.shown} does not match {_describe(reference)}: "
                    f"{'; '.join(differences)} (a prompt's videos must agree in frame "
                    "count, resolution and fps)",
                )
            )
    return problems


def check_video_folder(
    folder: Path, files: dict[str, tuple[Path, str]], probes: ProbeCache
) -> None:
    """Refuse a `create prompt` folder whose videos are not usable together.

    Args:
        folder: The folder, as the user gave it.
        files: Role (``color`` or a control key) -> (file, sha256).
        probes: Where probe results are kept.

    Raises:
        ValidationFailure: every problem found, each naming its file.
    """
    ordered = sorted(files.items(), key=lambda item: item[0] != COLOR)
    videos = [
        InputVideo(role, str(path), VIDEO_ROLE if role == COLOR else role, path, sha256)
        for role, (path, sha256) in ordered
    ]
    problems = check_prompt_videos(videos, probes)
    if problems:
        lines = "\n".join(f"  {p.key_path}: {p.message}" for p in problems)
        raise ValidationFailure(
            f"the videos in {folder} cannot be used (nothing was stored):\n{lines}"
        )


# -- PNG sequences (`cosmos prepare`) -----------------------------------------------
# How many file names one problem lists before "and N more".
MAX_NAMES = 4
# The first 8 bytes of every PNG file, and the IEND chunk every PNG file ends with.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# How far from a PNG's end its IEND chunk may be (some tools append data after it).
PNG_TAIL = 4096
# The IHDR chunk that follows the signature: length, type, 13 bytes of fields, CRC.
_IHDR_CHUNK = struct.Struct(">I4s13sI")
_IHDR_FIELDS = struct.Struct(">IIBBBBB")
_IHDR_LENGTH = 13
# The bit depths each PNG colour type allows (PNG specification, IHDR).
_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_MAX_SIDE = 2**31 - 1
_DAMAGED_HEADER = "is not a readable PNG (its IHDR header is missing or damaged)"


@dataclass(frozen=True)
class PngHeader:
    """What a PNG's IHDR chunk says (no pixel is decoded)."""

    width: int
    height: int


def read_png_header(path: Path) -> PngHeader:
    """Read a PNG frame's signature, IHDR chunk and last chunk, not its pixels.

    This finds files of another format, damaged headers, and files cut short
    (e.g. a frame still being rendered). Damage inside the image data is
    found when the frame is decoded, by the encoder.

    Args:
        path: The frame.

    Raises:
        ProbeError: it is not a PNG, or its header or its end is missing or damaged.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(len(PNG_SIGNATURE) + _IHDR_CHUNK.size)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - PNG_TAIL))
            tail = handle.read()
    except OSError as exc:
        raise ProbeError(f"is not a readable PNG ({error_reason(exc)})") from exc
    if not head:
        raise ProbeError("is not a readable PNG (the file is empty)")
    if not head.startswith(PNG_SIGNATURE):
        raise ProbeError(
            "is not a PNG (it does not start with the PNG signature); convert it to PNG"
        )
    header = _parse_ihdr(head[len(PNG_SIGNATURE) :])
    if size < len(head) + len(PNG_END) or PNG_END not in tail:
        raise ProbeError(
            "is not a readable PNG (it does not end with an IEND chunk: cut short, or still "
            "being written?)"
        )
    return header


def _parse_ihdr(chunk: bytes) -> PngHeader:
    """The IHDR chunk's fields, checked against the PNG specification."""
    if len(chunk) < _IHDR_CHUNK.size:
        raise ProbeError(_DAMAGED_HEADER)
    length, kind, fields, crc = _IHDR_CHUNK.unpack(chunk)
    if length != _IHDR_LENGTH or kind != b"IHDR" or zlib.crc32(kind + fields) != crc:
        raise ProbeError(_DAMAGED_HEADER)
    width, height, depth, colour, compression, filtering, interlace = _IHDR_FIELDS.unpack(fields)
    if not (
        1 <= width <= _MAX_SIDE
        and 1 <= height <= _MAX_SIDE
        and depth in _BIT_DEPTHS.get(colour, ())
        and compression == 0
        and filtering == 0
        and interlace in (0, 1)
    ):
        raise ProbeError(_DAMAGED_HEADER)
    return PngHeader(width, height)


@dataclass(frozen=True)
class CheckedSequence:
    """A sequence that passed its own checks: numbered without gaps, one size."""

    sequence: FrameSequence
    modality: str
    first: int
    last: int
    width: int
    height: int

    @property
    def frames(self) -> int:
        """How many frames."""
        return self.last - self.first + 1

    @property
    def size(self) -> str:
        """``WIDTHxHEIGHT``."""
        return f"{self.width}x{self.height}"


@dataclass
class SequenceCheck:
    """The outcome of checking a folder's sequences.

    Attributes:
        checked: Sequences of the modalities cosmos uses, in modality order.
        skipped: Sequences of other passes (normal, albedo...), not checked.
        problems: One line per problem; empty when the folder can be prepared.
    """

    checked: list[CheckedSequence]
    skipped: list[FrameSequence]
    problems: list[str]


def _names(paths: Sequence[Path]) -> str:
    shown = ", ".join(path.name for path in paths[:MAX_NAMES])
    more = len(paths) - MAX_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def _folder_problems(folder: Path, scan: FolderScan) -> list[str]:
    problems = []
    if scan.other_images:
        problems.append(
            f"only PNG frames are supported: {_names(scan.other_images)} (convert them to PNG)"
        )
    if scan.unsupported:
        problems.append(
            f"not a frame sequence name: {_names(scan.unsupported)}; supported: "
            f"{SUPPORTED_NAMES}; rename them or move them out of the folder"
        )
    if not scan.sequences and not scan.unsupported and not scan.other_images:
        problems.append(f"no PNG frames in {folder} (supported names: {SUPPORTED_NAMES})")
    elif scan.sequences and all(s.modality is None for s in scan.sequences):
        found = ", ".join(s.pattern for s in scan.sequences)
        problems.append(
            f"no sequence of a modality cosmos uses ({', '.join(MODALITIES)}); found: {found}"
        )
    return problems


def _numbering_problems(sequence: FrameSequence) -> list[str]:
    problems = []
    by_number: dict[int, list[Frame]] = {}
    for frame in sequence.frames:
        by_number.setdefault(frame.number, []).append(frame)
    twice = [frames for frames in by_number.values() if len(frames) > 1]
    for frames in twice[:MAX_NAMES]:
        problems.append(
            f"{sequence.pattern}: frame {frames[0].number} appears {len(frames)} times: "
            f"{_names([frame.path for frame in frames])}"
        )
    numbers = sorted(by_number)
    gaps = missing_numbers(numbers)
    if gaps:
        before = {number: by_number[number][0] for number in numbers}
        files = []
        for start, end in gaps[:MAX_NAMES]:
            like = before[start - 1]
            names = [sequence.name_of(start, like)]
            if end > start:
                names.append(sequence.name_of(end, like))
            files.append("-".join(names))
        more = f" and {len(gaps) - MAX_NAMES} more gaps" if len(gaps) > MAX_NAMES else ""
        problems.append(
            f"{sequence.pattern}: missing frame(s) {format_ranges(gaps[:MAX_NAMES])} "
            f"({', '.join(files)}){more}"
        )
    return problems


def _image_problems(
    sequence: FrameSequence, on_frame: Callable[[], None]
) -> tuple[list[str], tuple[int, int] | None]:
    """Problems of the frames' headers, and the size of the sequence if it has one."""
    unreadable: list[str] = []
    sizes: dict[tuple[int, int], list[Path]] = {}
    for frame in sequence.frames:
        try:
            header = read_png_header(frame.path)
        except ProbeError as exc:
            unreadable.append(f"{frame.path.name} {exc}")
        else:
            sizes.setdefault((header.width, header.height), []).append(frame.path)
        on_frame()
    problems = [f"{sequence.pattern}: {line}" for line in unreadable[:MAX_NAMES]]
    if len(unreadable) > MAX_NAMES:
        problems.append(f"{sequence.pattern}: and {len(unreadable) - MAX_NAMES} more unreadable")
    if len(sizes) > 1:
        ordered = sorted(sizes.items(), key=lambda item: -len(item[1]))
        main, *others = ordered
        detail = ", ".join(f"{w}x{h} ({_names(paths)})" for (w, h), paths in others)
        problems.append(
            f"{sequence.pattern}: frames differ in size: {main[0][0]}x{main[0][1]} "
            f"({len(main[1])} frames), {detail}"
        )
        return problems, None
    if not sizes:
        return problems, None
    (width, height) = next(iter(sizes))
    if width % 2 or height % 2:
        problems.append(
            f"{sequence.pattern}: frames are {width}x{height}; H.264 (yuv420p) needs an even "
            "width and height: render or crop to an even size"
        )
        return problems, None
    return problems, (width, height)


def _across_problems(checked: list[CheckedSequence]) -> list[str]:
    problems = []
    if len({item.frames for item in checked}) > 1:
        counts = ", ".join(
            f"{item.modality} {item.frames} ({item.first}-{item.last})" for item in checked
        )
        problems.append(f"frame counts differ: {counts} (every modality needs the same frames)")
    elif len({item.first for item in checked}) > 1:
        ranges = ", ".join(f"{item.modality} {item.first}-{item.last}" for item in checked)
        problems.append(f"frame numbers do not line up: {ranges}")
    if len({(item.width, item.height) for item in checked}) > 1:
        sizes = ", ".join(f"{item.modality} {item.size}" for item in checked)
        problems.append(
            f"frame sizes differ: {sizes} (every modality must have the same resolution)"
        )
    return problems


def _one_per_modality(scan: FolderScan) -> tuple[list[tuple[str, FrameSequence]], list[str]]:
    """The sequence of each modality found, and a problem per modality found twice."""
    chosen: list[tuple[str, FrameSequence]] = []
    problems = []
    for modality in MODALITIES:
        found = [s for s in scan.sequences if s.modality == modality]
        if len(found) > 1:
            problems.append(
                f"{len(found)} sequences for {modality}: {', '.join(s.pattern for s in found)}"
                " (keep one per modality; move the others out of the folder)"
            )
        elif found:
            chosen.append((modality, found[0]))
    return chosen, problems


def _check_frames(
    chosen: list[tuple[str, FrameSequence]], progress: StepProgress
) -> tuple[list[CheckedSequence], list[str]]:
    """Check each sequence's numbering and frame headers, one progress step per frame."""
    checked: list[CheckedSequence] = []
    problems: list[str] = []
    if not chosen:
        return checked, problems
    total = sum(len(sequence.frames) for _, sequence in chosen)
    progress.start(f"checking {total} frame(s)", total)
    try:
        for modality, sequence in chosen:
            numbering = _numbering_problems(sequence)
            images, size = _image_problems(sequence, progress.advance)
            problems += numbering + images
            if not numbering and size is not None:
                numbers = [frame.number for frame in sequence.frames]
                checked.append(CheckedSequence(sequence, modality, numbers[0], numbers[-1], *size))
    finally:
        progress.finish()
    return checked, problems


def check_sequences(
    folder: Path, scan: FolderScan, progress: StepProgress | None = None
) -> SequenceCheck:
    """Check a folder's sequences before anything is encoded.

    Every file of a modality's sequence must be a PNG (its header is read,
    see :func:`read_png_header`) of one even size, numbered without gaps or
    duplicates; every modality must have the same frame numbers and size;
    one sequence per modality. Sequences of other passes are skipped (not
    checked).

    Args:
        folder: The folder (for messages).
        scan: What :func:`~cosmos_workflow.local_ai.sequences.scan_folder` found.
        progress: Receives one step per frame checked.
    """
    problems = _folder_problems(folder, scan)
    skipped = [s for s in scan.sequences if s.modality is None]
    chosen, twice = _one_per_modality(scan)
    checked, found = _check_frames(chosen, progress or NullStepProgress())
    problems += twice + found
    if not twice and len(checked) == len(chosen) > 1:
        problems += _across_problems(checked)
    return SequenceCheck(checked, skipped, problems)
