"""What cosmos-batch makes of its input before a sweep is planned: one error path for all of it.

Hydra prints a composition error itself (a traceback for most) unless
HYDRA_FULL_ERROR is set; set, it raises the error, and :func:`report_composition`
prints one clear message instead (the traceback too if the user set
HYDRA_FULL_ERROR=1). :func:`resolve_config` resolves a composed config after
checking its interpolations (manifest/interpolations.py).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from cosmos_workflow.cli.console import print_error
from cosmos_workflow.config.project import ProjectPaths
from cosmos_workflow.errors import ManifestError, Problem

if TYPE_CHECKING:
    from omegaconf import DictConfig

FULL_ERROR = "HYDRA_FULL_ERROR"


def traceback_wanted() -> bool:
    """True if the user asked for tracebacks (HYDRA_FULL_ERROR=1)."""
    return os.environ.get(FULL_ERROR) == "1"


@contextmanager
def hydra_raises() -> Iterator[None]:
    """Hydra raises composition errors instead of printing them, while the app runs."""
    saved = os.environ.get(FULL_ERROR)
    os.environ[FULL_ERROR] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(FULL_ERROR, None)
        else:
            os.environ[FULL_ERROR] = saved


def report_composition(
    exc: Exception, project: ProjectPaths, args: list[str], with_traceback: bool
) -> int | None:
    """Print a composition error as one message; return its exit code (None: not one, a bug).

    Args:
        exc: What Hydra (or a config source) raised.
        project: The project.
        args: The command line (its overrides are named as typed).
        with_traceback: Print the traceback above the message.
    """
    from cosmos_workflow.config.compose_errors import explain

    error = explain(exc, project, args)
    if error is None:
        return None
    if with_traceback:
        traceback.print_exception(exc, file=sys.stderr)
    print_error(error)
    return error.exit_code


def resolve_config(cfg: DictConfig, blame: Callable[[str], str]) -> dict[str, Any]:
    """The composed config as plain data, its interpolations checked and resolved.

    Raises:
        ManifestError: the manifest interpolates where it may not, or an
            interpolation cannot be resolved (each naming the file and key).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from cosmos_workflow.config.manager import ConfigManager
    from cosmos_workflow.manifest.interpolations import interpolation_problems

    unresolved = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(unresolved, dict)
    problems = interpolation_problems(ConfigManager.manifest_part(unresolved))
    composed: Any = None
    try:
        composed = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        key = str(getattr(exc, "full_key", "") or "(top level)")
        raw = _value_at(unresolved, key)
        shown = f"{raw!r} " if isinstance(raw, str) else ""
        problems.append(Problem(key, f"{shown}cannot be resolved: {str(exc).splitlines()[0]}"))
    if problems:
        raise ManifestError(
            [Problem(f"{blame(p.key_path)}: {p.key_path}", p.message) for p in problems]
        )
    assert isinstance(composed, dict)
    return composed


def _value_at(data: Any, key: str) -> Any:
    """The value at a dotted key of nested mappings (None if there is none)."""
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data
