"""Alembic environment: uses the engine handed over by cosmos_workflow.

On SQLite, batch migrations rebuild tables (copy, drop, rename). With
foreign keys enforced, dropping ``runs`` would cascade into ``sweep_runs``
and delete every link, so enforcement is off while migrations run and the
foreign keys are checked before the migration commits.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cosmos_workflow.database.engine import WRITE_LOCK
from cosmos_workflow.database.models import Base
from cosmos_workflow.errors import StateError

engine = context.config.attributes["engine"]


def _set_foreign_keys(connection: Connection, enabled: bool) -> None:
    """Turn SQLite's foreign-key enforcement on or off, outside any transaction.

    The pragma does nothing inside a transaction, and every statement sent
    through ``connection`` would begin one (engine.py emits the BEGIN), so it
    goes to the driver's connection, which is in autocommit mode.
    """
    pragma = f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}"
    connection.connection.driver_connection.execute(pragma)


def _check_foreign_keys(connection: Connection) -> None:
    """Fail the migration if it left rows that violate a foreign key.

    Raises:
        StateError: ``PRAGMA foreign_key_check`` reported rows.
    """
    violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if violations:
        raise StateError(
            f"the migration broke {len(violations)} foreign key(s), e.g. {tuple(violations[0])}; "
            "nothing was committed"
        )


def _run_migrations(connection: Connection, sqlite: bool) -> None:
    # Reads the current revision, then changes the schema: one writer at a time.
    connection.execution_options(**WRITE_LOCK)
    with connection.begin():
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
        )
        context.run_migrations()
        if sqlite:
            _check_foreign_keys(connection)


with engine.connect() as migration_connection:
    is_sqlite = migration_connection.dialect.name == "sqlite"
    if is_sqlite:
        _set_foreign_keys(migration_connection, enabled=False)
    try:
        _run_migrations(migration_connection, is_sqlite)
    finally:
        if is_sqlite:
            _set_foreign_keys(migration_connection, enabled=True)
