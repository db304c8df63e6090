"""Which file (or command-line override) set a key of the composed config.

Hydra does not keep per-key provenance, so this re-reads the files that the
composition used, in precedence order, and names the first that holds the
key. Used to make every manifest error name its file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_PACKAGE_RE = re.compile(r"^#\s*@package\s+(\S+)")
_INDEX_RE = re.compile(r"\[\d+\]")


@dataclass(frozen=True)
class _Candidate:
    label: str
    package: str
    data: Any


def _read_package(path: Path, default: str) -> str:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            match = _PACKAGE_RE.match(line.strip())
            if match:
                package = match.group(1)
                return "" if package == "_global_" else package
            if line.strip() and not line.lstrip().startswith("#"):
                break
    return default


def _has_path(data: Any, parts: list[str]) -> bool:
    if not parts:
        return True
    if not isinstance(data, Mapping):
        return False
    for size in range(len(parts), 0, -1):
        key = ".".join(parts[:size])
        if key in data and _has_path(data[key], parts[size:]):
            return True
    return False


class ConfigSources:
    """Answers "where was this key set?" for one composed configuration."""

    def __init__(self, candidates: list[_Candidate], fallback: str) -> None:
        self._candidates = candidates
        self._fallback = fallback

    @classmethod
    def build(
        cls,
        project_root: Path,
        search_dirs: Iterable[Path],
        primary: Path | None,
        choices: Mapping[str, str | None],
        overrides: Iterable[str],
    ) -> ConfigSources:
        """Collect the candidate sources, highest precedence first.

        Args:
            project_root: Paths are shown relative to it when inside it.
            search_dirs: Folders of Hydra's search path (file:// entries).
            primary: The primary config file.
            choices: Hydra's group -> option choices.
            overrides: Command-line overrides, as typed.
        """
        candidates: list[_Candidate] = []
        for override in overrides:
            key, sep, value = override.lstrip("+~").partition("=")
            if sep:
                data = _nest(key, value)
                candidates.append(_Candidate(f"command-line override '{override}'", "", data))
        group_files = []
        for group, option in choices.items():
            if option is None or group.startswith("hydra"):
                continue
            for folder in search_dirs:
                path = folder / group / f"{option}.yaml"
                if path.is_file():
                    group_files.append((group, path))
                    break
        group_files.sort(key=lambda item: item[0] != "experiment")
        for group, path in group_files:
            candidates.append(_candidate_for(path, group.replace("/", "."), project_root))
        fallback = _label(primary, project_root) if primary else "the composed configuration"
        if primary is not None and primary.is_file():
            candidates.append(_candidate_for(primary, "", project_root))
        return cls(candidates, fallback)

    def blame(self, key_path: str) -> str:
        """Return the label of the source that set ``key_path`` (or its parent)."""
        parts = [p for p in _INDEX_RE.sub("", key_path).split(".") if p]
        for length in range(len(parts), 0, -1):
            for candidate in self._candidates:
                prefix = [p for p in candidate.package.split(".") if p]
                if parts[: len(prefix)] != prefix:
                    continue
                if _has_path(candidate.data, parts[len(prefix) : length]):
                    return candidate.label
        return self._fallback


def _nest(key: str, value: Any) -> dict[str, Any]:
    data: Any = value
    for part in reversed(key.split(".")):
        data = {part: data}
    return data


def _label(path: Path, project_root: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_root.resolve()))
    except ValueError:
        return str(path)


def _candidate_for(path: Path, default_package: str, project_root: Path) -> _Candidate:
    package = _read_package(path, default_package)
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "defaults"}
    return _Candidate(_label(path, project_root), package, data)
