"""`cosmos-batch --help`: how to run manifests, printed before Hydra is imported.

Hydra's own help (`--hydra-help`) explains Hydra; this one explains
cosmos-batch: selecting an experiment (and which ones the project has),
dry runs, grids with -m, the overrides people use most and the exit codes.
It reads file names and one line of each experiment, nothing more, so it
prints at once.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from cosmos_workflow.config.project import PRIMARY_CONFIG, PROJECT_ENV, ProjectPaths, find_project
from cosmos_workflow.errors import ValidationFailure

HELP_FLAGS = ("--help", "-h")
# A manifest's top-level description: one line, perhaps quoted.
_DESCRIPTION = re.compile(r"^description:[ \t]*(?P<text>.+?)[ \t]*$", re.MULTILINE)
# How much of a manifest is read for its description.
_HEAD_BYTES = 64 * 1024

USAGE = """\
Usage: cosmos-batch [-m] +experiment=NAME [KEY=VALUE ...]

  Run an experiment (a manifest in manifests/experiment/) as one sweep: every
  run is planned and its inputs checked before any GPU time is spent, runs
  that succeeded before are reused (cached), the others execute on the
  configured targets. Outputs go to outputs/runs/<run_id>/ and
  outputs/sweeps/<sweep_id>/ (with report.html).
"""

EXAMPLES = """\
Examples:
  cosmos-batch +experiment=demo                    run the experiment named demo
  cosmos-batch +experiment=demo dry_run=true       print the plan (run ids, cached or
                                                   not, to run); execute nothing
  cosmos-batch +experiment=demo model.seed=7       override any key of the manifest
                                                   or of conf/ (a swept key is fixed)
  cosmos-batch -m +experiment=demo model.seed=1,2,3 model.weights.depth=0.3,0.8
                                                   a grid (-m, --multirun): every
                                                   combination is a job, and all the
                                                   jobs' runs run together as one sweep
  cosmos-batch +experiment=demo --cfg job          print the composed config; run nothing
"""

COMMON = """\
Common overrides:
  dry_run=true             plan only (add it to any of the commands above)
  model=NAME               the model program{models}
  target=NAME              where runs execute{targets}
  model.seed=N  model.num_steps=N  model.guidance=X  model.weights.depth=X
                           model parameters (see docs/models.md)
  paths.outputs=DIR        the output tree (default: outputs/)
  log_level=DEBUG          more detail in the log

Options:
  -h, --help               this help
  -m, --multirun           run a grid of overrides (KEY=a,b,c) as one sweep
  --cfg job                print the composed config and stop
  --hydra-help             Hydra's own help and flags (--info, --config-dir, ...)
"""

EXIT_CODES = """\
Exit codes:
  0    every run succeeded or was cached; a dry run; this help
  1    runs failed or were cancelled (cosmos kill); the output tree is busy
  2    bad input: an invalid manifest, config or override (nothing ran, nothing written)
  3    a target could not be reached, or SSH refused the login or host key
  130  interrupted (Ctrl-C): the runs it had started are cancelled

The manifest format, sweeps, stages and caching: docs/user-guide.md.
`cosmos` (list, show, status, logs, kill, report, verify) works on what ran.
"""


def print_help_if_asked(argv: Sequence[str]) -> None:
    """Print the help and exit 0 if ``argv`` asks for it (``--help`` or ``-h``).

    Raises:
        SystemExit: after printing the help.
    """
    if any(arg in HELP_FLAGS for arg in argv):
        sys.stdout.write(batch_help(Path.cwd(), os.environ))
        sys.stdout.flush()
        raise SystemExit(0)


def batch_help(cwd: Path, environ: Mapping[str, str]) -> str:
    """The help text, with the experiments, models and targets of the project at ``cwd``."""
    try:
        project: ProjectPaths | None = find_project(cwd, environ)
    except ValidationFailure as exc:
        project, missing = None, str(exc)
    if project is None:
        experiments = (
            "Experiments: none here. They are the files manifests/experiment/NAME.yaml of a\n"
            f"project (a folder holding {PRIMARY_CONFIG}, found from the current folder up,\n"
            f"or ${PROJECT_ENV}): {missing}\n"
        )
        common = COMMON.format(models="", targets="")
    else:
        experiments = _experiments_section(project)
        common = COMMON.format(
            models=_choices(project.conf_dir / "model"),
            targets=_choices(project.conf_dir / "target"),
        )
    return "\n".join((USAGE, experiments, EXAMPLES, common, EXIT_CODES))


def _experiments_section(project: ProjectPaths) -> str:
    folder = project.manifests_dir / "experiment"
    found = sorted(folder.rglob("*.yaml")) if folder.is_dir() else []
    if not found:
        return f"Experiments: none yet (add manifests/experiment/NAME.yaml in {project.root})\n"
    names = [path.relative_to(folder).with_suffix("").as_posix() for path in found]
    width = max(len(name) for name in names) + 2
    lines = [f"Experiments (+experiment=NAME; manifests/experiment/ in {project.root}):"]
    for name, path in zip(names, found, strict=True):
        lines.append(f"  {name:<{width}}{_description(path)}".rstrip())
    return "\n".join(lines) + "\n"


def _description(path: Path) -> str:
    """A manifest's top-level ``description:`` (the file is not parsed), or ""."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD_BYTES).decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot be read: {exc.strerror})"
    found = _DESCRIPTION.search(head)
    if found is None:
        return ""
    text = found["text"]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text if text.isprintable() else repr(text)


def _choices(folder: Path) -> str:
    """`` (conf/model/: a, b, c)`` from the config files of a group, or ""."""
    names = sorted(path.stem for path in folder.glob("*.yaml")) if folder.is_dir() else []
    return f" (conf/{folder.name}/: {', '.join(names)})" if names else ""
