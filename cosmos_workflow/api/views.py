"""Read models of `cosmos ui`: what its pages show, each in one or two queries.

Every answer is plain data (dicts, lists, paths), made from the database and
the output tree; the UI never queries either itself. The methods are safe to
call from several threads at once: each opens its own database session
(the repository's sessions are per call) and the database is opened once,
under a lock, on first use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosmos_workflow.database.models import RunStatus, SweepStage
from cosmos_workflow.errors import StateError, ValidationFailure
from cosmos_workflow.outputs.axes import (
    choose_layout,
    find_axes,
    format_value,
    run_coordinates,
)
from cosmos_workflow.outputs.report import THUMBS_DIR, grid_sections, recorded_checksum
from cosmos_workflow.outputs.store import OUTPUT_VIDEO
from cosmos_workflow.outputs.thumbnails import SAFE_KEY, ThumbnailStore
from cosmos_workflow.sweeps.status import sweep_status

if TYPE_CHECKING:
    from cosmos_workflow.database.repository import DataRepository
    from cosmos_workflow.sweeps.workspace import Workspace

# Ratings a grid can be filtered by: 1-5, or none given yet.
UNRATED = "none"
# The folder of a project that holds its input videos (conf's demo keeps them there).
INPUTS_DIR = "inputs"
# Runs compared side by side at most.
MAX_COMPARED = 8


@dataclass(frozen=True)
class GridFilter:
    """Which runs of a sweep a grid shows; an empty tuple lets every value through.

    Attributes:
        statuses: Run statuses (any of them).
        ratings: "1".."5" or "none" (any of them).
        values: Axis name -> formatted values (any of them; every axis must match).
    """

    statuses: tuple[str, ...] = ()
    ratings: tuple[str, ...] = ()
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def admits(self, status: str, rating: int | None, point: dict[str, Any]) -> bool:
        """True if a run with this status, rating and coordinates is shown."""
        if self.statuses and status not in self.statuses:
            return False
        if self.ratings and (UNRATED if rating is None else str(rating)) not in self.ratings:
            return False
        return all(format_value(point.get(name)) in wanted for name, wanted in self.values.items())


@dataclass
class GridCell:
    """One run of a sweep's grid: where it sits, how it ended, whether it has a video."""

    run_id: str
    status: str
    rating: int | None
    coordinates: dict[str, Any]
    video: bool
    error: str | None


class Views:
    """The UI's read models over one workspace.

    Args:
        ws: The workspace of the API.
    """

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._lock = threading.Lock()
        self._repo: DataRepository | None = None

    @property
    def _repository(self) -> DataRepository | None:
        """The database, opened once (under a lock); None while there is none."""
        with self._lock:
            if self._repo is None and self._ws.database_exists():
                self._repo = self._ws.repository
            return self._repo

    def open(self) -> None:
        """Open the database now if there is one (before threads share the API)."""
        _ = self._repository

    def now(self) -> datetime:
        """The workspace's clock."""
        return self._ws.clock.now()

    # -- sweeps ------------------------------------------------------------------------
    def sweep_summaries(self, sweep_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Every sweep (or these) newest first: counts by status, stage, ETA (sweeps/status.py).

        Two queries however many sweeps there are.
        """
        repo = self._repository
        if repo is None:
            return []
        sweeps = [s for s in repo.list_sweeps() if sweep_ids is None or s.id in sweep_ids]
        rows: dict[str, list[Any]] = {sweep.id: [] for sweep in sweeps}
        for row in repo.sweeps_run_times([sweep.id for sweep in sweeps]):
            rows[row.sweep_id].append(row)
        now = self.now()
        return [
            {
                **sweep_status(sweep.id, sweep.name, rows[sweep.id], now),
                "created_at": sweep.created_at.isoformat(timespec="seconds"),
            }
            for sweep in sweeps
        ]

    def sweep_grid(
        self,
        sweep_id: str,
        rows: str | None = None,
        cols: str | None = None,
        only: GridFilter | None = None,
    ) -> dict[str, Any]:
        """A sweep's runs laid out on two axes, the other axes as sections, filtered.

        Args:
            sweep_id: The full sweep id.
            rows: The axis of the rows (None: by the rule of outputs/axes.py).
            cols: The axis of the columns.
            only: Which runs to show (axes and values are those of every run).

        Raises:
            NotFoundFailure: no such sweep. ValidationFailure: an unknown axis.
        """
        repo = self._repository
        if repo is None:
            raise ValidationFailure("this project has no database yet: run a sweep first")
        sweep = repo.get_sweep(sweep_id)
        links = repo.sweep_runs(sweep_id, [SweepStage.MAIN])
        points = [run_coordinates(link.params or {}) for link, _ in links]
        axes = find_axes(points)
        layout = choose_layout(axes, rows, cols)
        only = only or GridFilter()
        unknown = sorted(set(only.values) - {axis.name for axis in axes})
        if unknown:
            raise ValidationFailure(f"no axis {unknown[0]!r} in sweep {sweep_id}")
        runs_dir = self._ws.store.runs_dir
        cells = [
            GridCell(
                run.id,
                run.status.value,
                run.rating,
                point,
                run.status is RunStatus.SUCCEEDED and (runs_dir / run.id / OUTPUT_VIDEO).is_file(),
                run.error_message,
            )
            for (_, run), point in zip(links, points, strict=True)
        ]
        shown = [c for c in cells if only.admits(c.status, c.rating, c.coordinates)]
        return {
            "sweep": {"id": sweep.id, "name": sweep.name, "description": _description(sweep)},
            "summary": sweep_status(
                sweep.id, sweep.name, repo.sweep_run_times(sweep_id), self.now()
            ),
            "axes": [{"name": a.name, "values": [format_value(v) for v in a.values]} for a in axes],
            "rows": layout.rows.name if layout.rows else None,
            "cols": layout.cols.name if layout.cols else None,
            "col_labels": [format_value(v) for v in layout.cols.values] if layout.cols else [],
            "sections": grid_sections(shown, layout),
            "total": len(cells),
            "shown": len(shown),
        }

    def thumbnail(self, sweep_id: str, run_id: str) -> Path | None:
        """The thumbnail of a succeeded run of a sweep (made on first use), or None.

        Kept in the sweep folder's thumbs/, shared with its report.html.
        """
        repo = self._repository
        if repo is None or not SAFE_KEY.fullmatch(sweep_id) or not SAFE_KEY.fullmatch(run_id):
            return None
        if sweep_id not in repo.sweeps_of_run(run_id):
            return None
        video = self._ws.store.run_dir(run_id) / OUTPUT_VIDEO
        if not video.is_file():
            return None
        thumbs = ThumbnailStore(self._ws.store.sweep_dir(sweep_id) / THUMBS_DIR)
        return thumbs.thumbnail(run_id, video, recorded_checksum(video.parent, video))

    # -- live updates -----------------------------------------------------------------
    def run_states(self, finished_since: datetime) -> dict[str, dict[str, Any]]:
        """Each run unfinished, or finished since then: status, rating and its sweeps.

        Raises:
            StateError: the database cannot be read now (the live updates try again).
        """
        from sqlalchemy.exc import SQLAlchemyError

        repo = self._repository
        if repo is None:
            return {}
        states: dict[str, dict[str, Any]] = {}
        try:
            rows = repo.recent_run_states(finished_since)
        except SQLAlchemyError as exc:
            raise StateError(f"the database cannot be read now: {exc}") from exc
        for row in rows:
            state = states.setdefault(
                row.id, {"status": row.status.value, "rating": row.rating, "sweeps": []}
            )
            if row.sweep_id is not None:
                state["sweeps"].append(row.sweep_id)
        return states

    # -- runs side by side ------------------------------------------------------------
    def compare(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Runs to compare: their output, input and control videos, prompt and parameters.

        Raises:
            ValidationFailure: fewer than two runs or more than MAX_COMPARED.
            NotFoundFailure: an unknown run.
        """
        if not 2 <= len(run_ids) <= MAX_COMPARED:
            raise ValidationFailure(f"compare takes 2 to {MAX_COMPARED} runs, got {len(run_ids)}")
        repo = self._repository
        if repo is None:
            raise ValidationFailure("this project has no database yet: run a sweep first")
        store = self._ws.store
        found = []
        for run_id in run_ids:
            run = repo.get_run(run_id)
            spec = run.spec or {}
            prompt = spec.get("prompt") or {}
            inputs = prompt.get("inputs") or {}
            video = store.run_dir(run.id) / OUTPUT_VIDEO
            found.append(
                {
                    "id": run.id,
                    "status": run.status.value,
                    "rating": run.rating,
                    "prompt_name": str(prompt.get("name", "")),
                    "prompt_text": str(prompt.get("text", "")),
                    "varying": spec.get("varying") or {},
                    "fps": (spec.get("model") or {}).get("fps"),
                    "output": video if video.is_file() else None,
                    "input": _path_of(inputs.get("video")),
                    "controls": {
                        str(key): path
                        for key, value in (inputs.get("controls") or {}).items()
                        if (path := _path_of(value)) is not None
                    },
                    "computed_controls": store.control_videos(run.id),
                }
            )
        return found

    # -- files ------------------------------------------------------------------------
    def file_roots(self) -> list[Path]:
        """Folders whose files the UI may serve: the output tree and the project's inputs."""
        settings = self._ws.settings
        return [settings.outputs_dir, Path(settings.project_dir) / INPUTS_DIR]

    def input_files(self) -> set[Path]:
        """Every input video the prompts name (they may live outside the project)."""
        repo = self._repository
        if repo is None:
            return set()
        files: set[Path] = set()
        for prompt in repo.list_prompts():
            inputs = prompt.inputs or {}
            for value in [inputs.get("video"), *(inputs.get("controls") or {}).values()]:
                path = _path_of(value)
                if path is not None:
                    files.add(path)
        return files


def _path_of(value: Any) -> Path | None:
    """The path of an input entry (``{"path": ...}`` or a plain string), or None."""
    if isinstance(value, dict):
        value = value.get("path")
    return Path(value) if isinstance(value, str) and value else None


def _description(sweep: Any) -> str:
    manifest = sweep.manifest or {}
    return str(manifest.get("description") or "")
