"""`cosmos prepare`: a folder of PNG sequences -> one mp4 per modality.

Everything is checked before anything is written (see checks.py). The videos
are encoded under temporary names in the output folder and renamed into
place only when all of them are complete, so a failure or Ctrl-C leaves no
half-written or partial set of videos. Existing videos are replaced only
when asked (``force``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.local_ai.checks import CheckedSequence, check_sequences
from cosmos_workflow.local_ai.encode import (
    encode_png_sequence,
)
from cosmos_workflow.local_ai.sequences import MODALITIES, FrameSequence, scan_folder
from cosmos_workflow.services.step_progress import NullStepProgress, StepProgress
from cosmos_workflow.utils.atomic import publish, temp_file_beside

logger = logging.getLogger(__name__)

DEFAULT_FPS = 24
MAX_FPS = 240
VIDEO_SUFFIX = ".mp4"


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


def plan_preparation(folder: Path, out: Path | None, fps: int, force: bool) -> PrepareResult:
    """Check a folder of PNG sequences and say which videos it gives. Writes nothing.

    Args:
        folder: The folder of PNG frames.
        out: Where the videos go (default: ``folder`` itself).
        fps: Frames per second of the videos.
        force: Replace videos that exist already.

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
    check = check_sequences(folder, scan_folder(folder))
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
    notes = []
    if "color" not in {video.modality for video in videos}:
        notes.append(
            "no color sequence: `cosmos create prompt` needs a color video (a manifest's "
            "prompt may use control videos alone)"
        )
    skipped = [_skipped(sequence) for sequence in check.skipped]
    return PrepareResult(folder, out, fps, True, videos, skipped, notes)


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
        progress: Receives the encoding progress (one step per frame).

    Raises:
        ValidationFailure: bad input (nothing was written).
        ExecutionFailure: the encoder failed (nothing was written).
    """
    plan = plan_preparation(folder, out, fps, force)
    if dry_run:
        return plan
    progress = progress or NullStepProgress()
    created = not plan.out.exists()
    plan.out.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[Path, Path]] = []
    frames = sum(len(video.frames) for video in plan.videos)
    progress.start(f"encoding {len(plan.videos)} video(s)", frames)
    try:
        for video in plan.videos:
            tmp = temp_file_beside(video.output)
            temps.append((tmp, video.output))
            logger.info("encoding %s: %d frames -> %s", video.modality, len(video.frames), tmp)
            encode_png_sequence(
                video.frames,
                tmp,
                fps,
                (video.width, video.height),
                progress.advance,
            )
        for tmp, output in temps:
            publish(tmp, output)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        if created:
            _remove_if_empty(plan.out)
        raise
    finally:
        progress.finish()
    return PrepareResult(plan.source, plan.out, fps, False, plan.videos, plan.skipped, plan.notes)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        logger.debug("left %s in place (not empty)", folder)
