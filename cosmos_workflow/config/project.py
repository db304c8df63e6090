"""Finding the project: the folder holding conf/config.yaml and manifests/."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cosmos_workflow.errors import ValidationFailure

PROJECT_ENV = "COSMOS_PROJECT_DIR"
PRIMARY_CONFIG = Path("conf") / "config.yaml"


@dataclass(frozen=True)
class ProjectPaths:
    """The folders of a cosmos-workflow project."""

    root: Path

    @property
    def conf_dir(self) -> Path:
        """Hydra's primary config folder."""
        return self.root / "conf"

    @property
    def manifests_dir(self) -> Path:
        """User manifests: experiment/ and prompts/."""
        return self.root / "manifests"


def find_project(cwd: Path, env: Mapping[str, str]) -> ProjectPaths:
    """Locate the project: $COSMOS_PROJECT_DIR, else cwd or its nearest parent.

    Raises:
        ValidationFailure: no folder with conf/config.yaml was found.
    """
    if env.get(PROJECT_ENV):
        root = Path(env[PROJECT_ENV]).expanduser().resolve()
        if not (root / PRIMARY_CONFIG).is_file():
            raise ValidationFailure(
                f"{PROJECT_ENV}={root} has no {PRIMARY_CONFIG}; "
                "point it at a cosmos-workflow project"
            )
        return ProjectPaths(root)
    start = cwd.resolve()
    for folder in (start, *start.parents):
        if (folder / PRIMARY_CONFIG).is_file():
            return ProjectPaths(folder)
    raise ValidationFailure(
        f"no cosmos-workflow project found: no {PRIMARY_CONFIG} in {start} or its parents. "
        f"Run from inside a project or set {PROJECT_ENV}."
    )
