"""A sweep's report: outputs/sweeps/<id>/report.html, a grid of its runs' outputs.

The page is static HTML rendered with jinja2 (imported only to write one;
autoescaped: prompts are user text). It opens from disk with no server;
every link is relative (to the run folders and the sweep folder's thumbs/),
so a moved or copied output tree keeps working. Thumbnails load lazily and
videos only when clicked, and no data is inlined, so a report of hundreds of
runs stays small.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cosmos_workflow.database.models import Run, RunStatus, SweepStage
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.errors import StateError
from cosmos_workflow.execution.adapters.upscale import UPSCALE_OF
from cosmos_workflow.outputs.axes import (
    Axis,
    Layout,
    choose_layout,
    find_axes,
    format_value,
    run_coordinates,
    value_key,
)
from cosmos_workflow.outputs.store import (
    OUTPUT_VIDEO,
    OUTPUTS_SUMS,
    RUN_LOG,
    OutputStore,
    read_sums,
)
from cosmos_workflow.outputs.thumbnails import ThumbnailStore
from cosmos_workflow.utils.atomic import write_text_atomic
from cosmos_workflow.utils.clock import Clock
from cosmos_workflow.utils.hashing import sha256_file

if TYPE_CHECKING:
    from jinja2 import Environment

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
THUMBS_DIR = "thumbs"
TEMPLATE = "report.html.j2"
# Longest error message shown in a cell (the run's log has all of it).
ERROR_CHARS = 300


@dataclass(frozen=True)
class ReportResult:
    """What writing a report did: where it is, its layout, the sweep's counts."""

    path: Path
    sweep_id: str
    axes: list[Axis]
    layout: Layout
    counts: dict[str, int]
    thumbnails: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (`cosmos report --json`)."""
        return {
            "path": str(self.path),
            "sweep_id": self.sweep_id,
            "axes": [{"name": axis.name, "values": list(axis.values)} for axis in self.axes],
            "layout": {
                "rows": self.layout.rows.name if self.layout.rows else None,
                "cols": self.layout.cols.name if self.layout.cols else None,
                "sections": [axis.name for axis in self.layout.sections],
            },
            "counts": self.counts,
            "thumbnails": self.thumbnails,
        }


@dataclass
class Cell:
    """One run as the report shows it."""

    run_id: str
    status: str
    coordinates: dict[str, Any]
    params: list[tuple[str, str]]
    prompt_text: str
    run_href: str
    video_href: str | None = None
    thumb_href: str | None = None
    log_href: str | None = None
    error: str | None = None
    duration: str | None = None
    # The 4K upscale of its output (stages.upscale): its status and video.
    upscale_status: str | None = None
    upscale_href: str | None = None
    # The control videos the program computed from the input: (control key, link).
    controls: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Section:
    """A grid of cells for one combination of the section axes."""

    title: list[tuple[str, str]]
    rows: list[tuple[str | None, list[list[Any]]]] = field(default_factory=list)


def _href(relative: str) -> str:
    """A relative URL (posix path, percent-encoded)."""
    return quote(relative, safe="/")


def _duration(run: Run) -> str | None:
    if run.started_at is None or run.finished_at is None:
        return None
    seconds = (run.finished_at - run.started_at).total_seconds()
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds / 60:.1f}min"


def _short(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _environment() -> Environment:
    """The jinja2 environment of the report's templates (autoescaped, strict)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(
        loader=PackageLoader("cosmos_workflow.outputs", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class SweepReport:
    """Writes a sweep's report.html from the database and the output tree.

    Args:
        repository: The database.
        store: The output tree (run folders, the sweep folder).
        clock: When the report is written.
    """

    def __init__(self, repository: DataRepository, store: OutputStore, clock: Clock) -> None:
        self._repository = repository
        self._store = store
        self._clock = clock

    def write(
        self,
        sweep_id: str,
        rows: str | None = None,
        cols: str | None = None,
        thumbnails: bool = True,
    ) -> ReportResult:
        """Write (or refresh) the report of a sweep.

        The grid holds the sweep's own runs; the upscale of a run
        (stages.upscale) is linked from the run's cell.

        Args:
            sweep_id: The full sweep id.
            rows: Axis for the rows (None: by the rule, see outputs/axes.py).
            cols: Axis for the columns.
            thumbnails: Make missing thumbnails (False: use only those made before).

        Raises:
            NotFoundFailure: no such sweep. ValidationFailure: an unknown axis.
            StateError: the report cannot be written.
        """
        sweep = self._repository.get_sweep(sweep_id)
        links = self._repository.sweep_runs(sweep_id, [SweepStage.MAIN])
        upscales = {
            parent_id: run
            for link, run in self._repository.sweep_runs(sweep_id, [SweepStage.UPSCALE])
            for parent_id in link.params.get(UPSCALE_OF) or []
        }
        points = [run_coordinates(link.params or {}) for link, _ in links]
        axes = find_axes(points)
        layout = choose_layout(axes, rows, cols)
        folder = self._store.sweep_dir(sweep_id)
        runs_href = posixpath.join(*Path(os.path.relpath(self._store.runs_dir, folder)).parts)
        thumbs = ThumbnailStore(folder / THUMBS_DIR, make=thumbnails)
        videos = self._videos(run for _, run in links)
        thumbs.make_all([(run_id, *video) for run_id, video in videos.items()])
        cells = [
            self._cell(run, point, runs_href, thumbs, upscales.get(run.id), videos.get(run.id))
            for (_, run), point in zip(links, points, strict=True)
        ]
        counts = {status.value: 0 for status in RunStatus}
        for cell in cells:
            counts[cell.status] += 1
        counts["total"] = len(cells)
        page = (
            _environment()
            .get_template(TEMPLATE)
            .render(
                sweep=sweep,
                created=_iso(sweep.created_at),
                written=_iso(self._clock.now()),
                description=_description(sweep.manifest),
                overrides=_override_lines(sweep.overrides),
                provenance=_read_json(folder / "provenance.json"),
                counts=counts,
                stages=self._repository.sweep_stage_sizes(sweep_id),
                statuses=[status.value for status in RunStatus],
                axes=axes,
                layout=layout,
                sections=grid_sections(cells, layout),
                fmt=format_value,
            )
        )
        path = folder / REPORT_FILE
        try:
            write_text_atomic(path, page)
        except OSError as exc:
            raise StateError(f"cannot write the report {path}: {exc}") from exc
        return ReportResult(
            path=path,
            sweep_id=sweep_id,
            axes=axes,
            layout=layout,
            counts=counts,
            thumbnails={"made": thumbs.made, "reused": thumbs.reused, "failed": thumbs.failed},
        )

    def _videos(self, runs: Iterable[Run]) -> dict[str, tuple[Path, str]]:
        """Run id -> (output video, its sha256) of each succeeded run that has its video."""
        found = {}
        for run in runs:
            video = self._store.run_dir(run.id) / OUTPUT_VIDEO
            if run.status is RunStatus.SUCCEEDED and video.is_file():
                found[run.id] = (video, recorded_checksum(video.parent, video))
        return found

    def _cell(
        self,
        run: Run,
        point: dict[str, Any],
        runs_href: str,
        thumbs: ThumbnailStore,
        upscale: Run | None,
        video: tuple[Path, str] | None,
    ) -> Cell:
        """The cell of one run; ``video`` is its output video and sha256 (None: it has none)."""
        run_dir = self._store.run_dir(run.id)
        run_href = f"{runs_href}/{run.id}"
        cell = Cell(
            run_id=run.id,
            status=run.status.value,
            coordinates=point,
            params=[(key, format_value(value)) for key, value in point.items()],
            prompt_text=str((run.spec or {}).get("prompt", {}).get("text", "")),
            run_href=_href(run_href + "/"),
            error=_short(run.error_message, ERROR_CHARS),
            duration=_duration(run),
        )
        if (run_dir / RUN_LOG).is_file():
            cell.log_href = _href(f"{run_href}/{RUN_LOG}")
        if video is not None:
            cell.video_href = _href(f"{run_href}/{OUTPUT_VIDEO}")
            thumb = thumbs.thumbnail(run.id, *video)
            if thumb is not None:
                cell.thumb_href = _href(f"{THUMBS_DIR}/{thumb.name}")
            cell.controls = [
                (key, _href(f"{run_href}/{path.name}"))
                for key, path in self._store.control_videos(run.id).items()
            ]
        if upscale is not None:
            cell.upscale_status = upscale.status.value
            upscaled = self._store.run_dir(upscale.id) / OUTPUT_VIDEO
            if upscale.status is RunStatus.SUCCEEDED and upscaled.is_file():
                cell.upscale_href = _href(f"{runs_href}/{upscale.id}/{OUTPUT_VIDEO}")
        return cell


def recorded_checksum(run_dir: Path, video: Path) -> str:
    """The video's sha256 from outputs.sha256 (what `sha256sum -c` checks), else computed.

    A file that is not in sha256sum format (edited, or foreign) is ignored.
    """
    sums = run_dir / OUTPUTS_SUMS
    try:
        for digest, name in read_sums(sums):
            if name == video.name:
                return digest
    except (OSError, ValueError):
        logger.debug("no readable %s; hashing %s", sums, video)
    return sha256_file(video)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _description(manifest: dict[str, Any]) -> str:
    """The manifest's description; a multirun's: each distinct one of its jobs."""
    if manifest.get("description"):
        return str(manifest["description"])
    found = [
        str(job.get("manifest", {}).get("description") or "")
        for job in manifest.get("jobs") or []
        if isinstance(job, dict)
    ]
    return " / ".join(dict.fromkeys(text for text in found if text))


def _override_lines(overrides: list[Any] | None) -> list[str]:
    """One line per job of a multirun, else one line (empty: no overrides)."""
    if not overrides:
        return []
    if all(isinstance(item, list) for item in overrides):
        return [" ".join(map(str, job)) or "(none)" for job in overrides]
    return [" ".join(map(str, overrides))]


def _section_key(cell: Any, axes: Iterable[Axis]) -> tuple[int, ...]:
    return tuple(axis.index(cell.coordinates.get(axis.name)) for axis in axes)


def grid_sections(cells: list[Any], layout: Layout) -> list[Section]:
    """Cells grouped by the section axes, each group a grid of rows x columns.

    A cell is anything with ``coordinates`` (a :class:`Cell`, or the UI's).
    """
    groups: dict[tuple[int, ...], list[Cell]] = {}
    for cell in cells:
        groups.setdefault(_section_key(cell, layout.sections), []).append(cell)
    sections = []
    for key in sorted(groups):
        title = [
            (axis.name, format_value(axis.values[index]))
            for axis, index in zip(layout.sections, key, strict=True)
        ]
        sections.append(_grid(Section(title), groups[key], layout))
    return sections


def _grid(section: Section, cells: list[Any], layout: Layout) -> Section:
    row_values = layout.rows.values if layout.rows else (None,)
    col_values = layout.cols.values if layout.cols else (None,)
    slots: dict[tuple[str, str], list[Cell]] = {}
    for cell in cells:
        row = value_key(cell.coordinates.get(layout.rows.name)) if layout.rows else "null"
        col = value_key(cell.coordinates.get(layout.cols.name)) if layout.cols else "null"
        slots.setdefault((row, col), []).append(cell)
    for row_value in row_values:
        row_key = value_key(row_value)
        line = [slots.get((row_key, value_key(col)), []) for col in col_values]
        if any(line):
            label = format_value(row_value) if layout.rows else None
            section.rows.append((label, line))
    return section
