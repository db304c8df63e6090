"""Composing a plain conf/ without Hydra (Hydra's start-up is most of a command's).

A conf/ is *plain* when:

- config.yaml's defaults list holds only ``group: option`` entries (one
  level, no package, no ``optional``), entries of Hydra's own groups
  (``override hydra/...: ...``) and ``_self_``, once;
- each chosen group file exists in conf/<group>/ and holds only its group's
  keys: no ``@package`` line, no defaults list of its own;
- no key or value outside the ``hydra`` node interpolates (``${...}``);
- every override picks a group's option (``target=ssh``).

Hydra composes such a config by putting each chosen file under its group's
key and laying the files and config.yaml's own keys (``_self_``) over each
other in the order of the defaults list; the ``hydra`` node is dropped.
:func:`compose_plain` does the same, reading YAML as OmegaConf does, and
returns None for anything else, which is then left to Hydra
(tests/test_startup.py compares both on the project's conf/).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cosmos_workflow.config.project import ProjectPaths
from cosmos_workflow.config.yaml_file import (
    ConfigFileError,
    YamlLimits,
    project_yaml_limits,
    read_config_file,
    shown_path,
)

SELF = "_self_"
HYDRA = "hydra"
PRIMARY = "config.yaml"
# OmegaConf's missing value.
MISSING = "???"
# Names of groups and options that Hydra reads the same as a plain path part.
_GROUP_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_OPTION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

# OmegaConf's YAML rules (omegaconf._utils.get_yaml_loader): floats as YAML
# 1.2 reads them (1e-3 too), no timestamps, a repeated key is an error.
_FLOAT_RE = re.compile(
    r"""^(?:
     [-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
    |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class NotPlain(Exception):
    """The config needs Hydra to compose it."""


class _Loader(yaml.SafeLoader):
    """A safe YAML loader that reads scalars and mappings as OmegaConf's loader does."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping; a key given twice is an error (as in OmegaConf)."""
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag != yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG:
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key_node.value}",
                    key_node.start_mark,
                )
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}


def _load(path: Path, project: ProjectPaths, limits: YamlLimits) -> dict[str, Any]:
    """A YAML file's mapping (an empty file: {}), checked as Hydra's reads are (yaml_file.py).

    Raises:
        NotPlain: it does not exist, cannot be used (Hydra's reading then says
            why), is not a mapping or names its package.
    """
    if not path.is_file():
        raise NotPlain(f"{path} is not a file")
    try:
        text = read_config_file(path, shown_path(path, project.root), limits, None)
    except ConfigFileError as exc:
        raise NotPlain(str(exc)) from exc
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise NotPlain(f"{path}: {exc}") from exc
    if "@package" in text:
        raise NotPlain(f"{path} names its package")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise NotPlain(f"{path} is not a mapping")
    return data


def _check_literal(value: Any, where: str) -> None:
    """Every key is text and nothing interpolates.

    Raises:
        NotPlain: otherwise.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or "${" in key:
                raise NotPlain(f"{where}: key {key!r}")
            _check_literal(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_literal(item, where)
    elif isinstance(value, str) and "${" in value:
        raise NotPlain(f"{where}: {value!r} interpolates")


def _defaults(entries: Any) -> tuple[list[str], dict[str, str]]:
    """The composition order (groups and _self_) and each group's option.

    Raises:
        NotPlain: an entry that is not ``group: option``, Hydra's own or ``_self_``.
    """
    if not isinstance(entries, list):
        raise NotPlain("the defaults list is not a list")
    order: list[str] = []
    choices: dict[str, str] = {}
    for entry in entries:
        if entry == SELF and SELF not in order:
            order.append(SELF)
            continue
        if not isinstance(entry, dict) or len(entry) != 1:
            raise NotPlain(f"defaults entry {entry!r}")
        [(key, option)] = entry.items()
        group = str(key).removeprefix("override ").strip()
        if group == HYDRA or group.startswith(f"{HYDRA}/"):
            continue
        if key != group or not _GROUP_RE.match(group) or group in choices:
            raise NotPlain(f"defaults entry {entry!r}")
        if not isinstance(option, str) or not _OPTION_RE.match(option):
            raise NotPlain(f"defaults entry {entry!r}")
        choices[group] = option
        order.append(group)
    if SELF not in order:
        raise NotPlain("the defaults list has no _self_")
    return order, choices


def _apply_overrides(choices: dict[str, str], overrides: list[str]) -> None:
    """Pick the options that ``group=option`` overrides name.

    Raises:
        NotPlain: any other override.
    """
    for override in overrides:
        group, sep, option = override.partition("=")
        if not sep or group not in choices or not _OPTION_RE.match(option):
            raise NotPlain(f"override {override!r}")
        choices[group] = option


def _merge(base: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """Lay ``layer`` over ``base`` as OmegaConf.merge does.

    Mappings merge key by key, anything else replaces, and a missing value
    (``???``) leaves a value that is there already.
    """
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        elif value != MISSING or key not in base:
            base[key] = _copy(value)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _compose(project: ProjectPaths, overrides: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The composed config of a plain conf/ and the option chosen for each group.

    Raises:
        NotPlain: the conf/ or an override is not plain.
    """
    limits = project_yaml_limits(project.root)
    primary = _load(project.conf_dir / PRIMARY, project, limits)
    order, choices = _defaults(primary.pop("defaults", []))
    _apply_overrides(choices, overrides)
    primary.pop(HYDRA, None)
    _check_literal(primary, PRIMARY)
    composed: dict[str, Any] = {}
    for item in order:
        if item == SELF:
            _merge(composed, primary)
            continue
        path = project.conf_dir / item / f"{choices[item]}.yaml"
        content = _load(path, project, limits)
        if "defaults" in content:
            raise NotPlain(f"{path} has a defaults list")
        _check_literal(content, str(path))
        _merge(composed, {item: content})
    return composed, choices


def compose_plain(project: ProjectPaths, overrides: list[str]) -> dict[str, Any] | None:
    """What Hydra would compose from a plain conf/ and ``overrides``; None if not plain."""
    try:
        return _compose(project, overrides)[0]
    except NotPlain:
        return None


def plain_option(
    project: ProjectPaths, overrides: list[str], group: str
) -> tuple[bool, str | None]:
    """(True, the option chosen for ``group`` or None) for a plain conf/; else (False, None).

    Hydra's own groups (hydra/...) are never answered here.
    """
    if group == HYDRA or group.startswith(f"{HYDRA}/"):
        return False, None
    try:
        return True, _compose(project, overrides)[1].get(group)
    except NotPlain:
        return False, None
