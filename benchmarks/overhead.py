"""Per-run orchestration overhead on the local target, with zero model time.

A sweep of N runs (default 96: 12 scenes x 8 seeds) runs through
cosmos-batch on the built-in local target with the simulated model's load
and per-video times set to 0, so every second measured is ours: claiming
runs, staging inputs, writing spec files, starting and following the model
process, checking and recording outputs. It prints, measured in this run:

- the execution makespan (first job start to last job end) per run: the
  orchestration overhead (target <= 50 ms per run, with batching as
  configured by default);
- the whole command's wall time per run (Python and Hydra start-up,
  planning, storing, the sweep folder included);
- the same with batching off (one model process per run), for comparison.

    .venv/bin/python benchmarks/overhead.py [--scenes 12] [--seeds 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from sweep_project import REPO, make_project, makespan, run_sweep

TARGET_MS = 50.0
ZERO_TIME = ("simulator.per_video_s=0", "simulator.model_load_s=0")


def experiment(seeds: int) -> dict:
    """Every scene with ``seeds`` seeds."""
    return {
        "defaults": [{"/prompts": "bench"}],
        "name": "overhead-bench",
        "vars": {"style": "soft"},
        "model": {"num_steps": 35, "guidance": 5.0, "weights": {"depth": 0.5}},
        "sweep": {"grid": {"model.seed": list(range(1, seeds + 1))}},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    (REPO / ".work").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cosmos-overhead-", dir=REPO / ".work") as tmp:
        root = Path(tmp)
        make_project(root, args.scenes, experiment(args.seeds))
        batched, batched_wall = run_sweep(root, *ZERO_TIME)
        single, single_wall = run_sweep(root, *ZERO_TIME, "scheduler.batching=false")
    runs = len(batched)
    jobs = len({record["job_id"] for record in batched})
    per_run = 1000 * makespan(batched) / runs
    print(f"runs: {runs}  jobs with batching: {jobs}  model time: 0")
    print(f"{'case':<28} {'execution ms/run':>17} {'command ms/run':>15}")
    print(f"{'batched (default)':<28} {per_run:>17.1f} {1000 * batched_wall / runs:>15.1f}")
    print(
        f"{'one process per run':<28} {1000 * makespan(single) / len(single):>17.1f} "
        f"{1000 * single_wall / len(single):>15.1f}"
    )
    verdict = "met" if per_run <= TARGET_MS else "NOT met"
    print(f"orchestration overhead: {per_run:.1f} ms per run (target <= {TARGET_MS:g}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
