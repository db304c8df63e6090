"""Scheduling: the makespan of a mixed sweep on 4 simulated GPUs over 2 targets.

A sweep of 64 runs (8 scenes x 4 control sets x 1 or 2 GPUs per run) runs
through cosmos-batch on a pool of two local targets with two GPUs each. The
simulated model loads in 3 x per_video_s seconds (other cases below) and then
spends per_video_s per video (times scaled down: the local cases take about
three minutes, the Slurm case about 1.5 minutes).

It prints, each measured in this one run:

- the makespan (first job start to last job end, from the runs' result.json)
  with batching, the lower bound no schedule can beat, and their ratio
  (target <= 1.15);
- the same sweep with batching off (one model invocation per run, as a
  naive runner does) and the speedup of batching (target >= 2.5);
- the same batched sweep with one target at half speed, its speed given in
  its configuration, then left for the scheduler to learn, against that
  pool's lower bound;
- the batched sweep with realistic Cosmos timings scaled down: model load :
  per video = 1 : 2 (a full Transfer model: the load is the smaller part)
  and 1 : 1 (a distilled model), beside the 3 : 1 above;
- the batched 3 : 1 sweep on a real one-node Slurm cluster with 4 (fake)
  GPUs, which the benchmark starts itself (tests/slurm.py in a test host,
  as ``scripts/test-host up --slurm``; root and Debian's Slurm packages)
  and removes: its makespan against the same lower bound (target <= 1.15),
  and the per-job overhead (from a job's GPUs freeing to the next job's
  script starting: squeue polling, collecting, the next job folder, sbatch,
  Slurm's start), with Slurm's own share (submit to start). Its videos take
  --slurm-per-video-s (2 s): Slurm starts a job about 1 s after sbatch or
  after a GPU frees, so shorter jobs would measure those latencies rather
  than the schedule.

The lower bound: all the model's work at its least (each compatible group
loads the model as few times as the batch size of 8 allows), spread evenly
over the GPUs at their speeds; and at least one model load plus one video.

    .venv/bin/python benchmarks/scheduling.py [--per-video-s 0.5] [--cases all|local|slurm]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from statistics import mean

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
# Model load : per video as on real GPUs, scaled down: a full Cosmos-Transfer
# model loads in about half the time it spends on one video (minutes per video
# on an H100), a distilled one in about the time of one video.
# Per video on the Slurm node: a job starts about 1 s after sbatch or after a
# GPU frees (slurmctld's loop), and our side polls squeue (target.poll_s, 1 s):
# videos of 2 s make a job of 8 (with its load) 22 s, so the ratio measures
# the schedule, not those latencies.
SLURM_PER_VIDEO_S = 2.0
COSMOS_TIMINGS = [("Cosmos load 1 : 2 per video", 0.5), ("distilled load 1 : 1", 1.0)]


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


def sweep(root: Path, per_video_s: float, load: float, *overrides: str) -> list[dict]:
    """The benchmark sweep with the simulator's times; its runs' result.json records.

    Args:
        root: The benchmark project.
        per_video_s: The simulated model's time per video.
        load: Its model load time, in units of ``per_video_s``.
        *overrides: More cosmos-batch overrides (the targets).
    """
    records, _ = run_sweep(
        root,
        f"simulator.per_video_s={per_video_s}",
        f"simulator.model_load_s={load * per_video_s}",
        f"adapters.transfer1.max_batch_size={BATCH}",
        *overrides,
    )
    return records


def lower_bound(root: Path, per_video_s: float, load: float, gpu_speeds: list[float]) -> float:
    """The least model time spread over every GPU at its speed (a list, one per GPU).

    Each compatible group loads the model as few times as the batch size
    allows; no schedule ends before one model load plus one video on the
    fastest GPU either.
    """
    load_s = load * per_video_s
    specs = [yaml.safe_load(p.read_text()) for p in (root / "outputs" / "runs").glob("*/run.yaml")]
    groups = Counter(
        (json.dumps(spec["model"]["weights"], sort_keys=True), spec["model"]["num_gpus"])
        for spec in specs
    )
    work = sum(
        gpus * (math.ceil(count / BATCH) * load_s + count * per_video_s)
        for (_, gpus), count in groups.items()
    )
    return max(work / sum(gpu_speeds), (load_s + per_video_s) / max(gpu_speeds))


def row(case: str, span: float, bound: float) -> str:
    """One line of the table: the case, its makespan, lower bound and ratio."""
    return f"{case:<44} {span:>11.2f} {bound:>8.2f} {span / bound:>6.2f}"


def verdict(what: str, value: float, target: str, met: bool) -> str:
    """One line saying whether a figure meets its target."""
    return f"{what}: {value:.2f} (target {target}): {'met' if met else 'NOT met'}"


def local_cases(root: Path, per_video: float) -> list[str]:
    """The local pool's cases; the lines they print."""
    even, uneven_speeds = [1.0] * 4, [1.0, 1.0, 0.5, 0.5]
    batched = sweep(root, per_video, 3.0, TWO_HOSTS)
    bound = lower_bound(root, per_video, 3.0, even)
    jobs = len({r["job_id"] for r in batched})
    naive = sweep(root, per_video, 3.0, TWO_HOSTS, "scheduler.batching=false")
    uneven = sweep(root, per_video, 3.0, UNEVEN)
    learnt = sweep(root, per_video, 3.0, UNEVEN_LEARNT)
    uneven_bound = lower_bound(root, per_video, 3.0, uneven_speeds)
    span, naive_span = makespan(batched), makespan(naive)
    lines = [
        row("batched, 2 targets x 2 GPUs, load 3 : 1", span, bound),
        row("one invocation per run (naive)", naive_span, bound),
        row("batched, second target half speed", makespan(uneven), uneven_bound),
        row("... its speed learnt, not configured", makespan(learnt), uneven_bound),
    ]
    ratios = {}
    for label, load in COSMOS_TIMINGS:
        records = sweep(root, per_video, load, TWO_HOSTS)
        case_bound = lower_bound(root, per_video, load, even)
        ratios[label] = makespan(records) / case_bound
        lines.append(row(f"batched, {label}", makespan(records), case_bound))
    lines += [
        f"jobs (model invocations): batched {jobs}, naive {len(naive)}",
        verdict(
            "makespan / lower bound, load 3 : 1", span / bound, "<= 1.15", span <= 1.15 * bound
        ),
        *(
            verdict(f"makespan / lower bound, {label}", ratio, "<= 1.15", ratio <= 1.15)
            for label, ratio in ratios.items()
        ),
        verdict("batching speedup", naive_span / span, ">= 2.5", naive_span >= 2.5 * span),
    ]
    return lines


def slurm_case(root: Path, per_video: float) -> list[str]:
    """The batched 3 : 1 sweep on the 4-GPU Slurm test node; the lines it prints."""
    from slurm_bench import job_overheads, slurm_cluster, slurm_start_latency

    try:
        with slurm_cluster(REPO / ".work" / f"bench-slurm-{os.getpid()}") as (overrides, cluster):
            records, wall = run_sweep(
                root,
                f"simulator.per_video_s={per_video}",
                f"simulator.model_load_s={3 * per_video}",
                f"adapters.transfer1.max_batch_size={BATCH}",
                *overrides,
            )
            latency = slurm_start_latency(cluster)
    except RuntimeError as exc:
        return [f"slurm: not run ({str(exc).splitlines()[0]})"]
    span, bound = makespan(records), lower_bound(root, per_video, 3.0, [1.0] * 4)
    gaps = job_overheads(records)
    jobs = len({r["job_id"] for r in records})
    slurm_share = "unknown" if latency is None else f"{latency:.2f} s"
    return [
        row(f"Slurm 1 node x 4 GPUs, load 3 : 1, video {per_video:g}s", span, bound),
        f"slurm: {jobs} sbatch jobs, sweep wall time {wall:.1f} s",
        f"slurm per-job overhead (GPUs free -> next job's script starts): "
        f"mean {mean(gaps):.2f} s, max {max(gaps):.2f} s over {len(gaps)} jobs; "
        f"Slurm's own submit -> start {slurm_share}",
        verdict("makespan / lower bound, Slurm", span / bound, "<= 1.15", span <= 1.15 * bound),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-video-s", type=float, default=0.5)
    parser.add_argument(
        "--slurm-per-video-s",
        type=float,
        default=SLURM_PER_VIDEO_S,
        help="per-video time of the Slurm case (default %(default)s s)",
    )
    parser.add_argument(
        "--cases", choices=["all", "local", "slurm"], default="all", help="which cases to run"
    )
    args = parser.parse_args()
    per_video = args.per_video_s
    lines = []
    with tempfile.TemporaryDirectory(prefix="cosmos-sched-", dir=REPO / ".work") as tmp:
        root = Path(tmp)
        make_project(root, SCENES, experiment())
        if args.cases in ("all", "local"):
            lines += local_cases(root, per_video)
        if args.cases in ("all", "slurm"):
            lines += slurm_case(root, args.slurm_per_video_s)
    print(f"runs: {SCENES * 8}  per video {per_video:g}s; model load in units of it")
    print(f"{'case':<44} {'makespan s':>11} {'bound s':>8} {'ratio':>6}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
