"""The spine, end to end: `cosmos-batch +experiment=demo` on the local target."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
from pathlib import Path

import yaml
from conftest import Project, make_project

RUN_FILES = {
    "run.yaml",
    "spec.json",
    "command.txt",
    "inputs.sha256",
    "logs/run.log",
    "output.mp4",
    # The demo's prompts bring no depth video: the model computes it (Transfer1's preprocessor).
    "control_depth.mp4",
    "outputs.sha256",
    "result.json",
}
SWEEP_FILES = {"manifest.yaml", "overrides.yaml", "provenance.json", "runs.jsonl"}
RUN_ID = re.compile(r"\brs_[0-9a-f]{16}\b")


def plan_ids(stdout: str) -> list[str]:
    return RUN_ID.findall(stdout)


def plan_states(stdout: str) -> dict[str, str]:
    """run id -> 'cached' or 'to run', from the dry-run listing."""
    states = {}
    for line in stdout.splitlines():
        found = RUN_ID.search(line)
        if found:
            states[found.group()] = "cached" if line.endswith("cached") else "to run"
    return states


def free_box_metadata(video: Path) -> dict:
    """The JSON of the last top-level 'free' box of an MP4 file."""
    data = video.read_bytes()
    offset, found = 0, None
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        payload = data[offset + 8 : offset + size]
        if kind == b"free" and payload.startswith(b"{"):
            found = json.loads(payload)
        offset += size
    assert found is not None, "no metadata box"
    return found


def test_dry_run_plans_twelve_runs_and_writes_nothing(project: Project) -> None:
    done = project.batch("+experiment=demo", "dry_run=true")
    assert done.returncode == 0, done.stderr
    ids = plan_ids(done.stdout)
    assert len(ids) == 12 and len(set(ids)) == 12
    assert set(plan_states(done.stdout).values()) == {"to run"}
    assert "model.weights.depth=0.8" in done.stdout and "model.seed=2" in done.stdout
    assert not project.outputs.exists()
    assert project.ledger_lines() == []


def test_demo_executes_twelve_then_caches_all(project: Project) -> None:
    planned = plan_ids(project.batch("+experiment=demo", "dry_run=true").stdout)

    first = project.batch("+experiment=demo")
    assert first.returncode == 0, first.stderr
    assert "12 executed (12 succeeded, 0 failed), 0 cached" in first.stdout
    assert str(project.outputs / "sweeps") in first.stdout
    assert len(project.ledger_lines()) == 12

    runs = project.cosmos_json("list", "runs")
    assert sorted(r["id"] for r in runs) == sorted(planned)
    assert {r["status"] for r in runs} == {"succeeded"}
    assert all(Path(r["output_path"]).is_file() for r in runs)

    second = project.batch("+experiment=demo")
    assert second.returncode == 0, second.stderr
    assert "0 executed (0 succeeded, 0 failed), 12 cached" in second.stdout
    assert len(project.ledger_lines()) == 12, "a cached run was executed again"

    replanned = plan_states(project.batch("+experiment=demo", "dry_run=true").stdout)
    assert replanned == dict.fromkeys(planned, "cached")


def test_run_folders_hold_every_record_and_checksums_verify(demo_done: Project) -> None:
    runs = demo_done.cosmos_json("list", "runs")
    assert len(runs) == 12
    outputs = set()
    for run in runs:
        folder = Path(run["output_dir"])
        present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        assert RUN_FILES <= present, RUN_FILES - present
        check = subprocess.run(
            ["sha256sum", "-c", "inputs.sha256", "outputs.sha256"],
            cwd=folder,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        result = json.loads((folder / "result.json").read_text())
        assert result["status"] == "succeeded" and result["exit_code"] == 0
        assert result["target"] == "local" and result["gpus"] == [0]
        assert result["attempts"] == 1 and result["run_id"] == run["id"]
        assert result["started_at"] <= result["finished_at"]
        assert "execution_s" in result["durations"]
        outputs.add((folder / "output.mp4").read_bytes())
    assert len(outputs) == 12, "two runs produced identical outputs"


def test_each_run_got_exactly_its_own_parameters(demo_done: Project) -> None:
    """Batched runs share an invocation: each must still see its own values."""
    for run in demo_done.cosmos_json("list", "runs"):
        folder = Path(run["output_dir"])
        spec = yaml.safe_load((folder / "run.yaml").read_text())
        effective = json.loads((folder / "spec.json").read_text())
        varying = spec["varying"]
        assert effective["seed"] == varying["model.seed"] == spec["model"]["seed"]
        assert effective["depth"]["control_weight"] == varying["model.weights.depth"]
        assert effective["prompt"] == spec["prompt"]["text"]
        assert "golden-hour" in effective["prompt"], "template variable not rendered"
        produced = free_box_metadata(folder / "output.mp4")
        assert produced["simulated"] is True
        assert produced["seed"] == varying["model.seed"]
        assert produced["prompt"] == spec["prompt"]["text"]
        command = (folder / "command.txt").read_text()
        assert "simulated_model.py" in command and "--controlnet_specs" in command


def test_sweep_folder_records_manifest_overrides_provenance_and_runs(demo_done: Project) -> None:
    sweeps = demo_done.cosmos_json("list", "sweeps")
    assert len(sweeps) == 1 and sweeps[0]["runs"] == 12
    folder = Path(sweeps[0]["output_dir"])
    assert SWEEP_FILES <= {p.name for p in folder.iterdir()}
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    assert manifest["name"] == "demo" and set(manifest["prompts"]) == {"street", "forest"}
    assert yaml.safe_load((folder / "overrides.yaml").read_text()) == ["+experiment=demo"]
    provenance = json.loads((folder / "provenance.json").read_text())
    assert {"git", "package", "python", "hostname", "model"} <= set(provenance)
    assert provenance["model"]["adapter"] == "simulated"
    rows = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    for row in rows:
        assert row["status"] == "succeeded" and Path(row["dir"]).is_dir()
        assert set(row["params"]) == {"prompt", "model.weights.depth", "model.seed"}


def test_changing_one_seed_executes_only_the_affected_runs(demo_project: Project) -> None:
    project = demo_project
    before = {r["id"] for r in project.cosmos_json("list", "runs")}
    manifest = project.root / "manifests" / "experiment" / "demo.yaml"
    text = manifest.read_text()
    assert "model.seed: [1, 2]" in text
    manifest.write_text(text.replace("model.seed: [1, 2]", "model.seed: [1, 7]"))

    done = project.batch("+experiment=demo")
    assert done.returncode == 0, done.stderr
    assert "6 executed (6 succeeded, 0 failed), 6 cached" in done.stdout
    ledger = project.ledger_lines()
    assert len(ledger) == 18
    assert {line["seed"] for line in ledger[12:]} == {7}
    after = {r["id"] for r in project.cosmos_json("list", "runs")}
    assert before < after and len(after - before) == 6
    assert len(project.cosmos_json("list", "sweeps")) == 2


def test_a_run_shared_by_two_sweeps_executes_once(demo_project: Project) -> None:
    project = demo_project
    project.write(
        "manifests/experiment/subset.yaml",
        "# @package _global_\n"
        "defaults:\n  - /prompts: demo\n"
        "name: subset\nvars: {style: golden-hour}\n"
        "model: {weights: {depth: 0.5}}\n"
        "sweep: {grid: {model.seed: [1, 2]}}\n",
    )
    done = project.batch("+experiment=subset")
    assert done.returncode == 0, done.stderr
    assert "0 executed (0 succeeded, 0 failed), 4 cached" in done.stdout
    assert len(project.ledger_lines()) == 12


def test_ids_do_not_depend_on_the_machine_or_hash_seed(tmp_path: Path) -> None:
    """Two copies of the project in other folders, other hash seeds: same ids.

    One plan in this process, one in a process of its own with another hash
    seed (the hash seed is fixed when a process starts).
    """
    assert os.environ.get("PYTHONHASHSEED") != "987", "precondition: another hash seed"
    first = make_project(tmp_path / "a")
    second = make_project(tmp_path / "elsewhere" / "b")
    ids_a = plan_ids(first.batch("+experiment=demo", "dry_run=true").stdout)
    ids_b = plan_ids(
        second.batch_process(
            "+experiment=demo", "dry_run=true", env={"PYTHONHASHSEED": "987"}
        ).stdout
    )
    assert len(ids_a) == 12 and ids_a == ids_b


def test_hydra_flags_keep_working(project: Project) -> None:
    cfg = project.batch("+experiment=demo", "--cfg", "job")
    assert cfg.returncode == 0, cfg.stderr
    composed = yaml.safe_load(cfg.stdout)
    assert composed["name"] == "demo" and composed["model"]["adapter"] == "simulated"
    info = project.batch("+experiment=demo", "--info", "searchpath")
    assert info.returncode == 0 and "manifests" in info.stdout
    helped = project.batch("--help")
    assert helped.returncode == 0 and "experiment" in helped.stdout
    assert not project.outputs.exists()
