"""Hydra's composition errors as one clear sentence: the override or file, the key, what to do.

Hydra reports a bad override as "Could not override 'model.num_step'. To
append to your config use +model.num_step=3", advice that then fails as an
unknown key. :func:`explain` names the override as typed, says whether the
key exists at all (and which one was meant) and only advises ``+KEY=VALUE``
for a key that exists but is not in the composed config.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from functools import cache

from cosmos_workflow.config.project import ProjectPaths
from cosmos_workflow.errors import CosmosError, ValidationFailure
from cosmos_workflow.utils.schema_keys import KeyTree

Shown = Callable[[str], str]

_OVERRIDE = re.compile(r"Could not override '(?P<key>[^']+)'")
_NO_DEFAULT = re.compile(r"Could not override '(?P<key>[^']+)'\. No match in the defaults list")
_MULTIPLE = re.compile(r"Multiple values for (?P<key>[^ .]+)")
_DELETE = re.compile(r"Could not delete from config\. '(?P<key>[^']+)' does not exist")
_IN_CONFIG = re.compile(r"^In '(?P<parent>[^']+)':")


def command_line(override: str) -> str:
    """How cosmos-batch names an override in errors."""
    return f"command-line override {override!r}"


@cache
def config_keys() -> KeyTree:
    """Every key a composed config may hold: settings and manifest keys."""
    from cosmos_workflow.config.settings import Settings
    from cosmos_workflow.manifest.models import Manifest

    return KeyTree([Settings, Manifest], skip=["project_dir"], free=["hydra"])


def override_of(overrides: Sequence[str], key: str) -> str | None:
    """The override (as typed) that sets or deletes ``key``."""
    for override in overrides:
        name = override.lstrip("+~").partition("=")[0].strip()
        if name == key:
            return override
    return None


def explain(
    exc: BaseException,
    project: ProjectPaths,
    overrides: Sequence[str],
    shown: Shown = command_line,
) -> CosmosError | None:
    """A clear error for an exception raised while Hydra composed the config.

    Args:
        exc: What Hydra (or a config source) raised.
        project: The project (to name its files).
        overrides: The overrides as typed.
        shown: How an override is named (``--set KEY=VALUE`` for `cosmos`).

    Returns:
        The error to report (exit 2), or None for an exception that is none
        of composition's (a bug: let its traceback show).
    """
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(exc, CosmosError):
        return exc
    if isinstance(exc, OverrideParseException):
        return _parse_error(exc.override, exc.message, shown)
    if isinstance(exc, MissingConfigException):
        return _missing(exc, project, overrides, shown)
    if isinstance(exc, ConfigCompositionException):
        return _composition(str(exc), exc.__cause__, overrides, shown)
    if isinstance(exc, OmegaConfBaseException):
        key = getattr(exc, "full_key", None)
        where = f" (key {key})" if key else ""
        return ValidationFailure(f"configuration error{where}: {_first_line(str(exc))}")
    return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _parse_error(override: str | None, message: str, shown: Shown) -> ValidationFailure:
    lines = [line for line in message.splitlines() if line and not line.startswith("See https")]
    detail = lines[-1] if lines else message
    what = shown(override) if override else "an override"
    if "missing EQUAL" in message:
        return ValidationFailure(
            f"{what}: no '=' in it; an override is KEY=VALUE (e.g. model.seed=7)"
        )
    return ValidationFailure(
        f"{what}: not an override: {detail}; an override is KEY=VALUE, a list is [a,b] "
        "(quote values with spaces or special characters)"
    )


def _missing(
    exc: BaseException, project: ProjectPaths, overrides: Sequence[str], shown: Shown
) -> ValidationFailure:
    missing = str(getattr(exc, "missing_cfg_file", "") or "")
    options = ", ".join(getattr(exc, "options", None) or []) or "none"
    group, _, option = missing.rpartition("/")
    expected = _file_of(project, group, option)
    override = override_of(overrides, group)
    parent = _IN_CONFIG.match(str(exc))
    if override is not None:
        where = shown(override)
    elif parent and parent.group("parent") != "config":
        where = f"{_parent_file(project, parent.group('parent'))}: defaults: /{group}: {option}"
    else:
        where = f"{group}={option}"
    close = difflib.get_close_matches(option, getattr(exc, "options", None) or [], n=1)
    hint = f"; did you mean {group}={close[0]}?" if close else ""
    return ValidationFailure(f"{where}: there is no {expected} (available: {options}){hint}")


def _file_of(project: ProjectPaths, group: str, option: str) -> str:
    for folder in (project.conf_dir, project.manifests_dir):
        if (folder / group).is_dir():
            return f"{folder.name}/{group}/{option}.yaml"
    return f"{project.conf_dir.name}/{group}/{option}.yaml"


def _parent_file(project: ProjectPaths, config_path: str) -> str:
    for folder in (project.manifests_dir, project.conf_dir):
        if (folder / f"{config_path}.yaml").is_file():
            return f"{folder.name}/{config_path}.yaml"
    return f"{config_path}.yaml"


def _composition(
    message: str, cause: BaseException | None, overrides: Sequence[str], shown: Shown
) -> ValidationFailure:
    found = _NO_DEFAULT.search(message)
    if found:
        key = found.group("key")
        override = override_of(overrides, key) or key
        return ValidationFailure(
            f"{shown(override)}: nothing selects a {key} yet, so there is none to replace; "
            f"add one with +{override.lstrip('+')}"
        )
    found = _MULTIPLE.search(message)
    if found:
        key = found.group("key")
        chosen = [o for o in overrides if o.lstrip("+").partition("=")[0] == key]
        return ValidationFailure(
            f"{', '.join(shown(o) for o in chosen) or key}: {key} is selected more than once; "
            f"select one (+{key}=NAME once)"
        )
    found = _DELETE.search(message)
    if found:
        key = found.group("key")
        return ValidationFailure(
            f"{shown(override_of(overrides, key) or '~' + key)}: {key} is not in the "
            f"configuration{suggestion(key)}"
        )
    found = _OVERRIDE.search(message)
    if found:
        key = found.group("key")
        return _unknown_override(key, override_of(overrides, key) or key, cause, shown)
    return ValidationFailure(f"configuration error: {_first_line(message)}")


def _unknown_override(
    key: str, override: str, cause: BaseException | None, shown: Shown
) -> ValidationFailure:
    """An override of a key that the composed config does not hold."""
    from cosmos_workflow.config.settings import EARLY_LIMITS

    if key in EARLY_LIMITS:
        return ValidationFailure(
            f"{shown(override)}: {key} limits how YAML files are read, which happens before "
            f"the command line is: set it in the user config file or with {EARLY_LIMITS[key]}"
        )
    tree = config_keys()
    if tree.known(key):
        missing = str(getattr(cause, "full_key", "") or key)
        return ValidationFailure(
            f"{shown(override)}: {missing} is not in the composed configuration; to add "
            f"{key}, write +{override.lstrip('+')}"
        )
    return ValidationFailure(f"{shown(override)}: unknown key {key}{suggestion(key)}")


def suggestion(key: str) -> str:
    """'; did you mean X?' for a misspelt key of a composed config, or the keys beside it."""
    tree = config_keys()
    closest = tree.closest(key)
    if closest:
        return f"; did you mean {closest}?"
    siblings = tree.siblings(key)
    if siblings:
        parent = key.rpartition(".")[0] or "the top level"
        return f" ({parent} has: {', '.join(siblings)})"
    return ""
