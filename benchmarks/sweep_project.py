"""A throwaway project for the benchmarks: its prompts, an experiment, and sweeps run in it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO / "inputs" / "demo" / "street" / "color.mp4"


def make_project(root: Path, scenes: int, experiment: dict) -> None:
    """conf/ and manifests/ of the repository, ``scenes`` prompts on one video, ``experiment``.

    The experiment is written as manifests/experiment/bench.yaml, its prompts
    as manifests/prompts/bench.yaml.
    """
    for folder in ("conf", "manifests"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "inputs").mkdir()
    shutil.copy(VIDEO, root / "inputs" / "color.mp4")
    prompts = {
        f"scene{i}": {
            "text": f"Scene number {i}, {{{{ style }}}} light.",
            "inputs": {"video": "inputs/color.mp4"},
        }
        for i in range(scenes)
    }
    _write_yaml(root / "manifests" / "prompts" / "bench.yaml", prompts)
    _write_yaml(root / "manifests" / "experiment" / "bench.yaml", experiment, package=True)


def _write_yaml(path: Path, data: object, package: bool = False) -> None:
    header = "# @package _global_\n" if package else ""
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))


def run_sweep(root: Path, *overrides: str) -> tuple[list[dict], float]:
    """Run ``cosmos-batch +experiment=bench`` in a fresh output tree.

    Returns:
        The runs' result.json records, and the command's wall time in seconds.
    """
    shutil.rmtree(root / "outputs", ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSMOS_")}
    env["XDG_CONFIG_HOME"] = str(root / ".config")
    command = [sys.executable, "-m", "cosmos_workflow.cli.batch", "+experiment=bench", *overrides]
    started = datetime.now()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    wall = (datetime.now() - started).total_seconds()
    if done.returncode != 0:
        sys.exit(f"the sweep failed ({done.returncode}):\n{done.stderr[-3000:]}")
    records = [json.loads(p.read_text()) for p in (root / "outputs" / "runs").glob("*/result.json")]
    return records, wall


def makespan(records: list[dict]) -> float:
    """First job start to last job end, in seconds."""
    starts = [datetime.fromisoformat(r["started_at"]) for r in records]
    ends = [datetime.fromisoformat(r["finished_at"]) for r in records]
    return (max(ends) - min(starts)).total_seconds()
