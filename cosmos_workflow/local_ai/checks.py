"""Input checks, before anything is encoded or any GPU time is spent.

Input videos (`cosmos create prompt` and the plan of every manifest, its dry
run too): every file is a usable video, and a prompt's videos agree in frame
count, resolution and fps. Each distinct file is probed once (see
:class:`~cosmos_workflow.local_ai.probe.ProbeCache`).

PNG sequences (`cosmos prepare`): readable PNGs, numbering without gaps or
duplicates, one even size, and every modality alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cosmos_workflow.errors import Problem, ValidationFailure
from cosmos_workflow.local_ai.probe import (
    ImageInfo,
    ProbeCache,
    ProbeError,
    VideoInfo,
    probe_image,
)
from cosmos_workflow.local_ai.sequences import (
    MODALITIES,
    SUPPORTED_NAMES,
    FolderScan,
    Frame,
    FrameSequence,
    format_ranges,
    missing_numbers,
)

# The role of a prompt's input (color) video; controls are named by their key.
VIDEO_ROLE = "video"
# What `cosmos create prompt` calls the input video in a folder.
COLOR = "color"


@dataclass(frozen=True)
class InputVideo:
    """One input file of a prompt, as the user named it.

    Attributes:
        where: Where it is named: a manifest key path, or the file for `create prompt`.
        shown: The path as the user wrote it (for messages).
        role: ``video`` (the input video) or a control key (depth, seg, ...).
        path: The file.
        sha256: Its checksum (the probe cache key).
    """

    where: str
    shown: str
    role: str
    path: Path
    sha256: str


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
    sequence: FrameSequence, probe: Callable[[Path], ImageInfo]
) -> tuple[list[str], tuple[int, int] | None]:
    """Problems of the frames' content, and the size of the sequence if it has one."""
    unreadable: list[str] = []
    sizes: dict[tuple[int, int], list[Path]] = {}
    for frame in sequence.frames:
        try:
            info = probe(frame.path)
        except ProbeError as exc:
            unreadable.append(f"{frame.path.name} {exc}")
            continue
        sizes.setdefault((info.width, info.height), []).append(frame.path)
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


def check_sequences(
    folder: Path, scan: FolderScan, probe: Callable[[Path], ImageInfo] = probe_image
) -> SequenceCheck:
    """Check a folder's sequences before anything is encoded.

    Every file of a modality's sequence must be a readable PNG of one even
    size, numbered without gaps or duplicates; every modality must have the
    same frame numbers and size; one sequence per modality. Sequences of
    other passes are skipped (not checked).

    Args:
        folder: The folder (for messages).
        scan: What :func:`~cosmos_workflow.local_ai.sequences.scan_folder` found.
        probe: Reads one PNG frame (PyAV).
    """
    problems = _folder_problems(folder, scan)
    skipped = [s for s in scan.sequences if s.modality is None]
    checked: list[CheckedSequence] = []
    all_fine = True
    for modality in MODALITIES:
        found = [s for s in scan.sequences if s.modality == modality]
        if len(found) > 1:
            problems.append(
                f"{len(found)} sequences for {modality}: {', '.join(s.pattern for s in found)}"
                " (keep one per modality; move the others out of the folder)"
            )
            all_fine = False
            continue
        if not found:
            continue
        sequence = found[0]
        numbering = _numbering_problems(sequence)
        images, size = _image_problems(sequence, probe)
        problems += numbering + images
        if numbering or size is None:
            all_fine = False
            continue
        numbers = [frame.number for frame in sequence.frames]
        checked.append(CheckedSequence(sequence, modality, numbers[0], numbers[-1], *size))
    if all_fine and len(checked) > 1:
        problems += _across_problems(checked)
    return SequenceCheck(checked, skipped, problems)
