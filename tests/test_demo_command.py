"""`make demo` (scripts/demo.py): the demo sweep, ending with how to look at the result.

The script is the process under test: it runs as a subprocess in a project of
its own, with the commands of this environment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO, Project

BIN = Path(sys.executable).parent
# A smaller demo (2 prompts x 2 seeds), to keep the test short.
SMALLER = ("sweep.grid.model.weights.depth=[0.3]",)


def demo(project: Project, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python scripts/demo.py BIN` in the project, as `make demo` runs it (a smaller sweep)."""
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), str(BIN), *SMALLER],
        cwd=project.root,
        env={**project.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def report_and_hint(stdout: str) -> tuple[Path, str]:
    """The report cosmos-batch printed and the last line of the output."""
    lines = stdout.splitlines()
    (report,) = [line.removeprefix("report: ") for line in lines if line.startswith("report: ")]
    return Path(report), lines[-1]


def test_the_demo_ends_by_saying_where_the_report_is_and_how_to_browse(project: Project) -> None:
    done = demo(project)
    assert done.returncode == 0, done.stderr
    report, last = report_and_hint(done.stdout)
    assert report.is_file() and report.parent.parent == project.root / "outputs" / "sweeps"
    assert last == f"Look at it: open {report}   or run: {BIN / 'cosmos'} ui"
    assert "4 runs: 4 executed (4 succeeded, 0 failed)" in done.stdout


def test_a_failed_demo_still_says_where_its_report_is_and_exits_1(project: Project) -> None:
    done = demo(project, {"COSMOS_SIMULATOR__FAIL_ON_SEED": "2"})
    assert done.returncode == 1
    report, last = report_and_hint(done.stdout)
    assert report.is_file()
    assert last.startswith(f"Look at it: open {report}")
