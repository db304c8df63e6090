"""`cosmos prepare`: a folder of PNG sequences -> one mp4 per modality.

Everything is checked before anything is written (see checks.py; the check
reads each frame's PNG header, the encoder decodes its pixels once). The
videos are encoded under temporary names in the output folder and put in
place as one set only when all of them are complete (see
:func:`publish_videos`), so a failure or Ctrl-C leaves no half-written video
and no mix of new and old videos. Existing videos are replaced only when
asked (``force``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmos_workflow.errors import ExecutionFailure, ValidationFailure
from cosmos_workflow.local_ai.checks import CheckedSequence, check_sequences
from cosmos_workflow.local_ai.encode import encode_png_sequence
from cosmos_workflow.local_ai.sequences import (
    MODALITIES,
    FolderScan,
    FrameSequence,
    scan_folder,
    unused_note,
)
from cosmos_workflow.utils.atomic import publish, temp_file_beside
from cosmos_workflow.utils.step_progress import NullStepProgress, StepProgress

logger = logging.getLogger(__name__)

DEFAULT_FPS = 24
MAX_FPS = 240
VIDEO_SUFFIX = ".mp4"
# The name ending of a replaced video while a new set is put in place.
BACKUP_SUFFIX = ".old"

# Renames a finished temporary file over its destination (atomic.publish).
PublishFile = Callable[[Path, Path], None]


@dataclass(frozen=True)
class PlannedVideo:
    """One video to make (or made)."""

    modality: str
    pattern: str
    frames: list[Path]
    first_frame: int
    last_frame: int
    width: int
    height: int
    fps: int
    output: Path
    replaces: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "modality": self.modality,
            "pattern": self.pattern,
            "frames": len(self.frames),
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "output": str(self.output),
            "replaces": self.replaces,
        }


@dataclass(frozen=True)
class SkippedSequence:
    """A sequence of a pass cosmos does not use."""

    pattern: str
    frames: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"pattern": self.pattern, "frames": self.frames, "reason": self.reason}


@dataclass(frozen=True)
class PrepareResult:
    """What `cosmos prepare` made, or would make on a dry run."""

    source: Path
    out: Path
    fps: int
    dry_run: bool
    videos: list[PlannedVideo]
    skipped: list[SkippedSequence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "source": str(self.source),
            "out": str(self.out),
            "fps": self.fps,
            "dry_run": self.dry_run,
            "videos": [video.to_dict() for video in self.videos],
            "skipped": [item.to_dict() for item in self.skipped],
            "notes": list(self.notes),
        }


def _skipped(sequence: FrameSequence) -> SkippedSequence:
    return SkippedSequence(
        sequence.pattern,
        len(sequence.frames),
        f"{sequence.stem or sequence.pattern} is not a modality cosmos uses "
        f"({', '.join(MODALITIES)})",
    )


def _planned(item: CheckedSequence, out: Path, fps: int) -> PlannedVideo:
    output = out / f"{item.modality}{VIDEO_SUFFIX}"
    return PlannedVideo(
        modality=item.modality,
        pattern=item.sequence.pattern,
        frames=[frame.path for frame in item.sequence.frames],
        first_frame=item.first,
        last_frame=item.last,
        width=item.width,
        height=item.height,
        fps=fps,
        output=output,
        replaces=output.exists(),
    )


def plan_preparation(
    folder: Path,
    out: Path | None,
    fps: int,
    force: bool,
    progress: StepProgress | None = None,
) -> PrepareResult:
    """Check a folder of PNG sequences and say which videos it gives. Writes nothing.

    Args:
        folder: The folder of PNG frames.
        out: Where the videos go (default: ``folder`` itself).
        fps: Frames per second of the videos.
        force: Replace videos that exist already.
        progress: Receives the check's progress (one step per frame).

    Raises:
        ValidationFailure: every problem found, in one message.
    """
    out = folder if out is None else out
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= MAX_FPS:
        raise ValidationFailure(f"--fps must be a whole number from 1 to {MAX_FPS}, got {fps!r}")
    if not folder.is_dir():
        raise ValidationFailure(f"not a folder: {folder}")
    if out.exists() and not out.is_dir():
        raise ValidationFailure(f"--out {out} is not a folder")
    scan = scan_folder(folder)
    check = check_sequences(folder, scan, progress)
    videos = [_planned(item, out, fps) for item in check.checked]
    problems = list(check.problems)
    if not force:
        problems += [
            f"{video.output} already exists; pass --force to replace it"
            for video in videos
            if video.replaces
        ]
    if problems:
        lines = "\n".join(f"  {line}" for line in problems)
        raise ValidationFailure(
            f"cannot prepare {folder} ({len(problems)} problem(s); nothing was written):\n{lines}"
        )
    made = {video.modality for video in videos}
    notes = []
    if "color" not in made:
        notes.append(
            "no color sequence: `cosmos create prompt` needs a color video (a manifest's "
            "prompt may use control videos alone)"
        )
    notes += [
        f"{out / (modality + VIDEO_SUFFIX)} is older than these frames (there is no "
        f"{modality} sequence now) and stays: `cosmos create prompt` would use it with the "
        "new videos; remove it if it is not of this shot"
        for modality in MODALITIES
        if modality not in made and (out / (modality + VIDEO_SUFFIX)).is_file()
    ]
    unused = _unused_note(folder, scan)
    notes += [unused] if unused else []
    skipped = [_skipped(sequence) for sequence in check.skipped]
    return PrepareResult(folder, out, fps, True, videos, skipped, notes)


def _unused_note(folder: Path, scan: FolderScan) -> str | None:
    """A note naming the folder's other files (text, videos, hidden files, sub-folders)."""
    used = {frame.path for sequence in scan.sequences for frame in sequence.frames}
    used.update(scan.unsupported, scan.other_images)
    used.update(folder / f"{modality}{VIDEO_SUFFIX}" for modality in MODALITIES)
    return unused_note(folder, used, "not PNG frames; sub-folders are not searched")


def prepare_inputs(
    folder: Path,
    out: Path | None = None,
    fps: int = DEFAULT_FPS,
    dry_run: bool = False,
    force: bool = False,
    progress: StepProgress | None = None,
) -> PrepareResult:
    """Turn a folder of PNG sequences into one H.264 mp4 per modality.

    Args:
        folder: The folder of PNG frames (see sequences.py for the names).
        out: Where ``<modality>.mp4`` go (default: ``folder``); created if needed.
        fps: Frames per second of the videos.
        dry_run: Check and plan only; write nothing.
        force: Replace videos that exist already.
        progress: Receives the progress of the check, then of the encoding
            (one step per frame each).

    Raises:
        ValidationFailure: bad input, or a frame whose image data does not
            decode (nothing was written).
        ExecutionFailure: the encoder failed, or the videos could not be put
            in place (nothing was written or replaced).
    """
    progress = progress or NullStepProgress()
    plan = plan_preparation(folder, out, fps, force, progress)
    if dry_run:
        return plan
    created = not plan.out.exists()
    plan.out.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    try:
        _encode_videos(plan, temps, progress)
        publish_videos(list(zip(temps, [video.output for video in plan.videos], strict=True)))
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        if created:
            _remove_if_empty(plan.out)
        raise
    return PrepareResult(plan.source, plan.out, fps, False, plan.videos, plan.skipped, plan.notes)


def _encode_videos(plan: PrepareResult, temps: list[Path], progress: StepProgress) -> None:
    """Encode each planned video to a new temporary file, appended to ``temps``."""
    frames = sum(len(video.frames) for video in plan.videos)
    progress.start(f"encoding {len(plan.videos)} video(s)", frames)
    try:
        for video in plan.videos:
            tmp = temp_file_beside(video.output)
            temps.append(tmp)
            logger.info("encoding %s: %d frames -> %s", video.modality, len(video.frames), tmp)
            encode_png_sequence(
                video.frames, tmp, plan.fps, (video.width, video.height), progress.advance
            )
    except (ValidationFailure, ExecutionFailure) as exc:
        raise type(exc)(f"cannot prepare {plan.source}: {exc} (nothing was written)") from exc
    finally:
        progress.finish()


def publish_videos(
    finished: Sequence[tuple[Path, Path]], publish_file: PublishFile = publish
) -> None:
    """Put finished videos in place as one set: all new ones, or (on failure) all old ones.

    The videos that will be replaced are first moved aside (to hidden
    ``.<name>.*.old`` files beside them), then each temporary file is
    published. If a step fails or is interrupted, the new videos are removed
    and the old ones moved back. The moved-aside files are deleted in every
    outcome, unless one cannot be moved back (the error then names it).
    The temporary files that were not published are the caller's to delete.

    Args:
        finished: (complete temporary file, its destination) pairs.
        publish_file: Flushes a temporary file and renames it over its destination.

    Raises:
        ExecutionFailure: a file could not be moved; the old videos were moved
            back (the message names any that could not be).
    """
    backups: dict[Path, Path] = {}
    published = False
    try:
        for _, output in finished:
            if output.exists():
                backups[output] = _backup_beside(output)
        for output, backup in backups.items():
            output.replace(backup)
        for tmp, output in finished:
            publish_file(tmp, output)
            if output in backups:
                shutil.copymode(backups[output], output)
        published = True
    except BaseException as exc:
        stranded = _roll_back(finished, backups)
        if isinstance(exc, OSError):
            raise ExecutionFailure(_publish_error(exc, stranded)) from exc
        raise
    finally:
        if published:
            for backup in backups.values():
                _remove(backup)


def _backup_beside(output: Path) -> Path:
    """A new, empty file beside ``output`` to move it to."""
    fd, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=BACKUP_SUFFIX, dir=output.parent)
    os.close(fd)
    return Path(name)


def _roll_back(finished: Sequence[tuple[Path, Path]], backups: dict[Path, Path]) -> list[Path]:
    """Undo :func:`publish_videos` from what the files show, wherever it stopped.

    A temporary file that is gone was published. An old video was moved
    aside if it is gone or its new video was published; otherwise its backup
    is still the empty file made for it.

    Returns:
        The moved-aside old videos that could not be moved back.
    """
    stranded = []
    for tmp, output in finished:
        backup = backups.get(output)
        published = not tmp.exists()
        if backup is None:
            if published:
                _remove(output)
        elif published or not output.exists():
            if not _restore(backup, output):
                stranded.append(backup)
        else:
            _remove(backup)
    return stranded


def _restore(backup: Path, output: Path) -> bool:
    """Move an old video back over ``output``; False (logged) if it cannot be."""
    try:
        backup.replace(output)
    except OSError as exc:
        logger.error("could not move the old %s back from %s: %s", output, backup, exc)
        return False
    return True


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.error("could not remove %s: %s", path, exc)


def _publish_error(exc: OSError, stranded: list[Path]) -> str:
    if not stranded:
        return f"could not put the new videos in place ({exc}); no video was replaced"
    kept = ", ".join(str(path) for path in stranded)
    return (
        f"could not put the new videos in place ({exc}), nor move every old video back: "
        f"the old videos are kept as {kept}"
    )


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        logger.debug("left %s in place (not empty)", folder)
