"""The slurm target against a real one-node Slurm cluster (tests/slurm.py, 4 fake GPUs).

The test host's sshd is the login node; jobs run as the login user on this
machine's file system, so the cluster's work_dir (and the simulated model's
ledger in it) is visible to the test as it is to the jobs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, make_project
from test_demo_sweep import RUN_FILES


def slurm_overrides(host: Any, cluster: Any, **changes: str) -> list[str]:
    import slurm

    values = dict(o.split("=", 1) for o in cluster.overrides(slurm.login(host)))
    values["target.poll_s"] = "0.2"
    values.update(changes)
    return [f"{key}={value}" for key, value in values.items()]


def ledger(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def our_jobs(cluster: Any) -> list[str]:
    """Slurm jobs of ours still queued or running."""
    return cluster.client("squeue", "-h", "-o", "%j %T").split("\n")[:-1]


@pytest.fixture
def slurm_project(tmp_path: Path, slurm_host: Any) -> Iterator[tuple[Project, Path]]:
    """A project whose simulated model writes its ledger where jobs can write (work_dir)."""
    project = make_project(tmp_path / "proj")
    work = slurm_host.work_dir / tmp_path.name
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o777)
    project.env["COSMOS_SIMULATOR__LEDGER"] = str(work / "ledger.jsonl")
    yield project, work
    slurm_host.client("scancel", "--name=", check=False)


def test_the_demo_via_slurm_gives_the_local_layout_and_uploads_each_input_once(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    done = project.batch(
        "+experiment=demo", *slurm_overrides(host, slurm_host, **{"target.work_dir": str(work)})
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 executed (12 succeeded, 0 failed), 0 cached" in done.stdout
    assert len(ledger(work / "ledger.jsonl")) == 12
    runs = project.cosmos_json("list", "runs")
    assert {r["status"] for r in runs} == {"succeeded"} and len(runs) == 12
    for run in runs:
        folder = Path(run["output_dir"])
        present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        assert RUN_FILES <= present
        result = json.loads((folder / "result.json").read_text())
        assert result["target"] == "test-slurm" and result["exit_code"] == 0
    assert len(list((work / "cache").iterdir())) == 2
    assert list((work / "jobs").iterdir()) == []
