"""Command-line overrides: which keys they set, how they meet the sweep block,
and how they are stored without secrets (SQLAlchemy parses a database URL
only when an override sets one)."""

from __future__ import annotations

import copy
import re
from typing import Any

_USERINFO_WITH_PASSWORD = re.compile(r"://[^/@:]*:[^/@]*@")
_QUERY_PASSWORD = re.compile(r"[?&](password|passwd|pwd)=", re.IGNORECASE)
# Overrides of these keys may carry credentials (e.g. a database password).
_URL_KEYS = frozenset({"database.url"})


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
