"""ConfigManager: one place that turns config layers into validated settings.

Precedence, lowest first (documented in docs/user-guide.md):

1. built-in defaults (the pydantic models in settings.py);
2. the user config file: $COSMOS_CONFIG, else
   $XDG_CONFIG_HOME/cosmos-workflow/config.toml (~/.config/... by default);
3. COSMOS_* environment variables: COSMOS_LOG_LEVEL and
   COSMOS_<SECTION>__<KEY> for the sections database, paths, simulator;
4. the Hydra-composed config (conf/, manifests/ and command-line overrides).
   A null value there means "not set here" and lets the lower layers show.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cosmos_workflow.config.project import ProjectPaths
from cosmos_workflow.config.settings import (
    LAYERED_SECTIONS,
    LAYERED_TOP_LEVEL,
    SETTINGS_KEYS,
    Settings,
)
from cosmos_workflow.errors import Problem, ValidationFailure, format_loc

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_FILE_ENV = "COSMOS_CONFIG"
ENV_PREFIX = "COSMOS_"


class SettingsError(ValidationFailure):
    """A setting has a bad value; the message names the key and its source."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = ["invalid settings:"] + [f"  {p.key_path}: {p.message}" for p in problems]
        super().__init__("\n".join(lines))


class ConfigManager:
    """Merges the config layers and validates them into :class:`Settings`.

    Args:
        project: The project whose conf/ and manifests/ are used.
        env: Environment variables (pass ``os.environ``; tests pass a dict).
        user_file: The user config file; None picks the default location.
    """

    def __init__(
        self, project: ProjectPaths, env: Mapping[str, str], user_file: Path | None = None
    ) -> None:
        self.project = project
        self._env = env
        self._user_file = user_file if user_file is not None else default_user_file(env)

    def settings(self, composed: Mapping[str, Any] | None = None) -> Settings:
        """Merge every layer and validate.

        Args:
            composed: The Hydra-composed config as plain data (or None).

        Raises:
            SettingsError: a value is invalid; names the key and where it came from.
        """
        merged: dict[str, Any] = {}
        sources: dict[str, str] = {}
        self._apply(merged, sources, self._read_user_file(), f"config file {self._user_file}")
        self._apply(merged, sources, self._read_env(), "environment")
        if composed is not None:
            hydra_part = {k: v for k, v in composed.items() if k in SETTINGS_KEYS}
            self._apply(merged, sources, hydra_part, "Hydra config")
        if isinstance(merged.get("targets"), list):
            merged["targets"] = [
                self._named_target(entry, index) if isinstance(entry, str) else entry
                for index, entry in enumerate(merged["targets"])
            ]
        try:
            return Settings.model_validate({"project_dir": self.project.root, **merged})
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                key = format_loc(tuple(error["loc"]))
                source = _source_of(key, sources)
                problems.append(Problem(f"{key} (from {source})", error["msg"]))
            raise SettingsError(problems) from exc

    def _named_target(self, name: str, index: int) -> dict[str, Any]:
        """A pool entry given by name: the target file conf/target/<name>.yaml.

        Raises:
            SettingsError: no such file, or it leaves values unset (``???``).
        """
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        folder = self.project.conf_dir / "target"
        path = folder / f"{name}.yaml"
        key = f"targets[{index}] (from Hydra config)"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "none"
            raise SettingsError([Problem(key, f"no target file {path} (available: {known})")])
        try:
            data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        except OmegaConfBaseException as exc:
            raise SettingsError([Problem(key, f"{path}: {exc}")]) from exc
        if not isinstance(data, dict):
            raise SettingsError([Problem(key, f"{path} is not a mapping")])
        unset = sorted(str(k) for k, v in data.items() if v == "???")
        if unset:
            raise SettingsError(
                [Problem(key, f"{path} leaves {', '.join(unset)} unset; give the target inline")]
            )
        return data

    @staticmethod
    def manifest_part(composed: Mapping[str, Any]) -> dict[str, Any]:
        """The keys of the composed config that belong to the manifest."""
        return {k: v for k, v in composed.items() if k not in SETTINGS_KEYS and k != "hydra"}

    def _read_user_file(self) -> dict[str, Any]:
        if not self._user_file.is_file():
            if CONFIG_FILE_ENV in self._env:
                raise ValidationFailure(f"{CONFIG_FILE_ENV}={self._user_file}: file not found")
            return {}
        try:
            with self._user_file.open("rb") as handle:
                data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ValidationFailure(f"config file {self._user_file}: {exc}") from exc
        allowed = set(LAYERED_SECTIONS) | set(LAYERED_TOP_LEVEL)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise SettingsError(
                [
                    Problem(f"{k} (from config file {self._user_file})", "unknown key")
                    for k in unknown
                ]
            )
        return data

    def _read_env(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, value in self._env.items():
            if not name.startswith(ENV_PREFIX):
                continue
            rest = name[len(ENV_PREFIX) :].lower()
            if rest in LAYERED_TOP_LEVEL:
                data[rest] = value
                continue
            section, sep, key = rest.partition("__")
            if sep and section in LAYERED_SECTIONS:
                data.setdefault(section, {})[key] = value
        return data

    @classmethod
    def _apply(
        cls,
        merged: dict[str, Any],
        sources: dict[str, str],
        layer: Mapping[str, Any],
        label: str,
        prefix: str = "",
    ) -> None:
        """Lay ``layer`` over ``merged``: sections merge key by key, nulls fall through.

        The target is one unit (it belongs to one config group), so it replaces
        whatever was below it.
        """
        for key, value in layer.items():
            path = f"{prefix}{key}"
            if isinstance(value, Mapping) and path != "target":
                if not isinstance(merged.get(key), dict):
                    merged[key] = {}
                cls._apply(merged[key], sources, value, label, f"{path}.")
            elif value is not None:
                merged[key] = value
                sources[path] = label


def _source_of(key: str, sources: Mapping[str, str]) -> str:
    """The layer that set ``key`` or its nearest enclosing section (``a.b[0]`` -> ``a.b``)."""
    parts = key.replace("[", ".[").split(".")
    for end in range(len(parts), 0, -1):
        found = sources.get(".".join(parts[:end]).replace(".[", "["))
        if found:
            return found
    return "defaults"


def default_user_file(env: Mapping[str, str]) -> Path:
    """$COSMOS_CONFIG, else $XDG_CONFIG_HOME/cosmos-workflow/config.toml."""
    if env.get(CONFIG_FILE_ENV):
        return Path(env[CONFIG_FILE_ENV]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "cosmos-workflow" / "config.toml"
