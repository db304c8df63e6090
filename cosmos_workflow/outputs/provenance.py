"""Provenance of a sweep: where its manifests came from and what ran them."""

from __future__ import annotations

import platform
import socket
from pathlib import Path
from typing import Any

from cosmos_workflow import __version__
from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.errors import ExecutionFailure


def git_state(folder: Path, commands: LocalCommandExecutor) -> dict[str, Any]:
    """Commit and dirty flag of the git repository holding ``folder``.

    Returns ``{"commit": None, "dirty": None}`` outside a repository or
    without git.
    """
    try:
        head = commands.run(["git", "-C", str(folder), "rev-parse", "HEAD"], timeout=10)
        if head.exit_code != 0:
            return {"commit": None, "dirty": None, "repository": None}
        top = commands.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel"], timeout=10)
        status = commands.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", "."], timeout=10
        )
    except ExecutionFailure:
        return {"commit": None, "dirty": None, "repository": None}
    return {
        "commit": head.stdout.strip(),
        "dirty": bool(status.stdout.strip()),
        "repository": top.stdout.strip() or None,
    }


def sweep_provenance(
    manifests_dir: Path, model: dict[str, Any], commands: LocalCommandExecutor
) -> dict[str, Any]:
    """Everything needed to tell how a sweep was produced."""
    return {
        "git": git_state(manifests_dir, commands),
        "package": {"name": "cosmos-workflow", "version": __version__},
        "python": platform.python_version(),
        "hostname": socket.gethostname(),
        "model": {
            "adapter": model.get("adapter"),
            "version": model.get("version"),
            "image": model.get("image"),
        },
    }
