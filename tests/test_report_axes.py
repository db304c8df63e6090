"""The axis rule of sweep reports: which parameters vary and how they are laid out.

Pure functions over the params that a sweep stores for each run (the same
dicts `cosmos show SWEEP` prints), so every case is spelled out here.
"""

from __future__ import annotations

import itertools

import pytest

from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.outputs.axes import (
    choose_layout,
    find_axes,
    format_value,
    run_coordinates,
)


def grid(**values: list) -> list[dict]:
    """The params of a sweep: prompt-major, then the grid in key order (as expansion gives)."""
    prompts = values.pop("prompt", ["street"])
    keys = list(values)
    return [
        {"prompt": prompt, **dict(zip(keys, combo, strict=True))}
        for prompt in prompts
        for combo in itertools.product(*values.values())
    ]


def names(axes) -> list[str]:
    return [axis.name for axis in axes]


def test_demo_rows_are_the_depth_weights_cols_the_seeds_and_a_section_per_prompt() -> None:
    params = grid(
        prompt=["street", "forest"],
        **{"model.weights.depth": [0.3, 0.5, 0.8], "model.seed": [1, 2]},
    )
    axes = find_axes([run_coordinates(p) for p in params])
    assert names(axes) == ["model.weights.depth", "model.seed", "prompt"]
    assert axes[0].values == (0.3, 0.5, 0.8)
    assert axes[2].values == ("street", "forest")  # manifest order, not sorted
    layout = choose_layout(axes)
    assert layout.rows.name == "model.weights.depth"
    assert layout.cols.name == "model.seed"
    assert names(layout.sections) == ["prompt"]


def test_the_axis_with_most_values_wins_whatever_its_position() -> None:
    params = grid(prompt=["a", "b", "c", "d"], **{"vars.x": [1, 2], "model.seed": [1, 2, 3]})
    axes = find_axes([run_coordinates(p) for p in params])
    assert names(axes) == ["prompt", "model.seed", "vars.x"]
    layout = choose_layout(axes)
    assert (layout.rows.name, layout.cols.name) == ("prompt", "model.seed")
    assert names(layout.sections) == ["vars.x"]


def test_ties_put_sweep_keys_first_in_manifest_order_then_the_prompt() -> None:
    params = grid(prompt=["a", "b"], **{"z.last": [1, 2], "a.first": [5, 6]})
    axes = find_axes([run_coordinates(p) for p in params])
    # z.last comes first in the manifest (and the stored params), so it wins the tie.
    assert names(axes) == ["z.last", "a.first", "prompt"]


def test_constant_parameters_are_not_axes() -> None:
    params = [{"prompt": "a", "model.seed": 1, "vars.k": "x"} for _ in range(1)] + [
        {"prompt": "a", "model.seed": 2, "vars.k": "x"}
    ]
    axes = find_axes([run_coordinates(p) for p in params])
    assert names(axes) == ["model.seed"]


def test_one_axis_is_a_single_row() -> None:
    axes = find_axes([run_coordinates(p) for p in grid(**{"model.seed": [1, 2, 3]})])
    layout = choose_layout(axes)
    assert layout.rows is None
    assert layout.cols.name == "model.seed" and layout.cols.values == (1, 2, 3)
    assert layout.sections == ()


def test_no_axis_is_a_list() -> None:
    axes = find_axes([run_coordinates({"prompt": "only"})])
    assert axes == []
    layout = choose_layout(axes)
    assert (layout.rows, layout.cols, layout.sections) == (None, None, ())


def test_rows_and_cols_name_axes_and_the_rest_become_sections() -> None:
    params = grid(
        prompt=["street", "forest"],
        **{"model.weights.depth": [0.3, 0.5, 0.8], "model.seed": [1, 2]},
    )
    axes = find_axes([run_coordinates(p) for p in params])
    layout = choose_layout(axes, rows="prompt", cols="model.weights.depth")
    assert (layout.rows.name, layout.cols.name) == ("prompt", "model.weights.depth")
    assert names(layout.sections) == ["model.seed"]
    only_cols = choose_layout(axes, cols="prompt")
    assert (only_cols.rows.name, only_cols.cols.name) == ("model.weights.depth", "prompt")
    only_rows = choose_layout(axes, rows="model.seed")
    assert (only_rows.rows.name, only_rows.cols.name) == ("model.seed", "model.weights.depth")
    assert names(only_rows.sections) == ["prompt"]


def test_rows_given_on_a_one_axis_sweep_is_a_single_column() -> None:
    axes = find_axes([run_coordinates(p) for p in grid(**{"model.seed": [1, 2]})])
    layout = choose_layout(axes, rows="model.seed")
    assert layout.rows.name == "model.seed" and layout.cols is None


@pytest.mark.parametrize(
    ("rows", "cols"), [("model.sed", None), (None, "seed"), ("prompt", "nope")]
)
def test_an_unknown_axis_is_bad_input_that_lists_the_axes(rows, cols) -> None:
    axes = find_axes(
        [run_coordinates(p) for p in grid(prompt=["a", "b"], **{"model.seed": [1, 2]})]
    )
    with pytest.raises(ValidationFailure) as caught:
        choose_layout(axes, rows=rows, cols=cols)
    message = str(caught.value)
    assert "unknown axis" in message
    assert "model.seed" in message and "prompt" in message


def test_an_unknown_axis_on_a_sweep_without_axes_says_there_are_none() -> None:
    with pytest.raises(ValidationFailure, match="no axes"):
        choose_layout([], rows="prompt")


def test_rows_and_cols_must_differ() -> None:
    axes = find_axes(
        [run_coordinates(p) for p in grid(prompt=["a", "b"], **{"model.seed": [1, 2]})]
    )
    with pytest.raises(ValidationFailure, match="same axis"):
        choose_layout(axes, rows="model.seed", cols="model.seed")


def test_a_multirun_jobs_overrides_are_axes_and_constant_overrides_are_not() -> None:
    params = [
        {
            "prompt": prompt,
            "overrides": ["+experiment=demo", f"model.seed={seed}", f"model.weights.depth={d}"],
        }
        for seed in (1, 2, 3)
        for d in ("0.2", "0.5")
        for prompt in ("street", "forest")
    ]
    coordinates = [run_coordinates(p) for p in params]
    assert coordinates[0] == {
        "prompt": "street",
        "experiment": "demo",
        "model.seed": 1,
        "model.weights.depth": 0.2,
    }
    axes = find_axes(coordinates)
    assert names(axes) == ["model.seed", "model.weights.depth", "prompt"]
    assert axes[0].values == (1, 2, 3) and axes[1].values == (0.2, 0.5)


def test_a_multirun_over_a_manifest_sweep_merges_both_sources() -> None:
    params = [
        {"prompt": "a", "vars.style": style, "overrides": [f"model.seed={seed}"]}
        for seed in (7, 8)
        for style in ("neon", "fog", "sun")
    ]
    axes = find_axes([run_coordinates(p) for p in params])
    assert names(axes) == ["vars.style", "model.seed"]


def test_a_key_that_some_runs_lack_has_a_not_set_value() -> None:
    params = [
        {"prompt": "a", "overrides": ["model.seed=3"]},
        {"prompt": "a", "overrides": []},
    ]
    axes = find_axes([run_coordinates(p) for p in params])
    assert names(axes) == ["model.seed"]
    assert axes[0].values == (3, None)
    assert [format_value(v) for v in axes[0].values] == ["3", "(not set)"]


def test_values_are_shown_as_the_manifest_spells_them() -> None:
    assert format_value(0.5) == "0.5"
    assert format_value(True) == "true"
    assert format_value("street") == "street"
    assert format_value([1, 2]) == "[1, 2]"
    assert format_value({"b": 1}) == '{"b": 1}'


def test_a_number_and_the_same_digits_as_text_are_two_values() -> None:
    points = [run_coordinates({"prompt": "a", "vars.tag": value}) for value in (1, "1", 1)]
    (axis,) = find_axes(points)
    assert axis.values == (1, "1")
