"""The transfer1 and transfer2.5 adapters end to end, through cosmos-batch.

No GPU here, so the Cosmos programs are stand-ins placed where the real ones
live: Transfer1's transfer.py is the simulated model (which applies
transfer.py's argument and merge rules) launched by a fake torchrun, and
Transfer2.5's examples/inference.py is a strict fake that echoes each sample
it read into its output video. Everything else is the real pipeline.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project, make_project
from test_demo_sweep import free_box_metadata
from test_simulated_model import install_simulated_model

FAKES = Path(__file__).resolve().parent / "fakes"


def runs_of(project: Project) -> list[dict[str, Any]]:
    return project.cosmos_json("list", "runs")


def run_yaml(run: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load((Path(run["output_dir"]) / "run.yaml").read_text())


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def transfer1_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path, Any]:
    root = tmp_path_factory.mktemp("t1")
    project = make_project(root / "project")
    workspace = root / "cosmos-transfer1"
    program = workspace / "cosmos_transfer1" / "diffusion" / "inference" / "transfer.py"
    program.parent.mkdir(parents=True)
    install_simulated_model(program)
    log = root / "torchrun.jsonl"
    env = {"PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}", "FAKE_TORCHRUN_LOG": str(log)}
    done = project.batch(
        "+experiment=demo",
        "model=transfer1",
        f"adapters.transfer1.workspace={workspace}",
        "adapters.transfer1.extra_args=[--offload_guardrail_models]",
        env=env,
    )
    return project, workspace, (done, log)


def test_transfer1_demo_runs_transfer_py_in_its_checkout(transfer1_demo) -> None:
    _, workspace, (done, log) = transfer1_demo
    assert done.returncode == 0, done.stderr
    calls = log_lines(log)
    # 3 depth weights x 2 seeds: the two prompts of each point share one load.
    assert len(calls) == 6
    for call in calls:
        assert call["cwd"] == str(workspace)
        assert call["pythonpath"] == "."
        assert call["nproc"] == 1
        assert call["argv"][0] == "cosmos_transfer1/diffusion/inference/transfer.py"
        assert "--offload_guardrail_models" in call["argv"]
        assert "--batch_input_path" in call["argv"], "one model load for the batch"
        assert "--batch_size" not in call["argv"], "one video at a time (transfer.py's default)"


def test_every_transfer1_output_was_made_with_its_own_parameters(transfer1_demo) -> None:
    project, _, (done, _) = transfer1_demo
    assert done.returncode == 0, done.stderr
    runs = runs_of(project)
    assert len(runs) == 12 and {r["status"] for r in runs} == {"succeeded"}
    seen = set()
    for run in runs:
        folder = Path(run["output_dir"])
        spec = run_yaml(run)
        made = free_box_metadata(folder / "output.mp4")
        assert made["seed"] == spec["model"]["seed"]
        assert made["controls"]["depth"]["control_weight"] == spec["model"]["weights"]["depth"]
        assert made["prompt"] == spec["prompt"]["text"]
        assert (folder / "output.txt").read_text() == spec["prompt"]["text"]
        seen.add((made["seed"], made["controls"]["depth"]["control_weight"], made["prompt"]))
    assert len(seen) == 12


def test_transfer1_without_its_program_fails_the_runs_with_a_clear_log(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    empty = tmp_path / "no-checkout"
    empty.mkdir()
    env = {
        "PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}",
        "FAKE_TORCHRUN_LOG": str(tmp_path / "log"),
    }
    done = project.batch(
        "+experiment=demo", "model=transfer1", f"adapters.transfer1.workspace={empty}", env=env
    )
    assert done.returncode == 1
    runs = runs_of(project)
    assert {r["status"] for r in runs} == {"failed"}
    log = (Path(runs[0]["output_dir"]) / "logs" / "run.log").read_text()
    assert "no script cosmos_transfer1/diffusion/inference/transfer.py" in log


def transfer1_checkout(root: Path) -> tuple[Path, dict[str, str]]:
    """A Transfer1 checkout whose transfer.py is the stand-in, and the env that finds torchrun."""
    workspace = root / "cosmos-transfer1"
    program = workspace / "cosmos_transfer1" / "diffusion" / "inference" / "transfer.py"
    program.parent.mkdir(parents=True)
    install_simulated_model(program)
    env = {
        "PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}",
        "FAKE_TORCHRUN_LOG": str(root / "torchrun.jsonl"),
    }
    return workspace, env


def sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


SCENES = ("street", "forest")


def scene_prompts(text: str, inputs: str) -> str:
    """Two prompts (street, forest) in YAML; ``inputs`` is a YAML block with {scene}."""
    return "".join(
        f"  {scene}:\n    text: {text.format(scene=scene)}\n    inputs:\n"
        + "".join(f"      {line}\n" for line in inputs.format(scene=scene).splitlines())
        for scene in SCENES
    )


KEYPOINT_SWEEP = """# @package _global_
name: keypoint
prompts:
{prompts}
model:
  weights: {{keypoint: 0.4, depth: 0.6}}
  controls:
    keypoint: {{ckpt_path: checkpoints/keypoint_posttrained.pt}}
sweep:
  grid:
    model.seed: [1, 2]
"""


def test_a_keypoint_sweep_with_a_checkpoint_and_weight_maps_runs_on_transfer_py(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "project")
    workspace, env = transfer1_checkout(tmp_path)
    checkpoint = workspace / "checkpoints" / "keypoint_posttrained.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"post-trained keypoint control net")
    maps = {scene: project.root / "inputs" / "maps" / f"{scene}.pt" for scene in SCENES}
    for scene, path in maps.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"{scene} weights, first".encode())
    prompts = scene_prompts(
        "A dancer in the {scene}.",
        "video: inputs/demo/{scene}/color.mp4\n"
        "controls: {{depth: inputs/demo/{scene}/depth.mp4}}\n"
        "weight_maps: {{depth: inputs/maps/{scene}.pt}}",
    )
    project.write("manifests/experiment/keypoint.yaml", KEYPOINT_SWEEP.format(prompts=prompts))
    args = ("+experiment=keypoint", "model=transfer1", f"adapters.transfer1.workspace={workspace}")

    done = project.batch(*args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    first = runs_of(project)
    assert len(first) == 4 and {r["status"] for r in first} == {"succeeded"}
    calls = log_lines(Path(env["FAKE_TORCHRUN_LOG"]))
    assert len(calls) == 2, "the two scenes of a seed share one model load"
    for run in first:
        made = free_box_metadata(Path(run["output_dir"]) / "output.mp4")
        scene = run_yaml(run)["prompt"]["name"]
        assert made["controls"]["keypoint"]["ckpt_path"] == "checkpoints/keypoint_posttrained.pt"
        assert made["controls"]["keypoint"]["control_weight"] == 0.4
        weight_map = made["controls"]["depth"]["control_weight"]
        assert Path(weight_map).name == hashlib.sha256(maps[scene].read_bytes()).hexdigest() + ".pt"

    maps["street"].write_bytes(b"street weights, second")
    again = project.batch(*args, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    runs = runs_of(project)
    by_scene = {
        scene: {r["id"] for r in runs if run_yaml(r)["prompt"]["name"] == scene} for scene in SCENES
    }
    before = {
        scene: {r["id"] for r in first if run_yaml(r)["prompt"]["name"] == scene}
        for scene in SCENES
    }
    assert len(by_scene["street"]) == 4, "new map content: new runs"
    assert by_scene["forest"] == before["forest"], "an unchanged map: the same runs, cached"
    for run in runs:
        if run["id"] in by_scene["street"] - before["street"]:
            made = free_box_metadata(Path(run["output_dir"]) / "output.mp4")
            expected = hashlib.sha256(b"street weights, second").hexdigest() + ".pt"
            assert Path(made["controls"]["depth"]["control_weight"]).name == expected


UPSAMPLING = """# @package _global_
name: upsampling
prompts:
{prompts}
model:
  weights: {{{key}: 0.5}}
  options: {{upsample_prompt: true}}
"""


@pytest.mark.parametrize("key", ["edge", "depth"])
def test_each_run_of_an_upsampling_batch_upsamples_from_its_own_control_video(
    tmp_path: Path, key: str
) -> None:
    """transfer.py's upsampler reads the shared spec's control video, never a line's."""
    project = make_project(tmp_path / "project")
    workspace, env = transfer1_checkout(tmp_path)
    prompts = scene_prompts(
        "A quiet {scene}.",
        "video: inputs/demo/{scene}/color.mp4\n"
        + f"controls: {{{{{key}: inputs/demo/{{scene}}/depth.mp4}}}}",
    )
    project.write(
        "manifests/experiment/upsampling.yaml", UPSAMPLING.format(prompts=prompts, key=key)
    )
    done = project.batch(
        "+experiment=upsampling",
        "model=transfer1",
        f"adapters.transfer1.workspace={workspace}",
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for run in runs_of(project):
        scene = run_yaml(run)["prompt"]["name"]
        own = project.root / "inputs" / "demo" / scene / "depth.mp4"
        prompt = (Path(run["output_dir"]) / "output.txt").read_text(encoding="utf-8")
        assert prompt.startswith(f"A quiet {scene}. [SIMULATED prompt upsampler")
        assert f"read the {key} control video {sha12(own)}" in prompt


ASCII_LOCALE = {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
FOREIGN = "Rue de l'\u00e9t\u00e9 sous la pluie, \u96e8\u306e\u901a\u308a"
FOREIGN_NEGATIVE = "flou, d\u00e9form\u00e9"


@pytest.mark.parametrize("model", ["transfer1", "simulated"])
def test_a_non_ascii_prompt_runs_under_an_ascii_locale(tmp_path: Path, model: str) -> None:
    """transfer.py reads its spec and batch files with the locale's encoding.

    The two prompts share one invocation: the shared spec holds the negative
    prompt, the batch file the prompts (a batch that failed on them would
    pass as single runs, which fault isolation tries next).
    """
    project = make_project(tmp_path / "project")
    workspace, env = transfer1_checkout(tmp_path)
    prompts = scene_prompts(
        f'"{FOREIGN} ({{scene}})"\n    negative: "{FOREIGN_NEGATIVE}"',
        "video: inputs/demo/{scene}/color.mp4\ncontrols: {{depth: inputs/demo/{scene}/depth.mp4}}",
    )
    project.write(
        "manifests/experiment/foreign.yaml",
        f"# @package _global_\nname: foreign\nprompts:\n{prompts}\n"
        "model:\n  weights: {depth: 0.5}\n",
    )
    done = project.batch(
        "+experiment=foreign",
        f"model={model}",
        f"adapters.transfer1.workspace={workspace}",
        env={**env, **ASCII_LOCALE},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    runs = runs_of(project)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"succeeded"}
    jobs = set()
    for run in runs:
        folder = Path(run["output_dir"])
        text = run_yaml(run)["prompt"]["text"]
        assert text.startswith(FOREIGN)
        assert (folder / "output.txt").read_bytes() == text.encode("utf-8")
        assert free_box_metadata(folder / "output.mp4")["negative_prompt"] == FOREIGN_NEGATIVE
        jobs.add(json.loads((folder / "result.json").read_text())["job_id"])
    assert len(jobs) == 1, "one model load for both prompts"


# -- Transfer2.5 -------------------------------------------------------------------
@pytest.fixture(scope="module")
def t25_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Any, Path]:
    root = tmp_path_factory.mktemp("t25")
    project = make_project(root / "project")
    log = root / "t25.jsonl"
    done = project.batch(
        "+experiment=demo",
        "model=transfer2.5",
        "model.options.model=depth",
        "model.options.resolution='480'",
        f"adapters.transfer2_5.workspace={FAKES / 'transfer2_5'}",
        "model.options.disable_guardrails=true",
        "adapters.transfer2_5.extra_args=[--keep-going]",
        env={"FAKE_T25_LOG": str(log)},
    )
    return project, done, log


def test_transfer25_demo_loads_the_model_once_for_all_samples(t25_demo) -> None:
    project, done, log = t25_demo
    assert done.returncode == 0, done.stderr
    calls = log_lines(log)
    # Samples carry their own seed and weights: all 12 runs share 2 loads (batch size 8).
    # (evenly: 6 + 6, the fewest loads that batch size allows)
    assert sorted(len(c["samples"]) for c in calls) == [6, 6]
    assert {c["model"] for c in calls} == {"depth"}
    assert {c["guardrails"] for c in calls} == {"disabled"}
    assert sorted(s for c in calls for s in c["samples"]) == sorted(
        r["id"] for r in runs_of(project)
    )


def test_every_transfer25_sample_carries_its_runs_parameters(t25_demo) -> None:
    project, done, _ = t25_demo
    assert done.returncode == 0, done.stderr
    for run in runs_of(project):
        spec = run_yaml(run)
        sample = free_box_metadata(Path(run["output_dir"]) / "output.mp4")
        assert sample["name"] == run["id"]
        assert sample["seed"] == spec["model"]["seed"]
        assert sample["guidance"] == spec["model"]["guidance"]
        assert isinstance(sample["guidance"], int)
        assert sample["depth"]["control_weight"] == spec["model"]["weights"]["depth"]
        assert sample["prompt"] == spec["prompt"]["text"]
        assert (Path(run["output_dir"]) / "output.txt").read_text() == spec["prompt"]["text"]
        assert sample["resolution"] == "480"
        # The demo brings no depth video: the program computes the depth itself.
        assert "control_path" not in sample["depth"]


def test_transfer25_refuses_transfer1_only_parameters_before_running(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    done = project.batch("+experiment=demo", "model=transfer2.5", "model.fps=24")
    assert done.returncode == 2
    assert "model.fps" in done.stderr and "not a Transfer2.5 parameter" in done.stderr
    assert not (project.outputs / "runs").exists()


@pytest.mark.parametrize(
    ("override", "key", "says"),
    [
        ("model.options.use_distilled=true", "model.options.use_distilled", "edge control alone"),
        ("model.options.num_input_frames=2", "model.options.num_input_frames", "only 1"),
        ("model.seed=4294967296", "model.seed", "numpy's seed range"),
        ("model.weights.depth=true", "model.weights.depth", "boolean"),
    ],
)
def test_transfer1_refuses_what_transfer_py_refuses_before_running(
    tmp_path: Path, override: str, key: str, says: str
) -> None:
    project = make_project(tmp_path / "project")
    done = project.batch("+experiment=demo", "model=transfer1", override)
    assert done.returncode == 2, done.stdout + done.stderr
    assert key in done.stderr and says in done.stderr
    assert not (project.outputs / "runs").exists()
