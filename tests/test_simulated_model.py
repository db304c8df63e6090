"""Behaviour tests for the simulated Cosmos-Transfer1 program.

Every test runs the script as a real subprocess on files made in tmp_path.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cosmos_workflow.execution.adapters.simulated import PROGRAM_FILE, simulated_model_files

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "cosmos_workflow" / "execution" / "programs" / "simulated_model.py"
MODULE = "cosmos_workflow.execution.programs.simulated_model"
FAST = ["--model_load_s", "0", "--per_video_s", "0"]
ERROR_PREFIX = "simulated transfer1: error:"
CONTROLS = ("vis", "seg", "edge", "depth", "keypoint", "upscale", "hdmap", "lidar")


# ---------------------------------------------------------------- helpers


def box(kind: bytes, payload: bytes) -> bytes:
    """Encode one ISO BMFF box."""
    return struct.pack(">I", len(payload) + 8) + kind + payload


def fake_mp4(path: Path, tag: str) -> bytes:
    """Write a tiny ISO BMFF file (ftyp + mdat) whose bytes depend on tag."""
    data = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2") + box(b"mdat", tag.encode())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def top_level_boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a file into its top-level boxes, checking every size field."""
    boxes = []
    offset = 0
    while offset < len(data):
        assert len(data) - offset >= 8, "truncated box header"
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[offset + 8 : offset + 16])
            header = 16
        elif size == 0:
            size = len(data) - offset
        assert size >= header and offset + size <= len(data), "bad box size"
        boxes.append((kind, data[offset + header : offset + size]))
        offset += size
    return boxes


def metadata(video: Path) -> dict[str, Any]:
    """Return the JSON payload of the trailing free box of a simulated output."""
    kind, payload = top_level_boxes(video.read_bytes())[-1]
    assert kind == b"free"
    return json.loads(payload.decode("utf-8"))


def run_sim(
    args: list[str],
    cwd: Path,
    fast: bool = True,
    module: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run the simulator as a subprocess and capture its output as text."""
    entry = ["-m", MODULE] if module else [str(SCRIPT)]
    env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run(
        [sys.executable, *entry, *args, *(FAST if fast else [])],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=60,
    )


def install_simulated_model(program: Path) -> None:
    """The simulated model at ``program`` (e.g. transfer.py), its modules beside it."""
    files = simulated_model_files()
    program.parent.mkdir(parents=True, exist_ok=True)
    program.write_bytes(files.pop(PROGRAM_FILE))
    for name, data in files.items():
        (program.parent / name).write_bytes(data)


def sha256_of(path: Path) -> str:
    """The sha256 (hex) of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_json(path: Path, value: Any) -> Path:
    """Write a JSON file and return its path."""
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """Write a JSONL file (strings are written verbatim) and return its path."""
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


# transfer.py ends with 1 on an exception (a spec it refuses, a file it cannot
# read) and with 2 on a bad command line (argparse).
EXIT_FAILED = 1
EXIT_USAGE = 2


def assert_error(
    result: subprocess.CompletedProcess, fragment: str, code: int = EXIT_FAILED
) -> None:
    """Assert exit ``code`` with exactly one clear stderr line containing fragment."""
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A working folder with distinct small input videos."""
    for name in ("color", "a", "b", "c", "depth", "seg"):
        fake_mp4(tmp_path / f"{name}.mp4", name)
    return tmp_path


# ---------------------------------------------------------------- single mode


def test_single_run_defaults_and_output_layout(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "edge": {"control_weight": 1}})
    result = run_sim(["--controlnet_specs", "spec.json"], work)
    assert result.returncode == 0, result.stderr
    video = work / "outputs" / "output.mp4"
    boxes = top_level_boxes(video.read_bytes())
    assert [kind for kind, _ in boxes] == [b"ftyp", b"moov", b"mdat", b"free"]
    meta = metadata(video)
    assert meta["source_sha256"] == sha256_of(work / "color.mp4")  # the picture's source
    assert meta["simulated"] is True
    assert meta["generator"] == "cosmos-workflow simulated transfer1"
    assert meta["seed"] == 1
    assert meta["guidance"] == 5.0
    assert meta["num_steps"] == 35
    assert meta["sigma_max"] == 70.0
    assert meta["fps"] == 24
    assert meta["blur_strength"] == "medium"
    assert meta["canny_threshold"] == "medium"
    assert meta["negative_prompt"]
    assert meta["controls"] == {"edge": {"control_weight": 1}}
    prompt = (work / "outputs" / "output.txt").read_text(encoding="utf-8")
    assert prompt == meta["prompt"] and prompt
    # Like transfer.py, the edge control without input_control is computed and saved.
    made = sorted(p.name for p in (work / "outputs").iterdir())
    assert made == ["edge_input_control_0.mp4", "output.mp4", "output.txt"]


@pytest.mark.parametrize("seed_flag", [["--seed", "3"], ["--seed=3"]])
def test_command_line_flag_shadows_json_but_json_fills_the_rest(
    work: Path, seed_flag: list[str]
) -> None:
    spec = {
        "input_video_path": "color.mp4",
        "prompt": "json prompt",
        "seed": 7,
        "guidance": 3,
        "num_steps": 12,
        "blur_strength": "high",
        "sigma_max": 75.5,
        "fps": 16,
        "edge": {"control_weight": 0.3},
    }
    write_json(work / "spec.json", spec)
    args = ["--controlnet_specs", "spec.json", "--video_save_folder", "out"]
    result = run_sim([*args, "--video_save_name", "clip", *seed_flag, "--guidance", "9"], work)
    assert result.returncode == 0, result.stderr
    meta = metadata(work / "out" / "clip.mp4")
    assert meta["seed"] == 3  # flag wins over JSON 7
    assert meta["guidance"] == 9.0  # flag wins over JSON 3
    assert meta["num_steps"] == 12  # JSON wins over default 35
    assert meta["blur_strength"] == "high"
    assert meta["sigma_max"] == 75.5
    assert meta["fps"] == 16
    assert meta["prompt"] == "json prompt"
    assert (work / "out" / "clip.txt").read_text(encoding="utf-8") == "json prompt"

    result = run_sim([*args, "--video_save_name", "nojson", "--prompt", "cli prompt"], work)
    assert result.returncode == 0, result.stderr
    meta = metadata(work / "out" / "nojson.mp4")
    assert meta["seed"] == 7  # no flag: the JSON value applies
    assert meta["guidance"] == 3.0
    assert (work / "out" / "nojson.txt").read_text(encoding="utf-8") == "cli prompt"


def test_missing_control_weight_defaults_to_half_with_warning(work: Path) -> None:
    spec = {
        "input_video_path": "color.mp4",
        "edge": {},
        "depth": {"control_weight": 0.8, "input_control": "depth.mp4"},
    }
    write_json(work / "spec.json", spec)
    result = run_sim(["--controlnet_specs", "spec.json"], work)
    assert result.returncode == 0, result.stderr
    controls = metadata(work / "outputs" / "output.mp4")["controls"]
    assert controls["edge"]["control_weight"] == 0.5
    assert controls["depth"]["control_weight"] == 0.8
    warnings = [line for line in result.stdout.splitlines() if "WARNING" in line]
    assert len(warnings) == 1
    assert "'edge'" in warnings[0] and "0.5" in warnings[0] and "WARNING" in warnings[0]


def test_without_input_video_copies_first_control_video(work: Path) -> None:
    spec = {
        "sigma_max": 80,
        "depth": {"input_control": "depth.mp4", "control_weight": 0.7},
        "seg": {"input_control": "seg.mp4"},
    }
    write_json(work / "spec.json", spec)
    result = run_sim(["--controlnet_specs", "spec.json"], work)
    assert result.returncode == 0, result.stderr
    meta = metadata(work / "outputs" / "output.mp4")
    assert meta["input_video_path"] == ""
    assert meta["source_sha256"] == sha256_of(work / "depth.mp4")


def test_seed_changes_bytes_and_same_inputs_give_same_bytes(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "vis": {}})
    outputs = {}
    for name, seed in (("s1", "1"), ("s2", "2"), ("s1again", "1")):
        args = ["--controlnet_specs", "spec.json", "--seed", seed, "--video_save_name", name]
        assert run_sim(args, work).returncode == 0
        outputs[name] = (work / "outputs" / f"{name}.mp4").read_bytes()
    assert outputs["s1"] != outputs["s2"]
    assert outputs["s1"] == outputs["s1again"]


def test_relative_paths_resolve_against_working_directory(work: Path) -> None:
    sub = work / "job"
    fake_mp4(sub / "media" / "in.mp4", "relative")
    write_json(sub / "spec.json", {"input_video_path": "media/in.mp4", "edge": {}})
    result = run_sim(["--controlnet_specs", "spec.json"], sub)
    assert result.returncode == 0, result.stderr
    assert metadata(sub / "outputs" / "output.mp4")["source_sha256"] == sha256_of(
        sub / "media" / "in.mp4"
    )
    # The same relative spec run from another folder cannot find the video.
    result = run_sim(["--controlnet_specs", "job/spec.json"], work)
    assert_error(result, "media/in.mp4")


def test_unicode_prompt_kept_intact_while_stdout_stays_ascii(work: Path) -> None:
    prompt = "Rue de l'\u00e9t\u00e9 \u2014 \u96ea \u2713"
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "edge": {}})
    args = ["--controlnet_specs", "spec.json", "--prompt", prompt, "--ledger", "ledger.jsonl"]
    result = run_sim(args, work)
    assert result.returncode == 0, result.stderr
    assert result.stdout.isascii()
    assert (work / "outputs" / "output.txt").read_bytes() == prompt.encode("utf-8")
    assert metadata(work / "outputs" / "output.mp4")["prompt"] == prompt
    record = json.loads((work / "ledger.jsonl").read_text(encoding="utf-8"))
    assert record["prompt"] == prompt


def test_progress_lines_are_prefixed_and_honest(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "edge": {}})
    result = run_sim(["--controlnet_specs", "spec.json", "--num_gpus", "4", "--seed", "42"], work)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("[simulated] ") for line in lines)
    banner = lines[0]
    assert "SIMULATED" in banner and "no GPU" in banner and "no neural network" in banner
    assert "num_gpus=4" in banner
    assert any("loading model" in line for line in lines)
    assert any("video 1/1" in line and "seed=42" in line for line in lines)
    written = str((work / "outputs" / "output.mp4").resolve())
    assert any(line.endswith(written) for line in lines)


def test_help_mentions_simulation(work: Path) -> None:
    result = run_sim(["--help"], work, fast=False)
    assert result.returncode == 0
    assert "SIMULATED" in result.stdout and "--controlnet_specs" in result.stdout


# ---------------------------------------------------------------- batch mode


def test_batch_merges_each_line_onto_a_copy_of_the_shared_spec(work: Path) -> None:
    spec = {
        "prompt": "shared prompt",
        # transfer.py validates the shared spec first: it needs a video too.
        "input_video_path": "c.mp4",
        "seed": 11,
        "guidance": 6.5,
        "edge": {"control_weight": 0.25},
        "depth": {"control_weight": 0.6, "input_control": "depth.mp4"},
        "seg": {"control_weight": 0.1},
    }
    write_json(work / "spec.json", spec)
    lines = [
        {
            "visual_input": "a.mp4",
            "prompt": "first: rainy street",
            "control_overrides": {"depth": {"input_control": None}},
        },
        {
            "visual_input": "b.mp4",
            "control_overrides": {"seg": {"input_control": "seg.mp4", "control_weight": 0.15}},
        },
        {"visual_input": "c.mp4", "prompt": "third: snowy forest"},
    ]
    write_jsonl(work / "batch.jsonl", lines)
    args = ["--controlnet_specs", "spec.json", "--batch_input_path", "batch.jsonl"]
    result = run_sim([*args, "--video_save_folder", "out", "--video_save_name", "ignored"], work)
    assert result.returncode == 0, result.stderr

    out = work / "out"
    assert sorted(p.name for p in out.iterdir()) == ["video_0", "video_1", "video_2"]
    expected_prompts = ["first: rainy street", "shared prompt", "third: snowy forest"]
    metas = []
    # Each line's controls without input_control are computed into its own folder.
    computed = [["depth", "edge", "seg"], ["edge"], ["edge", "seg"]]
    for index, source in enumerate(("a.mp4", "b.mp4", "c.mp4")):
        folder = out / f"video_{index}"
        made = [f"{key}_input_control_0.mp4" for key in computed[index]]
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [*made, "output.mp4", "prompt.txt"]
        )
        assert metadata(folder / "output.mp4")["source_sha256"] == sha256_of(work / source)
        assert (folder / "prompt.txt").read_text(encoding="utf-8") == expected_prompts[index]
        meta = metadata(folder / "output.mp4")
        assert meta["prompt"] == expected_prompts[index]
        assert meta["input_video_path"] == source
        assert (meta["seed"], meta["guidance"]) == (11, 6.5)  # scalars are shared
        assert meta["controls"]["edge"] == {"control_weight": 0.25}  # shared control applies
        metas.append(meta)

    depth = [meta["controls"]["depth"] for meta in metas]
    assert depth[0] == {"control_weight": 0.6, "input_control": None}
    assert depth[1] == depth[2] == {"control_weight": 0.6, "input_control": "depth.mp4"}
    assert metas[1]["controls"]["seg"] == {"input_control": "seg.mp4", "control_weight": 0.15}
    assert metas[0]["controls"]["seg"] == metas[2]["controls"]["seg"] == {"control_weight": 0.1}
    assert sum("video " in line and "/3" in line for line in result.stdout.splitlines()) == 3


def test_batch_override_of_a_control_the_spec_lacks_is_refused(work: Path) -> None:
    """transfer.py would skip it with a warning: the line would silently lack the control."""
    write_json(work / "spec.json", {"input_video_path": "a.mp4", "edge": {"control_weight": 0.2}})
    line = {"visual_input": "a.mp4", "control_overrides": {"seg": {"input_control": None}}}
    write_jsonl(work / "batch.jsonl", [line])
    args = ["--controlnet_specs", "spec.json", "--batch_input_path", "batch.jsonl"]
    assert_error(run_sim(args, work), "'seg' is not a control of the spec")
    assert not (work / "outputs").exists()


def test_batch_flag_shadows_json_seed_for_every_line(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "a.mp4", "seed": 11, "vis": {}})
    write_jsonl(work / "batch.jsonl", [{"visual_input": "a.mp4"}, {"visual_input": "b.mp4"}])
    args = ["--controlnet_specs", "spec.json", "--batch_input_path", "batch.jsonl", "--seed", "5"]
    assert run_sim(args, work).returncode == 0
    for index in (0, 1):
        assert metadata(work / "outputs" / f"video_{index}" / "output.mp4")["seed"] == 5


# ---------------------------------------------------------------- computed controls
# transfer.py's preprocessors (cosmos_transfer1/diffusion/inference/preprocessors.py)
# compute depth, seg, keypoint, vis and edge when a block has no input_control, and
# save each as <output folder>/<key>_input_control_<LOCAL_RANK>.mp4.


def computed_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "_input_control_" in p.name)


def run_sim_env(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """run_sim with extra environment variables (LOCAL_RANK)."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args, *FAST],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def test_every_control_without_input_control_is_computed_and_saved(work: Path) -> None:
    spec = {
        "input_video_path": "color.mp4",
        "prompt": "a red car on a wet street",
        "blur_strength": "high",
        "depth": {"control_weight": 0.5},
        "seg": {"control_weight": 0.4, "input_control_prompt": "the car"},
        "vis": {"control_weight": 0.2},
        "keypoint": {"control_weight": 0.3},
        "edge": {"control_weight": 0.6, "input_control": "a.mp4"},
    }
    write_json(work / "spec.json", spec)
    result = run_sim(["--controlnet_specs", "spec.json", "--video_save_folder", "out"], work)
    assert result.returncode == 0, result.stderr
    out = work / "out"
    computed = computed_files(out)
    assert computed == [f"{key}_input_control_0.mp4" for key in ("depth", "keypoint", "seg", "vis")]
    source = (work / "color.mp4").read_bytes()
    for name in computed:
        key = name.split("_", 1)[0]
        data = (out / name).read_bytes()
        assert data.startswith(source) and len(data) > len(source)
        made = metadata(out / name)
        assert made["simulated"] is True and made["control"] == key
        assert str(work) not in json.dumps(made), "no paths: the same inputs give the same bytes"
    assert metadata(out / "seg_input_control_0.mp4")["prompt"] == "the car"
    assert metadata(out / "vis_input_control_0.mp4")["blur_strength"] == "high"
    assert sum("computed" in line for line in result.stdout.splitlines()) == 4


def test_computed_controls_depend_only_on_the_inputs(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "depth": {}, "seg": {}})
    made = {}
    for folder, seed, prompt in (("one", "1", "a street"), ("two", "2", "a street")):
        args = ["--controlnet_specs", "spec.json", "--video_save_folder", folder]
        assert run_sim([*args, "--seed", seed, "--prompt", prompt], work).returncode == 0
        made[folder] = {
            name: (work / folder / name).read_bytes() for name in computed_files(work / folder)
        }
    assert made["one"] == made["two"], "another seed or folder, the same computed controls"
    args = ["--controlnet_specs", "spec.json", "--video_save_folder", "three", "--prompt", "a car"]
    assert run_sim(args, work).returncode == 0
    # SAM segments what the prompt names: seg follows the prompt, depth does not.
    assert (work / "three" / "seg_input_control_0.mp4").read_bytes() != made["one"][
        "seg_input_control_0.mp4"
    ]
    assert (work / "three" / "depth_input_control_0.mp4").read_bytes() == made["one"][
        "depth_input_control_0.mp4"
    ]


def test_controls_that_are_not_computed_write_nothing(work: Path) -> None:
    """upscale, hdmap and lidar are never computed; nor is anything without an input video."""
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "upscale": {}})
    assert (
        run_sim(["--controlnet_specs", "spec.json", "--video_save_folder", "up"], work).returncode
        == 0
    )
    assert computed_files(work / "up") == []
    spec = {"sigma_max": 80, "hdmap": {"input_control": "a.mp4"}}
    write_json(work / "spec.json", spec)
    args = ["--controlnet_specs", "spec.json", "--video_save_folder", "nv", "--is_av_sample"]
    done = run_sim(args, work)
    assert done.returncode == 0, done.stderr
    assert computed_files(work / "nv") == []


def test_the_computed_file_is_named_after_the_local_rank(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "depth": {}})
    args = ["--controlnet_specs", "spec.json", "--video_save_folder", "r1"]
    result = run_sim_env(args, work, {"LOCAL_RANK": "1"})
    assert result.returncode == 0, result.stderr
    assert computed_files(work / "r1") == ["depth_input_control_1.mp4"]
    bad = run_sim_env([*args[:-1], "bad"], work, {"LOCAL_RANK": "first"})
    assert_error(bad, "LOCAL_RANK")
    assert not (work / "bad" / "output.mp4").exists()


# ---------------------------------------------------------------- ledger and failures


def test_ledger_gets_one_line_per_video(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "edge": {}})
    write_jsonl(
        work / "batch.jsonl",
        [{"visual_input": name, "prompt": f"p{i}"} for i, name in enumerate(["a.mp4"] * 3)],
    )
    ledger = ["--ledger", "logs/ledger.jsonl"]
    single = ["--controlnet_specs", "spec.json", "--seed", "8", *ledger]
    assert run_sim(single, work).returncode == 0
    batch = ["--controlnet_specs", "spec.json", "--batch_input_path", "batch.jsonl", *ledger]
    assert run_sim([*batch, "--video_save_folder", "bout"], work).returncode == 0

    records = [
        json.loads(line) for line in (work / "logs" / "ledger.jsonl").read_text().splitlines()
    ]
    assert len(records) == 4
    assert records[0]["output"] == str((work / "outputs" / "output.mp4").resolve())
    assert records[0]["seed"] == 8 and records[0]["index"] == 0
    assert [r["index"] for r in records[1:]] == [0, 1, 2]
    assert [r["prompt"] for r in records[1:]] == ["p0", "p1", "p2"]
    assert records[3]["output"] == str((work / "bout" / "video_2" / "output.mp4").resolve())
    assert len({r["pid"] for r in records}) == 2
    assert all(Path(r["output"]).is_absolute() and Path(r["output"]).is_file() for r in records)


def test_concurrent_processes_share_one_ledger(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "a.mp4", "edge": {}})
    write_jsonl(work / "batch.jsonl", [{"visual_input": "a.mp4"}] * 4)
    procs = []
    for worker in range(4):
        args = [
            str(SCRIPT),
            "--controlnet_specs",
            "spec.json",
            "--batch_input_path",
            "batch.jsonl",
            "--video_save_folder",
            f"out{worker}",
            "--ledger",
            "ledger.jsonl",
            "--model_load_s",
            "0",
            "--per_video_s",
            "0.01",
        ]
        procs.append(subprocess.Popen([sys.executable, *args], cwd=work, stdout=subprocess.DEVNULL))
    assert [proc.wait(timeout=60) for proc in procs] == [0] * 4
    records = [json.loads(line) for line in (work / "ledger.jsonl").read_text().splitlines()]
    assert len(records) == 16
    by_pid: dict[int, list[int]] = {}
    for record in records:
        by_pid.setdefault(record["pid"], []).append(record["index"])
    assert len(by_pid) == 4
    assert all(sorted(indexes) == [0, 1, 2, 3] for indexes in by_pid.values())


def test_fail_on_seed_exits_17_and_keeps_earlier_outputs(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "a.mp4", "edge": {"control_weight": 0.5}})
    write_jsonl(work / "batch.jsonl", [{"visual_input": "a.mp4"}, {"visual_input": "b.mp4"}])
    common = ["--controlnet_specs", "spec.json", "--video_save_folder", "out"]
    common += ["--ledger", "ledger.jsonl", "--fail_on_seed", "9"]
    # An earlier invocation with another seed succeeds.
    first = run_sim(
        [*common, "--input_video_path", "color.mp4", "--video_save_name", "first"], work
    )
    assert first.returncode == 0, first.stderr
    earlier = (work / "out" / "first.mp4").read_bytes()

    result = run_sim([*common, "--batch_input_path", "batch.jsonl", "--seed", "9"], work)
    assert result.returncode == 17
    assert "[simulated] simulated failure for seed 9" in result.stdout.splitlines()
    stderr = result.stderr.strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith(ERROR_PREFIX) and "seed 9" in stderr[0]
    assert "Traceback" not in result.stderr
    # Batch seeds are shared, so the very first video of the batch fails.
    assert not (work / "out" / "video_0" / "output.mp4").exists()
    assert (work / "out" / "first.mp4").read_bytes() == earlier
    assert len((work / "ledger.jsonl").read_text().splitlines()) == 1


def test_fail_on_seed_ignores_other_seeds(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "a.mp4", "seed": 4, "edge": {}})
    write_jsonl(work / "batch.jsonl", [{"visual_input": "a.mp4"}, {"visual_input": "b.mp4"}])
    args = ["--controlnet_specs", "spec.json", "--batch_input_path", "batch.jsonl"]
    assert run_sim([*args, "--fail_on_seed", "5"], work).returncode == 0
    assert (work / "outputs" / "video_1" / "output.mp4").is_file()
    single = ["--controlnet_specs", "spec.json", "--input_video_path", "a.mp4"]
    result = run_sim([*single, "--fail_on_seed", "4", "--video_save_name", "x"], work)
    assert result.returncode == 17  # the JSON seed is the effective seed
    assert not (work / "outputs" / "x.mp4").exists()


def test_model_load_sleeps_once_per_invocation(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "a.mp4", "edge": {}})
    write_jsonl(work / "batch.jsonl", [{"visual_input": "a.mp4"}] * 3)
    args = ["--controlnet_specs", "spec.json", "--batch_input_path", "batch.jsonl"]
    start = time.monotonic()
    result = run_sim([*args, "--model_load_s", "1", "--per_video_s", "0.05"], work, fast=False)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert elapsed >= 1.15  # 1 once + 3 x 0.05
    assert elapsed < 3.1  # a load per video would take at least 3.15 s


# ---------------------------------------------------------------- real video and packaging


def make_real_video(path: Path, frames: int) -> None:
    """Encode a small real H.264 MP4 with PyAV."""
    av = pytest.importorskip("av")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame(64, 32, "rgb24")
            plane = frame.planes[0]
            row = bytes((index * 20 + x * 3) % 256 for x in range(64 * 3))
            plane.update((row + bytes(plane.line_size - len(row))) * 32)
            frame.pts = index
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_output_is_a_valid_mp4_that_pyav_decodes(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    make_real_video(tmp_path / "real.mp4", frames=7)
    write_json(tmp_path / "spec.json", {"input_video_path": "real.mp4", "edge": {}})
    assert run_sim(["--controlnet_specs", "spec.json", "--seed", "2"], tmp_path).returncode == 0
    output = tmp_path / "outputs" / "output.mp4"
    assert top_level_boxes(output.read_bytes())[-1][0] == b"free"
    assert metadata(output)["seed"] == 2
    with av.open(str(output)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 7  # as many frames as its input video
    assert (frames[0].width, frames[0].height) == (256, 144)


def test_script_uses_only_the_standard_library_and_the_modules_shipped_with_it() -> None:
    siblings = {Path(name).stem for name in simulated_model_files()}
    modules = set()
    for name in simulated_model_files():
        tree = ast.parse((SCRIPT.parent / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 and not node.module, "only siblings, relatively"
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                modules.add((node.module or "").split(".")[0])
    assert modules, "no imports found"
    assert modules <= set(sys.stdlib_module_names) | {"__future__"} | siblings, modules


def test_standalone_copy_runs_in_isolated_mode(work: Path) -> None:
    copy = work / "bin" / "simulated_model.py"
    install_simulated_model(copy)
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "edge": {}})
    result = subprocess.run(
        [sys.executable, "-I", str(copy), "--controlnet_specs", "spec.json", *FAST],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert metadata(work / "outputs" / "output.mp4")["simulated"] is True


def test_runs_as_a_module(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "edge": {}})
    result = run_sim(["--controlnet_specs", "spec.json", "--seed", "6"], work, module=True)
    assert result.returncode == 0, result.stderr
    assert metadata(work / "outputs" / "output.mp4")["seed"] == 6


# ---------------------------------------------------------------- errors

SPEC_ERRORS = {
    "unknown dict key": (
        {"input_video_path": "color.mp4", "colour": {}},
        "'colour' is not a control",
    ),
    "unknown scalar key": (
        {"input_video_path": "color.mp4", "edge": {}, "guidence": 5},
        "unknown parameter 'guidence'",
    ),
    "simulator option in json": (
        {"input_video_path": "color.mp4", "edge": {}, "fail_on_seed": 1},
        "unknown parameter 'fail_on_seed'",
    ),
    "unknown control field": (
        {"input_video_path": "color.mp4", "edge": {"weight": 0.3}},
        "unknown field 'weight'",
    ),
    "negative weight": (
        {"input_video_path": "color.mp4", "edge": {"control_weight": -0.1}},
        "control_weight must be >= 0",
    ),
    "boolean weight": (
        {"input_video_path": "color.mp4", "edge": {"control_weight": True}},
        "control_weight must be a number",
    ),
    "missing weight map": (
        {"input_video_path": "color.mp4", "edge": {"control_weight": "maps/w.pt"}},
        "maps/w.pt",
    ),
    "bad input_control type": (
        {"input_video_path": "color.mp4", "depth": {"input_control": 5}},
        "input_control must be a non-empty path or null",
    ),
    "no video low sigma": ({"depth": {"input_control": "depth.mp4"}}, "sigma_max must be >= 80"),
    "no video control without input": (
        {"sigma_max": 80, "depth": {"input_control": "depth.mp4"}, "seg": {}},
        "control 'seg' needs input_control",
    ),
    "missing input video": ({"input_video_path": "nope/missing.mp4", "edge": {}}, "missing.mp4"),
    "missing control video": (
        {"input_video_path": "color.mp4", "depth": {"input_control": "absent_depth.mp4"}},
        "absent_depth.mp4",
    ),
    "no controls": ({"input_video_path": "color.mp4"}, "no control block"),
    "seed wrong type": (
        {"input_video_path": "color.mp4", "edge": {}, "seed": "7"},
        "'seed' must be an integer",
    ),
    "bad choice in json": (
        {"input_video_path": "color.mp4", "edge": {}, "blur_strength": "extreme"},
        "'blur_strength' must be one of",
    ),
    "negative seed in json": (
        {"input_video_path": "color.mp4", "edge": {}, "seed": -1},
        "seed must be >= 0",
    ),
    "spec not an object": ([{"edge": {}}], "must be a JSON object"),
    # argparse takes only 1; a JSON value skips that check and fails later.
    "two input frames in json": (
        {"input_video_path": "color.mp4", "edge": {}, "num_input_frames": 2},
        "num_input_frames must be 1",
    ),
    "seed too large in json": (
        {"input_video_path": "color.mp4", "edge": {}, "seed": 2**32},
        "seed must be <= 4294967295",
    ),
    "distilled depth": (
        {"input_video_path": "color.mp4", "depth": {}, "use_distilled": True},
        "No default distilled checkpoint for depth",
    ),
    "distilled two controls": (
        {
            "input_video_path": "color.mp4",
            "edge": {},
            "vis": {"ckpt_path": "v.pt"},
            "use_distilled": True,
        },
        "only supports single control input",
    ),
    "hdmap without av model": (
        {"sigma_max": 80, "hdmap": {"input_control": "depth.mp4"}},
        "need is_av_sample",
    ),
    "av model with edge": (
        {"input_video_path": "color.mp4", "edge": {}, "is_av_sample": True},
        "Sample-AV model has no edge",
    ),
    "hdmap without its video": (
        {"input_video_path": "color.mp4", "hdmap": {}, "is_av_sample": True},
        "'hdmap' needs input_control",
    ),
    "weight neither number nor .pt": (
        {"input_video_path": "color.mp4", "edge": {"control_weight": "heavy"}},
        "a path to a .pt file",
    ),
    "missing checkpoint": (
        {"input_video_path": "color.mp4", "edge": {"ckpt_path": "ckpts/none.pt"}},
        "ckpts/none.pt",
    ),
    "null checkpoint": (
        {"input_video_path": "color.mp4", "edge": {"ckpt_path": None}},
        "ckpt_path must be a non-empty string",
    ),
    "weight prompt of edge": (
        {"input_video_path": "color.mp4", "edge": {"control_weight_prompt": "the car"}},
        "control_weight_prompt for seg only",
    ),
    "seg prompt with seg video": (
        {
            "input_video_path": "color.mp4",
            "seg": {"input_control": "seg.mp4", "input_control_prompt": "the car"},
        },
        "input_control_prompt is unused",
    ),
    "weight prompt and weight map": (
        {
            "input_video_path": "color.mp4",
            "seg": {"control_weight": "w.pt", "control_weight_prompt": "the car"},
        },
        "replaces the weight map",
    ),
    "upsampler without a depth video": (
        {"input_video_path": "color.mp4", "depth": {}, "upsample_prompt": True},
        "the prompt upsampler reads the spec's depth input_control",
    ),
}


@pytest.mark.parametrize("case", sorted(SPEC_ERRORS))
def test_invalid_spec_exits_1_with_clear_message(work: Path, case: str) -> None:
    spec, fragment = SPEC_ERRORS[case]
    write_json(work / "spec.json", spec)
    result = run_sim(["--controlnet_specs", "spec.json"], work)
    assert_error(result, fragment)
    assert not (work / "outputs").exists()


CLI_ERRORS = {
    "missing specs flag": ([], "--controlnet_specs", EXIT_USAGE),
    "unknown flag": (
        ["--controlnet_specs", "spec.json", "--bogus", "1"],
        "unrecognized",
        EXIT_USAGE,
    ),
    "abbreviated flag": (
        ["--controlnet_specs", "spec.json", "--see", "3"],
        "unrecognized",
        EXIT_USAGE,
    ),
    "bad choice": (
        ["--controlnet_specs", "spec.json", "--canny_threshold", "x"],
        "invalid choice",
        EXIT_USAGE,
    ),
    "bad int": (
        ["--controlnet_specs", "spec.json", "--seed", "abc"],
        "invalid int value",
        EXIT_USAGE,
    ),
    "not finite": (["--controlnet_specs", "spec.json", "--guidance", "nan"], "finite", EXIT_USAGE),
    # transfer.py's argparse has choices=[1] for it.
    "two input frames": (
        ["--controlnet_specs", "spec.json", "--num_input_frames", "2"],
        "invalid choice",
        EXIT_USAGE,
    ),
    "zero steps": (
        ["--controlnet_specs", "spec.json", "--num_steps", "0"],
        "num_steps must be >= 1",
        EXIT_FAILED,
    ),
    # numpy's seed range: set_random_seed raises on it.
    "seed too large": (
        ["--controlnet_specs", "spec.json", "--seed", str(2**32)],
        "seed must be <= 4294967295",
        EXIT_FAILED,
    ),
    "spec file missing": (["--controlnet_specs", "ghost.json"], "ghost.json", EXIT_FAILED),
    "spec not json": (["--controlnet_specs", "broken.json"], "not valid JSON", EXIT_FAILED),
    "batch file missing": (
        ["--controlnet_specs", "spec.json", "--batch_input_path", "ghost.jsonl"],
        "ghost.jsonl",
        EXIT_FAILED,
    ),
}


@pytest.mark.parametrize("case", sorted(CLI_ERRORS))
def test_invalid_command_line_exits_with_a_clear_message(work: Path, case: str) -> None:
    args, fragment, code = CLI_ERRORS[case]
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "edge": {}})
    (work / "broken.json").write_text("{not json", encoding="utf-8")
    assert_error(run_sim(args, work), fragment, code)
    assert not (work / "outputs").exists()


BATCH_ERRORS = {
    "missing visual_input": ([{"prompt": "x"}], "'visual_input'"),
    "unknown key": ([{"visual_input": "a.mp4", "seed": 3}], "unknown key 'seed'"),
    "invalid json line": ([{"visual_input": "a.mp4"}, "{not json"], "line 2 is not valid JSON"),
    "blank line": ([{"visual_input": "a.mp4"}, "", {"visual_input": "b.mp4"}], "line 2"),
    "line not object": (["[1, 2]"], "must be a JSON object"),
    "prompt not string": ([{"visual_input": "a.mp4", "prompt": 3}], "'prompt' must be a string"),
    "override unknown control": (
        [{"visual_input": "a.mp4", "control_overrides": {"normals": {}}}],
        "'normals' is not a control",
    ),
    "override unknown field": (
        [{"visual_input": "a.mp4", "control_overrides": {"seg": {"path": "x"}}}],
        "unknown field 'path'",
    ),
    "override control video missing": (
        [{"visual_input": "a.mp4", "control_overrides": {"edge": {"input_control": "no.mp4"}}}],
        "no.mp4",
    ),
    "visual input missing": (
        [{"visual_input": "a.mp4"}, {"visual_input": "ghost.mp4"}],
        "ghost.mp4",
    ),
    "empty batch": ([], "has no lines"),
}


@pytest.mark.parametrize("case", sorted(BATCH_ERRORS))
def test_invalid_batch_exits_1_before_writing_anything(work: Path, case: str) -> None:
    lines, fragment = BATCH_ERRORS[case]
    write_json(work / "spec.json", {"input_video_path": "a.mp4", "edge": {}})
    write_jsonl(work / "batch.jsonl", lines)
    args = ["--controlnet_specs", "spec.json", "--batch_input_path", "batch.jsonl"]
    assert_error(run_sim([*args, "--ledger", "ledger.jsonl"], work), fragment)
    assert not (work / "outputs").exists()
    assert not (work / "ledger.jsonl").exists()


def test_a_batch_whose_shared_spec_has_no_video_is_refused_like_transfer_py(work: Path) -> None:
    write_json(work / "spec.json", {"depth": {"control_weight": 0.5}})
    write_jsonl(work / "batch.jsonl", [{"visual_input": "a.mp4"}])
    args = ["--controlnet_specs", "spec.json", "--batch_input_path", "batch.jsonl"]
    result = run_sim([*args, "--video_save_folder", "out"], work)
    assert result.returncode == EXIT_FAILED
    assert "without an input video sigma_max must be >= 80" in result.stderr
    assert not (work / "out").exists()


# ---------------------------------------------------------------- transfer.py's rules


def test_a_numeric_text_weight_is_a_number_and_a_pt_text_a_weight_map(work: Path) -> None:
    """inference_utils.py: a control_weight ending in .pt is a map, any other text a float."""
    (work / "w.pt").write_bytes(b"tensor")
    spec = {"input_video_path": "color.mp4", "edge": {"control_weight": "0.25"}}
    spec["depth"] = {"control_weight": "w.pt"}
    write_json(work / "spec.json", spec)
    result = run_sim(["--controlnet_specs", "spec.json"], work)
    assert result.returncode == 0, result.stderr
    controls = metadata(work / "outputs" / "output.mp4")["controls"]
    assert controls["depth"]["control_weight"] == "w.pt"


@pytest.mark.parametrize("maps", [(), ("edge",), ("edge", "seg")])
def test_a_weight_of_0_beside_a_weight_map_runs_at_1(work: Path, maps: tuple[str, ...]) -> None:
    """inference_utils.py load_spatial_temporal_weights: with a .pt map among the
    controls, a weight that is not truthy is "none given" (ones); numbers alone keep 0."""
    (work / "w.pt").write_bytes(b"tensor")
    weights = {"edge": 0.5, "seg": 0.5, "depth": 0, "vis": 0.0}
    spec: dict[str, Any] = {"input_video_path": "color.mp4"}
    spec.update({k: {"control_weight": "w.pt" if k in maps else w} for k, w in weights.items()})
    write_json(work / "spec.json", spec)
    write_jsonl(work / "batch.jsonl", [{"visual_input": "a.mp4"}])
    for args in (["--video_save_name", "one"], ["--batch_input_path", "batch.jsonl"]):
        result = run_sim(["--controlnet_specs", "spec.json", *args], work)
        assert result.returncode == 0, result.stderr
    for made in (work / "outputs" / "one.mp4", work / "outputs" / "video_0" / "output.mp4"):
        used = {k: c["control_weight"] for k, c in metadata(made)["controls"].items()}
        zero = 1.0 if maps else 0
        assert used == {**weights, **dict.fromkeys(maps, "w.pt"), "depth": zero, "vis": zero}


@pytest.mark.parametrize(
    ("controls", "found"),
    [
        # One control: the path as written, else under --checkpoint_dir.
        ({"edge": {"ckpt_path": "mine.pt"}}, True),
        # Several: the path as written only.
        ({"edge": {"ckpt_path": "mine.pt"}, "vis": {}}, False),
        ({"edge": {"ckpt_path": "ckpts/mine.pt"}, "vis": {}}, True),
    ],
)
def test_a_control_checkpoint_is_found_where_transfer_py_loads_it(
    work: Path, controls: dict, found: bool
) -> None:
    (work / "ckpts").mkdir()
    (work / "ckpts" / "mine.pt").write_bytes(b"weights")
    write_json(work / "spec.json", {"input_video_path": "color.mp4", **controls})
    result = run_sim(["--controlnet_specs", "spec.json", "--checkpoint_dir", "ckpts"], work)
    if found:
        assert result.returncode == 0, result.stderr
    else:
        assert_error(result, "mine.pt")


def test_the_sample_av_model_takes_hdmap_and_lidar_videos_without_input_video(
    work: Path,
) -> None:
    spec = {
        "sigma_max": 80,
        "is_av_sample": True,
        "hdmap": {"control_weight": 0.3, "input_control": "a.mp4"},
        "lidar": {"control_weight": 0.7, "input_control": "b.mp4"},
    }
    write_json(work / "spec.json", spec)
    result = run_sim(["--controlnet_specs", "spec.json"], work)
    assert result.returncode == 0, result.stderr
    assert metadata(work / "outputs" / "output.mp4")["source_sha256"] == sha256_of(work / "a.mp4")


def test_the_distilled_model_runs_edge_alone(work: Path) -> None:
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "edge": {}})
    result = run_sim(["--controlnet_specs", "spec.json", "--use_distilled"], work)
    assert result.returncode == 0, result.stderr


def sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@pytest.mark.parametrize(
    ("controls", "read"),
    [
        ({"edge": {"input_control": "a.mp4"}}, "the edge control video {a}"),
        ({"edge": {}, "depth": {"input_control": "b.mp4"}}, "edge {computed} {color}"),
        ({"vis": {}, "edge": {"input_control": "a.mp4"}}, "vis {computed} {color}"),
        # The first of depth and seg in the spec's order.
        (
            {"seg": {"input_control": "b.mp4"}, "depth": {"input_control": "a.mp4"}},
            "the seg control video {b}",
        ),
    ],
)
def test_the_prompt_upsampler_reads_what_transfer_py_reads(
    work: Path, controls: dict, read: str
) -> None:
    """vis, else edge (its video, or a map of the input video); else depth or seg's video."""
    spec = {"input_video_path": "color.mp4", "prompt": "a street", **controls}
    write_json(work / "spec.json", spec)
    result = run_sim(["--controlnet_specs", "spec.json", "--upsample_prompt"], work)
    assert result.returncode == 0, result.stderr
    prompt = (work / "outputs" / "output.txt").read_text(encoding="utf-8")
    names = {name: sha12(work / f"{name}.mp4") for name in ("a", "b", "color")}
    expected = read.format(computed="map made of the input video", **names)
    assert prompt.startswith("a street [SIMULATED prompt upsampler: read ")
    assert expected in prompt, prompt
    assert metadata(work / "outputs" / "output.mp4")["prompt"] == prompt


def test_without_vis_edge_depth_or_seg_the_prompt_is_not_upsampled(work: Path) -> None:
    spec = {"input_video_path": "color.mp4", "prompt": "a dance", "keypoint": {}}
    write_json(work / "spec.json", spec)
    result = run_sim(["--controlnet_specs", "spec.json", "--upsample_prompt"], work)
    assert result.returncode == 0, result.stderr
    assert (work / "outputs" / "output.txt").read_text(encoding="utf-8") == "a dance"


def test_in_a_batch_the_upsampler_reads_the_shared_spec_not_the_line(work: Path) -> None:
    """The upsampler is made once from the shared spec: a line's own edge video is unread."""
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "edge": {}})
    lines = [
        {"visual_input": "a.mp4", "control_overrides": {"edge": {"input_control": "b.mp4"}}},
        {"visual_input": "c.mp4", "control_overrides": {"edge": {"input_control": "b.mp4"}}},
    ]
    write_jsonl(work / "batch.jsonl", lines)
    args = ["--controlnet_specs", "spec.json", "--batch_input_path", "batch.jsonl"]
    result = run_sim([*args, "--upsample_prompt"], work)
    assert result.returncode == 0, result.stderr
    for index, source in enumerate(("a", "c")):
        prompt = (work / "outputs" / f"video_{index}" / "prompt.txt").read_text(encoding="utf-8")
        assert f"the edge map made of the input video {sha12(work / f'{source}.mp4')}" in prompt


def test_a_depth_batch_whose_shared_spec_has_no_depth_video_fails_to_upsample(
    work: Path,
) -> None:
    write_json(work / "spec.json", {"input_video_path": "color.mp4", "depth": {}})
    line = {"visual_input": "a.mp4", "control_overrides": {"depth": {"input_control": "b.mp4"}}}
    write_jsonl(work / "batch.jsonl", [line])
    args = ["--controlnet_specs", "spec.json", "--batch_input_path", "batch.jsonl"]
    assert_error(run_sim([*args, "--upsample_prompt"], work), "reads the spec's depth")
    assert not (work / "outputs").exists()


ASCII_LOCALE = {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}


def test_spec_files_are_read_with_the_locales_encoding(work: Path) -> None:
    """transfer.py opens them with open(path, "r"): raw UTF-8 fails under LANG=C."""
    prompt = "Rue de l'\u00e9t\u00e9, \u96e8"
    spec = {"input_video_path": "color.mp4", "prompt": prompt, "edge": {}}
    (work / "spec.json").write_bytes(json.dumps(spec, ensure_ascii=False).encode("utf-8"))
    args = ["--controlnet_specs", "spec.json"]
    assert_error(run_sim(args, work, env=ASCII_LOCALE), "locale's encoding")
    (work / "spec.json").write_bytes(json.dumps(spec, ensure_ascii=True).encode("ascii"))
    result = run_sim(args, work, env=ASCII_LOCALE)
    assert result.returncode == 0, result.stderr
    assert (work / "outputs" / "output.txt").read_bytes() == prompt.encode("utf-8")
