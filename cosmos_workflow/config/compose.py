"""Compose the project's Hydra config outside a Hydra app (for `cosmos`)."""

from __future__ import annotations

from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cosmos_workflow.config.project import ProjectPaths
from cosmos_workflow.errors import ValidationFailure


def compose_config(project: ProjectPaths, overrides: list[str]) -> dict[str, Any]:
    """Compose conf/config.yaml with ``overrides``, as cosmos-batch would.

    Raises:
        ValidationFailure: a bad override or a missing config.
    """
    try:
        with initialize_config_dir(
            config_dir=str(project.conf_dir), version_base="1.3", job_name="cosmos"
        ):
            cfg = compose(config_name="config", overrides=overrides)
            data = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException, yaml.YAMLError) as exc:
        raise ValidationFailure(f"configuration error: {exc}") from exc
    assert isinstance(data, dict)
    return data


def selected_option(project: ProjectPaths, overrides: list[str], group: str) -> str | None:
    """The option of config ``group`` that conf/ and ``overrides`` select (e.g. the target).

    Raises:
        ValidationFailure: a bad override or a missing config.
    """
    try:
        with initialize_config_dir(
            config_dir=str(project.conf_dir), version_base="1.3", job_name="cosmos"
        ):
            cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
            choice = OmegaConf.select(cfg, f"hydra.runtime.choices.{group}")
    except (HydraException, OmegaConfBaseException, yaml.YAMLError) as exc:
        raise ValidationFailure(f"configuration error: {exc}") from exc
    return None if choice is None else str(choice)
