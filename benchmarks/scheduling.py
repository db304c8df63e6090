"""Scheduling: the makespan of a mixed sweep on 4 simulated GPUs over 2 targets.

A sweep of 64 runs (8 scenes x 4 control sets x 1 or 2 GPUs per run) runs
through cosmos-batch on a pool of two local targets with two GPUs each. The
simulated model loads in 3 x per_video_s seconds and then spends per_video_s
per video (times scaled down so the whole benchmark takes about two minutes).

It prints, each measured in this one run:

- the makespan (first job start to last job end, from the runs' result.json)
  with batching, the lower bound no schedule can beat, and their ratio
  (target <= 1.15);
- the same sweep with batching off (one model invocation per run, as a
  naive runner does) and the speedup of batching (target >= 2.5);
- the same batched sweep with one target at half speed, its speed given in
  its configuration, then left for the scheduler to learn, against that
  pool's lower bound.

The lower bound: all the model's work at its least (each compatible group
loads the model as few times as the batch size of 8 allows), spread evenly
over the GPUs at their speeds; and at least one model load plus one video.

    .venv/bin/python benchmarks/scheduling.py [--per-video-s 0.5]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml
from sweep_project import REPO, make_project, makespan, run_sweep

SCENES = 8
CONTROL_SETS = [
    {"depth": 0.5},
    {"edge": 0.5},
    {"depth": 0.4, "edge": 0.6},
    {"seg": 0.5},
]
BATCH = 8
TWO_HOSTS = "targets=[{name:a,gpus:[0,1]},{name:b,gpus:[2,3]}]"
SLOW_B = "{name:b,gpus:[2,3],env:{COSMOS_SIMULATOR_SPEED:'0.5'}"
# The slow target's speed configured (a hint) or left to be learnt from its first jobs.
UNEVEN = f"targets=[{{name:a,gpus:[0,1]}},{SLOW_B},speed:0.5}}]"
UNEVEN_LEARNT = f"targets=[{{name:a,gpus:[0,1]}},{SLOW_B}}}]"


def experiment() -> dict:
    """8 control-set and GPU-count combinations, each over every scene."""
    # Each control set once with 1 GPU per run and once with 2 (num_gpus alone
    # does not change a run's output, so it is tied to another parameter here).
    points = [(controls, gpus) for controls in CONTROL_SETS for gpus in (1, 2)]
    weights = {key: [c.get(key) for c, _ in points] for key in ("depth", "edge", "seg")}
    return {
        "defaults": [{"/prompts": "bench"}],
        "name": "scheduling-bench",
        "vars": {"style": "soft"},
        "model": {"num_steps": 35, "guidance": 5.0},
        "sweep": {
            "zip": {
                **{f"model.weights.{key}": values for key, values in weights.items()},
                "model.guidance": [5.0 + gpus for _, gpus in points],
                "model.num_gpus": [gpus for _, gpus in points],
            },
        },
    }


def sweep(root: Path, per_video_s: float, *overrides: str) -> list[dict]:
    """The benchmark sweep with the simulator's times; its runs' result.json records."""
    records, _ = run_sweep(
        root,
        f"simulator.per_video_s={per_video_s}",
        f"simulator.model_load_s={3 * per_video_s}",
        f"adapters.transfer1.max_batch_size={BATCH}",
        *overrides,
    )
    return records


def lower_bound(root: Path, per_video_s: float, speeds: list[float]) -> float:
    """The least model time spread over every GPU (2 per target) at its speed."""
    load = 3 * per_video_s
    specs = [yaml.safe_load(p.read_text()) for p in (root / "outputs" / "runs").glob("*/run.yaml")]
    groups = Counter(
        (json.dumps(spec["model"]["weights"], sort_keys=True), spec["model"]["num_gpus"])
        for spec in specs
    )
    work = sum(
        gpus * (math.ceil(count / BATCH) * load + count * per_video_s)
        for (_, gpus), count in groups.items()
    )
    capacity = sum(2 * speed for speed in speeds)
    return max(work / capacity, (load + per_video_s) / max(speeds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-video-s", type=float, default=0.5)
    args = parser.parse_args()
    per_video = args.per_video_s
    with tempfile.TemporaryDirectory(prefix="cosmos-sched-", dir=REPO / ".work") as tmp:
        root = Path(tmp)
        make_project(root, SCENES, experiment())
        batched = sweep(root, per_video, TWO_HOSTS)
        bound = lower_bound(root, per_video, [1.0, 1.0])
        jobs = len({r["job_id"] for r in batched})
        naive = sweep(root, per_video, TWO_HOSTS, "scheduler.batching=false")
        uneven = sweep(root, per_video, UNEVEN)
        learnt = sweep(root, per_video, UNEVEN_LEARNT)
        uneven_bound = lower_bound(root, per_video, [1.0, 0.5])
    span, naive_span, uneven_span = makespan(batched), makespan(naive), makespan(uneven)
    learnt_span = makespan(learnt)
    print(f"runs: {len(batched)}  model load {3 * per_video:g}s  per video {per_video:g}s")
    print(f"{'case':<34} {'makespan s':>11} {'bound s':>8} {'ratio':>6}")
    print(f"{'batched, 2 targets x 2 GPUs':<34} {span:>11.2f} {bound:>8.2f} {span / bound:>6.2f}")
    print(
        f"{'one invocation per run (naive)':<34} {naive_span:>11.2f} {bound:>8.2f} "
        f"{naive_span / bound:>6.2f}"
    )
    print(
        f"{'batched, second target half speed':<34} {uneven_span:>11.2f} {uneven_bound:>8.2f} "
        f"{uneven_span / uneven_bound:>6.2f}"
    )
    print(
        f"{'... its speed learnt, not configured':<34} {learnt_span:>11.2f} {uneven_bound:>8.2f} "
        f"{learnt_span / uneven_bound:>6.2f}"
    )
    print(f"jobs (model invocations): batched {jobs}, naive {len(naive)}")
    print(
        f"makespan / lower bound: {span / bound:.2f} (target <= 1.15): "
        f"{'met' if span <= 1.15 * bound else 'NOT met'}"
    )
    print(
        f"batching speedup: {naive_span / span:.2f}x (target >= 2.5): "
        f"{'met' if naive_span >= 2.5 * span else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
