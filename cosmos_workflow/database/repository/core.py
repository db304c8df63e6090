"""What every part of the repository shares: transactions, the clock, chunked queries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from cosmos_workflow.database.models import Base, Run, RunStatus
from cosmos_workflow.errors import NotFoundFailure
from cosmos_workflow.utils.clock import Clock

RowT = TypeVar("RowT", bound=Base)

# Bulk updates check the status in SQL; loaded objects are not refreshed.
NO_SYNC = {"synchronize_session": False}
# Ids per IN (...) list: far below every backend's limit on bound parameters.
IN_CHUNK = 500


def stored_among(session: Session, column: InstrumentedAttribute[str], ids: list[str]) -> set[str]:
    """The values among ``ids`` that ``column`` (a primary key) holds, in chunked queries."""
    found: set[str] = set()
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        found.update(session.scalars(select(column).where(column.in_(chunk))))
    return found


def insert_rows(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into the table of ``model`` with one executemany.

    Through the table (Core), without the ORM's per-row bookkeeping: a third
    faster for the thousands of runs and sweep links of a large sweep.
    """
    if rows:
        session.execute(insert(model.__table__), rows)


def enqueue_in(session: Session, run_ids: Iterable[str]) -> list[str]:
    """Queue the pending, failed and cancelled runs among ``run_ids`` (see enqueue)."""
    ids = sorted(set(run_ids))
    waiting = (RunStatus.PENDING, RunStatus.FAILED, RunStatus.CANCELLED)
    queued: set[str] = set()
    # In id order, taking turns with the other writers: two runners that
    # queue overlapping sweeps at once cannot deadlock.
    for start in range(0, len(ids), IN_CHUNK):
        statement = (
            update(Run)
            .where(Run.id.in_(ids[start : start + IN_CHUNK]), Run.status.in_(waiting))
            .values(status=RunStatus.QUEUED, error_class=None, error_message=None)
            .returning(Run.id)
        )
        queued.update(session.scalars(statement, execution_options=NO_SYNC))
    return [run_id for run_id in ids if run_id in queued]


class RepositoryCore:
    """Sessions and the clock, for the parts of :class:`DataRepository`.

    Args:
        sessions: Session factory bound to a migrated engine.
        clock: Time source for created/started/finished timestamps.
    """

    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    @contextmanager
    def _session(self, locks: dict[str, Any] | None = None) -> Iterator[Session]:
        """One transaction; ``locks`` (WRITE_LOCK, ROW_LOCKS) for one that reads then writes.

        Without ``locks`` it takes none at its start: reads never wait for a
        writer.
        """
        with self._sessions() as session, session.begin():
            if locks is not None:
                session.connection(execution_options=locks)
            yield session

    def now(self) -> datetime:
        """The repository's clock (for callers that stamp results)."""
        return self._clock.now()

    def _get(self, model: type[RowT], row_id: str, noun: str) -> RowT:
        """One row by id. Raises NotFoundFailure ("no NOUN with id ...")."""
        with self._session() as session:
            row = session.get(model, row_id)
            if row is None:
                raise NotFoundFailure(f"no {noun} with id {row_id}")
            return row
