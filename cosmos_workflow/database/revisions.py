"""The schema revisions this code knows, read from migrations/versions/ (no alembic).

Whether a migration is due is a comparison of the database's revision with
:func:`head_revision`; alembic is imported only to migrate (engine.py).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from cosmos_workflow.errors import StateError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
# The revision ids in a migration file: `revision = "0004"`, `down_revision = "0003"`.
_REVISION_RE = re.compile(r"^revision\s*(?::[^=]*)?=\s*[\"']([^\"']+)[\"']", re.M)
_DOWN_REVISION_RE = re.compile(
    r"^down_revision\s*(?::[^=]*)?=\s*(?:None|[\"']([^\"']+)[\"'])\s*$", re.M
)


@cache
def known_revisions() -> dict[str, str | None]:
    """Every revision in migrations/versions/ -> the revision it follows (None: the first).

    Raises:
        StateError: a migration file without a plain revision id.
    """
    found: dict[str, str | None] = {}
    for path in sorted(VERSIONS_DIR.glob("*.py")):
        if path.name == "__init__.py":
            continue
        text = path.read_text(encoding="utf-8")
        revision = _REVISION_RE.search(text)
        down = _DOWN_REVISION_RE.search(text)
        if revision is None or down is None:
            raise StateError(f"migration {path.name} has no plain revision and down_revision")
        found[revision.group(1)] = down.group(1)
    return found


def head_revision() -> str:
    """The newest revision this code knows (the one no other revision follows).

    Raises:
        StateError: no migrations, or more than one newest revision.
    """
    revisions = known_revisions()
    heads = sorted(set(revisions) - set(revisions.values()))
    if len(heads) != 1:
        raise StateError(f"database migrations: expected one newest revision, found {heads}")
    return heads[0]
