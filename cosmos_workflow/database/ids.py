"""Ids that start with a typed prefix (shell completion), with a short label each."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from cosmos_workflow.database.models import Prompt, Run, Sweep
from cosmos_workflow.database.search import LIKE_ESCAPE, like_literal

# The kinds of id (their prefix before "_"), and the column that labels each.
ID_KINDS: dict[str, tuple[type[Prompt] | type[Run] | type[Sweep], str]] = {
    "ps": (Prompt, "name"),
    "rs": (Run, "status"),
    "sw": (Sweep, "name"),
}


def _may_match(kind: str, prefix: str) -> bool:
    """Whether ids ``kind_...`` can start with ``prefix``."""
    head = f"{kind}_"
    return prefix.startswith(head) or head.startswith(prefix)


def ids_starting_with(
    session: Session, prefix: str, kinds: Sequence[str], limit: int
) -> list[tuple[str, str]]:
    """(id, label) of the objects of ``kinds`` whose id starts with ``prefix``, by id.

    Args:
        session: An open session.
        prefix: What the user typed so far (may be empty).
        kinds: Id kinds to look at: "ps", "rs", "sw".
        limit: At most this many in all.
    """
    found: list[tuple[str, str]] = []
    pattern = like_literal(prefix) + "%"
    for kind in kinds:
        if len(found) >= limit or not _may_match(kind, prefix):
            continue
        model, label_name = ID_KINDS[kind]
        label = getattr(model, label_name)
        query = (
            select(model.id, label)
            .where(model.id.like(pattern, escape=LIKE_ESCAPE))
            .order_by(model.id)
            .limit(limit - len(found))
        )
        for object_id, value in session.execute(query):
            found.append((object_id, str(getattr(value, "value", value))))
    return found
