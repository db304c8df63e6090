"""Contracts that a mutation audit found unguarded.

Each test names the wrong implementation it catches. They run the real CLIs
(in-process) on throwaway project copies (real Hydra, SQLite, simulated
model processes), except for the few unit-level checks of batching and the
output store, which use the real classes on real files.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project, make_project
from test_demo_sweep import plan_ids
from test_identity_and_expansion import MODEL

import cosmos_workflow
from cosmos_workflow.config.settings import SimulatorSettings
from cosmos_workflow.database.engine import create_db_engine, head_revision
from cosmos_workflow.engine.scheduler import form_jobs
from cosmos_workflow.errors import StateError
from cosmos_workflow.execution.adapters.base import Invocation, RunOutputs
from cosmos_workflow.execution.adapters.simulated import SimulatedAdapter
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, ResolvedPrompt, RunSpec
from cosmos_workflow.outputs.store import OutputStore, RunRecord

SWEEP_ID = re.compile(r"\bsw_[0-9a-f]{16}\b")


# -- helpers ---------------------------------------------------------------------
def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def run_dirs(project: Project) -> list[Path]:
    runs = project.outputs / "runs"
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []


def sweep_dirs(project: Project) -> list[Path]:
    sweeps = project.outputs / "sweeps"
    return sorted(p for p in sweeps.iterdir() if p.is_dir()) if sweeps.is_dir() else []


def run_yaml(folder: Path) -> dict[str, Any]:
    return yaml.safe_load((folder / "run.yaml").read_text(encoding="utf-8"))


def sums(path: Path) -> dict[str, str]:
    """name -> digest of a sha256sum(1) file."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        found[name] = digest
    return found


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flag_value(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


def byte_snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` with its bytes and mtime."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def batch_ok(project: Project, *args: str, env: dict | None = None) -> str:
    done = project.batch(*args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.email=tests@example.com",
            "-c",
            "user.name=tests",
            "-c",
            "commit.gpgsign=false",
            "-C",
            str(root),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- 1. database.url is honoured -----------------------------------------------------
def test_database_url_setting_chooses_the_database(project: Project, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "other.db"
    env = {"COSMOS_DATABASE__URL": f"sqlite:///{other}"}
    batch_ok(project, "+experiment=demo", env=env)

    assert other.is_file()
    assert not (project.outputs / "cosmos.db").exists()
    listed = project.cosmos("list", "runs", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert len(runs) == 12 and {r["status"] for r in runs} == {"succeeded"}
    # Without the setting the default database (never created) holds nothing.
    assert project.cosmos_json("list", "runs") == []


# -- 2. the schema comes from the migrations -------------------------------------------
def test_database_is_stamped_with_the_head_migration(demo_done: Project) -> None:
    database = demo_done.outputs / "cosmos.db"
    engine = create_db_engine(f"sqlite:///{database}")
    try:
        head = head_revision(engine)
    finally:
        engine.dispose()
    assert isinstance(head, str) and head
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        connection.close()
    assert rows == [(head,)]


# -- 3. a verified run folder is never overwritten --------------------------------------
@pytest.mark.parametrize("method", ["record_success", "record_failure"])
def test_recording_over_verified_outputs_is_refused_and_changes_nothing(
    demo_done: Project, tmp_path: Path, method: str
) -> None:
    source = run_dirs(demo_done)[0]
    run_id = source.name
    store = OutputStore(tmp_path / "outputs")
    shutil.copytree(source, store.run_dir(run_id))
    assert store.verify_outputs(run_id), "precondition: the copied run folder verifies"

    spec = RunSpec.from_dict(run_yaml(store.run_dir(run_id)))
    assert spec.id == run_id
    staging = tmp_path / "staging"
    (staging / "out").mkdir(parents=True)
    (staging / "out" / "output.mp4").write_bytes(b"a different video")
    (staging / "out" / "output.txt").write_text("a different prompt")
    log_path = staging / "logs" / "job.log"
    log_path.parent.mkdir()
    log_path.write_text("a different log\n")
    invocation = Invocation(
        job_id="jb_contract",
        argv=["simulated", "--seed", "99"],
        files={},
        inputs={},
        outputs={run_id: RunOutputs("out/output.mp4", {"prompt": "out/output.txt"})},
        run_specs={run_id: {}},
    )
    record = RunRecord(
        status="succeeded" if method == "record_success" else "failed",
        target="elsewhere",
        gpus=[7],
        job_id="jb_contract",
        batch_size=1,
        started_at="2000-01-01T00:00:00+00:00",
        finished_at="2000-01-01T00:00:01+00:00",
        exit_code=0 if method == "record_success" else 1,
        attempts=5,
    )
    before = byte_snapshot(store.root)

    with pytest.raises(StateError):
        if method == "record_success":
            store.record_success(spec, invocation, staging, log_path, record, 1.0)
        else:
            store.record_failure(spec, invocation, log_path, record, 1.0)

    assert byte_snapshot(store.root) == before
    assert (staging / "out" / "output.mp4").read_bytes() == b"a different video"


# -- 4. the sweep id is stable ----------------------------------------------------------
def test_running_a_sweep_twice_keeps_one_sweep_with_the_planned_id(
    demo_project: Project,
) -> None:
    # The demo ran once (demo_project); the plan and a second run of it:
    project = demo_project
    dry = batch_ok(project, "+experiment=demo", "dry_run=true")
    planned = SWEEP_ID.findall(dry.splitlines()[0])
    assert len(planned) == 1, dry

    second = batch_ok(project, "+experiment=demo")
    assert "12 cached" in second

    sweeps = project.cosmos_json("list", "sweeps")
    assert [s["id"] for s in sweeps] == planned
    assert [p.name for p in sweep_dirs(project)] == planned


# -- 5. record files of a run are complete ----------------------------------------------
def test_run_checksums_and_command_are_complete(demo_done: Project) -> None:
    folders = run_dirs(demo_done)
    assert len(folders) == 12
    batched = 0
    for folder in folders:
        scene = run_yaml(folder)["prompt"]["name"]
        inputs = demo_done.root / "inputs" / "demo" / scene
        expected = {sha256_of(inputs / "color.mp4")}
        assert set(sums(folder / "inputs.sha256").values()) == expected, folder.name

        outputs = sums(folder / "outputs.sha256")
        # The depth the model computed (the demo brings no depth video) is an output too.
        assert set(outputs) == {"output.mp4", "output.txt", "control_depth.mp4"}, folder.name
        for name, digest in outputs.items():
            assert sha256_of(folder / name) == digest

        result = read_json(folder / "result.json")
        argv = shlex.split((folder / "command.txt").read_text(encoding="utf-8"))
        assert "--num_gpus" in argv
        if result["batch_size"] > 1:
            batched += 1
            assert "--batch_input_path" in argv
            # One model load for the batch, one video generated at a time.
            assert "--batch_size" not in argv
    assert batched == 12, "the demo's runs are expected to run in batches"


# -- 6. provenance ------------------------------------------------------------------------
def test_provenance_records_git_state_and_environment(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    assert git(project.root, "init", "-q").returncode == 0
    assert git(project.root, "add", "-A").returncode == 0
    committed = git(project.root, "commit", "-q", "-m", "manifests")
    assert committed.returncode == 0, committed.stderr
    head = git(project.root, "rev-parse", "HEAD").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", head)

    batch_ok(project, "+experiment=demo")
    (first,) = sweep_dirs(project)
    provenance = read_json(first / "provenance.json")
    assert provenance["git"]["commit"] == head
    assert provenance["git"]["dirty"] is False
    assert provenance["python"] == platform.python_version()
    assert provenance["hostname"] == socket.gethostname()
    assert provenance["package"]["version"] == cosmos_workflow.__version__

    manifest = project.root / "manifests" / "experiment" / "demo.yaml"
    manifest.write_text(manifest.read_text() + "# an uncommitted edit\n")
    batch_ok(project, "+experiment=demo", "model.num_steps=10")
    (second,) = [p for p in sweep_dirs(project) if p != first]
    changed = read_json(second / "provenance.json")
    assert changed["git"]["commit"] == head
    assert changed["git"]["dirty"] is True
    assert read_json(first / "provenance.json") == provenance


def test_provenance_outside_a_git_repository_has_no_commit(demo_done: Project) -> None:
    outside = git(demo_done.root, "rev-parse", "HEAD")
    assert outside.returncode != 0, "precondition: the temp project is not in a git repository"
    (sweep,) = sweep_dirs(demo_done)
    assert read_json(sweep / "provenance.json")["git"]["commit"] is None


# -- 7, 8. batching ------------------------------------------------------------------------
INPUTS = PromptInputSet(
    video=InputFile(Path("/data/color.mp4"), "a" * 64),
    controls={"depth": InputFile(Path("/data/depth.mp4"), "b" * 64)},
)


def make_run(text: str, **model_changes: Any) -> RunSpec:
    model = copy.deepcopy(MODEL)
    model.update(model_changes)
    return RunSpec(prompt=ResolvedPrompt("p", text, None, INPUTS), model=model)


def batch_sizes(runs: list[RunSpec], max_batch_size: int = 8) -> list[int]:
    adapter = SimulatedAdapter(SimulatorSettings(), max_batch_size=max_batch_size)
    return [len(batch) for batch in [job.runs for job in form_jobs(runs, {"simulated": adapter})]]


def test_batches_respect_the_adapters_max_batch_size() -> None:
    runs = [make_run(f"prompt {i}") for i in range(10)]
    assert len({r.id for r in runs}) == 10
    adapter = SimulatedAdapter(SimulatorSettings(), max_batch_size=4)
    batches = [job.runs for job in form_jobs(runs, {"simulated": adapter})]
    # As few model loads as the limit allows, the runs spread evenly over them.
    assert sorted(len(b) for b in batches) == [3, 3, 4]
    assert sorted(r.id for b in batches for r in b) == sorted(r.id for r in runs)


@pytest.mark.parametrize(
    ("field", "other"), [("version", "2"), ("image", "nvcr.io/nvidia/cosmos:2")]
)
def test_runs_of_other_model_versions_or_images_never_share_a_batch(field: str, other: str) -> None:
    assert batch_sizes([make_run("one"), make_run("two")]) == [2], "precondition: they batch"
    assert batch_sizes([make_run("one"), make_run("two", **{field: other})]) == [1, 1]


# -- 9. status shows what is running -------------------------------------------------------
def test_status_shows_running_runs_while_a_sweep_executes(project: Project, tmp_path: Path) -> None:
    log = tmp_path / "batch.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "cosmos_workflow.cli.batch", "+experiment=demo"],
            cwd=project.root,
            env={**project.env, "COSMOS_SIMULATOR__PER_VIDEO_S": "0.25"},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        try:
            seen = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                status = project.cosmos_json("status")
                if status["running"]:
                    seen = status
                    break
                time.sleep(0.05)
            code = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert code == 0, log.read_text()
    assert seen is not None, "cosmos status never showed a running run"
    assert seen["counts"]["running"] >= 1
    for entry in seen["running"]:
        assert entry["id"].startswith("rs_")
        assert entry["target"] == "local"
        assert entry["gpus"] == "0"
        assert entry["started_at"]
    after = project.cosmos_json("status")
    assert after["running"] == [] and after["counts"]["succeeded"] == 12


# -- 10. cosmos inference options reach the model -------------------------------------------
INFERENCE_OPTIONS = {
    "--guidance": "7.5",
    "--num-steps": "10",
    "--sigma-max": "50",
    "--fps": "12",
    "--seed": "4",
}


def inference(project: Project, prompt_id: str, **changed: str) -> dict[str, Any]:
    options = {**INFERENCE_OPTIONS, **changed}
    args = [item for pair in options.items() for item in pair]
    done = project.cosmos("inference", prompt_id, "--weight", "depth=0.6", *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_inference_options_reach_the_spec_and_the_run_id(project: Project) -> None:
    prompt_id = project.cosmos_json("create", "prompt", "x", "inputs/demo/street")["id"]
    first = inference(project, prompt_id)
    assert first["status"] == "succeeded" and first["cached"] is False

    spec = read_json(Path(first["output_dir"]) / "spec.json")
    assert spec["guidance"] == 7.5
    assert spec["num_steps"] == 10
    assert spec["sigma_max"] == 50
    assert spec["fps"] == 12
    assert spec["seed"] == 4
    assert spec["depth"]["control_weight"] == 0.6

    model = project.cosmos_json("show", first["id"])["spec"]["model"]
    assert model["guidance"] == 7.5
    assert model["num_steps"] == 10
    assert model["sigma_max"] == 50
    assert model["fps"] == 12
    assert model["seed"] == 4
    assert model["weights"]["depth"] == 0.6

    again = inference(project, prompt_id)
    assert again["id"] == first["id"] and again["cached"] is True
    other_guidance = inference(project, prompt_id, **{"--guidance": "7.0"})
    other_steps = inference(project, prompt_id, **{"--num-steps": "11"})
    assert len({first["id"], other_guidance["id"], other_steps["id"]}) == 3


# -- 11. int and float spellings in the model block -----------------------------------------
EXPERIMENT = """\
# @package _global_
defaults:
  - /prompts: demo

name: {name}
vars:
  style: x
model:
  sigma_max: {sigma_max}
  weights:
    depth: {depth}
"""


def test_int_and_float_spellings_in_the_model_block_give_the_same_ids(project: Project) -> None:
    project.write(
        "manifests/experiment/as_int.yaml",
        EXPERIMENT.format(name="as_int", sigma_max="70", depth="1"),
    )
    project.write(
        "manifests/experiment/as_float.yaml",
        EXPERIMENT.format(name="as_float", sigma_max="70.0", depth="1.0"),
    )
    as_int = plan_ids(batch_ok(project, "+experiment=as_int", "dry_run=true"))
    as_float = plan_ids(batch_ok(project, "+experiment=as_float", "dry_run=true"))
    assert len(as_int) == 2
    assert as_int == as_float


# -- 12, 14. simulator settings and GPU selection reach the program ---------------------------
@pytest.fixture(scope="module")
def slow_demo_on_gpu3(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The demo with per_video_s=0.3 on a target whose only GPU is index 3."""
    project = make_project(tmp_path_factory.mktemp("gpu3") / "proj")
    env = {"COSMOS_SIMULATOR__PER_VIDEO_S": "0.3"}
    batch_ok(project, "+experiment=demo", "target.gpus=[3]", env=env)
    return project


def test_simulator_settings_reach_the_model_program(slow_demo_on_gpu3: Project) -> None:
    folders = run_dirs(slow_demo_on_gpu3)
    assert len(folders) == 12
    for folder in folders:
        argv = shlex.split((folder / "command.txt").read_text(encoding="utf-8"))
        assert flag_value(argv, "--per_video_s") == "0.3"
        assert read_json(folder / "result.json")["durations"]["execution_s"] >= 0.3


def test_target_gpus_reach_the_model_process(slow_demo_on_gpu3: Project) -> None:
    lines = slow_demo_on_gpu3.ledger_lines()
    assert len(lines) == 12
    assert {line["cuda_visible_devices"] for line in lines} == {"3"}
    folders = run_dirs(slow_demo_on_gpu3)
    assert len(folders) == 12
    for folder in folders:
        assert read_json(folder / "result.json")["gpus"] == [3]


# -- 13. deleting a prompt with its outputs --------------------------------------------------
def test_delete_prompt_with_outputs_removes_all_its_run_folders(demo_project: Project) -> None:
    project = demo_project
    by_prompt: dict[str, set[str]] = {}
    for folder in run_dirs(project):
        by_prompt.setdefault(run_yaml(folder)["prompt"]["id"], set()).add(folder.name)
    assert sorted(len(ids) for ids in by_prompt.values()) == [6, 6]
    prompt_id, doomed = sorted(by_prompt.items())[0]
    kept = set().union(*by_prompt.values()) - doomed

    done = project.cosmos("delete", "prompt", prompt_id, "--yes", "--delete-outputs", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result["removed_outputs"]) == doomed
    assert set(result["deleted_runs"]) == doomed
    assert {p.name for p in run_dirs(project)} == kept


# -- 15. the negative prompt is part of a prompt ----------------------------------------------
def test_negative_prompt_changes_the_prompt_id_and_is_shown(project: Project) -> None:
    plain = project.cosmos_json("create", "prompt", "x", "inputs/demo/street")["id"]
    negative = project.cosmos_json(
        "create", "prompt", "x", "inputs/demo/street", "--negative", "blurry, dark"
    )["id"]
    assert negative.startswith("ps_") and negative != plain
    assert project.cosmos_json("show", negative)["negative_prompt"] == "blurry, dark"
    assert project.cosmos_json("show", plain)["negative_prompt"] is None
