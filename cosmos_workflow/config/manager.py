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

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cosmos_workflow.config.project import ProjectPaths
from cosmos_workflow.config.settings import (
    EARLY_LIMITS,
    LAYERED_SECTIONS,
    LAYERED_TOP_LEVEL,
    SETTINGS_KEYS,
    TARGET_KINDS,
    Settings,
)
from cosmos_workflow.config.yaml_file import project_yaml_limits, read_config_file, shown_path
from cosmos_workflow.errors import Problem, ValidationFailure, format_loc

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_FILE_ENV = "COSMOS_CONFIG"
HYDRA_LAYER = "Hydra config"
# OmegaConf's "no value yet" (a target file's host: ???).
MISSING = "???"
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

    @classmethod
    def for_project(cls, project_dir: Path, env: Mapping[str, str] | None) -> ConfigManager:
        """The manager of the project at ``project_dir`` with ``env`` (None: os.environ)."""
        return cls(ProjectPaths(Path(project_dir)), os.environ if env is None else env)

    def settings(
        self,
        composed: Mapping[str, Any] | None = None,
        blame: Callable[[str], str] | None = None,
    ) -> Settings:
        """Merge every layer and validate.

        Args:
            composed: The Hydra-composed config as plain data (or None).
            blame: Names the file or override that set a key of ``composed``;
                without it, such keys are said to come from the Hydra config.

        Raises:
            SettingsError: a value is invalid; names the key and where it came from.
        """
        merged: dict[str, Any] = {}
        sources: dict[str, str] = {}
        self._apply(merged, sources, self._read_user_file(), f"config file {self._user_file}")
        self._apply(merged, sources, self._read_env(), "environment")
        if composed is not None:
            hydra_part = {k: v for k, v in composed.items() if k in SETTINGS_KEYS}
            _refuse_early_limits(hydra_part)
            self._apply(merged, sources, hydra_part, HYDRA_LAYER)
        files: dict[str, str] = {}
        if isinstance(merged.get("targets"), list):
            merged["targets"] = [
                self._named_target(entry, index, files) if isinstance(entry, str) else entry
                for index, entry in enumerate(merged["targets"])
            ]
        self._refuse_unset(merged, files)
        try:
            return Settings.model_validate({"project_dir": self.project.root, **merged})
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                key = format_loc(_without_kinds(tuple(error["loc"])))
                source = _source_of(key, sources)
                if source == HYDRA_LAYER and blame is not None:
                    source = blame(key)
                problems.append(Problem(f"{key} (from {source})", error["msg"]))
            raise SettingsError(problems) from exc

    def _named_target(self, name: str, index: int, files: dict[str, str]) -> dict[str, Any]:
        """A pool entry given by name: the target file conf/target/<name>.yaml.

        Args:
            files: Gets the file of the entry (``targets[INDEX]`` -> its path).

        Raises:
            SettingsError: no such file, or it cannot be read.
        """
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        folder = self.project.conf_dir / "target"
        path = folder / f"{name}.yaml"
        key = f"targets[{index}] (from Hydra config)"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "none"
            raise SettingsError([Problem(key, f"no target file {path} (available: {known})")])
        shown = shown_path(path, self.project.root)
        text = read_config_file(path, shown, project_yaml_limits(self.project.root), None)
        try:
            data = OmegaConf.to_container(OmegaConf.create(text), resolve=True)
        except OmegaConfBaseException as exc:
            raise SettingsError([Problem(key, f"{path}: {exc}")]) from exc
        if not isinstance(data, dict):
            raise SettingsError([Problem(key, f"{path} is not a mapping")])
        files[f"targets[{index}]"] = shown
        return data

    def _refuse_unset(self, merged: dict[str, Any], files: dict[str, str]) -> None:
        """Refuse settings left ``???`` (a target file's host, user, ...), naming every one.

        Raises:
            ValidationFailure: "not set: target.host, target.user, ...".
        """
        unset: dict[str, list[str]] = {}
        for key, value in _leaves(merged):
            if value == MISSING:
                owner = key.split(".", 1)[0]
                unset.setdefault(files.get(owner) or self._file_of(owner, merged), []).append(key)
        if not unset:
            return
        parts = []
        for source, keys in unset.items():
            parts.append(
                f"not set: {', '.join(keys)}" + (f" ({source} leaves them ???)" if source else "")
            )
        raise ValidationFailure(
            "; ".join(parts)
            + "; give each on the command line (e.g. target.host=gpu1) or in the file"
        )

    def _file_of(self, owner: str, merged: dict[str, Any]) -> str:
        """The conf/target/ file a target section most likely came from ("" if unknown)."""
        if owner != "target" or not isinstance(merged.get("target"), dict):
            return ""
        path = self.project.conf_dir / "target" / f"{merged['target'].get('name')}.yaml"
        return shown_path(path, self.project.root) if path.is_file() else ""

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


def _refuse_early_limits(hydra_part: Mapping[str, Any]) -> None:
    """The YAML limits cannot come from conf/ (they apply while it is read).

    Raises:
        SettingsError: conf/ or the command line sets one of them.
    """
    limits = hydra_part.get("limits")
    if not isinstance(limits, Mapping):
        return
    problems = [
        Problem(
            f"{key} (from {HYDRA_LAYER})",
            f"YAML files are read before conf/ is composed: set it in the user config file or "
            f"with {variable}",
        )
        for key, variable in EARLY_LIMITS.items()
        if limits.get(key.partition(".")[2]) is not None
    ]
    if problems:
        raise SettingsError(problems)


def _without_kinds(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A settings error's location without the target kind pydantic puts in it.

    ``('target', 'ssh', 'port')`` -> ``('target', 'port')``, as the user wrote the key.
    """
    kept = []
    for index, part in enumerate(loc):
        after_target = index and (loc[index - 1] == "target" or isinstance(loc[index - 1], int))
        if after_target and part in TARGET_KINDS:
            continue
        kept.append(part)
    return tuple(kept)


def _leaves(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every value of nested mappings and lists with its key path (``targets[1].host``)."""
    if isinstance(data, Mapping):
        found = []
        for key, value in data.items():
            found += _leaves(value, f"{prefix}.{key}" if prefix else str(key))
        return found
    if isinstance(data, list):
        found = []
        for index, value in enumerate(data):
            found += _leaves(value, f"{prefix}[{index}]")
        return found
    return [(prefix, data)]


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
