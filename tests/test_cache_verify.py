"""Honest cache checks: cache.verify (size | sha256), and damaged runs shown as such."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Project

SHA256 = {"COSMOS_CACHE__VERIFY": "sha256"}


def flip_a_byte(path: Path) -> None:
    """Change one byte in the middle of ``path`` (its size stays)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def succeeded_runs(project: Project) -> list[dict]:
    runs = project.cosmos_json("list", "runs", "--status", "succeeded")
    assert len(runs) == 12
    return runs


def test_with_sha256_a_same_size_corruption_runs_again_and_with_size_it_stays_cached(
    demo_project: Project,
) -> None:
    project = demo_project
    run = succeeded_runs(project)[0]
    video = Path(run["output_dir"]) / "output.mp4"
    flip_a_byte(video)

    by_size = project.batch("+experiment=demo")
    assert by_size.returncode == 0, by_size.stderr
    assert "0 executed" in by_size.stdout and "12 cached" in by_size.stdout
    before = len(project.ledger_lines())

    hashed = project.batch("+experiment=demo", "cache.verify=sha256")
    assert hashed.returncode == 0, hashed.stderr
    assert "1 executed (1 succeeded, 0 failed), 11 cached" in hashed.stdout
    assert len(project.ledger_lines()) == before + 1
    assert project.cosmos("verify").returncode == 0
    again = project.batch("+experiment=demo", "cache.verify=sha256")
    assert "0 executed" in again.stdout and "12 cached" in again.stdout


def test_cache_verify_takes_only_size_or_sha256(project: Project) -> None:
    done = project.batch("+experiment=demo", "cache.verify=md5", "dry_run=true")
    assert done.returncode == 2
    assert "cache.verify" in done.stderr and "'size' or 'sha256'" in done.stderr


def test_list_and_show_report_a_run_whose_result_json_is_gone(demo_project: Project) -> None:
    project = demo_project
    damaged, healthy = succeeded_runs(project)[:2]
    (Path(damaged["output_dir"]) / "result.json").unlink()

    rows = {row["id"]: row for row in project.cosmos_json("list", "runs")}
    assert rows[damaged["id"]]["damaged"] == ["result.json is missing"]
    assert rows[healthy["id"]]["damaged"] == []
    listed = project.cosmos("list", "runs")
    line = next(line for line in listed.stdout.splitlines() if damaged["id"] in line)
    assert "damaged" in line and "result.json is missing" in line
    assert "succeeded" not in line.split(damaged["id"], 1)[1].split()[0]

    shown = project.cosmos("show", damaged["id"])
    assert "status: succeeded (damaged: result.json is missing)" in shown.stdout
    data = project.cosmos_json("show", damaged["id"])
    assert data["status"] == "succeeded" and data["damaged"] == ["result.json is missing"]
    assert "damaged" not in project.cosmos("show", healthy["id"]).stdout


def test_a_missing_output_is_damaged_in_list_and_show(demo_project: Project) -> None:
    project = demo_project
    run = succeeded_runs(project)[0]
    (Path(run["output_dir"]) / "output.mp4").unlink()
    [row] = [r for r in project.cosmos_json("list", "runs") if r["id"] == run["id"]]
    assert row["damaged"] == ["output.mp4 is missing"]
    assert project.cosmos_json("show", run["id"])["damaged"] == ["output.mp4 is missing"]


def test_a_flipped_byte_is_found_by_show_and_by_list_with_sha256(demo_project: Project) -> None:
    project = demo_project
    run = succeeded_runs(project)[0]
    flip_a_byte(Path(run["output_dir"]) / "output.mp4")
    problem = "output.mp4: its sha256 differs from outputs.sha256"

    assert project.cosmos_json("show", run["id"])["damaged"] == [problem]
    # A list checks sizes only (cheap), unless cache.verify hashes.
    [row] = [r for r in project.cosmos_json("list", "runs") if r["id"] == run["id"]]
    assert row["damaged"] == []
    hashed = project.cosmos("list", "runs", "--json", env=SHA256)
    [row] = [r for r in json.loads(hashed.stdout) if r["id"] == run["id"]]
    assert row["damaged"] == [problem]


def test_runs_not_succeeded_are_not_checked(project: Project) -> None:
    done = project.batch("+experiment=demo", "simulator.fail_on_seed=2")
    rows = project.cosmos_json("list", "runs")
    failed = [row for row in rows if row["status"] == "failed"]
    assert len(failed) == 6, done.stdout + done.stderr
    assert all(row["damaged"] is None for row in failed)
    assert all(row["damaged"] == [] for row in rows if row["status"] == "succeeded")
