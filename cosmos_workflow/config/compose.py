"""Compose the project's Hydra config outside a Hydra app (for `cosmos`).

A plain conf/ (see plain.py) is composed without starting Hydra; any other
is composed by Hydra, which is imported only then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cosmos_workflow.config.plain import compose_plain, plain_option
from cosmos_workflow.config.project import ProjectPaths
from cosmos_workflow.errors import ValidationFailure


def _with_hydra(
    project: ProjectPaths, overrides: list[str], hydra_node: bool, read: Callable[[Any], Any]
) -> Any:
    """Compose with Hydra and return ``read(cfg)``, inside Hydra's context.

    Raises:
        ValidationFailure: a bad override or a missing config.
    """
    import yaml
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from cosmos_workflow.config.compose_errors import explain

    try:
        with initialize_config_dir(
            config_dir=str(project.conf_dir), version_base="1.3", job_name="cosmos"
        ):
            cfg = compose(config_name="config", overrides=overrides, return_hydra_config=hydra_node)
            return read(cfg)
    except (HydraException, OmegaConfBaseException, yaml.YAMLError) as exc:
        error = explain(exc, project, overrides, _as_set)
        raise error or ValidationFailure(f"configuration error: {exc}") from exc


def _as_set(override: str) -> str:
    """How `cosmos` names an override in errors."""
    return f"--set {override}"


def compose_config(project: ProjectPaths, overrides: list[str]) -> dict[str, Any]:
    """Compose conf/config.yaml with ``overrides``, as cosmos-batch would.

    Raises:
        ValidationFailure: a bad override or a missing config.
    """
    composed = compose_plain(project, overrides)
    if composed is not None:
        return composed
    from omegaconf import OmegaConf

    data = _with_hydra(
        project, overrides, False, lambda cfg: OmegaConf.to_container(cfg, resolve=True)
    )
    assert isinstance(data, dict)
    return data


def selected_option(project: ProjectPaths, overrides: list[str], group: str) -> str | None:
    """The option of config ``group`` that conf/ and ``overrides`` select (e.g. the target).

    Raises:
        ValidationFailure: a bad override or a missing config.
    """
    plain, choice = plain_option(project, overrides, group)
    if plain:
        return choice
    from omegaconf import OmegaConf

    choice = _with_hydra(
        project,
        overrides,
        True,
        lambda cfg: OmegaConf.select(cfg, f"hydra.runtime.choices.{group}"),
    )
    return None if choice is None else str(choice)
