"""`cosmos verify`: the database against the run folders of this output tree.

A succeeded run must have its folder, a result.json that says so, and
every output that result.json lists, with the recorded size and the
sha256 that outputs.sha256 records (the two files list the same outputs).
A run folder whose run is not in the database is orphaned. Runs made in
another output tree that shares the database are not checked here.

With ``fix``, damaged runs are marked failed so that they run again (a
failed run is never cached); no file is deleted or changed, and orphaned
folders are left in place (they may be outputs kept on purpose by `cosmos
delete`; a sweep that plans the same run adopts them if they verify).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosmos_workflow.outputs.store import (
    OUTPUTS_SUMS,
    RESULT_FILE,
    OutputStore,
    own_file_name,
    read_sums,
)
from cosmos_workflow.utils.hashing import sha256_file
from cosmos_workflow.utils.step_progress import NullStepProgress, StepProgress

if TYPE_CHECKING:
    from cosmos_workflow.database.repository import DataRepository

FIX_NOTE = (
    "found by cosmos verify --fix: {problems}; it runs again the next time a sweep or "
    "cosmos inference asks for it"
)


@dataclass
class DamagedRun:
    """A succeeded run whose folder does not hold what it recorded."""

    id: str
    output_dir: Path
    problems: list[str]
    fixed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "output_dir": str(self.output_dir),
            "problems": list(self.problems),
            "fixed": self.fixed,
        }


@dataclass
class VerifyReport:
    """What `cosmos verify` found (and, with ``fix``, did).

    Attributes:
        runs_dir: The folder of the run folders.
        checked: Succeeded runs whose folders were checked.
        elsewhere: Succeeded runs made in another output tree (not checked).
        damaged: Runs whose folder is missing, incomplete or changed.
        orphaned: Entries of ``runs_dir`` that are not runs in the database.
        fixed: The damaged runs marked failed (``fix``).
    """

    runs_dir: Path
    checked: int = 0
    elsewhere: int = 0
    damaged: list[DamagedRun] = field(default_factory=list)
    orphaned: list[Path] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong now: no damaged run left unmarked, no orphaned folder."""
        return not self.orphaned and all(run.fixed for run in self.damaged)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "ok": self.ok,
            "runs_dir": str(self.runs_dir),
            "checked": self.checked,
            "elsewhere": self.elsewhere,
            "damaged": [run.to_dict() for run in self.damaged],
            "orphaned": [{"name": path.name, "path": str(path)} for path in self.orphaned],
            "fixed": list(self.fixed),
        }


def verify_tree(
    repository: DataRepository | None,
    store: OutputStore,
    fix: bool = False,
    progress: StepProgress | None = None,
) -> VerifyReport:
    """Check every succeeded run's folder and find orphaned folders.

    Args:
        repository: The database (None: there is none; every folder is orphaned).
        store: The output tree.
        fix: Mark the damaged runs failed, so that they run again.
        progress: Receives one step per run checked.
    """
    report = VerifyReport(store.runs_dir)
    # The folders first: a run is stored before its folder is made, so a
    # folder listed now whose run is not stored after is orphaned.
    folders = sorted(store.runs_dir.iterdir()) if store.runs_dir.is_dir() else []
    if repository is None:
        report.orphaned = folders
        return report
    stored = repository.stored_run_ids([folder.name for folder in folders])
    report.orphaned = [folder for folder in folders if folder.name not in stored]
    here = []
    for run_id, output_dir in repository.succeeded_run_dirs():
        if output_dir is None or _inside(Path(output_dir), store.root):
            here.append(run_id)
        else:
            report.elsewhere += 1
    progress = progress or NullStepProgress()
    progress.start(f"verifying {len(here)} run folder(s)", len(here))
    try:
        for run_id in here:
            problems = run_folder_problems(store, run_id)
            if problems:
                report.damaged.append(DamagedRun(run_id, store.run_dir(run_id), problems))
            progress.advance()
    finally:
        progress.finish()
    report.checked = len(here)
    if fix and report.damaged:
        notes = {
            run.id: FIX_NOTE.format(problems="; ".join(run.problems)) for run in report.damaged
        }
        report.fixed = repository.mark_damaged(notes)
        for run in report.damaged:
            run.fixed = run.id in report.fixed
    return report


def succeeded_run_problems(
    store: OutputStore, run_id: str, output_dir: str | None, content: bool
) -> list[str] | None:
    """What is wrong with a succeeded run's folder, if it is in this output tree.

    Args:
        store: This output tree.
        run_id: The run.
        output_dir: Where the database says its folder is.
        content: Hash the outputs too (else sizes only: cheap, for lists).

    Returns:
        The problems (none: an empty list), or None for a run made in another output tree.
    """
    if output_dir is not None and not _inside(Path(output_dir), store.root):
        return None
    return run_folder_problems(store, run_id, content)


def run_folder_problems(store: OutputStore, run_id: str, content: bool = True) -> list[str]:
    """What is wrong with a succeeded run's folder (nothing: an empty list).

    ``content``: hash each output against outputs.sha256 (else sizes only).
    """
    folder = store.run_dir(run_id)
    if not folder.is_dir():
        return ["its run folder is missing"]
    result, problem = _result(folder / RESULT_FILE)
    if result is None:
        return [problem]
    problems = []
    if result.get("status") != "succeeded":
        problems.append(f"{RESULT_FILE} says {result.get('status')!r}, the database succeeded")
    sizes = result.get("outputs")
    if not isinstance(sizes, dict) or not sizes:
        return [*problems, f"{RESULT_FILE} lists no outputs"]
    digests: dict[str, str] | None = None
    try:
        digests = {name: digest for digest, name in read_sums(folder / OUTPUTS_SUMS)}
    except FileNotFoundError:
        problems.append(f"{OUTPUTS_SUMS} is missing")
    except (OSError, ValueError) as exc:
        problems.append(f"{OUTPUTS_SUMS} cannot be read: {exc}")
    for name in sorted({*sizes, *(digests or {})}):
        problems += _output_problems(folder, name, sizes.get(name), digests, content)
    return problems


def _result(path: Path) -> tuple[dict[str, Any] | None, str]:
    """result.json, or None and why not."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{RESULT_FILE} is missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{RESULT_FILE} cannot be read: {exc}"
    if not isinstance(data, dict):
        return None, f"{RESULT_FILE} is not a JSON object"
    return data, ""


def _output_problems(
    folder: Path, name: str, size: object, digests: dict[str, str] | None, content: bool
) -> list[str]:
    """What is wrong with one recorded output (hashed, if ``content``, when its size is right)."""
    shown = name if name.isprintable() else repr(name)
    if not own_file_name(name):
        return [f"{shown} is not a file name of its folder"]
    path = folder / name
    if not path.is_file():
        return [f"{shown} is missing"]
    problems = []
    actual = path.stat().st_size
    if size is None:
        problems.append(f"{shown} is not listed in {RESULT_FILE}")
    elif actual != size:
        return [f"{shown} has {actual} bytes, {RESULT_FILE} recorded {size}"]
    if digests is not None:
        if name not in digests:
            problems.append(f"{shown} is not listed in {OUTPUTS_SUMS}")
        elif content and sha256_file(path) != digests[name]:
            problems.append(f"{shown}: its sha256 differs from {OUTPUTS_SUMS}")
    return problems


def _inside(path: Path, root: Path) -> bool:
    """True if ``path`` is ``root`` or below it (compared as written, and resolved)."""
    for candidate, base in ((path, root), (path.resolve(), root.resolve())):
        if candidate == base or base in candidate.parents:
            return True
    return False
