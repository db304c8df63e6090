"""Find a prompt's input videos in a folder by their file names."""

from __future__ import annotations

from pathlib import Path

from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.manifest.specs import CONTROL_KEYS

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm"})
ROLES = ("color", *CONTROL_KEYS)
# Other words for a role in file names (and PNG sequences): segmentation.mp4 is seg.
ROLE_ALIASES = {"segmentation": "seg"}


def role_named(word: str) -> str | None:
    """The role a (lower-case) word of a file name means, or None."""
    return word if word in ROLES else ROLE_ALIASES.get(word)


def role_of(path: Path) -> str | None:
    """The role a video file's name gives it (color or a control key), or None."""
    stem = path.stem.lower()
    for word in (*ROLES, *ROLE_ALIASES):
        if stem == word or any(stem.endswith(f"{sep}{word}") for sep in ("_", "-", ".")):
            return role_named(word)
    return None


def detect_videos(folder: Path) -> dict[str, Path]:
    """Map role (color or a control key) -> video file in ``folder``.

    A file's role is its name without suffix, or its last ``_``/``-``/``.``
    separated word: ``color.mp4``, ``shot1_depth.mp4``, ``seg.mov``;
    ``segmentation`` is another name of ``seg``.

    Raises:
        ValidationFailure: not a folder, no color video, two files for a role,
            or a video whose path is not UTF-8.
    """
    if not folder.is_dir():
        raise ValidationFailure(f"not a folder: {folder}")
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            role = role_of(path)
            if role is not None:
                found.setdefault(role, []).append(path)
    clashes = {role: paths for role, paths in found.items() if len(paths) > 1}
    if clashes:
        detail = "; ".join(f"{r}: {', '.join(p.name for p in ps)}" for r, ps in clashes.items())
        raise ValidationFailure(f"more than one video for a role in {folder}: {detail}")
    if "color" not in found:
        names = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise ValidationFailure(
            f"no color video in {folder} (expected a file named color.mp4 or *_color.mp4; "
            f"found: {names})"
        )
    videos = {role: paths[0] for role, paths in found.items()}
    for path in videos.values():
        _refuse_undecodable(path.resolve())
    return videos


def _refuse_undecodable(path: Path) -> None:
    """Refuse a path that is not UTF-8 (bytes the file system kept as they were).

    Run folders, checksum files and the database keep names as UTF-8 text.
    """
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationFailure(
            f"{str(path)!r}: its name, or a folder's above it, is not UTF-8; rename it "
            "(run folders, checksum files and the database keep names as UTF-8)"
        ) from exc
