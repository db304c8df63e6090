"""Text search over prompts and the runs made from them.

The text is matched literally, ignoring case: ``%``, ``_`` and ``\\`` are
escaped in the LIKE pattern, so they match only themselves (a plain LIKE
would take them for wildcards). Case is folded for every script, not only
for ASCII letters: SQLite's lower() is Python's (database/engine.py), and on
PostgreSQL lower() runs under the ICU root collation when the server has it
(a database created with the C locale would fold ASCII letters only).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, func, literal, or_, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session

from cosmos_workflow.database.models import Prompt, Run

LIKE_ESCAPE = "\\"
# Longest search text (SQLite refuses LIKE patterns over 50,000 characters).
MAX_SEARCH_CHARS = 1000


def like_literal(value: str) -> str:
    """``value`` as a LIKE pattern matching exactly itself (with ESCAPE ``\\``)."""
    return (
        value.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )


# PostgreSQL's collation whose lower() folds every script (ICU's root locale).
UNICODE_COLLATION = "und-x-icu"


def folding_collation(session: Session) -> str | None:
    """The collation to fold case under: ICU's on PostgreSQL if present, else none."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    query = text("SELECT collname FROM pg_collation WHERE collname = :name")
    return session.scalar(query, {"name": UNICODE_COLLATION})


def contains(
    column: InstrumentedAttribute[str | None], needle: str, collation: str | None = None
) -> ColumnElement[bool]:
    """``column`` contains ``needle``, ignoring case (NULL never matches).

    Args:
        column: A text column.
        needle: The text to find, literally.
        collation: Fold case under this collation (see :func:`folding_collation`).
    """
    value: ColumnElement[str | None] = column
    pattern: ColumnElement[str] = literal(f"%{like_literal(needle)}%")
    if collation is not None:
        value, pattern = column.collate(collation), pattern.collate(collation)
    return func.lower(value).like(func.lower(pattern), escape=LIKE_ESCAPE)


def _prompt_matches(needle: str, collation: str | None) -> ColumnElement[bool]:
    return or_(
        contains(Prompt.text, needle, collation),
        contains(Prompt.name, needle, collation),
        contains(Prompt.negative_prompt, needle, collation),
    )


@dataclass(frozen=True)
class SearchHits:
    """What a search found: the newest matches, and how many there are in all."""

    prompts: list[Prompt]
    runs: list[Run]
    prompts_total: int
    runs_total: int


def _count(session: Session, query: Select[tuple[str]]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def find_text(session: Session, needle: str, limit: int) -> SearchHits:
    """Prompts whose text, name or negative prompt contains ``needle``, and their runs.

    Args:
        session: An open session.
        needle: The text to find (literally, ignoring case).
        limit: At most this many prompts and this many runs, newest first.
    """
    matches = _prompt_matches(needle, folding_collation(session))
    prompt_ids = select(Prompt.id).where(matches)
    run_ids = select(Run.id).join(Prompt, Prompt.id == Run.prompt_id).where(matches)
    prompts = session.scalars(
        select(Prompt).where(matches).order_by(Prompt.created_at.desc(), Prompt.id).limit(limit)
    )
    runs = session.scalars(
        select(Run)
        .join(Prompt, Prompt.id == Run.prompt_id)
        .where(matches)
        .order_by(Run.created_at.desc(), Run.id)
        .limit(limit)
    )
    return SearchHits(
        prompts=list(prompts),
        runs=list(runs),
        prompts_total=_count(session, prompt_ids),
        runs_total=_count(session, run_ids),
    )


def matched_fields(prompt: Prompt, needle: str) -> list[str]:
    """Which of a prompt's fields contain ``needle`` (ignoring case), in a fixed order."""
    folded = needle.lower()
    fields = {"text": prompt.text, "name": prompt.name, "negative_prompt": prompt.negative_prompt}
    return [name for name, value in fields.items() if value and folded in value.lower()]
