"""Cosmos-Transfer1's rules: what transfer.py refuses or ignores, and the files it reads.

Each case was read in nvidia-cosmos/cosmos-transfer1 (docs/models.md, section
transfer1, names the file). The reads are checked with test_adapters.py's
replay of transfer.py's own merge (transfer1_reads), not with our renderer.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_adapters import (
    CONTROL_VIDEOS,
    LAYOUT,
    VIDEOS,
    WEIGHT_MAPS,
    asked_for,
    base_model,
    layout_path,
    program_of,
    transfer1_adapters,
    transfer1_reads,
)

from cosmos_workflow.config.settings import SimulatorSettings, Transfer1Settings
from cosmos_workflow.engine.scheduler import form_jobs
from cosmos_workflow.execution.adapters.base import ModelAdapter
from cosmos_workflow.execution.adapters.upscale import (
    SimulatedUpscalerAdapter,
    Transfer1UpscalerAdapter,
)
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, ResolvedPrompt, RunSpec

NO_WEIGHTS = {k: None for k in ("vis", "edge", "depth", "seg", "keypoint", "hdmap", "lidar")}
SEG_MAP = InputFile(Path("/data/seg_weights.pt"), "7" * 64)


def make_run(
    weights: dict[str, float],
    controls: tuple[str, ...] = (),
    video: InputFile | None = VIDEOS[0],
    name: str = "p",
    text: str = "a street",
    **changes: Any,
) -> RunSpec:
    """A simulated-adapter run with ``weights``, control videos of ``controls`` and ``changes``.

    ``changes`` may hold model fields, ``options``, ``settings`` (model.controls),
    ``maps``, ``masks``, ``image_context`` and ``negative``.
    """
    model = base_model("simulated")
    model["weights"] = {**NO_WEIGHTS, **weights}
    model["options"] = changes.pop("options", {})
    model["controls"] = changes.pop("settings", {})
    inputs = PromptInputSet(
        video=video,
        controls={key: CONTROL_VIDEOS[key] for key in controls},
        weight_maps=changes.pop("maps", {}),
        masks=changes.pop("masks", {}),
        image_context=changes.pop("image_context", None),
    )
    negative = changes.pop("negative", None)
    model.update(changes)
    return RunSpec(ResolvedPrompt(name, text, negative, inputs), model)


def for_adapter(run: RunSpec, adapter: ModelAdapter) -> RunSpec:
    model = copy.deepcopy(run.model)
    model["adapter"] = adapter.name
    return RunSpec(run.prompt, model)


CASES: dict[str, tuple[Callable[[], RunSpec], list[str]]] = {
    # -- use_distilled: inference_utils.py, world_generation_pipeline.py, model_ctrl.py
    "distilled edge": (lambda: make_run({"edge": 1.0}, options={"use_distilled": True}), []),
    "distilled depth": (
        lambda: make_run({"depth": 1.0}, options={"use_distilled": True}),
        ["model.options.use_distilled"],
    ),
    "distilled edge and depth": (
        lambda: make_run({"edge": 0.5, "depth": 0.5}, options={"use_distilled": True}),
        ["model.options.use_distilled"],
    ),
    "distilled ignores guidance": (
        lambda: make_run({"edge": 1.0}, options={"use_distilled": True}, guidance=7.0),
        ["model.guidance"],
    ),
    "distilled ignores steps": (
        lambda: make_run({"edge": 1.0}, options={"use_distilled": True}, num_steps=10),
        ["model.num_steps"],
    ),
    "distilled ignores sigma_max": (
        lambda: make_run({"edge": 1.0}, options={"use_distilled": True}, sigma_max=90.0),
        ["model.sigma_max"],
    ),
    "distilled ignores the negative prompt": (
        lambda: make_run({"edge": 1.0}, options={"use_distilled": True}, negative="blurry"),
        ["prompts.p.negative"],
    ),
    # -- num_input_frames: transfer.py's argparse choices=[1]
    "one input frame": (lambda: make_run({"depth": 0.5}, options={"num_input_frames": 1}), []),
    "two input frames": (
        lambda: make_run({"depth": 0.5}, options={"num_input_frames": 2}),
        ["model.options.num_input_frames"],
    ),
    "a boolean for input frames": (
        lambda: make_run({"depth": 0.5}, options={"num_input_frames": True}),
        ["model.options.num_input_frames"],
    ),
    # -- seed: utils/misc.py set_random_seed (numpy)
    "largest seed": (lambda: make_run({"depth": 0.5}, seed=2**32 - 1), []),
    "seed beyond numpy": (lambda: make_run({"depth": 0.5}, seed=2**32), ["model.seed"]),
    # -- weights: inference_utils.py load_spatial_temporal_weights divides by a sum > 1
    "weights sum to 1": (lambda: make_run({"depth": 0.6, "edge": 0.4}), []),
    "weights above 1": (lambda: make_run({"depth": 0.7, "edge": 0.5}), ["model.weights"]),
    "one weight above 1": (lambda: make_run({"depth": 2.0}), ["model.weights"]),
    "weights above 1 with a map": (
        lambda: make_run({"depth": 0.7, "edge": 0.5}, maps={"depth": WEIGHT_MAPS[0]}),
        [],
    ),
    # -- inputs Transfer1 has no use for
    "a mask": (
        lambda: make_run({"depth": 0.5}, masks={"depth": CONTROL_VIDEOS["seg"]}),
        ["prompts.p.inputs.masks.depth"],
    ),
    "an image context": (
        lambda: make_run({"depth": 0.5}, image_context=InputFile(Path("/d/i.jpg"), "8" * 64)),
        ["prompts.p.inputs.image_context"],
    ),
    "a weight map that is not .pt": (
        lambda: make_run({"depth": 0.5}, maps={"depth": InputFile(Path("/d/w.pth"), "8" * 64)}),
        ["prompts.p.inputs.weight_maps.depth"],
    ),
    # -- per-control settings: inference_utils.py, preprocessors.py
    "a checkpoint": (
        lambda: make_run({"depth": 0.5}, settings={"depth": {"ckpt_path": "/ckpt/d.pt"}}),
        [],
    ),
    "an empty checkpoint": (
        lambda: make_run({"depth": 0.5}, settings={"depth": {"ckpt_path": " "}}),
        ["model.controls.depth.ckpt_path"],
    ),
    "a number as checkpoint": (
        lambda: make_run({"depth": 0.5}, settings={"depth": {"ckpt_path": 3}}),
        ["model.controls.depth.ckpt_path"],
    ),
    "an unknown setting": (
        lambda: make_run({"depth": 0.5}, settings={"depth": {"mask_prompt": "car"}}),
        ["model.controls.depth.mask_prompt"],
    ),
    "an unknown setting of seg": (
        lambda: make_run({"seg": 0.5}, settings={"seg": {"mask_prompt": "car"}}),
        ["model.controls.seg.mask_prompt"],
    ),
    "a null setting is unset": (
        lambda: make_run({"depth": 0.5}, settings={"depth": {"ckpt_path": None}}),
        [],
    ),
    "a weight prompt for edge": (
        lambda: make_run({"edge": 0.5}, settings={"edge": {"control_weight_prompt": "car"}}),
        ["model.controls.edge.control_weight_prompt"],
    ),
    "a weight prompt for seg": (
        lambda: make_run({"seg": 0.5}, settings={"seg": {"control_weight_prompt": "car"}}),
        [],
    ),
    "a weight prompt without input video": (
        lambda: make_run(
            {"seg": 0.5},
            ("seg",),
            video=None,
            sigma_max=80.0,
            settings={"seg": {"control_weight_prompt": "car"}},
        ),
        ["model.controls.seg.control_weight_prompt"],
    ),
    "a weight prompt and a weight map": (
        lambda: make_run(
            {"seg": 0.5}, maps={"seg": SEG_MAP}, settings={"seg": {"control_weight_prompt": "c"}}
        ),
        ["prompts.p.inputs.weight_maps.seg"],
    ),
    "a seg prompt for a computed seg": (
        lambda: make_run({"seg": 0.5}, settings={"seg": {"input_control_prompt": "car"}}),
        [],
    ),
    "a seg prompt with a seg video": (
        lambda: make_run({"seg": 0.5}, ("seg",), settings={"seg": {"input_control_prompt": "c"}}),
        ["model.controls.seg.input_control_prompt"],
    ),
    "a seg prompt for depth": (
        lambda: make_run({"depth": 0.5}, settings={"depth": {"input_control_prompt": "c"}}),
        ["model.controls.depth.input_control_prompt"],
    ),
    # -- keypoint, hdmap, lidar: preprocessors.py, checkpoints.py, transfer.py --is_av_sample
    "keypoint computed": (lambda: make_run({"keypoint": 1.0}), []),
    "hdmap and lidar videos": (
        lambda: make_run(
            {"hdmap": 0.3, "lidar": 0.7}, ("hdmap", "lidar"), video=None, sigma_max=80.0
        ),
        [],
    ),
    "hdmap without its video": (
        lambda: make_run({"hdmap": 1.0}),
        ["prompts.p.inputs.controls.hdmap"],
    ),
    "hdmap with depth": (
        lambda: make_run({"hdmap": 0.5, "depth": 0.5}, ("hdmap",)),
        ["model.weights"],
    ),
    # -- upsample_prompt: world_generation_pipeline.py
    "upsampling from a computed edge": (
        lambda: make_run({"edge": 0.5}, options={"upsample_prompt": True}),
        [],
    ),
    "upsampling from a depth video": (
        lambda: make_run({"depth": 0.5}, ("depth",), options={"upsample_prompt": True}),
        [],
    ),
    "upsampling a computed depth": (
        lambda: make_run({"depth": 0.5}, options={"upsample_prompt": True}),
        ["prompts.p.inputs.controls.depth"],
    ),
    # Of depth and seg it reads the first in the spec file, whose keys are sorted: depth.
    "upsampling depth and seg from a depth video": (
        lambda: make_run({"depth": 0.5, "seg": 0.5}, ("depth",), options={"upsample_prompt": True}),
        [],
    ),
    "upsampling depth and seg from a seg video": (
        lambda: make_run({"depth": 0.5, "seg": 0.5}, ("seg",), options={"upsample_prompt": True}),
        ["prompts.p.inputs.controls.depth"],
    ),
    "upsampling with keypoint only": (
        lambda: make_run({"keypoint": 0.5}, options={"upsample_prompt": True}),
        ["model.options.upsample_prompt"],
    ),
    # -- blur and canny: preprocessors.py, control_input.py
    "blur for a computed vis": (lambda: make_run({"vis": 0.5}, blur_strength="high"), []),
    "blur for a vis video": (
        lambda: make_run({"vis": 0.5}, ("vis",), blur_strength="high"),
        ["model.blur_strength"],
    ),
    # -- a weight of 0: load_spatial_temporal_weights reads it as "none given" (a map of
    # ones) once a control of the video has a weight map; with scalars alone it is 0
    "a zero weight beside scalars": (lambda: make_run({"depth": 0.0, "edge": 0.5}), []),
    "a zero weight beside a map": (
        lambda: make_run({"depth": 0.0, "edge": 0.5}, maps={"edge": WEIGHT_MAPS[0]}),
        ["model.weights.depth"],
    ),
    "zero weights beside maps": (
        lambda: make_run(
            {"depth": 0.0, "edge": 0.5, "vis": 0.0, "seg": 0.5},
            maps={"edge": WEIGHT_MAPS[0], "seg": WEIGHT_MAPS[1]},
        ),
        ["model.weights.vis", "model.weights.depth"],
    ),
    "a zero weight under its own map": (
        lambda: make_run({"depth": 0.0, "edge": 0.5}, maps={"depth": WEIGHT_MAPS[0]}),
        [],
    ),
    "blur without vis": (
        lambda: make_run({"depth": 0.5}, blur_strength="low"),
        ["model.blur_strength"],
    ),
    "blur at its default without vis": (lambda: make_run({"depth": 0.5}, blur_strength=None), []),
    "canny for a computed edge": (lambda: make_run({"edge": 0.5}, canny_threshold="low"), []),
    "canny for an edge video": (
        lambda: make_run({"edge": 0.5}, ("edge",), canny_threshold="high"),
        ["model.canny_threshold"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_what_transfer_py_refuses_or_ignores_is_caught_by_key(
    adapter: ModelAdapter, case: str
) -> None:
    make, expected = CASES[case]
    run = for_adapter(make(), adapter)
    assert [p.key_path for p in adapter.validate(run)] == expected
    if not expected:
        # What passes is what transfer.py reads, alone and in a batch of two.
        twin = RunSpec(
            ResolvedPrompt("q", "a road", run.prompt.negative, run.prompt.inputs), run.model
        )
        assert_each_reads_its_own(adapter, [run, twin])


def assert_each_reads_its_own(adapter: ModelAdapter, runs: list[RunSpec]) -> list[list[RunSpec]]:
    """Every run reads exactly what it asked for; returns the batches."""
    batches = [job.runs for job in form_jobs(runs, {adapter.name: adapter})]
    for number, batch in enumerate(batches):
        invocation = adapter.render(f"jb_{number}", batch, LAYOUT)
        reads = transfer1_reads(invocation, program_of(invocation))
        for run in batch:
            got = reads[LAYOUT.path(invocation.outputs[run.id].video)]
            assert {k: got[k] for k in asked_for(run)} == asked_for(run)
    return batches


@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
@pytest.mark.parametrize("key", ["edge", "vis", "depth", "seg"])
def test_runs_that_upsample_read_their_own_control_video_in_a_batch(
    adapter: ModelAdapter, key: str
) -> None:
    """transfer.py's upsampler reads the shared spec's control video, not the line's."""
    own = [InputFile(Path(f"/data/{key}{i}.mp4"), f"{i + 1}" * 64) for i in range(2)]
    runs = []
    for index in range(4):
        run = for_adapter(make_run({key: 0.5}, options={"upsample_prompt": True}), adapter)
        inputs = PromptInputSet(video=VIDEOS[index % 2], controls={key: own[index // 2]})
        runs.append(RunSpec(ResolvedPrompt(f"p{index}", f"scene {index}", None, inputs), run.model))
    assert all(adapter.validate(run) == [] for run in runs)
    batches = assert_each_reads_its_own(adapter, runs)
    assert sorted(len(b) for b in batches) == [2, 2], "runs of one control video still batch"


@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_with_vis_and_edge_videos_the_upsampler_reads_each_runs_vis_video(
    adapter: ModelAdapter,
) -> None:
    """transfer.py's upsampler reads vis before edge (world_generation_pipeline.py)."""
    vis = [InputFile(Path(f"/data/vis{i}.mp4"), f"{i + 1}" * 64) for i in range(2)]
    runs = []
    for index in range(4):
        run = for_adapter(
            make_run({"vis": 0.5, "edge": 0.5}, options={"upsample_prompt": True}), adapter
        )
        controls = {"vis": vis[index // 2], "edge": CONTROL_VIDEOS["edge"]}
        inputs = PromptInputSet(video=VIDEOS[index % 2], controls=controls)
        runs.append(RunSpec(ResolvedPrompt(f"p{index}", f"scene {index}", None, inputs), run.model))
    assert all(adapter.validate(run) == [] for run in runs)
    batches = assert_each_reads_its_own(adapter, runs)
    assert sorted(len(b) for b in batches) == [2, 2], "runs of one vis video still batch"


@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_runs_that_upsample_from_a_computed_edge_map_batch_freely(adapter: ModelAdapter) -> None:
    runs = [
        for_adapter(
            make_run(
                {"edge": 0.5}, video=VIDEOS[i], name=f"p{i}", options={"upsample_prompt": True}
            ),
            adapter,
        )
        for i in range(3)
    ]
    assert [len(b) for b in assert_each_reads_its_own(adapter, runs)] == [3]


@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_each_batch_line_reads_its_own_weight_map(adapter: ModelAdapter) -> None:
    runs = [
        for_adapter(
            make_run({"depth": 0.5, "edge": 0.5}, name=f"p{i}", maps={"depth": WEIGHT_MAPS[i]}),
            adapter,
        )
        for i in range(2)
    ]
    batches = assert_each_reads_its_own(adapter, runs)
    assert [len(b) for b in batches] == [2]
    invocation = adapter.render("jb", batches[0], LAYOUT)
    reads = transfer1_reads(invocation, program_of(invocation))
    maps = {read["controls"]["depth"]["control_weight"] for read in reads.values()}
    assert maps == {layout_path(item) for item in WEIGHT_MAPS}


@pytest.mark.parametrize(
    "settings",
    [
        {"depth": {"ckpt_path": "/ckpt/other.pt"}},
        {"seg": {"input_control_prompt": "the road"}},
        {"seg": {"control_weight_prompt": "the road"}},
    ],
)
def test_runs_with_other_control_settings_never_share_a_batch(settings: dict) -> None:
    """transfer.py loads checkpoints and reads the prompts from the shared spec only."""
    adapter = transfer1_adapters()[1]
    base = {"depth": {"ckpt_path": "/ckpt/depth.pt"}}
    runs = [
        make_run({"depth": 0.5, "seg": 0.5}, name="a", settings=base),
        make_run({"depth": 0.5, "seg": 0.5}, name="b", settings={**base, **settings}),
    ]
    assert [adapter.validate(run) for run in runs] == [[], []]
    assert [len(b) for b in assert_each_reads_its_own(adapter, runs)] == [1, 1]


@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_new_controls_and_settings_reach_the_spec(adapter: ModelAdapter) -> None:
    run = for_adapter(
        make_run(
            {"keypoint": 0.4, "seg": 0.6},
            ("keypoint",),
            settings={
                "keypoint": {"ckpt_path": "/ckpt/keypoint_posttrained.pt"},
                "seg": {"input_control_prompt": "the dancer", "control_weight_prompt": "arms"},
            },
        ),
        adapter,
    )
    assert adapter.validate(run) == []
    spec = json.loads(adapter.render("jb", [run], LAYOUT).files["spec.json"])
    assert spec["keypoint"] == {
        "control_weight": 0.4,
        "ckpt_path": "/ckpt/keypoint_posttrained.pt",
        "input_control": layout_path(CONTROL_VIDEOS["keypoint"]),
    }
    assert spec["seg"] == {
        "control_weight": 0.6,
        "input_control_prompt": "the dancer",
        "control_weight_prompt": "arms",
    }
    assert "is_av_sample" not in spec


@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_hdmap_and_lidar_run_the_sample_av_model(adapter: ModelAdapter) -> None:
    run = for_adapter(CASES["hdmap and lidar videos"][0](), adapter)
    spec = json.loads(adapter.render("jb", [run], LAYOUT).files["spec.json"])
    assert spec["is_av_sample"] is True
    assert spec["hdmap"]["input_control"] == layout_path(CONTROL_VIDEOS["hdmap"])


@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_spec_and_batch_files_are_ascii_whatever_the_prompt(adapter: ModelAdapter) -> None:
    """transfer.py opens them with the locale's encoding, which may be ASCII."""
    texts = ["Rue de l'\u00e9t\u00e9", "\u96e8\u306e\u6771\u4eac \u2014 \U0001f327"]
    runs = [
        for_adapter(make_run({"depth": 0.5}, name=f"p{i}", text=t, negative="fl\u00fb"), adapter)
        for i, t in enumerate(texts)
    ]
    for batch in ([runs[0]], runs):
        invocation = adapter.render("jb", batch, LAYOUT)
        written = {n: c for n, c in invocation.files.items() if n.endswith((".json", ".jsonl"))}
        assert written and all(content.isascii() for content in written.values())
        reads = transfer1_reads(invocation, program_of(invocation))
        assert sorted(read["prompt"] for read in reads.values()) == sorted(
            r.prompt.text for r in batch
        )


@pytest.mark.parametrize(
    "adapter",
    [Transfer1UpscalerAdapter(Transfer1Settings()), SimulatedUpscalerAdapter(SimulatorSettings())],
    ids=lambda a: a.name,
)
@pytest.mark.parametrize(("weight", "expected"), [(1.0, []), (0.5, []), (1.5, ["model.weights"])])
def test_an_upscale_weight_above_1_is_refused(
    adapter: ModelAdapter, weight: float, expected: list[str]
) -> None:
    """A single weight above 1 runs as 1 (transfer.py divides weights by a sum above 1)."""
    model = {**base_model(adapter.name), "weights": {"upscale": weight}}
    run = RunSpec(ResolvedPrompt("p", "a street", None, PromptInputSet(video=VIDEOS[0])), model)
    assert [p.key_path for p in adapter.validate(run)] == expected
