"""The transfer2.5 adapter: what Cosmos-Transfer2.5's examples/inference.py would read.

Every rendered sample is validated with the stand-in's sample model, which
has the field types, ranges, defaults and lax coercion of the real one
(cosmos_transfer2/config.py), and compared with what its run asked for,
computed here without the adapter's code.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import random
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cosmos_workflow.config.settings import Transfer25Settings
from cosmos_workflow.engine.scheduler import form_jobs
from cosmos_workflow.execution.adapters.base import Invocation, JobLayout
from cosmos_workflow.execution.adapters.transfer2_5 import Transfer25Adapter
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, ResolvedPrompt, RunSpec

STANDIN = Path(__file__).resolve().parent / "fakes" / "transfer2_5" / "examples" / "inference.py"
LAYOUT = JobLayout(root="/work/jobs/jb_1")
CONTROLS = ("edge", "vis", "depth", "seg")
DISTILLED = "edge/distilled"
# conf/model/transfer2.5.yaml
MODEL: dict[str, Any] = {
    "adapter": "transfer2.5",
    "version": "2.5",
    "image": None,
    "seed": 2025,
    "num_steps": 35,
    "guidance": 3,
    "sigma_max": None,
    "fps": None,
    "blur_strength": None,
    "canny_threshold": None,
    "num_gpus": 1,
    "weights": {"vis": None, "edge": None, "depth": None, "seg": None},
    "options": {},
    "controls": {},
}
VIDEOS = [InputFile(Path(f"/data/color{i}.mp4"), f"{i}" * 64) for i in range(3)]


def file_of(name: str, char: str) -> InputFile:
    return InputFile(Path(f"/data/{name}"), char * 64)


CONTROL_VIDEOS = {key: file_of(f"{key}.mp4", c) for key, c in zip(CONTROLS, "abcd", strict=True)}
MASKS = {key: file_of(f"{key}_mask.mp4", c) for key, c in zip(CONTROLS, "efgh", strict=True)}
LOOK = file_of("look.jpg", "9")


@cache
def standin() -> ModuleType:
    """The stand-in program as a module: its sample model is the real one's rules."""
    spec = importlib.util.spec_from_file_location("t25_standin", STANDIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_run(
    weights: dict[str, float] | None = None,
    *,
    name: str = "p",
    text: str = "a street",
    negative: str | None = None,
    inputs: PromptInputSet | None = None,
    **model: Any,
) -> RunSpec:
    """A valid edge run, with ``model`` values and ``weights`` replaced."""
    block = copy.deepcopy(MODEL)
    block["weights"].update(weights or {"edge": 1.0})
    block.update(copy.deepcopy(model))
    inputs = inputs or PromptInputSet(video=VIDEOS[0])
    return RunSpec(ResolvedPrompt(name, text, negative, inputs), block)


def random_runs(rng: random.Random, count: int) -> list[RunSpec]:
    """Valid runs that use every parameter the adapter knows, in many combinations."""
    runs = []
    for index in range(count):
        used = rng.sample(CONTROLS, rng.choice([1, 1, 2, 4]))
        single = used[0] if len(used) == 1 else None
        variant = rng.choice([None, single, DISTILLED if single == "edge" else None])
        distilled = variant == DISTILLED
        options = {
            "model": variant,
            "disable_guardrails": rng.choice([None, True, False]),
            "resolution": rng.choice([None, "480", "720p", "1080"]),
            "max_frames": rng.choice([None, 2, 121]),
            "num_conditional_frames": rng.choice([None, 0, 2]),
            "num_video_frames_per_chunk": rng.choice([None, 93, 61]),
            "keep_input_resolution": rng.choice([None, False, True]),
            "config_file": rng.choice([None, "cosmos_transfer2/my_config.py"]),
        }
        if single:
            options["checkpoint_path"] = rng.choice([None, "ckpt/post.pt", "hf://o/r/m.pt"])
            options["experiment"] = rng.choice([None, "my_experiment"])
        videos = {k: CONTROL_VIDEOS[k] for k in used if rng.random() < 0.5}
        masks = {k: MASKS[k] for k in used if rng.random() < 0.3}
        settings: dict[str, dict[str, Any]] = {}
        for key in used:
            found = {"mask_prompt": rng.choice([None, "the car"])} if key not in masks else {}
            preset = {"edge": "preset_edge_threshold", "vis": "preset_blur_strength"}.get(key)
            if preset and key not in videos:
                found[preset] = rng.choice([None, "very_low", "high"])
            if key == "seg" and key not in videos:
                found["control_prompt"] = rng.choice([None, "trees, road"])
            settings[key] = found
        inputs = PromptInputSet(
            video=rng.choice(VIDEOS),
            controls=videos,
            masks=masks,
            image_context=rng.choice([None, LOOK]) if "vis" not in used else None,
        )
        sigma = options.get("experiment") and not distilled
        runs.append(
            make_run(
                dict.fromkeys(used, rng.choice([0.0, 0.35, 1.0])),
                name=f"p{index}",
                text=rng.choice(
                    [f"scene {index} 'quoted' $(x)", f"sc\u00e8ne {index} \u6771\u4eac"]
                ),
                negative=None if distilled else rng.choice([None, "blurry", "flou, tr\u00e8s"]),
                inputs=inputs,
                seed=rng.choice([2025, 7]),
                guidance=3 if distilled else rng.choice([0, 3, 5.0, 7]),
                num_steps=rng.choice([35, 4]),
                sigma_max=rng.choice([None, 80.0, 0.0]) if sigma else None,
                num_gpus=rng.choice([1, 2]),
                options=options,
                controls=settings,
            )
        )
    return runs


def expected_sample(run: RunSpec, layout: JobLayout) -> dict[str, Any]:
    """What the sample of ``run`` must hold, computed from the run alone."""

    def staged(item: InputFile) -> str:
        return layout.path(f"inputs/{item.sha256}{item.path.suffix}")

    inputs = run.prompt.inputs
    options = {k: v for k, v in run.model["options"].items() if v is not None}
    expected: dict[str, Any] = {
        "name": run.id,
        "prompt": run.prompt.text,
        "video_path": staged(inputs.video),
        "seed": run.model["seed"],
        "guidance": int(run.model["guidance"]),
        "num_steps": run.model["num_steps"],
    }
    for key in ("resolution", "max_frames", "num_conditional_frames"):
        expected.update({key: options[key]} if key in options else {})
    for key in ("num_video_frames_per_chunk", "keep_input_resolution"):
        expected.update({key: options[key]} if key in options else {})
    if run.prompt.negative is not None:
        expected["negative_prompt"] = run.prompt.negative
    if inputs.image_context is not None:
        expected["image_context_path"] = staged(inputs.image_context)
    if run.model["sigma_max"] is not None:
        expected["sigma_max"] = repr(float(run.model["sigma_max"]))
    for key, weight in run.model["weights"].items():
        if weight is None:
            continue
        block = {"control_weight": weight}
        block.update(
            {"control_path": staged(inputs.controls[key])} if key in inputs.controls else {}
        )
        block.update({"mask_path": staged(inputs.masks[key])} if key in inputs.masks else {})
        settings = run.model["controls"].get(key, {})
        block.update({k: v for k, v in settings.items() if v is not None})
        expected[key] = block
    return expected


def stage(invocation: Invocation, root: Path) -> None:
    """Write the job folder as an executor would (inputs as placeholder files)."""
    for relative, content in invocation.files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    for relative in invocation.inputs:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"video")


def flag_values(argv: list[str]) -> dict[str, str | bool]:
    """The flags after ``-o OUT``: --name=value as value, a bare --name as True."""
    found: dict[str, str | bool] = {}
    for token in argv[argv.index("-o") + 2 :]:
        name, sep, value = token.partition("=")
        found[name] = value if sep else True
    return found


@pytest.mark.parametrize("seed", range(3))
def test_every_sample_is_exactly_its_run_and_the_real_sample_model_takes_it(
    seed: int, tmp_path: Path
) -> None:
    adapter = Transfer25Adapter(Transfer25Settings(max_batch_size=5))
    runs = random_runs(random.Random(seed), 60)
    assert all(adapter.validate(run) == [] for run in runs), [adapter.validate(r) for r in runs]
    batches = [job.runs for job in form_jobs(runs, {adapter.name: adapter})]
    assert any(len(b) > 1 for b in batches), "precondition: some runs share a model load"
    for number, batch in enumerate(batches):
        layout = JobLayout(root=str(tmp_path / f"jb_{number}"))
        invocation = adapter.render(f"jb_{number}", batch, layout)
        stage(invocation, Path(layout.root))
        argv = invocation.argv
        paths = argv[argv.index("-i") + 1 : argv.index("-o")]
        assert len(paths) == len(batch)
        flags = flag_values(argv)
        first = batch[0]
        for run, path in zip(batch, paths, strict=True):
            text = Path(path).read_bytes().decode("ascii")  # any locale reads it
            sample = json.loads(text)
            standin().Sample.model_validate(sample)
            assert sample == expected_sample(run, layout)
            assert invocation.run_specs[run.id] == sample
            # The invocation's shared values are every run's own.
            options = {k: v for k, v in run.model["options"].items() if v is not None}
            used = [k for k, w in run.model["weights"].items() if w is not None]
            only = used[0] if len(used) == 1 else None
            assert flags.get("--model") == options.get("model", only)
            assert flags.get("--disable-guardrails", False) == options.get(
                "disable_guardrails", False
            )
            for key in ("checkpoint_path", "experiment", "config_file"):
                assert flags.get("--" + key.replace("_", "-")) == options.get(key)
            assert used == [k for k, w in first.model["weights"].items() if w is not None]
            assert run.model["num_gpus"] == first.model["num_gpus"]
        distilled = flags.get("--model") == DISTILLED
        assert invocation.env.get("COSMOS_EXPERIMENTAL_CHECKPOINTS") == ("1" if distilled else None)
        assert invocation.env["PYTHONUTF8"] == "1"
        assert (argv[0] == "torchrun") == (first.model["num_gpus"] > 1)


def test_each_run_maps_its_video_prompt_and_one_control_video_per_control() -> None:
    run = make_run(
        {"edge": 0.5, "depth": 0.25, "seg": 1.0},
        inputs=PromptInputSet(video=VIDEOS[0], controls={"depth": CONTROL_VIDEOS["depth"]}),
    )
    invocation = Transfer25Adapter(Transfer25Settings()).render("jb", [run], LAYOUT)
    outputs = invocation.outputs[run.id]
    assert outputs.video == f"out/{run.id}.mp4"
    assert outputs.extras == {"prompt": f"out/{run.id}.txt"}
    # Given (depth) or computed (edge, seg): the program writes each control it used.
    assert outputs.controls == {
        "edge": f"out/{run.id}_control_edge.mp4",
        "depth": f"out/{run.id}_control_depth.mp4",
        "seg": f"out/{run.id}_control_seg.mp4",
    }


@pytest.mark.parametrize("sigma_max", [0.0, 80.0, 200.0, 1e-3])
def test_sigma_max_is_the_string_the_sample_model_takes(sigma_max: float) -> None:
    run = make_run(sigma_max=sigma_max, options={"experiment": "my_edm_experiment"})
    adapter = Transfer25Adapter(Transfer25Settings())
    assert adapter.validate(run) == []
    sample = json.loads(adapter.render("jb", [run], LAYOUT).files[f"samples/{run.id}.json"])
    assert isinstance(sample["sigma_max"], str)
    assert float(sample["sigma_max"]) == sigma_max
    with pytest.raises(standin().pydantic.ValidationError, match="valid string"):
        standin().Sample.model_validate({**sample, "sigma_max": sigma_max})


def test_samples_are_ascii_and_the_program_runs_in_utf8_mode() -> None:
    text, negative = "Caf\u00e9 \u6771\u4eac \u2014 \U0001f600", "flou"
    run = make_run(text=text, negative=negative, controls={"edge": {"mask_prompt": "v\u00e9lo"}})
    invocation = Transfer25Adapter(Transfer25Settings()).render("jb", [run], LAYOUT)
    content = invocation.files[f"samples/{run.id}.json"]
    assert content.decode("ascii")
    sample = json.loads(content)
    assert (sample["prompt"], sample["negative_prompt"]) == (text, negative)
    assert sample["edge"]["mask_prompt"] == "v\u00e9lo"
    assert invocation.env["PYTHONUTF8"] == "1"


def key_paths(run: RunSpec, settings: Transfer25Settings | None = None) -> list[str]:
    return sorted(
        p.key_path for p in Transfer25Adapter(settings or Transfer25Settings()).validate(run)
    )


def with_options(**options: Any) -> dict[str, Any]:
    return {"options": options}


TWO = {"edge": 1.0, "depth": 0.5}
EDGE_VIDEO = PromptInputSet(video=VIDEOS[0], controls={"edge": CONTROL_VIDEOS["edge"]})
SEG_VIDEO = PromptInputSet(video=VIDEOS[0], controls={"seg": CONTROL_VIDEOS["seg"]})
EDGE_MASK = PromptInputSet(video=VIDEOS[0], masks={"edge": MASKS["edge"]})


@pytest.mark.parametrize(
    ("weights", "run_changes", "keys"),
    [
        # Transfer1's parameters.
        (None, {"fps": 24}, ["model.fps"]),
        (None, {"blur_strength": "high"}, ["model.blur_strength"]),
        (None, {"canny_threshold": "low"}, ["model.canny_threshold"]),
        # Scalars.
        (None, {"guidance": 3.5}, ["model.guidance"]),
        (None, {"guidance": 8}, ["model.guidance"]),
        (None, {"sigma_max": 80.0}, ["model.sigma_max"]),
        (None, {"sigma_max": 200.5, **with_options(experiment="x")}, ["model.sigma_max"]),
        # Controls and weights.
        ({"edge": 1.5}, {}, ["model.weights.edge"]),
        ({"edge": None}, {}, ["model.weights"]),
        ({"keypoint": 0.5}, {}, ["model.weights.keypoint"]),
        ({"hdmap": 0.5, "lidar": 0.5}, {}, ["model.weights.hdmap", "model.weights.lidar"]),
        # Options: types, choices and ranges.
        (None, with_options(model="canny"), ["model.options.model"]),
        (None, with_options(model="depth"), ["model.options.model"]),
        (None, with_options(resolution=720), ["model.options.resolution"]),
        (None, with_options(resolution="700"), ["model.options.resolution"]),
        (None, with_options(max_frames=True), ["model.options.max_frames"]),
        (None, with_options(max_frames=0), ["model.options.max_frames"]),
        (None, with_options(max_frames=1), ["model.options.max_frames"]),
        (None, with_options(num_conditional_frames=3), ["model.options.num_conditional_frames"]),
        (None, with_options(num_conditional_frames=-1), ["model.options.num_conditional_frames"]),
        (None, with_options(num_conditional_frames=1.0), ["model.options.num_conditional_frames"]),
        (None, with_options(num_conditional_frames=True), ["model.options.num_conditional_frames"]),
        (
            None,
            with_options(num_video_frames_per_chunk=0),
            ["model.options.num_video_frames_per_chunk"],
        ),
        (
            None,
            with_options(num_video_frames_per_chunk=1),
            ["model.options.num_video_frames_per_chunk"],
        ),
        (
            None,
            with_options(num_video_frames_per_chunk=2, num_conditional_frames=2),
            ["model.options.num_video_frames_per_chunk"],
        ),
        (
            None,
            with_options(num_video_frames_per_chunk=1, num_conditional_frames=0),
            ["model.options.num_video_frames_per_chunk"],
        ),
        (
            None,
            with_options(num_video_frames_per_chunk=9.5),
            ["model.options.num_video_frames_per_chunk"],
        ),
        (None, with_options(keep_input_resolution="yes"), ["model.options.keep_input_resolution"]),
        (None, with_options(steps=3), ["model.options.steps"]),
        (None, with_options(checkpoint_path="s3://bucket/x"), ["model.options.checkpoint_path"]),
        (None, with_options(checkpoint_path="hf://org/repo"), ["model.options.checkpoint_path"]),
        (None, with_options(checkpoint_path=""), ["model.options.checkpoint_path"]),
        (None, with_options(experiment=" "), ["model.options.experiment"]),
        (None, with_options(config_file=""), ["model.options.config_file"]),
        (None, with_options(config_file=3), ["model.options.config_file"]),
        # Ignored with several controls (the multicontrol checkpoints are loaded).
        (TWO, with_options(checkpoint_path="ckpt/x.pt"), ["model.options.checkpoint_path"]),
        (TWO, with_options(experiment="mine"), ["model.options.experiment"]),
        # The distilled checkpoint ignores guidance and the negative prompt, fails on sigma_max.
        (None, {"guidance": 5, **with_options(model=DISTILLED)}, ["model.guidance"]),
        (
            None,
            {"sigma_max": 80.0, **with_options(model=DISTILLED, experiment="x")},
            ["model.sigma_max"],
        ),
        ({"edge": 1.0, "vis": 0.5}, with_options(model=DISTILLED), ["model.options.model"]),
        # Per-control settings.
        (None, {"controls": {"edge": {"ckpt_path": "/c.pt"}}}, ["model.controls.edge.ckpt_path"]),
        (
            None,
            {"controls": {"edge": {"preset_blur_strength": "high"}}},
            ["model.controls.edge.preset_blur_strength"],
        ),
        (
            {"vis": 1.0},
            {"controls": {"vis": {"preset_blur_strength": "strong"}}},
            ["model.controls.vis.preset_blur_strength"],
        ),
        (
            {"vis": 1.0},
            {"controls": {"vis": {"preset_edge_threshold": "low"}}},
            ["model.controls.vis.preset_edge_threshold"],
        ),
        (
            {"depth": 1.0},
            {"controls": {"depth": {"control_prompt": "car"}}},
            ["model.controls.depth.control_prompt"],
        ),
        (None, {"controls": {"edge": {"mask_prompt": 3}}}, ["model.controls.edge.mask_prompt"]),
        (None, {"controls": {"edge": {"mask_prompt": ""}}}, ["model.controls.edge.mask_prompt"]),
        (
            {"keypoint": 1.0},
            {"controls": {"keypoint": {}}},
            ["model.controls.keypoint", "model.weights.keypoint"],
        ),
    ],
)
def test_what_the_program_would_refuse_or_ignore_is_caught_with_its_key(
    weights: dict | None, run_changes: dict, keys: list[str]
) -> None:
    assert key_paths(make_run()) == [], "precondition: the unchanged run is valid"
    assert key_paths(make_run(weights, **run_changes)) == sorted(keys)


@pytest.mark.parametrize(
    ("weights", "run_changes"),
    [
        (None, {"guidance": 0}),
        (None, {"guidance": 7.0}),
        ({"edge": 0.0}, {}),
        (None, {"sigma_max": 0.0, **with_options(experiment="x")}),
        (None, {"sigma_max": 200.0, **with_options(experiment="x")}),
        (None, with_options(num_conditional_frames=0, num_video_frames_per_chunk=2)),
        (None, with_options(num_conditional_frames=2, num_video_frames_per_chunk=3)),
        (None, with_options(max_frames=2)),
        *[(None, with_options(resolution=r)) for r in ("256", "480p", "720robocasa", "1080")],
        (None, with_options(checkpoint_path="hf://nvidia/repo/dir/m.pt")),
        (None, with_options(checkpoint_path="checkpoints/post_trained.pt", experiment="mine")),
        (TWO, with_options(config_file="cosmos_transfer2/my_config.py")),
        (None, {"guidance": 3, **with_options(model=DISTILLED)}),
        (None, {"controls": {"edge": {"preset_edge_threshold": "very_high", "mask_prompt": "x"}}}),
        ({"seg": 1.0}, {"controls": {"seg": {"control_prompt": "road", "mask_prompt": None}}}),
        ({"vis": 1.0}, {"controls": {"vis": {"preset_blur_strength": "very_low"}}}),
    ],
)
def test_the_boundaries_the_program_accepts_are_accepted(
    weights: dict | None, run_changes: dict
) -> None:
    assert key_paths(make_run(weights, **run_changes)) == []


@pytest.mark.parametrize(
    ("weights", "inputs", "run_changes", "keys"),
    [
        (None, PromptInputSet(video=None), {}, ["prompts.p.inputs.video"]),
        (None, PromptInputSet(video=file_of("still.png", "1")), {}, ["prompts.p.inputs.video"]),
        (None, PromptInputSet(video=file_of("clip.gif", "1")), {}, ["prompts.p.inputs.video"]),
        (
            None,
            PromptInputSet(video=VIDEOS[0], weight_maps={"edge": file_of("w.pt", "2")}),
            {},
            ["prompts.p.inputs.weight_maps.edge"],
        ),
        (
            {"keypoint": 1.0},
            PromptInputSet(video=VIDEOS[0], controls={"keypoint": file_of("k.mp4", "3")}),
            {},
            ["model.weights.keypoint", "prompts.p.inputs.controls.keypoint"],
        ),
        (
            {"vis": 1.0},
            PromptInputSet(video=VIDEOS[0], image_context=LOOK),
            {},
            ["prompts.p.inputs.image_context"],
        ),
        (
            None,
            PromptInputSet(video=VIDEOS[0], image_context=file_of("look.gif", "4")),
            {},
            ["prompts.p.inputs.image_context"],
        ),
        # A setting for a control the program computes, while its video is given.
        (
            None,
            EDGE_VIDEO,
            {"controls": {"edge": {"preset_edge_threshold": "low"}}},
            ["model.controls.edge.preset_edge_threshold"],
        ),
        (
            {"seg": 1.0},
            SEG_VIDEO,
            {"controls": {"seg": {"control_prompt": "cars"}}},
            ["model.controls.seg.control_prompt"],
        ),
        # A mask prompt besides a mask video (the program uses the video).
        (
            None,
            EDGE_MASK,
            {"controls": {"edge": {"mask_prompt": "cars"}}},
            ["model.controls.edge.mask_prompt"],
        ),
    ],
)
def test_inputs_the_program_cannot_use_are_refused_with_their_key(
    weights: dict | None, inputs: PromptInputSet, run_changes: dict, keys: list[str]
) -> None:
    assert key_paths(make_run(weights, inputs=inputs, **run_changes)) == sorted(keys)


def test_the_distilled_checkpoint_refuses_a_negative_prompt_others_keep_it() -> None:
    distilled = make_run(negative="blurry", options={"model": DISTILLED})
    assert key_paths(distilled) == ["prompts.p.negative"]
    assert key_paths(make_run(negative="blurry", options={"model": "edge"})) == []


def test_masks_image_context_and_settings_reach_the_sample() -> None:
    run = make_run(
        {"edge": 0.5, "seg": 0.75},
        inputs=PromptInputSet(video=VIDEOS[1], masks={"seg": MASKS["seg"]}, image_context=LOOK),
        controls={
            "edge": {"preset_edge_threshold": "high", "mask_prompt": "the road"},
            "seg": {"control_prompt": "cars, trees"},
        },
    )
    invocation = Transfer25Adapter(Transfer25Settings()).render("jb", [run], LAYOUT)
    sample = invocation.run_specs[run.id]
    assert sample["edge"] == {
        "control_weight": 0.5,
        "preset_edge_threshold": "high",
        "mask_prompt": "the road",
    }
    assert sample["seg"] == {
        "control_weight": 0.75,
        "mask_path": LAYOUT.path(f"inputs/{'h' * 64}.mp4"),
        "control_prompt": "cars, trees",
    }
    assert sample["image_context_path"] == LAYOUT.path(f"inputs/{'9' * 64}.jpg")
    # Masks and the image context are staged like videos.
    assert {f"inputs/{'h' * 64}.mp4", f"inputs/{'9' * 64}.jpg"} <= set(invocation.inputs)


@pytest.mark.parametrize(
    "change",
    [
        {"options": {"checkpoint_path": "ckpt/a.pt"}},
        {"options": {"experiment": "mine"}},
        {"options": {"config_file": "my_config.py"}},
        {"options": {"disable_guardrails": True}},
        {"options": {"model": DISTILLED}},
        {"weights": {"edge": 1.0, "vis": 0.5}},
        {"num_gpus": 2},
    ],
)
def test_runs_share_an_invocation_only_with_the_same_command_and_controls(change: dict) -> None:
    adapter = Transfer25Adapter(Transfer25Settings())
    same = [make_run(name=f"p{i}", inputs=PromptInputSet(video=VIDEOS[i])) for i in range(2)]
    assert len(form_jobs(same, {adapter.name: adapter})) == 1, "precondition: they batch"
    other = make_run(name="p1", inputs=PromptInputSet(video=VIDEOS[1]))
    weights = change.pop("weights", None)
    if weights:
        other.model["weights"].update(weights)
    for key, value in change.items():
        other.model[key] = value
    assert adapter.validate(other) == []
    jobs = form_jobs([same[0], other], {adapter.name: adapter})
    assert len(jobs) == 2
    for number, job in enumerate(jobs):
        invocation = adapter.render(f"jb_{number}", job.runs, LAYOUT)
        options = {k: v for k, v in job.runs[0].model["options"].items() if v is not None}
        flags = flag_values(invocation.argv)
        for key in ("checkpoint_path", "experiment", "config_file"):
            assert flags.get("--" + key.replace("_", "-")) == options.get(key)


@pytest.mark.parametrize(
    "flags", [["--offload-guardrail-models", "--compile-tokenizer=moderate"], ["--keep-going"]]
)
def test_set_up_flags_pass_through(flags: list[str]) -> None:
    adapter = Transfer25Adapter(Transfer25Settings(extra_args=flags))
    run = make_run()
    assert adapter.validate(run) == []
    assert adapter.render("jb", [run], LAYOUT).argv[-len(flags) :] == flags


@pytest.mark.parametrize(
    "flag",
    [
        "--disable-guardrails",
        "--checkpoint-path=/x",
        "--experiment=x",
        "--config-file=x.py",
        "--seed=3",
        "-o",
        "--output-dir",
        "-i",
        "--model=edge",
        "--guidance",
        "--num-steps",
    ],
)
def test_extra_args_that_change_outputs_or_shadow_a_value_are_refused(flag: str) -> None:
    settings = Transfer25Settings(extra_args=["--keep-going", flag])
    problems = Transfer25Adapter(settings).validate(make_run())
    assert [p.key_path for p in problems] == ["adapters.transfer2_5.extra_args"]
    assert flag in problems[0].message


def test_the_command_runs_inference_py_from_the_checkout() -> None:
    settings = Transfer25Settings(workspace="/opt/ct25", extra_args=["--keep-going"])
    run = make_run(options={"checkpoint_path": "ckpt/my model.pt", "experiment": "exp"})
    invocation = Transfer25Adapter(settings).render("jb_x", [run], LAYOUT)
    argv = invocation.argv
    assert argv[:2] == [LAYOUT.python, "examples/inference.py"]
    assert argv[argv.index("-o") + 1] == LAYOUT.path("out")
    assert argv[argv.index("-o") + 2 :] == [
        "--model=edge",
        "--checkpoint-path=ckpt/my model.pt",
        "--experiment=exp",
        "--keep-going",
    ]
    assert invocation.workdir == "/opt/ct25"


# Console lines as cosmos_transfer2/inference.py logs them (its own logger, then
# the traceback of the exception --no-keep-going raises on a block).
def t25_log(*lines: str) -> str:
    where = "[11-04 10:12:01|INFO|cosmos_transfer2/inference.py]"
    return "".join(f"{where} {line}\n" for line in lines)


STARTS = ("Generating 3 samples", "[1/3] Processing sample rs_a", "Saved arguments")
PROMPT_BLOCK = t25_log(
    *STARTS, "[2/3] Processing sample rs_b", "Guardrail blocked generation. Prompt: a b c"
) + ("Traceback (most recent call last):\nException: Guardrail blocked generation. Prompt: a\n")
NEGATIVE_BLOCK = t25_log(
    "[1/1] Processing sample rs_n", "Guardrail blocked generation. Negative prompt: n"
)
VIDEO_BLOCK = t25_log(*STARTS, "Running guardrail check on video...") + (
    "Traceback (most recent call last):\nException: Guardrail blocked video2world generation.\n"
)
# A block the program kept going past, then a crash in the next sample.
EARLIER_BLOCK = t25_log(
    *STARTS, "Guardrail blocked generation. Prompt: x", "[2/3] Processing sample rs_b"
) + ("Traceback (most recent call last):\ntorch.OutOfMemoryError: CUDA out of memory.\n")


@pytest.mark.parametrize(
    ("log", "reason"),
    [
        (PROMPT_BLOCK, "blocked by the guardrail: the prompt of sample rs_b was judged unsafe"),
        (NEGATIVE_BLOCK, "blocked by the guardrail: the negative prompt of sample rs_n was"),
        (VIDEO_BLOCK, "blocked by the guardrail: the generated video of sample rs_a was judged"),
        (EARLIER_BLOCK, None),
        ("Guardrail blocked generation. Prompt: no sample started\n", None),
        (t25_log(*STARTS) + "RuntimeError: boom\n", None),
    ],
    ids=["prompt", "negative prompt", "video", "kept going past it", "no sample", "no block"],
)
def test_a_block_that_ends_the_program_is_its_failure_reason(log: str, reason: str | None) -> None:
    """--no-keep-going: the program raises on a block, in the sample it was making."""
    found = Transfer25Adapter(Transfer25Settings()).failure_reason(log)
    assert found == reason if reason is None else (found or "").startswith(reason)
