"""Engine and session factory, with migrations applied safely on start.

A transaction that reads and then writes says which locks it needs by
execution options (:data:`WRITE_LOCK`, :data:`ROW_LOCKS`); the engine's
"begin" event takes them when the transaction starts. On SQLite,
SQLAlchemy rather than the sqlite3 driver opens transactions (the "connect"
and "begin" events, as SQLAlchemy's SQLite documentation recommends), so
that such a transaction can start with ``BEGIN IMMEDIATE``, and every other
one with a plain ``BEGIN``: readers never wait for a writer (WAL).

Alembic is imported only to migrate: whether a migration is due is a
SELECT of the database's revision, compared with the newest revision in
migrations/versions/ (read from the files themselves).
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, column, create_engine, event, inspect, select, table
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cosmos_workflow.database import revisions
from cosmos_workflow.database.revisions import MIGRATIONS_DIR as MIGRATIONS_DIR
from cosmos_workflow.errors import StateError, ValidationFailure

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

# Alembic's table of the database's revision (one row, one column).
VERSION_TABLE = table("alembic_version", column("version_num"))

# How long a SQLite connection waits for another writer's lock.
_BUSY_TIMEOUT_MS = 30000

_LOCKS = "cosmos_locks"
# pg_advisory_xact_lock key of the writers (migrations use 727001).
_WRITERS_KEY = 727002

WRITE_LOCK: dict[str, Any] = {_LOCKS: "writers"}
"""Execution options of a transaction that reads and then writes.

Such transactions take turns, so nothing changes what one read before it
writes (e.g. two runners adding the same runs). On SQLite the transaction
starts with ``BEGIN IMMEDIATE``: it takes the write lock at once, waiting up
to the busy timeout for another writer (a plain ``BEGIN`` would read from a
snapshot that another writer can make stale, then fail with "database is
locked" at its first write). On PostgreSQL it first takes a
transaction-scoped advisory lock that all such transactions share. Pass the
options to ``Session.connection(execution_options=...)`` before the first
statement.
"""

ROW_LOCKS: dict[str, Any] = {_LOCKS: "rows"}
"""Execution options of a transaction whose reads lock the rows they return.

Its statements lock rows themselves (``SELECT ... FOR UPDATE``), which is
enough on PostgreSQL; SQLite locks only whole databases, so there the
transaction starts with ``BEGIN IMMEDIATE`` as under :data:`WRITE_LOCK`.
"""


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """Set up a new SQLite connection; the driver no longer opens transactions."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    _switch_to_wal(cursor)
    # In WAL mode NORMAL never corrupts the database; a power cut may undo the
    # last commits (the runs are then found again from their folders).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # SQLite's own lower() folds ASCII letters only; this one folds every
    # letter, as PostgreSQL's does, so that searches ignore case in any script.
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def _switch_to_wal(cursor: Any, wait_s: float = _BUSY_TIMEOUT_MS / 1000) -> None:
    """Put the database in WAL mode, waiting out others that do the same.

    The switch is stored in the file, so it happens once, on a new file. Two
    connections switching a new file at once deadlock, and SQLite then fails
    one of them at once ("database is locked") instead of calling the busy
    handler; it is tried again for up to ``wait_s`` (the busy timeout), by
    which time the other has switched the file.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode not in ("wal", "memory"):
                logger.warning(
                    "SQLite keeps the database in %s mode (its file system may not allow "
                    "WAL): readers wait for writers",
                    mode,
                )
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(0.02)


def _lower(value: object) -> object:
    """SQL lower() on SQLite: Python's str.lower(); anything but text unchanged."""
    return value.lower() if isinstance(value, str) else value


def _sqlite_begin(connection: Connection) -> None:
    """Open the transaction: ``BEGIN IMMEDIATE`` if it asked for locks, else ``BEGIN``."""
    locks = connection.get_execution_options().get(_LOCKS)
    connection.exec_driver_sql("BEGIN" if locks is None else "BEGIN IMMEDIATE")


def _postgres_begin(connection: Connection) -> None:
    """Take the writers' advisory lock first thing in a :data:`WRITE_LOCK` transaction."""
    if connection.get_execution_options().get(_LOCKS) == "writers":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_WRITERS_KEY})")


def create_db_engine(url: str) -> Engine:
    """Create an engine for ``url``; SQLite files get their folder created.

    Args:
        url: Any SQLAlchemy URL, e.g. ``sqlite:////abs/outputs/cosmos.db``.

    Raises:
        ValidationFailure: the URL cannot be parsed.
    """
    parsed = parse_url(url)
    try:
        return _engine_for(parsed)
    except (NoSuchModuleError, ImportError) as exc:
        raise ValidationFailure(
            f"database.url {parsed.render_as_string(hide_password=True)}: the database driver "
            f"is not installed ({exc}); install it into this environment (e.g. psycopg)"
        ) from exc


def parse_url(url: str) -> URL:
    """Parse a SQLAlchemy URL.

    Raises:
        ValidationFailure: the URL cannot be parsed.
    """
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ValidationFailure(f"database.url is not a valid SQLAlchemy URL: {exc}") from exc


def _engine_for(parsed: URL) -> Engine:
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(parsed, pool_pre_ping=True)
    if parsed.get_backend_name() == "postgresql":
        event.listen(engine, "begin", _postgres_begin)
    return engine


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations between processes that share one database."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        lock_path = Path(url.database).with_suffix(".migrate.lock")
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif url.get_backend_name() == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_advisory_lock(727001)")
            try:
                yield
            finally:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(727001)")
    else:
        yield


def current_revision(engine: Engine) -> str | None:
    """Return the database's alembic revision, or None for an empty database.

    Raises:
        StateError: the database holds more than one revision (branches).
    """
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE.name):
            return None
        found = conn.execute(select(VERSION_TABLE.c.version_num)).scalars().all()
    if len(found) > 1:
        raise StateError(f"the database is at several revisions at once: {', '.join(found)}")
    return found[0] if found else None


def head_revision(engine: Engine | None = None) -> str:
    """Return the newest revision this code knows (see revisions.py).

    Args:
        engine: Not needed (the head is the package's); accepted for callers that pass it.

    Raises:
        StateError: no migrations, or more than one newest revision.
    """
    return revisions.head_revision()


def _backup_sqlite(engine: Engine, revision: str) -> None:
    """Copy a SQLite database with SQLite's online backup (safe in WAL mode)."""
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    source = Path(database)
    backup = source.with_name(f"{source.name}.bak-{revision}")
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(backup)) as dst:
        src.backup(dst)
    logger.info("Backed up database to %s before migrating", backup)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision, safely.

    Migrations run under a lock (file lock on SQLite, advisory lock on
    PostgreSQL) so that concurrent starts do not race. An existing SQLite
    database is copied to ``<name>.bak-<revision>`` before it is changed. A
    database written by a newer version of this package is refused.

    Raises:
        StateError: the database is newer than this code, or cannot be read.
    """
    head = revisions.head_revision()
    try:
        if current_revision(engine) == head:
            return
        with _migration_lock(engine):
            current = current_revision(engine)
            if current == head:
                return
            if current is not None and current not in revisions.known_revisions():
                raise StateError(
                    f"database {engine.url.render_as_string(hide_password=True)} is at revision "
                    f"{current}, which this version of cosmos-workflow does not know; "
                    "upgrade cosmos-workflow"
                )
            if current is not None:
                _backup_sqlite(engine, current)
            logger.info("Migrating database from %s to %s", current or "empty", head)
            from alembic import command

            command.upgrade(_alembic_config(engine), "head")
    except OperationalError as exc:
        raise StateError(
            f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}; check database.url and that the database server is running"
        ) from exc


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)
