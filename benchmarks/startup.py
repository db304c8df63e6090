"""How fast the commands start: each one timed as a whole process.

In a throwaway copy of the project (conf/, manifests/ and inputs/ under a
temporary folder, after one demo sweep so that `cosmos list runs` has rows),
every command below runs several times (after one warm-up run) with the
project's Python (this interpreter); the table gives the median, minimum and
maximum wall time, the median over `python -c pass` (the interpreter's own
start), the median CPU time (user + system: on a busy machine the wall time
grows, the CPU time much less), the target on a 2-core machine and whether
the median wall time meets it. Exits 1 when a target is missed or a command
fails.

    .venv/bin/python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Case:
    """One command to time."""

    name: str
    argv: tuple[str, ...]
    target_s: float | None
    env: tuple[tuple[str, str], ...] = ()


def _script(name: str, module: str) -> tuple[str, ...]:
    """The installed entry point run by this Python, else ``python -m module``."""
    script = BIN / name
    if script.is_file():
        return (sys.executable, str(script))
    return (sys.executable, "-m", module)


def _complete(line: str) -> tuple[tuple[str, str], ...]:
    """The environment of one bash Tab press on ``line``."""
    words = line.split(" ")
    return (
        ("_COSMOS_COMPLETE", "bash_complete"),
        ("COMP_WORDS", line),
        ("COMP_CWORD", str(len(words) - 1)),
    )


def cases() -> list[Case]:
    """The commands, each with its target (seconds, median)."""
    cosmos = _script("cosmos", "cosmos_workflow.cli.main")
    batch = _script("cosmos-batch", "cosmos_workflow.cli.batch")
    return [
        Case("python -c pass", (sys.executable, "-c", "pass"), None),
        Case("cosmos --help", (*cosmos, "--help"), 0.2),
        Case("cosmos --version", (*cosmos, "--version"), 0.2),
        Case("cosmos list --help", (*cosmos, "list", "--help"), 0.3),
        Case("cosmos list runs", (*cosmos, "list", "runs"), 0.6),
        Case("cosmos status", (*cosmos, "status"), 0.6),
        Case("Tab: cosmos l", cosmos, 0.3, _complete("cosmos l")),
        Case("Tab: cosmos show rs_", cosmos, 0.3, _complete("cosmos show rs_")),
        Case("cosmos-batch dry run", (*batch, "+experiment=demo", "dry_run=true"), 1.2),
    ]


def project_env(root: Path) -> dict[str, str]:
    """This environment without COSMOS_/HYDRA_ settings; no user config; a fast simulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COSMOS_", "HYDRA_"))}
    env.update(
        {
            "XDG_CONFIG_HOME": str(root / ".config"),
            "COSMOS_SIMULATOR__MODEL_LOAD_S": "0",
            "COSMOS_SIMULATOR__PER_VIDEO_S": "0",
        }
    )
    return env


def make_project(root: Path, env: dict[str, str]) -> None:
    """Copy conf/, manifests/ and inputs/ into ``root`` and run the demo sweep there."""
    for folder in ("conf", "manifests", "inputs"):
        shutil.copytree(REPO / folder, root / folder)
    batch = _script("cosmos-batch", "cosmos_workflow.cli.batch")
    done = subprocess.run(
        [*batch, "+experiment=demo"], cwd=root, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"the demo sweep failed ({done.returncode}):\n{done.stderr[-3000:]}")


@dataclass(frozen=True)
class Timing:
    """Wall and CPU times of one case's runs, in seconds, and the exit codes seen."""

    times: list[float]
    cpu: list[float]
    codes: set[int]

    @property
    def median(self) -> float:
        """The median wall time."""
        return statistics.median(self.times)


def _children_cpu() -> float:
    """User + system seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_case(case: Case, root: Path, env: dict[str, str], runs: int) -> Timing:
    """Run ``case`` once to warm up, then ``runs`` times, timing each."""
    full_env = {**env, **dict(case.env)}
    times: list[float] = []
    cpu: list[float] = []
    codes: set[int] = set()
    for index in range(runs + 1):
        cpu_before = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(
            list(case.argv),
            cwd=root,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        elapsed = time.perf_counter() - started
        codes.add(done.returncode)
        if index:
            times.append(elapsed)
            cpu.append(_children_cpu() - cpu_before)
    return Timing(times, cpu, codes)


def verdict(case: Case, timing: Timing) -> tuple[str, bool]:
    """The 'ok' cell and whether the case passed."""
    if timing.codes != {0}:
        return f"exit {','.join(str(c) for c in sorted(timing.codes))}", False
    if case.target_s is None:
        return "", True
    met = timing.median <= case.target_s
    return ("yes" if met else "NO"), met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="counted runs per command")
    args = parser.parse_args()
    (REPO / ".work").mkdir(exist_ok=True)
    all_met = True
    with tempfile.TemporaryDirectory(prefix="cosmos-startup-", dir=REPO / ".work") as tmp:
        root = Path(tmp)
        env = project_env(root)
        make_project(root, env)
        print(f"python: {sys.executable}  runs per command: {args.runs} (after 1 warm-up)")
        head = f"{'command':<24} {'median':>7} {'min':>7} {'max':>7} {'-python':>8} {'cpu':>6}"
        print(f"{head} {'target':>7}  ok")
        baseline = None
        for case in cases():
            timing = time_case(case, root, env, args.runs)
            baseline = timing.median if baseline is None else baseline
            cell, met = verdict(case, timing)
            all_met = all_met and met
            target = f"{case.target_s:.2f}" if case.target_s is not None else "-"
            print(
                f"{case.name:<24} {timing.median:>7.3f} {min(timing.times):>7.3f} "
                f"{max(timing.times):>7.3f} {timing.median - baseline:>8.3f} "
                f"{statistics.median(timing.cpu):>6.3f} {target:>7}  {cell}",
                flush=True,
            )
    print("every target met" if all_met else "a target was missed or a command failed")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
