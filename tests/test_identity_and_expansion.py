"""Run identity (content hashing), manifest expansion and batch compatibility."""

from __future__ import annotations

import copy
import hashlib
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from cosmos_workflow.config.settings import SimulatorSettings
from cosmos_workflow.engine.scheduler import form_jobs
from cosmos_workflow.errors import ManifestError
from cosmos_workflow.execution.adapters.base import JobLayout
from cosmos_workflow.execution.adapters.simulated import SimulatedAdapter
from cosmos_workflow.execution.adapters.transfer1_spec import single_spec
from cosmos_workflow.manifest.expansion import expand
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, ResolvedPrompt, RunSpec

MODEL: dict[str, Any] = {
    "adapter": "simulated",
    "version": "1",
    "image": None,
    "seed": 1,
    "num_steps": 35,
    "guidance": 5.0,
    "sigma_max": 70.0,
    "fps": 24,
    "blur_strength": "medium",
    "canny_threshold": "medium",
    "num_gpus": 1,
    "weights": {"vis": None, "edge": None, "depth": 0.5, "seg": None},
}
VIDEO = InputFile(Path("/data/color.mp4"), "a" * 64)
DEPTH = InputFile(Path("/data/depth.mp4"), "b" * 64)
MAP = InputFile(Path("/data/depth_weights.pt"), "d" * 64)


def make_run(model: dict | None = None, **prompt: Any) -> RunSpec:
    fields = {
        "name": "p",
        "text": "a street",
        "negative": None,
        "inputs": PromptInputSet(video=VIDEO, controls={"depth": DEPTH}),
    }
    fields.update(prompt)
    return RunSpec(prompt=ResolvedPrompt(**fields), model=copy.deepcopy(model or MODEL))


def with_model(**changes: Any) -> dict:
    model = copy.deepcopy(MODEL)
    for key, value in changes.items():
        if key in model["weights"]:
            model["weights"][key] = value
        else:
            model[key] = value
    return model


# The documented canonical form of the spec above: sorted keys, no spaces,
# floats in shortest form, checksums instead of paths, no num_gpus, no null
# model fields, and the identity version "v".
CANONICAL = (
    '{"model":{"adapter":"simulated","blur_strength":"medium","canny_threshold":"medium",'
    '"fps":24,"guidance":5.0,"num_steps":35,"seed":1,"sigma_max":70.0,'
    '"version":"1","weights":{"depth":0.5}},'
    '"prompt":{"inputs":{"controls":{"depth":"' + "b" * 64 + '"},"video":"' + "a" * 64 + '"},'
    '"negative":null,"text":"a street"},"v":1}'
)


def test_run_id_is_the_hash_of_the_canonical_spec_and_stays_pinned() -> None:
    """Ids are stored and shared between machines: they must never drift."""
    expected = "rs_" + hashlib.sha256(CANONICAL.encode()).hexdigest()[:16]
    assert make_run().id == expected
    assert expected == "rs_31fc8c48b12a2eea"
    assert make_run().prompt.id == "ps_57b9ea68d6c18a1d"


@pytest.mark.parametrize(
    "changes",
    [
        {"seed": 2},
        {"num_steps": 36},
        {"guidance": 5.5},
        {"sigma_max": 80.0},
        {"fps": 30},
        {"blur_strength": "high"},
        {"canny_threshold": "low"},
        {"depth": 0.6},
        {"edge": 0.1},
        {"adapter": "transfer1"},
        {"version": "2"},
        {"image": "cosmos:2"},
        {"options": {"resolution": "480"}},
        {"options": {"model": "depth"}},
        {"keypoint": 0.4},
        {"controls": {"depth": {"ckpt_path": "/ckpt/depth_posttrained.pt"}}},
        {"controls": {"seg": {"input_control_prompt": "the car"}}},
    ],
)
def test_every_output_parameter_changes_the_run_id(changes: dict) -> None:
    assert make_run(with_model(**changes)).id != make_run().id


@pytest.mark.parametrize(
    "prompt",
    [
        {"text": "a street at night"},
        {"negative": "blurry"},
        {
            "inputs": PromptInputSet(
                video=InputFile(VIDEO.path, "c" * 64), controls={"depth": DEPTH}
            )
        },
        {"inputs": PromptInputSet(video=VIDEO, controls={"seg": DEPTH})},
        {"inputs": PromptInputSet(video=VIDEO, controls={})},
        {
            "inputs": PromptInputSet(
                video=VIDEO, controls={"depth": DEPTH}, weight_maps={"depth": MAP}
            )
        },
        {"inputs": PromptInputSet(video=VIDEO, controls={"depth": DEPTH}, masks={"depth": DEPTH})},
        {"inputs": PromptInputSet(video=VIDEO, controls={"depth": DEPTH}, image_context=VIDEO)},
    ],
)
def test_every_prompt_input_changes_both_ids(prompt: dict) -> None:
    changed = make_run(**prompt)
    assert changed.id != make_run().id
    assert changed.prompt.id != make_run().prompt.id


def test_what_cannot_change_the_output_does_not_change_the_id() -> None:
    base = make_run()
    moved = PromptInputSet(
        video=InputFile(Path("/elsewhere/x.mp4"), VIDEO.sha256),
        controls={"depth": InputFile(Path("/elsewhere/d.mp4"), DEPTH.sha256)},
    )
    assert make_run(with_model(num_gpus=4)).id == base.id
    assert make_run(name="other-name").id == base.id
    assert make_run(inputs=moved).id == base.id
    assert RunSpec(base.prompt, base.model, varying={"x": 1}).id == base.id
    reordered = dict(reversed(list(copy.deepcopy(MODEL).items())))
    assert make_run(reordered).id == base.id


@pytest.mark.parametrize("options", [{}, {"model": None, "resolution": None}])
def test_no_adapter_options_keeps_the_ids_from_before_options_existed(options: dict) -> None:
    """Stored runs were hashed without an options key: their ids must not change."""
    assert make_run(with_model(options=options)).id == "rs_31fc8c48b12a2eea"


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("clip.mp4", ".mp4"),
        ("CLIP.MP4", ".mp4"),
        ("noext", ""),
        ("x.mp4;rm -rf ~", ""),
        ("x.mp4 $(touch y)", ""),
        ("weights.averylongsuffix", ""),
        ("depth.mp4\nrm", ""),
    ],
)
def test_stored_name_is_the_checksum_and_a_plain_lowercase_suffix(name: str, suffix: str) -> None:
    """Nothing of the user's file name but a plain suffix reaches a host."""
    assert InputFile(Path("/data") / name, "c" * 64).stored_name == "c" * 64 + suffix


@pytest.mark.parametrize("controls", [{}, {"depth": {"ckpt_path": None}}])
def test_no_per_control_settings_keeps_the_pinned_id(controls: dict) -> None:
    model = with_model(controls=controls, keypoint=None, hdmap=None, lidar=None)
    assert make_run(model).id == "rs_31fc8c48b12a2eea"


def test_a_weight_map_with_other_content_is_another_run() -> None:
    inputs = PromptInputSet(video=VIDEO, controls={"depth": DEPTH}, weight_maps={"depth": MAP})
    other = PromptInputSet(
        video=VIDEO,
        controls={"depth": DEPTH},
        weight_maps={"depth": InputFile(MAP.path, "e" * 64)},
    )
    assert make_run(inputs=inputs).id != make_run(inputs=other).id
    assert make_run(inputs=inputs).prompt.inputs.files()[-1] == MAP


@pytest.mark.parametrize(
    "inputs",
    [
        PromptInputSet(video=VIDEO, controls={"depth": DEPTH}),
        PromptInputSet(
            video=VIDEO,
            controls={"depth": DEPTH},
            weight_maps={"depth": MAP},
            masks={"edge": DEPTH},
            image_context=InputFile(Path("/data/look.jpg"), "f" * 64),
        ),
    ],
)
def test_round_trip_through_stored_dict_keeps_the_id(inputs: PromptInputSet) -> None:
    run = make_run(with_model(seed=9), negative="n", inputs=inputs)
    assert RunSpec.from_dict(run.to_dict()).id == run.id
    assert RunSpec.from_dict(run.to_dict()).prompt.inputs == inputs


# -- expansion ---------------------------------------------------------------
DEMO = Path(__file__).resolve().parents[1] / "inputs" / "demo" / "street"


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """Real tiny videos (the demo's) as v.mp4 and d.mp4."""
    shutil.copyfile(DEMO / "color.mp4", tmp_path / "v.mp4")
    shutil.copyfile(DEMO / "depth.mp4", tmp_path / "d.mp4")
    return tmp_path


def manifest(**changes: Any) -> dict:
    data = {
        "name": "t",
        "vars": {"mood": "calm"},
        "prompts": {
            "a": {
                "text": "a {{ mood }} street, seed {{ model.seed }}",
                "inputs": {"video": "v.mp4", "controls": {"depth": "d.mp4"}},
            },
            "b": {"text": "a plain field", "inputs": {"video": "v.mp4"}},
        },
        "model": copy.deepcopy(MODEL),
    }
    data.update(changes)
    return data


def no_blame(key: str) -> str:
    return "test.yaml"


def test_grid_times_zip_times_prompts(inputs: Path) -> None:
    sweep = {
        "grid": {"model.seed": [1, 2, 3]},
        "zip": {"model.guidance": [3, 7], "vars.mood": ["calm", "wild"]},
    }
    result = expand(manifest(sweep=sweep), inputs, no_blame)
    assert len(result.runs) == 2 * 3 * 2
    pairs = {(r.model["guidance"], r.varying["vars.mood"]) for r in result.runs}
    assert pairs == {(3.0, "calm"), (7.0, "wild")}, "zip keys must vary together"
    texts = {r.prompt.text for r in result.runs if r.prompt.name == "a"}
    assert "a wild street, seed 3" in texts and "a calm street, seed 1" in texts
    assert [r.prompt.name for r in result.runs] == ["a"] * 6 + ["b"] * 6
    assert all(isinstance(r.model["guidance"], float) for r in result.runs)


def test_points_that_give_the_same_run_are_merged(inputs: Path) -> None:
    data = manifest(sweep={"grid": {"vars.unused": [1, 2, 3]}})
    data["prompts"]["a"]["text"] = "fixed text"
    result = expand(data, inputs, no_blame)
    assert len(result.runs) == 2 and result.duplicates == 4


def test_int_and_float_spellings_give_the_same_ids(inputs: Path) -> None:
    first = expand(manifest(sweep={"grid": {"model.guidance": [5]}}), inputs, no_blame)
    second = expand(manifest(sweep={"grid": {"model.guidance": [5.0]}}), inputs, no_blame)
    assert [r.id for r in first.runs] == [r.id for r in second.runs]


def test_problems_are_collected_with_key_paths(inputs: Path) -> None:
    data = manifest(sweep={"grid": {"model.seed": [1, -1], "model.nope": [1]}})
    data["prompts"]["b"]["inputs"]["video"] = "missing.mp4"
    with pytest.raises(ManifestError) as caught:
        expand(data, inputs, no_blame)
    keys = [p.key_path for p in caught.value.problems]
    assert "test.yaml: sweep.grid.model.seed[1]" in keys
    assert "test.yaml: sweep.grid.model.nope" in keys
    assert "test.yaml: prompts.b.inputs.video" in keys
    assert caught.value.exit_code == 2


def test_weight_maps_masks_and_image_context_are_hashed_input_files(inputs: Path) -> None:
    (inputs / "w.pt").write_bytes(b"weights one")
    (inputs / "look.jpg").write_bytes(b"jpeg")
    data = manifest()
    data["prompts"]["a"]["inputs"].update(
        weight_maps={"depth": "w.pt"}, masks={"depth": "d.mp4"}, image_context="look.jpg"
    )
    first = {r.prompt.name: r for r in expand(data, inputs, no_blame).runs}["a"]
    assert (
        first.prompt.inputs.weight_maps["depth"].sha256
        == hashlib.sha256(b"weights one").hexdigest()
    )
    assert first.prompt.inputs.image_context.path == inputs / "look.jpg"
    assert first.prompt.inputs.masks["depth"].path == inputs / "d.mp4"
    (inputs / "w.pt").write_bytes(b"weights two")
    again = {r.prompt.name: r for r in expand(data, inputs, no_blame).runs}["a"]
    assert again.id != first.id


@pytest.mark.parametrize(
    ("inputs_change", "model_change", "key"),
    [
        ({"weight_maps": {"seg": "d.mp4"}}, {}, "prompts.a.inputs.weight_maps.seg"),
        ({"masks": {"edge": "d.mp4"}}, {}, "prompts.a.inputs.masks.edge"),
        ({"weight_maps": {"depth": "gone.pt"}}, {}, "prompts.a.inputs.weight_maps.depth"),
        ({"image_context": "gone.jpg"}, {}, "prompts.a.inputs.image_context"),
        ({}, {"controls": {"seg": {"input_control_prompt": "x"}}}, "model.controls.seg"),
    ],
)
def test_inputs_and_settings_of_an_unused_control_are_refused_by_key(
    inputs: Path, inputs_change: dict, model_change: dict, key: str
) -> None:
    data = manifest()
    data["prompts"]["a"]["inputs"].update(inputs_change)
    data["model"].update(model_change)
    with pytest.raises(ManifestError) as caught:
        expand(data, inputs, no_blame)
    assert f"test.yaml: {key}" in [p.key_path for p in caught.value.problems]


def test_each_sweep_point_renders_its_own_values_into_a_template(inputs: Path) -> None:
    seeds = list(range(300))
    moods = ["calm", "wild", "grey"]
    data = manifest(sweep={"grid": {"model.seed": seeds, "vars.mood": moods}})
    data["prompts"]["b"]["negative"] = "not {{ mood }}, not seed {{ model.seed }}"
    result = expand(data, inputs, no_blame)
    assert len(result.runs) == 2 * len(seeds) * len(moods) and result.duplicates == 0
    for run in result.runs:
        seed, mood = run.model["seed"], run.varying["vars.mood"]
        if run.prompt.name == "a":
            assert (run.prompt.text, run.prompt.negative) == (f"a {mood} street, seed {seed}", None)
        else:
            assert run.prompt.text == "a plain field"
            assert run.prompt.negative == f"not {mood}, not seed {seed}"
    assert len({run.id for run in result.runs}) == len(result.runs)


def test_a_template_that_fails_at_some_points_only_is_reported(inputs: Path) -> None:
    data = manifest(sweep={"grid": {"model.seed": [3, 2, 1, 0, 5]}})
    data["prompts"]["a"]["text"] = "one in {{ 60 // model.seed }}"
    with pytest.raises(ManifestError) as caught:
        expand(data, inputs, no_blame)
    found = [(p.key_path, p.message) for p in caught.value.problems]
    assert len(found) == 1
    assert found[0][0] == "test.yaml: prompts.a.text" and "ZeroDivisionError" in found[0][1]

    data["sweep"]["grid"]["model.seed"] = [3, 2, 1, 5]
    texts = [r.prompt.text for r in expand(data, inputs, no_blame).runs if r.prompt.name == "a"]
    assert texts == ["one in 20", "one in 30", "one in 60", "one in 12"]


# -- batching -------------------------------------------------------------------
def random_runs(rng: random.Random, count: int) -> list[RunSpec]:
    runs = []
    for index in range(count):
        model = with_model(
            seed=rng.choice([1, 2]),
            guidance=rng.choice([5.0, 7.0]),
            num_steps=rng.choice([35, 10]),
            depth=rng.choice([0.5, 0.8, None]),
            edge=rng.choice([None, 0.3]),
            num_gpus=rng.choice([1, 2]),
        )
        controls = {"depth": DEPTH} if model["weights"]["depth"] is not None else {}
        if controls and rng.random() < 0.3:
            controls = {}
        runs.append(
            make_run(
                model,
                text=f"prompt {index}",
                negative=rng.choice([None, "blurry"]),
                inputs=PromptInputSet(video=VIDEO, controls=controls),
            )
        )
    return runs


BATCH_SHARED = ("seed", "guidance", "num_steps", "sigma_max", "fps", "num_gpus", "weights")


@pytest.mark.parametrize("seed", range(5))
def test_batches_never_mix_runs_whose_shared_values_differ(seed: int) -> None:
    rng = random.Random(seed)
    runs = random_runs(rng, 80)
    adapter = SimulatedAdapter(SimulatorSettings(), max_batch_size=4)
    batches = [job.runs for job in form_jobs(runs, {"simulated": adapter})]
    assert sorted(r.id for b in batches for r in b) == sorted(r.id for r in runs)
    assert max(len(b) for b in batches) <= 4
    assert any(len(b) > 1 for b in batches), "nothing was batched at all"
    layout = JobLayout(root="/job")
    for batch in batches:
        first = batch[0]
        for run in batch[1:]:
            for key in BATCH_SHARED:
                assert run.model[key] == first.model[key], key
            assert run.prompt.negative == first.prompt.negative
            assert set(run.prompt.inputs.controls) == set(first.prompt.inputs.controls)
        invocation = adapter.render("jb_test", batch, layout)
        for run in batch:
            assert invocation.run_specs[run.id] == single_spec(run, layout), (
                "in a batch a run must read exactly the spec it would read alone"
            )


@pytest.mark.parametrize("options", [{}, {"resolution": None}, {"model": None, "max_frames": None}])
def test_unset_adapter_options_keep_the_pinned_id(options: dict) -> None:
    assert make_run(with_model(options=options)).id == "rs_31fc8c48b12a2eea"


def test_a_set_adapter_option_changes_the_id() -> None:
    assert make_run(with_model(options={"resolution": "480"})).id != "rs_31fc8c48b12a2eea"


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("clip.mp4", ".mp4"),
        ("CLIP.MP4", ".mp4"),
        ("a b.mov", ".mov"),
        ("x.mp4; touch y", ""),
        ("noext", ""),
        ("v.\u00e9t\u00e9", ""),
    ],
)
def test_stored_names_keep_only_a_plain_suffix(name: str, stored: str) -> None:
    item = InputFile(Path("/in") / name, "c" * 64)
    assert item.stored_name == "c" * 64 + stored


@pytest.mark.parametrize("name", ["v.mp4 $(x)", "v", "v.\u00e9"])
def test_an_input_without_a_plain_suffix_is_refused_by_key(inputs: Path, name: str) -> None:
    shutil.copyfile(inputs / "v.mp4", inputs / name)
    data = manifest()
    data["prompts"]["b"]["inputs"]["video"] = name
    with pytest.raises(ManifestError) as caught:
        expand(data, inputs, no_blame)
    assert [p.key_path for p in caught.value.problems] == ["test.yaml: prompts.b.inputs.video"]
    assert "plain suffix" in caught.value.problems[0].message


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_numbers_are_refused(inputs: Path, value: float) -> None:
    data = manifest()
    data["model"]["guidance"] = value
    with pytest.raises(ManifestError) as caught:
        expand(data, inputs, no_blame)
    assert [p.key_path for p in caught.value.problems] == ["test.yaml: model.guidance"]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("weights", "depth"), True),
        (("weights", "keypoint"), False),
        (("seed",), True),
        (("num_steps",), True),
        (("guidance",), False),
        (("sigma_max",), True),
        (("fps",), True),
        (("num_gpus",), True),
    ],
)
def test_a_boolean_where_a_number_is_meant_is_refused(
    inputs: Path, where: tuple[str, ...], value: bool
) -> None:
    """pydantic's lax mode would make true a weight of 1.0 (or a seed of 1)."""
    data = manifest()
    node = data["model"]
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(ManifestError) as caught:
        expand(data, inputs, no_blame)
    assert [p.key_path for p in caught.value.problems] == ["test.yaml: model." + ".".join(where)]
    assert "boolean" in caught.value.problems[0].message


def test_a_boolean_in_a_sweep_of_numbers_is_refused_by_its_entry(inputs: Path) -> None:
    data = manifest(sweep={"grid": {"model.weights.depth": [0.5, True]}})
    with pytest.raises(ManifestError) as caught:
        expand(data, inputs, no_blame)
    assert "test.yaml: sweep.grid.model.weights.depth[1]" in [
        p.key_path for p in caught.value.problems
    ]


def test_with_a_weight_map_the_scalar_weight_is_not_part_of_the_run_id() -> None:
    """The program reads the map's values; the scalar only turns the control on."""
    inputs = PromptInputSet(video=VIDEO, controls={"depth": DEPTH}, weight_maps={"depth": MAP})
    mapped = [make_run(with_model(depth=weight), inputs=inputs).id for weight in (0.2, 0.9)]
    assert mapped[0] == mapped[1]
    plain = [make_run(with_model(depth=weight)).id for weight in (0.2, 0.9)]
    assert plain[0] != plain[1], "without a map the weight is the run's"
    both = with_model(depth=0.5, edge=0.3)
    assert make_run(both, inputs=inputs).id != make_run(with_model(depth=0.5), inputs=inputs).id
    edge = [make_run(with_model(depth=0.5, edge=w), inputs=inputs).id for w in (0.3, 0.4)]
    assert edge[0] != edge[1], "a control without a map keeps its weight in the id"
