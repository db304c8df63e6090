"""Ids by prefix straight from a SQLite file, with the standard library (no SQLAlchemy).

Shell completion starts a process at every Tab press; loading SQLAlchemy
would be most of its time. For the usual database, a SQLite file, this
reads the ids with :mod:`sqlite3` instead, as ids.py does through the
models: the same tables, the same LIKE, the same order. It only reads: a
missing file is not created, a database of another schema revision offers
nothing (it is neither created nor migrated). Any other database URL is
left to the caller (None).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from cosmos_workflow.database.revisions import head_revision

_SQLITE_PREFIX = "sqlite:///"
# Characters after which SQLAlchemy would read a SQLite URL differently
# (percent-escapes, a query, user info): such URLs are left to SQLAlchemy.
_NOT_PLAIN = frozenset("%?#@")
# Id kind -> (table, the column that labels each id); see ids.ID_KINDS.
_KINDS = {"ps": ("prompts", "name"), "rs": ("runs", "status"), "sw": ("sweeps", "name")}
_ESCAPE = "\\"


def sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL; None for any other URL."""
    if not url.startswith(_SQLITE_PREFIX) or _NOT_PLAIN & set(url):
        return None
    path = url[len(_SQLITE_PREFIX) :]
    if not path or path == ":memory:":
        return None
    return Path(path)


def _like_literal(value: str) -> str:
    """``value`` as a LIKE pattern matching exactly itself (ESCAPE ``\\``), as search.py."""
    escaped = value.replace(_ESCAPE, _ESCAPE * 2)
    return escaped.replace("%", _ESCAPE + "%").replace("_", _ESCAPE + "_")


def _may_match(kind: str, prefix: str) -> bool:
    head = f"{kind}_"
    return prefix.startswith(head) or head.startswith(prefix)


def _revision(conn: sqlite3.Connection) -> str | None:
    """The database's schema revision (None: no alembic_version table, or empty)."""
    try:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.OperationalError:
        return None
    return rows[0][0] if len(rows) == 1 else None


def sqlite_ids_with_prefix(
    url: str, prefix: str, kinds: Sequence[str], limit: int
) -> list[tuple[str, str]] | None:
    """(id, label) of the objects of ``kinds`` whose id starts with ``prefix``, by id.

    Args:
        url: The database URL.
        prefix: What was typed so far (may be empty).
        kinds: "ps" (prompts, labelled by name), "rs" (runs, by status),
            "sw" (sweeps, by name).
        limit: At most this many in all.

    Returns:
        None when ``url`` is not a plain SQLite file URL; [] without the
        file or with a schema of another revision.

    Raises:
        sqlite3.Error: the file is not a readable database.
    """
    path = sqlite_file(url)
    if path is None:
        return None
    if not path.is_file():
        return []
    # mode=rw: a file deleted meanwhile is not created again.
    uri = f"{path.resolve().as_uri()}?mode=rw"
    with closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
        if _revision(conn) != head_revision():
            return []
        found: list[tuple[str, str]] = []
        pattern = _like_literal(prefix) + "%"
        for kind in kinds:
            if len(found) >= limit or not _may_match(kind, prefix):
                continue
            table, label = _KINDS[kind]
            query = (
                f"SELECT id, {label} FROM {table} WHERE id LIKE ? ESCAPE ? "  # noqa: S608 - names from _KINDS
                "ORDER BY id LIMIT ?"
            )
            rows = conn.execute(query, (pattern, _ESCAPE, limit - len(found)))
            found.extend((object_id, str(value)) for object_id, value in rows)
    return found
