"""Command-line overrides: which keys they set, how they meet the sweep block,
and how they are stored without secrets (SQLAlchemy parses a database URL
only when an override sets one).

A swept list is replaced with ``sweep.grid.model.seed=[1,3]`` (added if the
manifest does not sweep that key, removed with ``~sweep.grid.model.seed``).
Hydra cannot address a key with dots in its name, so cosmos-batch takes
these overrides off the command line (:func:`split_sweep_overrides`) and
plan_sweep applies them (:func:`apply_sweep_overrides`).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from cosmos_workflow.errors import ManifestError, Problem

_USERINFO_WITH_PASSWORD = re.compile(r"://[^/@:]*:[^/@]*@")
_QUERY_PASSWORD = re.compile(r"[?&](password|passwd|pwd)=", re.IGNORECASE)
# Overrides of these keys may carry credentials (e.g. a database password).
_URL_KEYS = frozenset({"database.url"})


_SWEEP_OVERRIDE = re.compile(
    r"^(?P<op>\+{0,2}|~)sweep\.(?P<block>grid|zip)\.(?P<key>[^=]+?)(?:=(?P<value>.*))?$",
    re.DOTALL,
)


def split_sweep_overrides(args: list[str]) -> tuple[list[str], list[str]]:
    """Take the overrides of swept lists (``sweep.grid.KEY=[...]``) off a command line.

    Returns:
        (the other arguments, the overrides of swept lists), each in order.
    """
    others, swept = [], []
    for arg in args:
        (swept if _SWEEP_OVERRIDE.match(arg) else others).append(arg)
    return others, swept


def apply_sweep_overrides(manifest: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """The manifest with the swept lists that overrides replace, add or remove.

    Raises:
        ManifestError: an override's value is not a list (each problem names the override).
    """
    found = [(o, m) for o in overrides if (m := _SWEEP_OVERRIDE.match(o))]
    if not found:
        return manifest
    result = copy.deepcopy(manifest)
    sweep = result.get("sweep")
    if not isinstance(sweep, dict):
        sweep = result["sweep"] = {}
    problems = []
    for override, match in found:
        block, key = match.group("block"), match.group("key").strip()
        entries = sweep.get(block)
        if not isinstance(entries, dict):
            entries = sweep[block] = {}
        if match.group("op") == "~":
            entries.pop(key, None)
            continue
        values = _list_value(match.group("value"))
        if values is None:
            problems.append(
                Problem(
                    f"command-line override {override!r}: sweep.{block}.{key}",
                    f"give a list in brackets, e.g. sweep.{block}.{key}=[1,3]",
                )
            )
            continue
        entries[key] = values
    if problems:
        raise ManifestError(problems)
    return result


def _list_value(text: str | None) -> list[Any] | None:
    """A YAML flow list (``[1,3]``, ``[a, 'b c']``), or None."""
    if text is None:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return value if isinstance(value, list) else None


def override_key(override: str) -> str | None:
    """The key an override sets (``+a.b=1`` -> ``a.b``), or None for a bare flag."""
    key, sep, _ = override.lstrip("+~").partition("=")
    return key.strip() if sep else None


def fix_swept_keys(manifest: dict[str, Any], overrides: list[str]) -> tuple[dict, list[str]]:
    """Let a command-line override of a swept key fix that key.

    ``cosmos-batch +experiment=demo model.seed=7`` means "seed 7", so the
    key leaves the manifest's grid or zip and the override's value applies.

    Returns:
        (the manifest to expand, notes for the user)
    """
    keys = {key for key in map(override_key, overrides) if key}
    sweep = manifest.get("sweep")
    if not isinstance(sweep, dict) or not keys:
        return manifest, []
    fixed = copy.deepcopy(manifest)
    notes = []
    for block in ("grid", "zip"):
        entries = fixed["sweep"].get(block)
        if not isinstance(entries, dict):
            continue
        for key in sorted(keys & set(entries)):
            del entries[key]
            notes.append(f"{key} is set on the command line: it replaces sweep.{block}.{key}")
    return fixed, notes


def carries_password(override: str) -> bool:
    """True if an override of a URL setting has a password in it (netloc or query)."""
    key = override_key(override)
    if key is None or (key not in _URL_KEYS and key != "database"):
        return False
    value = override.partition("=")[2]
    if _QUERY_PASSWORD.search(value):
        return True
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(value.strip("'\"")).password is not None
    except (ArgumentError, ValueError):
        return _USERINFO_WITH_PASSWORD.search(value) is not None


def redact(overrides: list[str]) -> list[str]:
    """Overrides as they may be stored: passwords in URLs hidden."""
    safe = []
    for override in overrides:
        key = override_key(override)
        if key in _URL_KEYS:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            prefix, _, value = override.partition("=")
            try:
                value = make_url(value).render_as_string(hide_password=True)
            except (ArgumentError, ValueError):
                value = "***"
            override = f"{prefix}={value}"
        safe.append(override)
    return safe
