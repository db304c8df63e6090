"""The targets a project configures: the selected one and every file in conf/target/.

`cosmos status` reports on each of them; `cosmos logs` and `cosmos kill` find
the host of a run by the name of the target it ran on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cosmos_workflow.config.compose import compose_config, selected_option
from cosmos_workflow.config.manager import ConfigManager
from cosmos_workflow.config.settings import Target
from cosmos_workflow.errors import ValidationFailure

TARGET_GROUP = "target"
MISSING = "???"


@dataclass(frozen=True)
class ConfiguredTarget:
    """A configured target, usable or not.

    Attributes:
        name: The target's name (the file's name when it cannot be composed).
        source: Where it is configured (a file under conf/, maybe with overrides).
        settings: The validated settings; None if the target is incomplete or invalid.
        problem: Why it cannot be used, when ``settings`` is None.
    """

    name: str
    source: str
    settings: Target | None = None
    problem: str | None = None


def configured_targets(
    manager: ConfigManager,
    overrides: list[str],
    selected: Target,
) -> list[ConfiguredTarget]:
    """The selected target (with ``overrides``), then every other file in conf/target/.

    A file whose target has the name of one listed before it is left out.

    Args:
        manager: Validates each composed target.
        overrides: The command's config overrides (they apply to the selected target only).
        selected: The selected target's validated settings.
    """
    project = manager.project
    choice = selected_option(project, overrides, TARGET_GROUP)
    source = _source(project.conf_dir, choice) + (" with --set overrides" if overrides else "")
    found = [ConfiguredTarget(selected.name, source, selected)]
    folder = project.conf_dir / TARGET_GROUP
    for path in sorted(folder.glob("*.yaml")):
        if path.stem == choice:
            continue
        target = _compose_target(manager, path.stem)
        if target.name not in {known.name for known in found}:
            found.append(target)
    return found


def _source(conf_dir: Path, choice: str | None) -> str:
    return str(Path(conf_dir.name) / TARGET_GROUP / f"{choice}.yaml") if choice else "config"


def _compose_target(manager: ConfigManager, option: str) -> ConfiguredTarget:
    """One conf/target/ file on its own; an incomplete or invalid one says why."""
    source = _source(manager.project.conf_dir, option)
    try:
        composed = compose_config(manager.project, [f"{TARGET_GROUP}={option}"])
        values = composed.get(TARGET_GROUP) or {}
        unset = [f"target.{key}" for key, value in values.items() if value == MISSING]
        if unset:
            return ConfiguredTarget(option, source, problem=f"not set: {', '.join(unset)}")
        settings = manager.settings(composed).target
    except ValidationFailure as exc:
        return ConfiguredTarget(option, source, problem=str(exc))
    return ConfiguredTarget(settings.name, source, settings)
