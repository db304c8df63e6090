"""Model adapters: what the real Cosmos programs would read from our files.

The proof for Transfer1 does not reuse our renderer's merge code: it applies
the rule of COSMOS_INTERFACE.md (transfer.py's defaults, then top-level JSON
values unless the same flag is on the command line, then each batch line
merged onto a copy of the shared spec) to the rendered files and argv, and
checks that every run reads exactly its own parameters.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from test_identity_and_expansion import MODEL

from cosmos_workflow.config.settings import (
    SimulatorSettings,
    Transfer1Settings,
    Transfer25Settings,
)
from cosmos_workflow.engine.scheduler import form_jobs
from cosmos_workflow.execution.adapters.base import Invocation, JobLayout, ModelAdapter
from cosmos_workflow.execution.adapters.simulated import SimulatedAdapter
from cosmos_workflow.execution.adapters.transfer1 import SETUP_FLAGS as TRANSFER1_SETUP_FLAGS
from cosmos_workflow.execution.adapters.transfer1 import Transfer1Adapter
from cosmos_workflow.execution.adapters.transfer2_5 import Transfer25Adapter
from cosmos_workflow.execution.adapters.upscale import (
    SimulatedUpscalerAdapter,
    Transfer1UpscalerAdapter,
)
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, ResolvedPrompt, RunSpec

LAYOUT = JobLayout(root="/work/jobs/jb_1")
# transfer.py's defaults (its argparse), for values a spec leaves out.
TRANSFER1_DEFAULTS: dict[str, Any] = {
    "prompt": "<built-in prompt>",
    "negative_prompt": "<built-in negative prompt>",
    "input_video_path": "",
    "sigma_max": 70.0,
    "blur_strength": "medium",
    "canny_threshold": "medium",
    "num_steps": 35,
    "guidance": 5,
    "fps": 24,
    "seed": 1,
    "num_gpus": 1,
    "num_input_frames": 1,
    "upsample_prompt": False,
    "use_distilled": False,
    "is_av_sample": False,
}
OPTIONS = ("num_input_frames", "upsample_prompt", "use_distilled")
SCALARS = ("seed", "guidance", "num_steps", "sigma_max", "fps", "blur_strength", "canny_threshold")
CONTROL_KEYS = ("vis", "seg", "edge", "depth", "keypoint", "upscale", "hdmap", "lidar")
VIDEOS = [InputFile(Path(f"/data/color{i}.mp4"), f"{i}" * 64) for i in range(3)]
CONTROL_VIDEOS = {
    key: InputFile(Path(f"/data/{key}.mp4"), char * 64)
    for key, char in (
        ("depth", "d"),
        ("seg", "e"),
        ("edge", "f"),
        ("vis", "a"),
        ("keypoint", "b"),
        ("hdmap", "c"),
        ("lidar", "9"),
    )
}
WEIGHT_MAPS = [InputFile(Path(f"/data/depth_weights{i}.pt"), f"{i + 5}" * 64) for i in range(2)]


def base_model(adapter: str) -> dict[str, Any]:
    """The model block of the identity tests, for ``adapter``."""
    return {**copy.deepcopy(MODEL), "adapter": adapter, "options": {}}


def random_scalars(rng: random.Random) -> dict[str, Any]:
    return {
        "seed": rng.choice([1, 2, 3, 2**32 - 1]),
        "guidance": rng.choice([5.0, 7.0]),
        "num_steps": rng.choice([35, 10]),
        "sigma_max": rng.choice([70.0, None, 90.0]),
        "fps": rng.choice([24, None]),
        "blur_strength": rng.choice(["medium", "high", None]),
        "canny_threshold": rng.choice(["medium", "low", None]),
        "num_gpus": rng.choice([1, 1, 2]),
        "version": rng.choice(["1", "1", "2"]),
        "image": rng.choice([None, None, "cosmos:2"]),
        "options": rng.choice(
            [{}, {}, {"upsample_prompt": True}, {"num_input_frames": 1, "use_distilled": None}]
        ),
    }


def random_weights(rng: random.Random) -> dict[str, float | None]:
    """Weights that sum to at most 1 (transfer.py divides larger ones by their sum)."""
    weights = {
        "vis": rng.choice([None, None, 0.2]),
        "edge": rng.choice([None, 0.3]),
        "depth": rng.choice([0.3, 0.2, None]),
        "seg": rng.choice([None, 0.1]),
        "keypoint": rng.choice([None, None, 0.1]),
    }
    if not any(weights[k] for k in ("vis", "edge", "depth", "seg")):
        weights["depth"] = 0.5
    return weights


def random_settings(
    rng: random.Random, active: list[str], controls: dict, video: InputFile | None, maps: dict
) -> dict[str, dict[str, str]]:
    """model.controls: checkpoints, and seg's prompts where transfer.py uses them."""
    settings: dict[str, dict[str, str]] = {}
    for key in active:
        if rng.random() < 0.3:
            settings.setdefault(key, {})["ckpt_path"] = rng.choice(
                [f"/ckpt/{key}_posttrained.pt", f"/ckpt/{key}_other.pt"]
            )
    if "seg" in active and "seg" not in controls and rng.random() < 0.5:
        settings.setdefault("seg", {})["input_control_prompt"] = "the car . the road"
    if "seg" in active and video is not None and "seg" not in maps and rng.random() < 0.3:
        settings.setdefault("seg", {})["control_weight_prompt"] = "the car"
    return settings


def transfer1_valid(model: dict[str, Any], controls: dict, video: InputFile | None) -> None:
    """Drop what transfer.py would refuse or ignore in a random run (in place)."""
    active = [k for k, w in model["weights"].items() if w is not None]
    for name, key in (("blur_strength", "vis"), ("canny_threshold", "edge")):
        if key not in active or key in controls:
            model[name] = unused_strength(model[name])
    if video is None:
        model["sigma_max"] = 80.0
    if model["options"].get("upsample_prompt"):
        first = next(k for k in ("vis", "edge", "depth", "seg") if k in active)
        if first in ("depth", "seg") and first not in controls:
            model["options"] = {}


def unused_strength(value: str | None) -> str | None:
    """A blur or canny strength the program does not use: its default (or null)."""
    return value if value in (None, "medium") else "medium"


def random_transfer1_runs(rng: random.Random, adapter: str, count: int) -> list[RunSpec]:
    """Runs that differ in every way a sweep can make them differ.

    Parameters come from a few random families, so that some runs agree on
    everything a batch shares and others differ in one value only. Every run
    is one transfer.py accepts (the tests check it).
    """
    families = [(random_scalars(rng), random_weights(rng)) for _ in range(3)]
    runs = []
    for index in range(count):
        scalars, weights = copy.deepcopy(rng.choice(families))
        if rng.random() < 0.3:
            key = rng.choice(sorted(scalars))
            scalars[key] = random_scalars(rng)[key]
        model = {**base_model(adapter), **scalars, "weights": weights}
        active = [key for key, weight in weights.items() if weight is not None]
        controls = {
            key: CONTROL_VIDEOS[key]
            for key in active
            if key in ("depth", "seg", "keypoint", "edge") and (index + len(key)) % 3
        }
        video = rng.choice([*VIDEOS, VIDEOS[0], None])
        if video is None:
            # Transfer1's rule without input video: every control has a video.
            controls = {k: CONTROL_VIDEOS[k] for k in active}
        maps = {"depth": rng.choice(WEIGHT_MAPS)} if "depth" in active and index % 4 == 1 else {}
        model["controls"] = random_settings(rng, active, controls, video, maps)
        transfer1_valid(model, controls, video)
        prompt = ResolvedPrompt(
            name=f"p{index}",
            text=rng.choice(["a street at dusk", 'it\'s "wet"; $(rm -rf /)', "Strasse, \u96e8"])
            + f" #{index}",
            negative=rng.choice([None, "low 'quality'"]),
            inputs=PromptInputSet(video=video, controls=controls, weight_maps=maps),
        )
        runs.append(RunSpec(prompt=prompt, model=model))
    return runs


# -- the rule, as transfer.py applies it ----------------------------------------------
def command_flags(argv: list[str], program: str) -> dict[str, str | bool]:
    """The transfer.py flags on a command line (after the program path)."""
    args = argv[argv.index(program) + 1 :]
    flags: dict[str, str | bool] = {}
    for i, token in enumerate(args):
        if token.startswith("--"):
            value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else True
            flags[token[2:]] = value
    return flags


def program_of(invocation: Invocation) -> str:
    """The Python program an invocation runs (the first .py argument)."""
    return next(arg for arg in invocation.argv if arg.endswith(".py"))


def transfer1_reads(invocation: Invocation, program: str) -> dict[str, dict[str, Any]]:
    """What transfer.py generates per output video: parameters, control blocks, and the
    video its prompt upsampler reads."""
    flags = command_flags(invocation.argv, program)
    spec_name = PurePosixPath(str(flags["controlnet_specs"])).relative_to(LAYOUT.root)
    # transfer.py opens the spec with the locale's encoding: it must be ASCII.
    spec = json.loads(invocation.files[str(spec_name)].decode("ascii"))
    params = dict(TRANSFER1_DEFAULTS)
    params.update({k: v for k, v in flags.items() if k in TRANSFER1_DEFAULTS})
    controls = {}
    for key, value in spec.items():
        if isinstance(value, dict):
            assert key in CONTROL_KEYS, f"transfer.py refuses the control block {key!r}"
            controls[key] = value
        elif key not in flags:
            params[key] = value
    assert_transfer1_accepts(params, controls)
    folder = str(flags["video_save_folder"])
    if "batch_input_path" not in flags:
        upsampler = upsampler_reads(params, controls, controls)
        read = {**params, "controls": weights_used(controls), "upsampler": upsampler}
        return {f"{folder}/{flags['video_save_name']}.mp4": read}
    batch_name = PurePosixPath(str(flags["batch_input_path"])).relative_to(LAYOUT.root)
    reads = {}
    for i, text in enumerate(invocation.files[str(batch_name)].decode("ascii").splitlines()):
        line = json.loads(text)
        line_params = copy.deepcopy(params)
        line_controls = copy.deepcopy(controls)
        line_params["input_video_path"] = line["visual_input"]
        if "prompt" in line:
            line_params["prompt"] = line["prompt"]
        for key, override in line.get("control_overrides", {}).items():
            block = line_controls.setdefault(key, {})
            for name, value in override.items():
                if value is None:
                    block.pop(name, None)  # null: computed in the container
                else:
                    block[name] = value
        assert_transfer1_accepts(line_params, line_controls)
        # The upsampler is made once, from the shared spec's control blocks.
        upsampler = upsampler_reads(line_params, line_controls, controls)
        reads[f"{folder}/video_{i}/output.mp4"] = {
            **line_params,
            "controls": weights_used(line_controls),
            "upsampler": upsampler,
        }
    return reads


def weights_used(controls: dict[str, Any]) -> dict[str, Any]:
    """The control blocks with the weights the model uses (inference_utils.py,
    load_spatial_temporal_weights): once a control has a .pt weight map, a weight
    that is not truthy (0) counts as none given and becomes a map of ones."""
    maps = any(str(block.get("control_weight", "")).endswith(".pt") for block in controls.values())
    used = copy.deepcopy(controls)
    for block in used.values():
        if maps and block.get("control_weight") == 0:
            block["control_weight"] = 1.0
    return used


def upsampler_reads(
    params: dict[str, Any], controls: dict[str, Any], pipeline_controls: dict[str, Any]
) -> tuple[str, ...] | None:
    """The video transfer.py's prompt upsampler reads for one output (None: no upsampling).

    world_generation_pipeline.py: the upsampler is made from the pipeline's
    control blocks (the shared spec's, in file order): vis or edge first (its
    control video, else a map computed from the line's input video), else the
    first of depth and seg (its control video; without one it crashes).
    """
    if not params["upsample_prompt"]:
        return None
    keys = list(pipeline_controls)
    if any(key in ("vis", "edge") for key in keys):
        hint = "vis" if "vis" in keys else "edge"
        path = pipeline_controls[hint].get("input_control")
        return (hint, path) if path else (hint, "computed from", params["input_video_path"])
    others = [key for key in keys if key in ("depth", "seg")]
    assert others, "with no vis, edge, depth or seg control upsample_prompt is ignored"
    path = pipeline_controls[others[0]].get("input_control")
    assert path, f"transfer.py crashes: the upsampler reads no {others[0]} video"
    return (others[0], path)


def assert_transfer1_accepts(params: dict[str, Any], controls: dict[str, Any]) -> None:
    """transfer.py's spec validation (inference_utils.py) and pipeline set-up.

    It runs on the shared spec of a batch too, before any line is read.
    """
    if not params["input_video_path"]:
        assert params["sigma_max"] >= 80, "transfer.py: sigma_max < 80 needs an input video"
        assert all(block.get("input_control") for block in controls.values()), (
            "transfer.py: without input video every control needs input_control"
        )
    assert params["num_input_frames"] == 1
    assert 0 <= params["seed"] < 2**32, "numpy's seed range"
    for key, block in controls.items():
        assert set(block) <= {
            "control_weight",
            "input_control",
            "ckpt_path",
            "control_weight_prompt",
            "input_control_prompt",
        }
        weight = block["control_weight"]
        if isinstance(weight, str):
            assert weight.endswith(".pt"), "a weight map path ends in .pt"
        else:
            assert not isinstance(weight, bool) and weight >= 0
        if key in ("hdmap", "lidar"):
            assert block.get("input_control"), "transfer.py computes no hdmap or lidar video"
            assert params["is_av_sample"], "hdmap and lidar are the Sample-AV model's"
        if params["use_distilled"] and "ckpt_path" not in block:
            assert key == "edge", f"No default distilled checkpoint for {key}"
    if params["use_distilled"]:
        assert len(controls) == 1, "Distilled model only supports single control input"


def asked_for(run: RunSpec) -> dict[str, Any]:
    """What the run's manifest asked for, in transfer.py's terms."""
    expected = {
        name: run.model[name] if run.model[name] is not None else TRANSFER1_DEFAULTS[name]
        for name in SCALARS
    }
    expected["prompt"] = run.prompt.text
    expected["negative_prompt"] = run.prompt.negative or TRANSFER1_DEFAULTS["negative_prompt"]
    video = run.prompt.inputs.video
    expected["input_video_path"] = layout_path(video) if video else ""
    expected["num_gpus"] = str(run.model["num_gpus"])
    for name in OPTIONS:
        value = run.model["options"].get(name)
        expected[name] = TRANSFER1_DEFAULTS[name] if value is None else value
    weights = {key: w for key, w in run.model["weights"].items() if w is not None}
    expected["is_av_sample"] = bool({"hdmap", "lidar"} & set(weights))
    controls = {}
    for key, weight in weights.items():
        settings = (run.model.get("controls") or {}).get(key, {})
        controls[key] = {name: value for name, value in settings.items() if value is not None}
        weight_map = run.prompt.inputs.weight_maps.get(key)
        controls[key]["control_weight"] = layout_path(weight_map) if weight_map else weight
        if key in run.prompt.inputs.controls:
            controls[key]["input_control"] = layout_path(run.prompt.inputs.controls[key])
    expected["controls"] = controls
    expected["upsampler"] = None
    if expected["upsample_prompt"]:
        # Run alone: the upsampler reads the run's own control video of its key,
        # or (vis, edge) a map computed from the run's own input video.
        hint = next(k for k in ("vis", "edge", "depth", "seg") if k in weights)
        own = controls[hint].get("input_control")
        expected["upsampler"] = (
            (hint, own) if own else (hint, "computed from", expected["input_video_path"])
        )
    return expected


def layout_path(item: InputFile) -> str:
    """Where an input file is in the job folder: its checksum and plain suffix."""
    return LAYOUT.path(f"inputs/{item.sha256}{item.path.suffix}")


def transfer1_adapters() -> list[ModelAdapter]:
    return [
        Transfer1Adapter(Transfer1Settings(max_batch_size=4)),
        SimulatedAdapter(SimulatorSettings(), max_batch_size=4),
    ]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_every_transfer1_run_reads_exactly_its_own_parameters(
    adapter: ModelAdapter, seed: int
) -> None:
    runs = random_transfer1_runs(random.Random(seed), adapter.name, 60)
    assert {run.id: adapter.validate(run) for run in runs} == {run.id: [] for run in runs}
    batches = [job.runs for job in form_jobs(runs, {adapter.name: adapter})]
    assert sorted(r.id for b in batches for r in b) == sorted(r.id for r in runs)
    assert any(len(b) > 1 for b in batches), "precondition: some runs share a batch"
    assert any(len(b) == 1 for b in batches), "precondition: some runs run alone"
    for batch in batches:
        assert len({(r.model["version"], r.model["image"]) for r in batch}) == 1
    for number, batch in enumerate(batches):
        invocation = adapter.render(f"jb_{number}", batch, LAYOUT)
        reads = transfer1_reads(invocation, program_of(invocation))
        assert len(reads) == len(batch)
        for run in batch:
            video = LAYOUT.path(invocation.outputs[run.id].video)
            got = {k: reads[video][k] for k in asked_for(run)}
            assert got == asked_for(run), f"run {run.id} in a batch of {len(batch)}"


@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_no_spec_value_is_shadowed_by_a_command_line_flag(adapter: ModelAdapter) -> None:
    runs = random_transfer1_runs(random.Random(1), adapter.name, 40)
    for number, batch in enumerate([job.runs for job in form_jobs(runs, {adapter.name: adapter})]):
        invocation = adapter.render(f"jb_{number}", batch, LAYOUT)
        flags = command_flags(invocation.argv, program_of(invocation))
        spec = json.loads(invocation.files["spec.json"])
        scalars = {k for k, v in spec.items() if not isinstance(v, dict)}
        assert scalars, "precondition: the spec carries parameters"
        assert not scalars & set(flags), "a flag would make these JSON values dead"


# transfer.py's preprocessors compute these controls when a block has no input_control and
# save each in the video's folder (--video_save_folder, or its video_<i> in a batch) as
# <key>_input_control_<LOCAL_RANK>.mp4; rank 0 is always there (preprocessors.py).
PREPROCESSED = ("depth", "seg", "keypoint", "vis", "edge")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_the_control_videos_transfer1_computes_are_outputs_of_their_run(
    adapter: ModelAdapter, seed: int
) -> None:
    runs = random_transfer1_runs(random.Random(seed), adapter.name, 40)
    seen = set()
    for number, batch in enumerate([job.runs for job in form_jobs(runs, {adapter.name: adapter})]):
        invocation = adapter.render(f"jb_{number}", batch, LAYOUT)
        reads = transfer1_reads(invocation, program_of(invocation))
        for run in batch:
            outputs = invocation.outputs[run.id]
            video = LAYOUT.path(outputs.video)
            folder = PurePosixPath(video).parent
            computed = {
                key: str(folder / f"{key}_input_control_0.mp4")
                for key, block in reads[video]["controls"].items()
                if key in PREPROCESSED and not block.get("input_control")
            }
            assert {k: LAYOUT.path(v) for k, v in outputs.controls.items()} == computed
            if computed:
                seen.add("batch" if len(batch) > 1 else "alone")
            if set(run.prompt.inputs.controls) & set(reads[video]["controls"]):
                seen.add("own control video")
    assert seen == {"batch", "alone", "own control video"}, "precondition"


def test_an_upscale_run_computes_no_control() -> None:
    adapter = SimulatedUpscalerAdapter(SimulatorSettings())
    model = {**base_model("simulated_upscaler"), "weights": {"upscale": 0.5}}
    prompt = ResolvedPrompt("up", "a street", None, PromptInputSet(video=VIDEOS[0]))
    run = RunSpec(prompt=prompt, model=model)
    assert adapter.validate(run) == []
    assert adapter.render("jb_up", [run], LAYOUT).outputs[run.id].controls == {}


# Every flag of transfer.py's argparse (cosmos_transfer1/diffusion/inference/transfer.py).
# The simulated model standing in for it takes more (--ledger, --model_load_s, ...):
# a flag outside this set ends the real program with exit code 2.
TRANSFER_PY_FLAGS = frozenset(
    {
        "prompt",
        "negative_prompt",
        "input_video_path",
        "num_input_frames",
        "sigma_max",
        "blur_strength",
        "canny_threshold",
        "controlnet_specs",
        "is_av_sample",
        "checkpoint_dir",
        "tokenizer_dir",
        "video_save_name",
        "video_save_folder",
        "batch_input_path",
        "batch_size",
        "num_steps",
        "guidance",
        "fps",
        "seed",
        "num_gpus",
        "offload_diffusion_transformer",
        "offload_text_encoder_model",
        "offload_guardrail_models",
        "upsample_prompt",
        "offload_prompt_upsampler",
        "use_distilled",
        "save_input_noise",
        "benchmark",
    }
)


@pytest.mark.parametrize("seed", range(3))
def test_transfer_py_gets_only_flags_its_argparse_has(seed: int) -> None:
    setup = sorted(TRANSFER1_SETUP_FLAGS)
    settings = Transfer1Settings(max_batch_size=4, extra_args=setup)
    runs = random_transfer1_runs(random.Random(seed), "transfer1", 12)
    upscale = {**base_model("transfer1_upscaler"), "weights": {"upscale": 0.5}}
    prompt = ResolvedPrompt("up", "a street", None, PromptInputSet(video=VIDEOS[0]))
    transfer1 = Transfer1Adapter(settings)
    for adapter, jobs in (
        (transfer1, [job.runs for job in form_jobs(runs, {"transfer1": transfer1})]),
        (Transfer1UpscalerAdapter(settings), [[RunSpec(prompt=prompt, model=upscale)]]),
    ):
        for number, batch in enumerate(jobs):
            assert all(adapter.validate(run) == [] for run in batch)
            argv = adapter.render(f"jb_{number}", batch, LAYOUT).argv
            program = "cosmos_transfer1/diffusion/inference/transfer.py"
            assert set(command_flags(argv, program)) <= TRANSFER_PY_FLAGS, argv


def test_transfer1_command_runs_transfer_py_from_the_checkout_with_torchrun() -> None:
    settings = Transfer1Settings(
        workspace="/opt/ct1",
        checkpoint_dir="/ckpt",
        extra_args=["--offload_text_encoder_model"],
    )
    run = random_transfer1_runs(random.Random(3), "transfer1", 1)[0]
    run.model["num_gpus"] = 4
    invocation = Transfer1Adapter(settings).render("jb_x", [run], LAYOUT)
    argv = invocation.argv
    program = "cosmos_transfer1/diffusion/inference/transfer.py"
    assert argv[0] == "torchrun"
    assert argv.index("--nproc_per_node=4") < argv.index(program)
    flags = command_flags(argv, program)
    assert flags["num_gpus"] == "4" and flags["checkpoint_dir"] == "/ckpt"
    assert flags["offload_text_encoder_model"] is True
    assert invocation.workdir == "/opt/ct1" and invocation.env == {"PYTHONPATH": "."}


@pytest.mark.parametrize(
    "flag",
    [
        "--seed",
        "--guidance=7",
        "--checkpoint_dir",
        "--use_distilled",
        "--upsample_prompt",
        "--tokenizer_dir=x",
        "--offload-text-encoder-model",  # transfer.py spells it with underscores
        "offload_guardrail_models",
        "--num-gpus",
        # Every parameter the spec JSON carries (COSMOS_INTERFACE.md) ...
        "--prompt",
        "--negative_prompt",
        "--input_video_path",
        "--num_steps",
        "--sigma_max",
        "--fps=30",
        "--blur_strength",
        "--canny-threshold",
        # ... and every set-up flag the adapter sets itself.
        "--controlnet_specs",
        "--video_save_folder",
        "--video_save_name",
        "--batch_input_path",
        "--batch_size=4",
    ],
)
def test_extra_args_may_only_hold_flags_that_leave_outputs_unchanged(flag: str) -> None:
    adapter = Transfer1Adapter(Transfer1Settings(extra_args=["--offload_guardrail_models", flag]))
    run = random_transfer1_runs(random.Random(0), "transfer1", 1)[0]
    assert Transfer1Adapter(Transfer1Settings()).validate(run) == [], "precondition"
    problems = adapter.validate(run)
    assert [p.key_path for p in problems] == ["adapters.transfer1.extra_args"]
    assert flag in problems[0].message


def twin_runs(adapter: str, name: str, value: Any) -> list[RunSpec]:
    """Two runs with input videos that differ only in the model value ``name``.

    Their vis and edge controls are computed from the input video, so blur
    and canny strengths change their outputs.
    """
    runs = []
    for index in range(2):
        model = base_model(adapter)
        model["weights"].update(vis=0.2, edge=0.3)
        if index:
            model[name] = value
        inputs = PromptInputSet(video=VIDEOS[index], controls={"depth": CONTROL_VIDEOS["depth"]})
        runs.append(RunSpec(ResolvedPrompt(f"p{index}", f"scene {index}", None, inputs), model))
    return runs


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("seed", 2),
        ("guidance", 7.0),
        ("num_steps", 10),
        ("sigma_max", 90.0),
        ("fps", 30),
        ("blur_strength", "high"),
        ("canny_threshold", "low"),
    ],
)
@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_runs_that_differ_in_one_scalar_each_read_their_own(
    adapter: ModelAdapter, name: str, value: Any
) -> None:
    same = twin_runs(adapter.name, name, base_model(adapter.name)[name])
    assert len([job.runs for job in form_jobs(same, {adapter.name: adapter})]) == 1, (
        "precondition: they batch"
    )
    runs = twin_runs(adapter.name, name, value)
    assert [adapter.validate(run) for run in runs] == [[], []]
    for number, batch in enumerate([job.runs for job in form_jobs(runs, {adapter.name: adapter})]):
        invocation = adapter.render(f"jb_{number}", batch, LAYOUT)
        reads = transfer1_reads(invocation, program_of(invocation))
        for run in batch:
            got = reads[LAYOUT.path(invocation.outputs[run.id].video)]
            assert {k: got[k] for k in asked_for(run)} == asked_for(run), name


@pytest.mark.parametrize(
    ("sigma_max", "controls", "expected"),
    [
        (80.0, {"depth"}, []),
        (79.5, {"depth"}, ["model.sigma_max"]),
        # Null leaves sigma_max to transfer.py's default, 70: too low.
        (None, {"depth"}, ["model.sigma_max"]),
        # Above 80 it is accepted but not used (no video to start from): one value only.
        (90.0, {"depth"}, ["model.sigma_max"]),
        (80.0, set(), ["prompts.bare.inputs.controls.depth"]),
    ],
)
@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_transfer1_without_input_video_needs_sigma_80_and_control_videos(
    adapter: ModelAdapter, sigma_max: float | None, controls: set[str], expected: list[str]
) -> None:
    model = {**base_model(adapter.name), "sigma_max": sigma_max}
    inputs = PromptInputSet(video=None, controls={k: CONTROL_VIDEOS[k] for k in controls})
    run = RunSpec(ResolvedPrompt("bare", "a street", None, inputs), model)
    assert [p.key_path for p in adapter.validate(run)] == expected


@pytest.mark.parametrize("adapter", transfer1_adapters(), ids=lambda a: a.name)
def test_transfer1_needs_at_least_one_control(adapter: ModelAdapter) -> None:
    run = twin_runs(adapter.name, "seed", 1)[0]
    assert adapter.validate(run) == [], "precondition: the run with a depth weight is valid"
    run.model["weights"] = {"vis": None, "edge": None, "depth": None, "seg": None}
    assert [p.key_path for p in adapter.validate(run)] == ["model.weights"]


@pytest.mark.parametrize(
    "adapter",
    [
        Transfer1Adapter(Transfer1Settings(max_batch_size=2)),
        Transfer25Adapter(Transfer25Settings(max_batch_size=2)),
    ],
    ids=lambda a: a.name,
)
def test_max_batch_size_of_the_settings_bounds_every_batch(adapter: ModelAdapter) -> None:
    model = base_model(adapter.name)
    runs = [
        RunSpec(
            ResolvedPrompt(f"p{i}", f"scene {i}", None, PromptInputSet(video=VIDEOS[0])),
            copy.deepcopy(model),
        )
        for i in range(5)
    ]
    assert [len(b) for b in [job.runs for job in form_jobs(runs, {adapter.name: adapter})]] == [
        2,
        2,
        1,
    ]
