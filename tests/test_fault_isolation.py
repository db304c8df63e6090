"""One bad video never sinks its batch: fault isolation of failed invocations.

Cosmos-Transfer1's transfer.py makes a batch's videos one after another and
saves each as soon as it is made; when its guardrail blocks a prompt,
generate() returns None and transfer.py dies unpacking it (TypeError, exit
code 1): the lines before it have their outputs, the blocked one and those
after it never ran. The runner adopts the outputs that were written and
tries the other runs again in halves, down to single runs, so that only the
run that really fails is failed, with the program's reason.

The simulated model (and its copy standing in for transfer.py) has such a
guardrail: `simulator.block_prompt`, or a blocklist file in the checkpoint
folder, like the real one. Its ledger records every video it made or
blocked, with the process id: one process is one model invocation.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project, make_project
from test_simulated_model import fake_mp4, install_simulated_model, run_sim, write_json, write_jsonl

from cosmos_workflow.config.settings import Settings
from cosmos_workflow.engine.isolation import SplitHalf, after_failure, halves, written_whole
from cosmos_workflow.execution.adapters.base import RunOutputs
from cosmos_workflow.execution.adapters.registry import build_adapters

FAKES = Path(__file__).resolve().parent / "fakes"
NAMES = ("p0", "p1", "p2", "p3")
BLOCKED_LINE = "Guardrail blocked generation for entire batch."
TYPE_ERROR = "TypeError: cannot unpack non-iterable NoneType object"
BLOCKLIST = Path("nvidia") / "Cosmos-Guardrail1" / "blocklist" / "exact_match"


# -- the simulated guardrail ---------------------------------------------------------
@pytest.fixture
def work(tmp_path: Path) -> Path:
    for name in ("a", "b", "c"):
        fake_mp4(tmp_path / f"{name}.mp4", name)
    write_json(tmp_path / "spec.json", {"input_video_path": "a.mp4", "edge": {}})
    return tmp_path


def batch_of_three(work: Path, middle: str = "a forbidden harbour") -> list[str]:
    lines = [
        {"visual_input": "a.mp4", "prompt": "a calm harbour"},
        {"visual_input": "b.mp4", "prompt": middle},
        {"visual_input": "c.mp4", "prompt": "a windy harbour"},
    ]
    write_jsonl(work / "batch.jsonl", lines)
    return ["--controlnet_specs", "spec.json", "--batch_input_path", "batch.jsonl"]


def test_a_blocked_line_ends_the_batch_like_transfer_py(work: Path) -> None:
    args = [*batch_of_three(work), "--ledger", "ledger.jsonl", "--block_prompt", "FORBIDDEN"]
    result = run_sim(args, work)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == TYPE_ERROR
    assert result.stderr.startswith("Traceback (most recent call last):")
    critical = [line for line in result.stdout.splitlines() if "CRITICAL" in line]
    assert len(critical) == 4
    assert "GUARDRAIL BLOCKED: BLOCKLIST:" in critical[0] and "FORBIDDEN" in critical[0]
    assert critical[1].endswith("Input text prompt 1 is not safe")
    assert critical[2].endswith("All prompts failed safety checks")
    assert critical[3].endswith(BLOCKED_LINE)
    out = work / "outputs"
    assert (out / "video_0" / "output.mp4").is_file() and (out / "video_0" / "prompt.txt").is_file()
    # The blocked line's folder holds only the edge control transfer.py computed first.
    assert sorted(p.name for p in (out / "video_1").iterdir()) == ["edge_input_control_0.mp4"]
    assert not (out / "video_2").exists()
    ledger = [json.loads(line) for line in (work / "ledger.jsonl").read_text().splitlines()]
    assert [(r["index"], r.get("blocked", False)) for r in ledger] == [(0, False), (1, True)]


def test_a_blocked_single_run_writes_nothing(work: Path) -> None:
    args = ["--controlnet_specs", "spec.json", "--prompt", "x FORBIDDEN y"]
    result = run_sim([*args, "--block_prompt", "forbidden"], work)
    assert result.returncode == 1 and TYPE_ERROR in result.stderr
    assert not list((work / "outputs").glob("output.*"))


def test_the_guardrail_reads_a_blocklist_in_the_checkpoint_folder(work: Path) -> None:
    args = batch_of_three(work, middle="a harbour with Sea Monsters")
    assert run_sim(args, work).returncode == 0, "no blocklist: nothing is blocked"
    folder = work / "ckpt" / BLOCKLIST
    folder.mkdir(parents=True)
    (folder / "custom.txt").write_text("\nsea monsters\n")
    shutil.rmtree(work / "outputs")
    result = run_sim([*args, "--checkpoint_dir", "ckpt"], work)
    assert result.returncode == 1 and BLOCKED_LINE in result.stdout
    assert (work / "outputs" / "video_0" / "output.mp4").is_file()
    assert not (work / "outputs" / "video_2").exists()


# -- the adapters' reasons -----------------------------------------------------------
# Lines as Cosmos-Transfer1 logs them (loguru: time|level|file:line:function).
PIPELINE = "cosmos_transfer1/diffusion/inference/world_generation_pipeline.py"
PRESETS = "cosmos_transfer1/auxiliary/guardrail/common/presets.py"
DEMO = "cosmos_transfer1/diffusion/inference/transfer.py:377:demo"


def logged(*lines: tuple[str, str, str]) -> str:
    return "".join(f"[11-04 10:12:01|{level}|{where}] {text}\n" for level, where, text in lines)


REAL_PROMPT_BLOCK = logged(
    ("INFO", f"{PIPELINE}:728:generate", "Running guardrail checks on all prompts"),
    ("CRITICAL", f"{PRESETS}:55:run_text_guardrail", "GUARDRAIL BLOCKED: LLAMAGUARD3: Unsafe"),
    ("CRITICAL", f"{PIPELINE}:735:generate", "Input text prompt 1 is not safe"),
    ("CRITICAL", f"{PIPELINE}:738:generate", "All prompts failed safety checks"),
    ("CRITICAL", DEMO, "Guardrail blocked generation for entire batch."),
) + (
    "Traceback (most recent call last):\n"
    '  File "/workspace/cosmos_transfer1/diffusion/inference/transfer.py", line 433\n'
    f"{TYPE_ERROR}\n"
)
REAL_VIDEO_BLOCK = (
    logged(
        ("INFO", f"{PIPELINE}:788:generate", "Run guardrail on generated videos"),
        (
            "CRITICAL",
            f"{PRESETS}:71:run_video_guardrail",
            "GUARDRAIL BLOCKED: VIDEOCONTENTSAFETYFILTER: Unsafe frame",
        ),
        ("CRITICAL", f"{PIPELINE}:797:generate", "Generated video 1 is not safe"),
        ("CRITICAL", f"{PIPELINE}:800:generate", "All generated videos failed safety checks"),
        ("CRITICAL", DEMO, "Guardrail blocked generation for entire batch."),
    )
    + f"{TYPE_ERROR}\n"
)


def test_transfer1_adapters_read_the_guardrails_reason_from_the_log() -> None:
    found = build_adapters(Settings(project_dir=Path.cwd()))
    for name in ("transfer1", "simulated", "transfer1_upscaler", "simulated_upscaler"):
        prompt = found[name].failure_reason(REAL_PROMPT_BLOCK)
        video = found[name].failure_reason(REAL_VIDEO_BLOCK)
        assert prompt is not None and video is not None, name
        assert prompt.startswith("blocked by the guardrail")
        assert "prompt" in prompt and "LLAMAGUARD3" in prompt
        assert video.startswith("blocked by the guardrail")
        assert "generated video" in video and "VIDEOCONTENTSAFETYFILTER" in video
        assert found[name].failure_reason("CUDA out of memory\nRuntimeError: boom\n") is None
    assert found["transfer2.5"].failure_reason(REAL_PROMPT_BLOCK) is None


# -- the engine's pieces -------------------------------------------------------------
@pytest.mark.parametrize(
    ("count", "sizes"), [(2, [1, 1]), (3, [2, 1]), (4, [2, 2]), (7, [4, 3]), (8, [4, 4])]
)
def test_runs_without_output_are_tried_again_in_two_halves(count: int, sizes: list[int]) -> None:
    ids = [f"rs_{i}" for i in range(count)]
    groups = halves(ids)
    assert [len(g) for g in groups] == sizes
    assert [i for g in groups for i in g] == ids


def test_runs_cancelled_meanwhile_are_left_out_of_what_runs_again() -> None:
    """Only the runs that went back to the queue are planned again (halves or a retry)."""
    plan = after_failure(["a", "b", "c", "d"], whole={"a"}, retry=False)
    assert (plan.adopt, plan.retry, plan.split) == (["a"], [], [["b", "c"], ["d"]])
    assert plan.again() == ["b", "c", "d"]
    assert plan.kept({"b", "c", "d"}) == ([], [["b", "c"], ["d"]])
    assert plan.kept({"c", "d"}) == ([], [["c"], ["d"]])
    assert plan.kept({"b", "c"}) == ([], [["b", "c"]])
    retried = after_failure(["a", "b", "c"], whole=set(), retry=True)
    assert (retried.retry, retried.split) == (["a", "b", "c"], [])
    assert retried.kept({"a", "c"}) == (["a", "c"], [])


def test_only_whole_outputs_are_adopted(tmp_path: Path) -> None:
    outputs = RunOutputs(video="v/output.mp4", extras={"prompt": "v/prompt.txt"})
    video = tmp_path / "v" / "output.mp4"
    data = fake_mp4(video, "made")
    assert not written_whole(tmp_path, outputs), "no prompt yet: the save did not finish"
    (tmp_path / "v" / "prompt.txt").write_text("a prompt")
    assert written_whole(tmp_path, outputs)
    video.write_bytes(data[:-3])
    assert not written_whole(tmp_path, outputs), "a truncated video is not adopted"
    video.write_bytes(b"")
    assert not written_whole(tmp_path, outputs)
    video.unlink()
    assert not written_whole(tmp_path, outputs)


# -- a sweep with a blocked line -------------------------------------------------------
def prompt_text(index: int) -> str:
    """Each prompt has a word of its own (solo2) and one per pair it is in (pair02)."""
    pairs = itertools.combinations(range(4), 2)
    mine = " ".join(f"pair{a}{b}" for a, b in pairs if index in (a, b))
    return f"A quiet harbour at dawn, boat {index}, solo{index} {mine}"


def isolation_project(root: Path) -> Project:
    prompts = {
        name: {
            "text": prompt_text(index),
            "inputs": {
                "video": "inputs/demo/street/color.mp4",
                "controls": {"depth": "inputs/demo/street/depth.mp4"},
            },
        }
        for index, name in enumerate(NAMES)
    }
    return prompts_project(root, "isolation", prompts, "depth")


def prompts_project(root: Path, name: str, prompts: dict[str, Any], control: str) -> Project:
    """A project with the experiment NAME: ``prompts``, with ``control`` at weight 0.5."""
    project = make_project(root)
    project.write(f"manifests/prompts/{name}.yaml", yaml.safe_dump(prompts))
    project.write(
        f"manifests/experiment/{name}.yaml",
        f"# @package _global_\ndefaults:\n  - /prompts: {name}\nname: {name}\n"
        f"model:\n  weights:\n    {control}: 0.5\n",
    )
    return project


@pytest.fixture(scope="module")
def order(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The prompt names in job order (runs sorted by id), read from a dry run."""
    project = isolation_project(tmp_path_factory.mktemp("order") / "proj")
    done = project.batch("+experiment=isolation", "dry_run=true")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.strip().startswith("rs_")]
    return [name for _, name in sorted((row[0], row[1]) for row in rows)]


def block_word(order: list[str], positions: tuple[int, ...]) -> str:
    """The word that blocks exactly the runs at ``positions`` of the job."""
    indexes = sorted(NAMES.index(order[p]) for p in positions)
    return f"solo{indexes[0]}" if len(indexes) == 1 else f"pair{indexes[0]}{indexes[1]}"


def invocations(project: Project, order: list[str], skip: int = 0) -> list[tuple[str, ...]]:
    """What each model invocation did, in job positions: ("0", "1 blocked"), sorted."""
    made: dict[int, list[str]] = {}
    for record in project.ledger_lines()[skip:]:
        position = order.index(NAMES[int(record["prompt"].split("boat ")[1][0])])
        made.setdefault(record["pid"], []).append(
            f"{position} blocked" if record.get("blocked") else str(position)
        )
    return sorted(tuple(lines) for lines in made.values())


def runs_by_position(project: Project, order: list[str]) -> list[dict[str, Any]]:
    runs = project.cosmos_json("list", "runs")
    by_name = {}
    for run in runs:
        spec = yaml.safe_load((Path(run["output_dir"]) / "run.yaml").read_text())
        by_name[NAMES[int(spec["prompt"]["text"].split("boat ")[1][0])]] = run
    return [by_name[name] for name in order]


# blocked positions -> the invocations that find them: a run that wrote its
# output is never run again, the others run again in halves.
CASES = {
    "second line": (
        (1,),
        [("0", "1 blocked"), ("1 blocked",), ("1 blocked",), ("2",), ("3",)],
    ),
    "first line": (
        (0,),
        [("0 blocked",), ("0 blocked",), ("0 blocked",), ("1",), ("2", "3")],
    ),
    "last line": ((3,), [("0", "1", "2", "3 blocked")]),
    "two lines": (
        (1, 3),
        [("0", "1 blocked"), ("1 blocked",), ("1 blocked",), ("2",), ("3 blocked",)],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_blocked_line_fails_alone_and_its_batch_mates_succeed(
    tmp_path: Path, order: list[str], case: str
) -> None:
    blocked, expected = CASES[case]
    project = isolation_project(tmp_path / "proj")
    word = block_word(order, blocked)
    done = project.batch("+experiment=isolation", f"simulator.block_prompt={word}")
    assert done.returncode == 1, done.stderr
    assert f"4 executed ({4 - len(blocked)} succeeded, {len(blocked)} failed)" in done.stdout
    assert invocations(project, order) == sorted(expected)
    for position, run in enumerate(runs_by_position(project, order)):
        folder = Path(run["output_dir"])
        if position in blocked:
            assert run["status"] == "failed"
            assert run["error_message"].startswith("blocked by the guardrail"), run
            assert "the prompt" in run["error_message"]
            assert run["exit_code"] == 1
            assert not (folder / "output.mp4").exists()
            log = (folder / "logs" / "run.log").read_text()
            assert BLOCKED_LINE in log and TYPE_ERROR in log
            shown = project.cosmos("show", run["id"])
            assert shown.returncode == 0
            assert "error_message: blocked by the guardrail" in shown.stdout
        else:
            assert run["status"] == "succeeded", run
            assert run["error_message"] is None
            check = subprocess.run(["sha256sum", "-c", "outputs.sha256"], cwd=folder)
            assert check.returncode == 0
            made = yaml.safe_load((folder / "run.yaml").read_text())["prompt"]["text"]
            assert (folder / "output.txt").read_text() == made


def test_retrying_known_content_failures_is_left_out(tmp_path: Path, order: list[str]) -> None:
    """A guardrail block is the prompt's doing: scheduler.retries does not try it again."""
    blocked, expected = CASES["second line"]
    project = isolation_project(tmp_path / "proj")
    done = project.batch(
        "+experiment=isolation",
        f"simulator.block_prompt={block_word(order, blocked)}",
        "scheduler.retries.deterministic=2",
        "scheduler.retries.backoff_s=0",
    )
    assert done.returncode == 1, done.stderr
    assert invocations(project, order) == sorted(expected)


@pytest.mark.parametrize("still_blocked", [False, True])
def test_a_second_command_runs_only_the_failed_run_alone(
    tmp_path: Path, order: list[str], still_blocked: bool
) -> None:
    project = isolation_project(tmp_path / "proj")
    word = block_word(order, (1,))
    assert project.batch("+experiment=isolation", f"simulator.block_prompt={word}").returncode == 1
    before = runs_by_position(project, order)
    made = len(project.ledger_lines())
    again = project.batch(
        "+experiment=isolation", *([f"simulator.block_prompt={word}"] if still_blocked else [])
    )
    assert "1 executed" in again.stdout and "3 cached" in again.stdout, again.stdout
    assert invocations(project, order, skip=made) == [("1 blocked",) if still_blocked else ("1",)]
    after = runs_by_position(project, order)
    assert after[1]["status"] == ("failed" if still_blocked else "succeeded")
    assert after[1]["attempts"] == 4
    for position in (0, 2, 3):
        assert after[position] == before[position]


FAILED_17 = "the model exited with code 17; see the run's logs/run.log"


def loads(done: Any) -> int:
    """How many model invocations a cosmos-batch started (its "job ... started" lines)."""
    return sum(" started on " in line for line in done.stderr.splitlines())


STARTED = re.compile(r" started on .*: (\d+) runs?$")
RUNNING = re.compile(r"\[\d+/\d+\] .* running (\d+),")


def assert_running_fits_the_job(stderr: str) -> None:
    """One slot: when a run is recorded, only the other runs of its job may count as
    running; runs queued again to wait for another try are not running."""
    size = 0
    for line in stderr.splitlines():
        if started := STARTED.search(line):
            size = int(started.group(1))
        elif running := RUNNING.search(line):
            assert int(running.group(1)) <= size - 1, line
            size -= 1


@pytest.mark.parametrize(("retries", "attempts"), [(0, [2, 2, 3, 3]), (1, [3, 3, 4, 4])])
def test_a_failure_the_adapter_cannot_explain_follows_scheduler_retries_first(
    tmp_path: Path, retries: int, attempts: list[int]
) -> None:
    """No output at all and no known reason: maybe a fluke, so the job is tried again
    as configured; then its runs are tried in halves (4 -> 2 + 2). Both halves fail
    without output: a fault of every run, so the halves split no further than the
    first one already was (1 + 1)."""
    project = isolation_project(tmp_path / "proj")
    done = project.batch(
        "+experiment=isolation",
        "simulator.fail_on_seed=1",
        f"scheduler.retries.deterministic={retries}",
        "scheduler.retries.backoff_s=0",
    )
    assert done.returncode == 1, done.stderr
    assert "4 executed (0 succeeded, 4 failed)" in done.stdout
    notes = [line for line in done.stderr.splitlines() if "WARNING" in line]
    # stderr is not a terminal here: each note is one log line, not one per level.
    assert sum("as smaller jobs" in line for line in done.stderr.splitlines()) == 2, done.stderr
    assert sum("trying its 4 run(s) again" in line for line in notes) == retries, notes
    assert sum("as smaller jobs (2 + 2)" in line for line in notes) == 1, notes
    assert sum("as smaller jobs (1 + 1)" in line for line in notes) == 1, notes
    assert sum("a fault common to its runs" in line for line in notes) == 1, notes
    assert loads(done) == 1 + retries + 2 + 2
    assert_running_fits_the_job(done.stderr)
    runs = project.cosmos_json("list", "runs")
    assert {r["status"] for r in runs} == {"failed"}
    assert sorted(r["attempts"] for r in runs) == attempts
    for run in runs:
        assert run["error_message"] == FAILED_17
        assert run["exit_code"] == 17


def many_prompts_project(root: Path, count: int) -> Project:
    video = {"video": "inputs/demo/street/color.mp4"}
    prompts = {f"q{i}": {"text": f"A harbour, boat {i}", "inputs": video} for i in range(count)}
    return prompts_project(root, "many", prompts, "edge")


def test_a_fault_of_every_run_is_not_split_down_to_single_runs(tmp_path: Path) -> None:
    """A batch of 8 that fails without output in every run (a wrong checkpoint, a
    missing input, no memory) would load the model 15 times split down to single
    runs: once both halves fail blank, splitting stops."""
    project = many_prompts_project(tmp_path / "proj", 8)
    done = project.batch("+experiment=many", "simulator.fail_on_seed=1")
    assert done.returncode == 1, done.stderr
    assert "8 executed (0 succeeded, 8 failed)" in done.stdout
    # 8, its halves 4 + 4 (both blank), and the first half's halves 2 + 2 split before.
    assert loads(done) == 5, done.stderr
    notes = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert sum("a fault common to its runs (not split further)" in n for n in notes) == 3, notes
    runs = project.cosmos_json("list", "runs")
    assert sorted(r["attempts"] for r in runs) == [2] * 4 + [3] * 4
    for run in runs:
        assert (run["status"], run["error_message"], run["exit_code"]) == ("failed", FAILED_17, 17)


def test_halves_failing_at_once_on_two_gpus_stop_splitting_too(tmp_path: Path) -> None:
    """Two jobs of 4 (one per GPU); of the two halves of each, which fail side by
    side, the first to end is split once more, the other is not: 2 + 4 + 4 loads
    (split down to single runs: 2 + 4 + 8)."""
    project = many_prompts_project(tmp_path / "proj", 8)
    done = project.batch("+experiment=many", "simulator.fail_on_seed=1", "target.gpus=[0,1]")
    assert done.returncode == 1, done.stderr
    assert "8 executed (0 succeeded, 8 failed)" in done.stdout
    assert sum("4 runs" in line for line in done.stderr.splitlines() if " started on " in line) == 2
    assert loads(done) == 10, done.stderr
    for run in project.cosmos_json("list", "runs"):
        assert (run["status"], run["error_message"]) == ("failed", FAILED_17)


def test_both_halves_failing_blank_is_a_fault_common_to_their_runs() -> None:
    first, second = SplitHalf.halves_of(None)
    left, right = SplitHalf.halves_of(first)
    elsewhere, _ = SplitHalf.halves_of(None)
    assert not first.failed_blank(), "its other half may still make its videos"
    assert not left.failed_blank()
    assert second.failed_blank(), "both halves failed blank"
    assert right.failed_blank(), "split from a batch whose halves both failed blank"
    assert not elsewhere.failed_blank(), "another batch's halves share nothing with these"


def test_a_blank_half_whose_other_half_succeeds_is_still_split(
    tmp_path: Path, order: list[str]
) -> None:
    """Only both halves failing blank stop the splitting: a half whose other half
    made its videos is split down to the run that fails."""
    project = isolation_project(tmp_path / "proj")
    word = block_word(order, (2,))
    done = project.batch("+experiment=isolation", f"simulator.block_prompt={word}")
    assert done.returncode == 1, done.stderr
    assert "4 executed (3 succeeded, 1 failed)" in done.stdout
    assert invocations(project, order) == sorted([("0", "1", "2 blocked"), ("2 blocked",), ("3",)])


@pytest.mark.parametrize("blocked", [True, False])
def test_a_run_made_again_never_takes_the_damaged_output_of_an_earlier_one(
    tmp_path: Path, order: list[str], blocked: bool
) -> None:
    """`cosmos verify --fix` leaves a damaged output in place; the run made again
    succeeds only with a video of its own, and fails (with its reason) without one."""
    project = isolation_project(tmp_path / "proj")
    assert project.batch("+experiment=isolation").returncode == 0
    damaged = runs_by_position(project, order)[1]
    folder = Path(damaged["output_dir"])
    with (folder / "output.mp4").open("ab") as video:
        video.write(b"bytes of a damaged copy")
    assert project.cosmos("verify", "--fix").returncode == 0
    others = {
        run["id"]: (Path(run["output_dir"]) / "output.mp4").read_bytes()
        for position, run in enumerate(runs_by_position(project, order))
        if position != 1
    }
    word = block_word(order, (1,))
    again = project.batch(
        "+experiment=isolation", *([f"simulator.block_prompt={word}"] if blocked else [])
    )
    assert "1 executed" in again.stdout and "3 cached" in again.stdout, again.stdout
    run = runs_by_position(project, order)[1]
    if blocked:
        assert again.returncode == 1, again.stdout + again.stderr
        assert run["status"] == "failed", run
        assert run["error_message"].startswith("blocked by the guardrail"), run
        assert not (folder / "output.mp4").exists() and not (folder / "outputs.sha256").exists()
    else:
        assert again.returncode == 0, again.stdout + again.stderr
        assert run["status"] == "succeeded"
        check = subprocess.run(["sha256sum", "-c", "outputs.sha256"], cwd=folder)
        assert check.returncode == 0
    assert project.cosmos("verify").returncode == 0
    for run_id, video in others.items():
        assert (project.outputs / "runs" / run_id / "output.mp4").read_bytes() == video


# -- through the transfer1 adapter ---------------------------------------------------------
def test_transfer1_batches_with_a_blocked_prompt_keep_their_other_runs(tmp_path: Path) -> None:
    """The demo on the transfer1 adapter, its guardrail blocking every forest prompt."""
    project = make_project(tmp_path / "project")
    workspace = tmp_path / "cosmos-transfer1"
    program = workspace / "cosmos_transfer1" / "diffusion" / "inference" / "transfer.py"
    program.parent.mkdir(parents=True)
    install_simulated_model(program)
    blocklist = workspace / "checkpoints" / BLOCKLIST
    blocklist.mkdir(parents=True)
    (blocklist / "words.txt").write_text("misty pine forest\n")
    log = tmp_path / "torchrun.jsonl"
    env = {"PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}", "FAKE_TORCHRUN_LOG": str(log)}
    done = project.batch(
        "+experiment=demo", "model=transfer1", f"adapters.transfer1.workspace={workspace}", env=env
    )
    assert done.returncode == 1, done.stderr
    assert "12 executed (6 succeeded, 6 failed)" in done.stdout
    runs = project.cosmos_json("list", "runs")
    batches: dict[tuple[Any, ...], dict[str, str]] = {}
    for run in runs:
        spec = yaml.safe_load((Path(run["output_dir"]) / "run.yaml").read_text())
        point = (spec["model"]["seed"], spec["model"]["weights"]["depth"])
        batches.setdefault(point, {})[spec["prompt"]["name"]] = run["id"]
        if spec["prompt"]["name"] == "forest":
            assert run["status"] == "failed"
            assert run["error_message"].startswith("blocked by the guardrail: the prompt")
            shown = project.cosmos_json("show", run["id"])
            assert shown["error_message"] == run["error_message"]
        else:
            assert run["status"] == "succeeded"
            # Kept whole, with the depth control transfer.py computed for it.
            assert (Path(run["output_dir"]) / "control_depth.mp4").is_file()
    # A batch whose forest line came first wrote nothing: its two runs ran again alone.
    # One whose forest line came second kept its street video: nothing ran again.
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    firsts = sum(1 for pair in batches.values() if pair["forest"] < pair["street"])
    assert len(calls) == 6 + 2 * firsts
    alone = [c for c in calls if "--batch_input_path" not in c["argv"]]
    assert len(alone) == 2 * firsts
    assert Counter(c["cwd"] for c in calls) == {str(workspace): len(calls)}


# transfer.py killed while it saves its video (out of memory, a time limit): half a
# video, no prompt file, exit code 1.
DIES_SAVING = """\
import json
import sys
from pathlib import Path

args = sys.argv[1:]
spec = json.loads(Path(args[args.index("--controlnet_specs") + 1]).read_text())
folder = Path(args[args.index("--video_save_folder") + 1])
name = args[args.index("--video_save_name") + 1]
data = Path(spec["input_video_path"]).read_bytes()
folder.mkdir(parents=True, exist_ok=True)
(folder / (name + ".mp4")).write_bytes(data[: len(data) // 2])
sys.exit("Killed")
"""


def test_a_run_whose_program_dies_while_saving_fails_with_nothing_kept(tmp_path: Path) -> None:
    """A single run with no retry left: its cut-short video is not adopted."""
    project = make_project(tmp_path / "project")
    workspace = tmp_path / "cosmos-transfer1"
    program = workspace / "cosmos_transfer1" / "diffusion" / "inference" / "transfer.py"
    program.parent.mkdir(parents=True)
    program.write_text(DIES_SAVING)
    env = {
        "PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}",
        "FAKE_TORCHRUN_LOG": str(tmp_path / "torchrun.jsonl"),
    }
    made = project.cosmos("create", "prompt", "a harbour at dusk", "inputs/demo/street")
    assert made.returncode == 0, made.stderr
    sets = ["--set", "model=transfer1", "--set", f"adapters.transfer1.workspace={workspace}"]
    done = project.cosmos("inference", made.stdout.strip(), "--weight", "depth=0.5", *sets, env=env)
    assert done.returncode != 0, done.stdout
    (run,) = project.cosmos_json("list", "runs")
    assert run["status"] == "failed"
    assert run["error_message"] == "the model exited with code 1; see the run's logs/run.log"
    folder = Path(run["output_dir"])
    assert not (folder / "output.mp4").exists()
    assert "Killed" in (folder / "logs" / "run.log").read_text()


# -- over SSH and Docker ---------------------------------------------------------------
def test_outputs_made_on_a_remote_host_before_a_block_are_adopted(host, tmp_path: Path) -> None:
    """What a failed container wrote comes back with its log and is kept."""
    from test_remote_e2e import THREE_SLOTS, overrides

    project = make_project(tmp_path / "proj")
    work_dir = tmp_path / "gpu-host" / "cosmos"
    project.env["COSMOS_SIMULATOR__LEDGER"] = str(work_dir / "ledger.jsonl")
    done = project.batch(
        "+experiment=demo",
        *overrides(host, work_dir),
        THREE_SLOTS,
        "simulator.block_prompt=misty pine forest",
    )
    assert done.returncode == 1, done.stderr
    assert "12 executed (6 succeeded, 6 failed)" in done.stdout
    made = [json.loads(line) for line in (work_dir / "ledger.jsonl").read_text().splitlines()]
    videos = [r for r in made if not r.get("blocked")]
    assert len(videos) == 6, "a street video was made twice (or not at all)"
    assert all("rain-soaked" in r["prompt"] for r in videos)
    for run in project.cosmos_json("list", "runs"):
        if run["status"] == "failed":
            assert run["error_message"].startswith("blocked by the guardrail")
            assert run["target"] == "test-host"
        else:
            check = subprocess.run(["sha256sum", "-c", "outputs.sha256"], cwd=run["output_dir"])
            assert check.returncode == 0
