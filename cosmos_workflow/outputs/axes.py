"""The axes of a sweep report: which parameters vary, and how they are laid out.

The rule (docs/user-guide.md, "Sweep reports"):

- A run's coordinates are the params its sweep stored for it: ``prompt`` (the
  prompt's name), every swept key, and for a multirun every ``KEY=VALUE`` of
  the overrides of the job that gave the run (``+experiment=demo`` gives
  ``experiment``). A key that a run lacks has the value None ("not set").
- An axis is a coordinate with at least two distinct values among the
  sweep's runs; its values are in the order they first appear in the sweep
  (manifest order).
- Axes rank by their number of values, most first; ties put sweep keys
  before the prompt, and sweep keys in the order they first appear (the
  manifest's order). The first two are the rows and the columns, the others
  become sections. One axis is a single row (it goes on the columns); no
  axis is a plain list. ``rows``/``cols`` pick axes by name; the remaining
  slots are filled by the rank.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.manifest.overrides import override_key

PROMPT_AXIS = "prompt"
# The key of a multirun run's params that holds its job's overrides (sweeps/multirun.py).
OVERRIDES_PARAM = "overrides"
NOT_SET = "(not set)"


@dataclass(frozen=True)
class Axis:
    """A parameter that varies across a sweep, with its values in sweep order."""

    name: str
    values: tuple[Any, ...]

    def index(self, value: Any) -> int:
        """The position of ``value`` among the axis's values."""
        wanted = value_key(value)
        for position, known in enumerate(self.values):
            if value_key(known) == wanted:
                return position
        raise ValueError(f"{value!r} is not a value of axis {self.name}")


@dataclass(frozen=True)
class Layout:
    """Where each axis goes: rows, columns (either may be None) and sections."""

    rows: Axis | None
    cols: Axis | None
    sections: tuple[Axis, ...]


def value_key(value: Any) -> str:
    """A canonical form of a value, to tell equal values (1 and 1, not 1 and '1')."""
    return json.dumps(value, sort_keys=True, default=str)


def format_value(value: Any) -> str:
    """A value as a manifest would spell it."""
    if value is None:
        return NOT_SET
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def _override_value(text: str) -> Any:
    """An override's value as Hydra would read it (numbers, lists, ...), else the text."""
    try:
        return yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return text


def run_coordinates(params: Mapping[str, Any]) -> dict[str, Any]:
    """A run's coordinates: its stored params, a multirun job's overrides as keys.

    Args:
        params: The params that the sweep stored for the run.
    """
    coordinates = {key: value for key, value in params.items() if key != OVERRIDES_PARAM}
    for override in params.get(OVERRIDES_PARAM) or []:
        key = override_key(str(override))
        if key:
            coordinates[key] = _override_value(str(override).partition("=")[2])
    return coordinates


def find_axes(points: Iterable[Mapping[str, Any]]) -> list[Axis]:
    """The coordinates with two or more distinct values, ranked by the rule.

    Args:
        points: Each run's coordinates (:func:`run_coordinates`), in sweep order.
    """
    points = list(points)
    keys: dict[str, None] = {}
    for point in points:
        keys.update(dict.fromkeys(point))
    axes = []
    for position, key in enumerate(keys):
        values: dict[str, Any] = {}
        for point in points:
            value = point.get(key)
            values.setdefault(value_key(value), value)
        if len(values) > 1:
            axes.append((position, Axis(key, tuple(values.values()))))
    axes.sort(key=lambda item: (-len(item[1].values), item[1].name == PROMPT_AXIS, item[0]))
    return [axis for _, axis in axes]


def choose_layout(axes: list[Axis], rows: str | None = None, cols: str | None = None) -> Layout:
    """Rows, columns and sections of a report.

    Args:
        axes: The sweep's axes, ranked (:func:`find_axes`).
        rows: Name of the axis for the rows, or None to follow the rule.
        cols: Name of the axis for the columns, or None to follow the rule.

    Raises:
        ValidationFailure: an unknown axis, or the same axis for rows and columns.
    """
    by_name = {axis.name: axis for axis in axes}
    for option, given in (("--rows", rows), ("--cols", cols)):
        if given is not None and given not in by_name:
            known = ", ".join(by_name) or "no axes (every run has the same parameters)"
            raise ValidationFailure(
                f"{option}: unknown axis {given!r}; this sweep's axes are: {known}"
            )
    if rows is not None and rows == cols:
        raise ValidationFailure(f"--rows and --cols name the same axis {rows!r}; pick two")
    row_axis = by_name.get(rows) if rows else None
    col_axis = by_name.get(cols) if cols else None
    rest = [axis for axis in axes if axis.name not in (rows, cols)]
    if row_axis is None and col_axis is None:
        if len(rest) >= 2:
            row_axis, col_axis = rest[0], rest[1]
        elif rest:
            col_axis = rest[0]
    elif row_axis is None:
        row_axis = rest[0] if rest else None
    elif col_axis is None:
        col_axis = rest[0] if rest else None
    chosen = {axis.name for axis in (row_axis, col_axis) if axis is not None}
    sections = tuple(axis for axis in axes if axis.name not in chosen)
    return Layout(row_axis, col_axis, sections)
