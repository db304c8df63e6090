"""Expansion at scale: a 10,000-run grid composed, expanded, validated and stored.

Builds a throwaway project (conf/, manifests/ and inputs/ of this
repository) with a manifest as a user would write it: four prompts over the
demo's real input videos, a prompt template over a style variable, and a
grid over seeds, depth-control weights, guidance and style. Then it times
the real path, each phase in a fresh SQLite database:

    compose   Hydra composes conf/ + manifests/ once (as cosmos-batch does)
    plan      CosmosAPI.plan_experiment: pydantic validation, expansion, run ids,
              per-run checks, cache look-up
    open db   create the SQLite database and migrate it
    store     add_prompts, add_runs, add_sweep (as run_sweep does before executing)

and prints seconds per phase of the fastest of --repeat rounds, the total,
runs per second and the verdict against the target (total <= 5 s for
10,000 runs). Every round checks that the database holds every prompt, run
and sweep link.

The comparison is a naive multirun: one Hydra compose per grid point (one
job per point, each carrying the four prompts), as Hydra's basic launcher
does. A sample of --sample points is composed; the per-job time is
extrapolated to the points that --runs needs and set against our total.
Composing is all it counts: a lower bound for the naive way.

    .venv/bin/python benchmarks/expansion.py [--runs 10000] [--sample 200] [--repeat 3]
                                             [--keep] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cosmos_workflow.api import CosmosAPI, SweepPlan  # noqa: E402
from cosmos_workflow.config.sources import ConfigSources  # noqa: E402

# CosmosAPI imports what it hands off to on first use: import it before any timing.
from cosmos_workflow.sweeps import session as _session  # noqa: E402, F401

TARGET_S = 5.0
TARGET_RUNS = 10_000
EXPERIMENT = "bench_expansion"
OVERRIDES = [f"+experiment={EXPERIMENT}"]
PHASES = ("compose", "plan", "open db", "store")

# The prompt set: two scenes of the demo, two descriptions each.
SCENES = {
    "street_dusk": ("street", "A rain-soaked city street at dusk, neon signs in puddles"),
    "street_noon": ("street", "A busy city street at noon, delivery vans and cyclists"),
    "forest_dawn": ("forest", "A misty pine forest trail at dawn, sun rays through the trees"),
    "forest_snow": ("forest", "A snowy pine forest trail, fresh tracks, low winter sun"),
}
STYLES = ["golden-hour", "overcast"]
DEPTH_WEIGHTS = [0.2, 0.35, 0.5, 0.65, 0.8]
GUIDANCES = [3.0, 4.0, 5.0, 6.0, 7.0]
# Runs per seed: every prompt x style x depth weight x guidance.
RUNS_PER_SEED = len(SCENES) * len(STYLES) * len(DEPTH_WEIGHTS) * len(GUIDANCES)


@dataclass(frozen=True)
class Bench:
    """The throwaway project and what its manifest expands to."""

    root: Path
    seeds: int

    @property
    def runs(self) -> int:
        """Runs the manifest expands to."""
        return self.seeds * RUNS_PER_SEED

    @property
    def env(self) -> dict[str, str]:
        """An environment without the user's config file or COSMOS_* variables."""
        return {"XDG_CONFIG_HOME": str(self.root / ".config")}


def make_project(root: Path, seeds: int) -> Bench:
    """Copy conf/, manifests/ and inputs/ into ``root`` and write the benchmark manifest."""
    for folder in ("conf", "manifests", "inputs"):
        shutil.copytree(REPO / folder, root / folder)
    prompts = {
        name: {
            "text": f"{text}, {{{{ style }}}} lighting, cinematic.",
            "negative": "blurry, low quality, distorted geometry",
            "inputs": {
                "video": f"inputs/demo/{scene}/color.mp4",
                "controls": {"depth": f"inputs/demo/{scene}/depth.mp4"},
            },
        }
        for name, (scene, text) in SCENES.items()
    }
    (root / "manifests" / "prompts" / f"{EXPERIMENT}.yaml").write_text(
        yaml.safe_dump(prompts, sort_keys=False), encoding="utf-8"
    )
    experiment = {
        "defaults": [{"/prompts": EXPERIMENT}],
        "name": EXPERIMENT,
        "description": "Seed, depth weight, guidance and style grid over four prompts.",
        "vars": {"style": STYLES[0]},
        "model": {"num_steps": 35, "weights": {"depth": 0.5}},
        "sweep": {
            "grid": {
                "model.seed": list(range(1, seeds + 1)),
                "model.weights.depth": DEPTH_WEIGHTS,
                "model.guidance": GUIDANCES,
                "vars.style": STYLES,
            }
        },
    }
    (root / "manifests" / "experiment" / f"{EXPERIMENT}.yaml").write_text(
        "# @package _global_\n" + yaml.safe_dump(experiment, sort_keys=False), encoding="utf-8"
    )
    return Bench(root=root, seeds=seeds)


def compose_once(bench: Bench) -> tuple[dict[str, Any], ConfigSources]:
    """Compose the config as cosmos-batch does; return it and where each key came from."""
    conf = bench.root / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="bench"):
        cfg = compose(config_name="config", overrides=OVERRIDES, return_hydra_config=True)
    hydra_cfg = cfg.hydra
    choices = OmegaConf.to_container(hydra_cfg.runtime.choices)
    dirs = [
        Path(source["path"])
        for source in hydra_cfg.runtime.config_sources
        if source["schema"] == "file"
    ]
    with open_dict(cfg):
        del cfg["hydra"]
    composed = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(composed, dict) and isinstance(choices, dict)
    sources = ConfigSources.build(bench.root, dirs, conf / "config.yaml", choices, OVERRIDES)
    return composed, sources


def store(api: CosmosAPI, plan: SweepPlan) -> None:
    """Store prompts, runs, the sweep and its folder (CosmosAPI.submit, as run_sweep does)."""
    api.submit(plan)


def check_stored(api: CosmosAPI, plan: SweepPlan, runs: int) -> None:
    """Exit with a message unless the database holds every prompt, run and sweep link."""
    repo = api.repository
    found = {
        "prompts": len(repo.list_prompts()),
        "runs": sum(repo.counts_by_status().values()),
        "sweep links": sum(repo.sweep_status_counts(plan.sweep_id).values()),
    }
    prompts = len({run.prompt.id for run in plan.runs})
    expected = {"prompts": prompts, "runs": runs, "sweep links": runs}
    if len(plan.runs) != runs or found != expected:
        sys.exit(f"wrong counts: planned {len(plan.runs)} of {runs} runs, stored {found}")


def one_round(bench: Bench, profile: cProfile.Profile | None) -> dict[str, float]:
    """Time every phase once, in a fresh database; return seconds per phase."""
    shutil.rmtree(bench.root / "outputs", ignore_errors=True)
    times: dict[str, float] = {}

    def timed(phase: str, action: Callable[[], Any]) -> Any:
        if profile is not None:
            profile.enable()
        start = time.perf_counter()
        result = action()
        times[phase] = time.perf_counter() - start
        if profile is not None:
            profile.disable()
        return result

    composed, sources = timed("compose", lambda: compose_once(bench))
    with CosmosAPI.from_composed(bench.root, composed, environ=bench.env) as api:
        plan = timed("plan", lambda: api.plan_experiment(OVERRIDES, sources))
        timed("open db", lambda: api.repository)
        timed("store", lambda: store(api, plan))
        check_stored(api, plan, bench.runs)
    return times


def per_job_compose(bench: Bench, sample: int) -> float:
    """Seconds per Hydra compose of one grid point (a naive multirun's job)."""
    points = itertools.islice(
        itertools.product(range(1, bench.seeds + 1), DEPTH_WEIGHTS, GUIDANCES, STYLES), sample
    )
    conf = str(bench.root / "conf")
    count = 0
    with initialize_config_dir(config_dir=conf, version_base="1.3", job_name="bench"):
        start = time.perf_counter()
        for seed, depth, guidance, style in points:
            overrides = [
                *OVERRIDES,
                f"model.seed={seed}",
                f"model.weights.depth={depth}",
                f"model.guidance={guidance}",
                f"vars.style={style}",
            ]
            cfg = compose(config_name="config", overrides=overrides)
            OmegaConf.to_container(cfg, resolve=True)
            count += 1
        elapsed = time.perf_counter() - start
    return elapsed / count


def report(bench: Bench, rounds: list[dict[str, float]], per_job: float, sample: int) -> None:
    """Print the table of figures: the fastest round, then the per-job compose."""
    best = min(rounds, key=lambda times: sum(times.values()))
    total = sum(best.values())
    axes = f"{len(DEPTH_WEIGHTS)} depth weights x {len(GUIDANCES)} guidances"
    print(
        f"grid: {bench.runs} runs = {len(SCENES)} prompts x {len(STYLES)} styles x "
        f"{axes} x {bench.seeds} seeds"
    )
    totals = ", ".join(f"{sum(times.values()):.2f}" for times in rounds)
    print(
        f"fastest of {len(rounds)} round(s), each in a fresh SQLite database (totals: {totals} s)"
    )
    for phase in PHASES:
        print(f"{phase:<9} {best[phase]:8.3f} s")
    print(f"{'total':<9} {total:8.3f} s   {bench.runs / total:10.0f} runs/s")
    target = TARGET_S * bench.runs / TARGET_RUNS
    verdict = "met" if total <= target else "MISSED"
    print(f"target    <= {target:.2f} s for {bench.runs} runs: {verdict}")
    jobs = bench.runs // len(SCENES)
    naive = per_job * jobs
    print(f"hydra compose per job ({sample} sampled): {per_job * 1000:.2f} ms")
    print(f"hydra compose of all {jobs} jobs (extrapolated): {naive:.1f} s")
    print(f"ratio {naive / total:.1f}x (naive per-job compose / ours, compose only on its side)")


def main() -> None:
    """Parse the options, run the benchmark, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=TARGET_RUNS, help=f"a multiple of {RUNS_PER_SEED}"
    )
    parser.add_argument("--sample", type=int, default=200, help="grid points composed one by one")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds; the best of each phase counts"
    )
    parser.add_argument("--keep", action="store_true", help="keep the project and its database")
    parser.add_argument(
        "--profile", action="store_true", help="print where the time goes (cProfile)"
    )
    args = parser.parse_args()
    if args.runs < RUNS_PER_SEED or args.runs % RUNS_PER_SEED:
        parser.error(f"--runs must be a positive multiple of {RUNS_PER_SEED}")
    if args.sample < 1 or args.repeat < 1:
        parser.error("--sample and --repeat must be at least 1")
    work = REPO / ".work"
    root = Path(tempfile.mkdtemp(prefix="bench-expansion-", dir=work if work.is_dir() else None))
    try:
        bench = make_project(root / "project", args.runs // RUNS_PER_SEED)
        profile = cProfile.Profile() if args.profile else None
        rounds = [one_round(bench, profile) for _ in range(args.repeat)]
        sample = min(args.sample, bench.runs // len(SCENES))
        report(bench, rounds, per_job_compose(bench, sample), sample)
        if profile is not None:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
