"""The prompt upsampler of Cosmos-Transfer1 and prompt_capture.py, end to end.

No GPU here: NVIDIA's upsampler_pipeline.py is a strict stand-in
(tests/fakes/cosmos-transfer1), copied into a checkout with the simulated
model as transfer.py, and torchrun is tests/fakes/torchrun. The stand-in dies
without torchrun's environment, like the real one, and prints a multi-line
upsampled prompt that a test can compute whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, make_project
from test_demo_sweep import free_box_metadata
from test_simulated_model import install_simulated_model

from cosmos_workflow.execution.programs import PROGRAMS_DIR

FAKES = Path(__file__).resolve().parent / "fakes"
CAPTURE = PROGRAMS_DIR / "prompt_capture.py"
PIPELINE = "cosmos_transfer1/auxiliary/upsampler/inference/upsampler_pipeline.py"
CHECKPOINT = Path("nvidia") / "Cosmos-UpsamplePrompt1-12B-Transfer"
AFTER_THE_PROMPT = "stand-in of the prompt upsampler: done"


def make_checkout(root: Path) -> Path:
    """A Transfer1 checkout: the upsampler stand-in, transfer.py, the upsampler's checkpoint."""
    workspace = root / "cosmos-transfer1"
    shutil.copytree(FAKES / "cosmos-transfer1", workspace)
    transfer = workspace / "cosmos_transfer1" / "diffusion" / "inference" / "transfer.py"
    transfer.parent.mkdir(parents=True)
    install_simulated_model(transfer)
    (workspace / "checkpoints" / CHECKPOINT).mkdir(parents=True)
    return workspace


def expected_prompt(text: str, video: Path) -> str:
    """What the stand-in makes of ``text`` with ``video`` as context (two frames)."""
    digest = hashlib.sha256(video.read_bytes()).hexdigest()[:12]
    return (
        " ".join(text.split()).rstrip(".") + ".\n"
        "\n"
        f"Context: 2 frame(s) of the input video, sha256 {digest}.\n"
        "Camera: steady, at eye level; light: soft and even."
    )


def show(project: Project, object_id: str) -> dict[str, Any]:
    return project.cosmos_json("show", object_id)


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def frames_in(folder: Path) -> list[Path]:
    return sorted(folder.rglob("frame_*.png"))


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path, dict[str, str]]:
    """A project, a Transfer1 checkout, and the environment its commands run in."""
    root = tmp_path_factory.mktemp("t1up")
    project = make_project(root / "project")
    workspace = make_checkout(root)
    caller_tmp = root / "caller-tmp"
    caller_tmp.mkdir()
    env = {
        "PATH": os.pathsep.join([str(FAKES), os.environ["PATH"]]),
        "FAKE_TORCHRUN_LOG": str(root / "torchrun.jsonl"),
        "TMPDIR": str(caller_tmp),
    }
    # torchrun gives one worker no OMP_NUM_THREADS unless the caller has one.
    project.env.pop("OMP_NUM_THREADS", None)
    return project, workspace, env


def transfer1(workspace: Path, *extra_args: str) -> list[str]:
    flags = ",".join(extra_args)
    return [
        "--set", "model=transfer1",
        "--set", f"adapters.transfer1.workspace={workspace}",
        "--set", f"adapters.transfer1.extra_args=[{flags}]",
    ]  # fmt: skip


def test_enhance_runs_nvidias_upsampler_and_keeps_its_prompt_whole(checkout) -> None:
    project, workspace, env = checkout
    log = Path(env["FAKE_TORCHRUN_LOG"])
    log.unlink(missing_ok=True)
    text = "A tram in the snow, seen from a bridge."
    done = project.cosmos("create", "prompt", text, "inputs/demo/street")
    assert done.returncode == 0, done.stderr
    sets = transfer1(workspace, "--offload_prompt_upsampler", "--benchmark")
    enhanced = project.cosmos("enhance", done.stdout.strip(), *sets, "--json", env=env)
    assert enhanced.returncode == 0, enhanced.stdout + enhanced.stderr
    data = json.loads(enhanced.stdout)

    whole = expected_prompt(text, project.root / "inputs" / "demo" / "street" / "color.mp4")
    assert "\n\n" in whole and len(whole.splitlines()) == 4
    assert show(project, data["id"])["text"] == whole
    run_dir = Path(data["output_dir"])
    assert (run_dir / "output.txt").read_text(encoding="utf-8") == whole + "\n"
    assert show(project, data["run"]["id"])["adapter"] == "transfer1_upsampler"
    # The record the program logged after the prompt is in its log, not in the prompt.
    assert AFTER_THE_PROMPT in (run_dir / "logs" / "run.log").read_text()

    (call,) = calls(log)
    assert call["cwd"] == str(workspace) and call["pythonpath"] == "."
    assert call["nproc"] == 1 and call["omp_num_threads"] is not None
    assert call["argv"][0] == PIPELINE
    assert f"--prompt={text}" in call["argv"]
    # Only the upsampler's own set-up flag reaches it (transfer.py's --benchmark does not).
    assert "--offload_prompt_upsampler" in call["argv"] and "--benchmark" not in call["argv"]
    # The frames it extracts stay in its job folder: two jobs never read each other's.
    assert frames_in(Path(env["TMPDIR"])) == []


def test_upscale_runs_transfer_py_in_the_same_checkout(checkout) -> None:
    project, workspace, env = checkout
    sets = transfer1(workspace, "--offload_prompt_upsampler")
    prompt = project.cosmos("create", "prompt", "a canal at night", "inputs/demo/forest")
    assert prompt.returncode == 0, prompt.stderr
    args = ("inference", prompt.stdout.strip(), "--weight", "depth=0.5", *sets, "--json")
    run = project.cosmos(*args, env=env)
    assert run.returncode == 0, run.stderr
    up = project.cosmos("upscale", json.loads(run.stdout)["id"], *sets, "--json", env=env)
    assert up.returncode == 0, up.stderr
    child = json.loads(up.stdout)
    assert show(project, child["id"])["adapter"] == "transfer1_upscaler"
    command = (Path(child["output_dir"]) / "command.txt").read_text()
    assert "cosmos_transfer1/diffusion/inference/transfer.py" in command
    assert "--batch_input_path" not in command


def test_a_staged_transfer1_sweep_runs_the_whole_enhanced_prompts(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    project.env.pop("OMP_NUM_THREADS", None)
    workspace = make_checkout(tmp_path)
    env = {
        "PATH": os.pathsep.join([str(FAKES), os.environ["PATH"]]),
        "FAKE_TORCHRUN_LOG": str(tmp_path / "torchrun.jsonl"),
    }
    done = project.batch(
        "+experiment=demo_stages",
        "model=transfer1",
        f"adapters.transfer1.workspace={workspace}",
        "stages.upscale=null",
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 runs: 6 executed (6 succeeded, 0 failed)" in done.stdout
    upsampled = [c for c in calls(tmp_path / "torchrun.jsonl") if c["argv"][0] == PIPELINE]
    assert len(upsampled) == 2
    runs = project.cosmos_json("list", "runs", "--limit", "100")
    main = [r for r in runs if r["adapter"] == "transfer1"]
    assert len(main) == 6
    for run in main:
        prompt = show(project, run["prompt_id"])
        parent = show(project, prompt["parent_id"])
        scene = "street" if "street" in parent["text"] else "forest"
        video = project.root / "inputs" / "demo" / scene / "color.mp4"
        assert prompt["text"] == expected_prompt(parent["text"], video)
        # transfer.py was given the whole enhanced prompt.
        made = free_box_metadata(Path(run["output_dir"]) / "output.mp4")
        assert made["prompt"] == prompt["text"]


# -- the stand-in refuses what the real program refuses ---------------------------------
@pytest.fixture(scope="module")
def bare_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkout(tmp_path_factory.mktemp("bare"))


def start(
    workspace: Path, argv: list[str], *, torchrun: bool = True, **env: str | None
) -> subprocess.CompletedProcess:
    """The stand-in started in ``workspace`` (under the fake torchrun, or plain python)."""
    base = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    base.update(PYTHONPATH=".", FAKE_TORCHRUN_LOG=str(workspace / "torchrun.jsonl"))
    base.update(TMPDIR=str(workspace))
    for key, value in env.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    if torchrun:
        launch = [sys.executable, str(FAKES / "torchrun"), "--standalone", "--nnodes=1"]
        launch.append("--nproc_per_node=1")
    else:
        launch = [sys.executable, "-u"]
    command = [*launch, PIPELINE, *argv]
    return subprocess.run(
        command, cwd=workspace, env=base, capture_output=True, text=True, timeout=60
    )


VIDEO = ["--input_video=video.mp4"]


def test_the_stand_in_dies_without_torchrun_like_the_real_program(bare_checkout: Path) -> None:
    (bare_checkout / "video.mp4").write_bytes(b"frames")
    # The command the adapter used to run: plain python.
    plain = start(bare_checkout, ["--prompt=a cat", *VIDEO], torchrun=False)
    assert plain.returncode == 1
    assert "KeyError: 'RANK'" in plain.stderr and "Upsampled prompt" not in plain.stdout
    # torchrun with one process sets no OMP_NUM_THREADS; the program deletes it too.
    alone = start(bare_checkout, ["--prompt=a cat", *VIDEO])
    assert alone.returncode == 1 and "KeyError: 'OMP_NUM_THREADS'" in alone.stderr
    ok = start(bare_checkout, ["--prompt=a cat", *VIDEO], OMP_NUM_THREADS="4")
    assert ok.returncode == 0, ok.stderr
    assert "Upsampled prompt: a cat.\n\nContext: 2 frame(s)" in ok.stdout


@pytest.mark.parametrize(
    ("argv", "env", "code", "message"),
    [
        (["--prompt=x"], {}, 2, "the following arguments are required: --input_video"),
        (["--prompt=x", *VIDEO, "--benchmark"], {}, 2, "unrecognized arguments: --benchmark"),
        (["--prompt", "-dawn", *VIDEO], {}, 2, "--prompt: expected one argument"),
        ([*VIDEO, "--offload_prompt_upsampler=yes"], {}, 2, "ignored explicit argument"),
        (["--prompt=x", *VIDEO], {"PYTHONPATH": None}, 1, "No module named 'cosmos_transfer1'"),
        (["--prompt=x", *VIDEO, "--checkpoint_dir=elsewhere"], {}, 1, "not a local folder"),
    ],
)
def test_the_stand_in_refuses_what_the_real_program_refuses(
    bare_checkout: Path, argv: list[str], env: dict, code: int, message: str
) -> None:
    (bare_checkout / "video.mp4").write_bytes(b"frames")
    done = start(bare_checkout, argv, OMP_NUM_THREADS="1", **env)
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stderr
    assert "Upsampled prompt" not in done.stdout


def test_the_stand_in_accepts_what_the_real_program_accepts(
    bare_checkout: Path, tmp_path: Path
) -> None:
    env = {"OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    # No prompt: the model is asked to describe the frames. An unreadable video: no frames.
    done = start(bare_checkout, ["--input_video=missing.mp4"], **env)
    assert done.returncode == 0, done.stderr
    assert "Upsampled prompt: describe the following images.\n\nContext: 0 frame(s)" in (
        done.stdout
    )
    assert frames_in(tmp_path) == []
    (bare_checkout / "video.mp4").write_bytes(b"0123456789")
    done = start(bare_checkout, ["--prompt=-dawn", *VIDEO], **env)
    assert done.returncode == 0, done.stderr
    assert "Upsampled prompt: -dawn.\n" in done.stdout
    # The frames go to the temporary folder, under the same names for every call.
    assert [p.name for p in frames_in(tmp_path)] == ["frame_1.png", "frame_2.png"]


# -- prompt_capture.py ------------------------------------------------------------------
def capture(out: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    """prompt_capture.py running ``python -c CODE``."""
    command = [sys.executable, str(CAPTURE), "--out", str(out), "--", sys.executable, "-c", code]
    return subprocess.run(
        command, capture_output=True, timeout=60, env={**os.environ, **env}, check=False
    )


def printing(*lines: str) -> str:
    """Code that prints ``lines`` as they are (bytes, UTF-8)."""
    data = "".join(line + "\n" for line in lines).encode()
    return f"import sys; sys.stdout.buffer.write({data!r})"


def test_prompt_capture_keeps_a_multi_line_prompt_whole(tmp_path: Path) -> None:
    out = tmp_path / "out" / "prompt.txt"
    done = capture(
        out,
        printing(
            "INFO 05-12 10:00:00 [llm.py:12] Loading the model",
            "Processed prompts: 100%|##########| 1/1",
            "Upsampled prompt: A harbor at dawn.",
            "",
            "Fishing boats rock on a calm sea;  gulls circle overhead.",
            "  - Light: low sun, long shadows.",
            "Upsampled prompt: is part of the text here.",
            "",
            "INFO 05-12 10:00:09 [llm.py:40] Shutting down",
            "and what comes after a log record is not the prompt",
            "Upsampled prompt: a second result is ignored",
        ),
    )
    assert done.returncode == 0, done.stdout
    assert out.read_text(encoding="utf-8") == (
        "A harbor at dawn.\n"
        "\n"
        "Fishing boats rock on a calm sea;  gulls circle overhead.\n"
        "  - Light: low sun, long shadows.\n"
        "Upsampled prompt: is part of the text here.\n"
    )
    assert b"Shutting down" in done.stdout, "the program's output passes through"


@pytest.mark.parametrize(
    "record",
    [
        "INFO 05-12 10:00:09 [llm.py:40] vLLM's format",
        "WARNING 05-12 10:00:09 [core.py:1] vLLM's format",
        "(EngineCore_0 pid=4242) INFO 05-12 10:00:09 [core.py:1] a vLLM engine process",
        "(VllmWorker rank=0 pid=77) anything from a vLLM worker",
        "[rank0]:[W512 10:00:09.123456 ProcessGroupNCCL.cpp:1250] Warning: torch's C++ log",
        "[W512 10:00:09.123456 init.cpp:1] Warning: torch's C++ log",
        "W0512 10:00:09.123000 4242 torch/distributed/run.py:793] torch's Python log",
        "[05-12 10:00:09|INFO|cosmos_transfer1/utils/misc.py:1:f] Cosmos' own log",
        "2025-05-12 10:00:09.123 | INFO | module:func:1 - loguru's default format",
        "WARNING:root:the standard library's default format",
        "/usr/lib/python3/site.py:12: UserWarning: a Python warning",
        "Traceback (most recent call last):",
        "Exception ignored in: <function LLM.__del__ at 0x7f>",
        "\x1b[32mINFO\x1b[0m 05-12 10:00:09 [llm.py:40] a coloured record",
    ],
)
def test_prompt_capture_stops_at_the_next_log_record(tmp_path: Path, record: str) -> None:
    out = tmp_path / "prompt.txt"
    done = capture(out, printing("Upsampled prompt: first line", "second line", record, "x"))
    assert done.returncode == 0, done.stdout
    assert out.read_text(encoding="utf-8") == "first line\nsecond line\n"


def test_prompt_capture_keeps_prose_that_only_looks_like_a_log(tmp_path: Path) -> None:
    prose = [
        "Upsampled prompt: A road sign.",
        "WARNING: slippery road, says the sign.",
        "Info boards line the street; 2025-style cars pass by.",
        "[Camera] slow pan, 10:00:09 on the clock.",
        "(a quiet pid=none moment)",
        "Warning lights blink.",
    ]
    out = tmp_path / "prompt.txt"
    done = capture(out, printing(*prose))
    assert done.returncode == 0, done.stdout
    expected = "\n".join(["A road sign.", *prose[1:]]) + "\n"
    assert out.read_text(encoding="utf-8") == expected


def test_prompt_capture_reads_the_line_a_progress_bar_shares(tmp_path: Path) -> None:
    out = tmp_path / "prompt.txt"
    code = "import sys; sys.stdout.write('50%|##  \\r100%|####\\rUpsampled prompt: ok\\r\\n')"
    done = capture(out, code)
    assert done.returncode == 0, done.stdout
    assert out.read_text(encoding="utf-8") == "ok\n"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (("no prompt here", "INFO 05-12 10:00:00 [a.py:1] Upsampled prompt: x"), "printed no"),
        (("x Upsampled prompt: not at the start of its line",), "printed no"),
        (("Upsampled prompt: ", "", "INFO 05-12 10:00:00 [a.py:1] done"), "empty prompt"),
    ],
)
def test_prompt_capture_fails_clearly_without_a_prompt(
    tmp_path: Path, lines: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "prompt.txt"
    done = capture(out, printing(*lines))
    assert done.returncode == 3 and not out.exists()
    assert message in done.stdout.decode()
    assert b"prompt_capture: error:" in done.stdout


def test_prompt_capture_keeps_the_exit_code_and_reads_utf8(tmp_path: Path) -> None:
    out = tmp_path / "out" / "prompt.txt"
    failed = capture(out, "print('Upsampled prompt: partial'); raise SystemExit(5)")
    assert failed.returncode == 5 and not out.exists()
    killed = capture(out, "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert killed.returncode == 128 + 15 and not out.exists()
    # The prompt is UTF-8 whatever the locale says (here: ASCII, no coercion).
    ascii_locale = {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    text = "Upsampled prompt: caf\u00e9\n\u6771\u4eac"
    utf8 = capture(out, printing(text), **ascii_locale)
    assert utf8.returncode == 0, utf8.stdout
    assert out.read_text(encoding="utf-8") == "caf\u00e9\n\u6771\u4eac\n"
    assert "caf\u00e9".encode() in utf8.stdout
