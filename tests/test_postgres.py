"""PostgreSQL for real: migrations, and the demo sweep end to end with the CLIs.

Every test gets a new database on the session's throwaway cluster
(tests/postgres.py); the CLIs run (in-process) with
COSMOS_DATABASE__URL pointing at it (psycopg 3 driver).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from conftest import Project
from sqlalchemy import Engine, inspect
from test_database import T0, FakeClock, expected_head, make_prompt, make_spec

from cosmos_workflow.database.engine import (
    MIGRATIONS_DIR,
    create_db_engine,
    current_revision,
    migrate,
    session_factory,
)
from cosmos_workflow.database.models import Base, RunStatus
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.errors import StateError

SECRET = "hunter2-not-for-logs"


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_db_engine(pg_url)
    yield engine
    engine.dispose()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


# ---------------------------------------------------------------- migrations


def test_migrate_an_empty_postgres_database_to_head(engine: Engine) -> None:
    assert current_revision(engine) is None
    migrate(engine)
    assert current_revision(engine) == expected_head()
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    indexes = {ix["name"] for ix in inspector.get_indexes("runs")}
    assert {"ix_runs_status", "ix_runs_prompt_id", "ix_runs_created_at", "ix_runs_job_id"} <= (
        indexes
    )
    # Already at head: a second start changes nothing.
    migrate(engine)
    assert current_revision(engine) == expected_head()


def test_downgrade_and_upgrade_on_postgres_keep_runs_and_links(engine: Engine) -> None:
    migrate(engine)
    repo = DataRepository(session_factory(engine), FakeClock(T0))
    prompt = make_prompt("kept on postgres")
    specs = [make_spec(prompt, seed=seed) for seed in range(3)]
    repo.add_prompts([prompt])
    repo.add_runs(specs)
    repo.add_sweep("sw_0123456789abcdef", "s", {}, [], "/o", specs)
    repo.transition([specs[0].id], RunStatus.QUEUED)
    assert repo.claim([specs[0].id], job_id="jb_kept") == [specs[0].id]

    command.downgrade(alembic_config(engine), "0001")
    assert current_revision(engine) == "0001"
    assert "job_id" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    command.upgrade(alembic_config(engine), "head")
    assert current_revision(engine) == expected_head()
    assert [run.id for _, run in repo.sweep_runs("sw_0123456789abcdef")] == [s.id for s in specs]
    assert repo.get_run(specs[0].id).status is RunStatus.RUNNING
    assert repo.runs_of_job("jb_kept") == []


def test_a_postgres_database_from_a_newer_version_is_refused(
    engine: Engine, pg_cluster: Any
) -> None:
    database = engine.url.database
    with psycopg.connect(pg_cluster.conninfo(database), autocommit=True) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('9f3e_from_the_future')")
    with pytest.raises(StateError) as info:
        migrate(engine)
    assert "9f3e_from_the_future" in str(info.value) and "upgrade cosmos-workflow" in str(
        info.value
    )
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}


# ---------------------------------------------------------------- the CLIs


def files_containing(root: Path, needle: str) -> list[Path]:
    return [
        path for path in root.rglob("*") if path.is_file() and needle.encode() in path.read_bytes()
    ]


def test_the_demo_sweep_runs_on_postgres_and_is_cached_the_second_time(
    project: Project, pg_cluster: Any, pg_database: str
) -> None:
    database = pg_database
    env = {"COSMOS_DATABASE__URL": pg_cluster.url(database, password=SECRET)}

    first = project.batch("+experiment=demo", env=env)
    assert first.returncode == 0, first.stderr
    assert "12 executed (12 succeeded, 0 failed), 0 cached" in first.stdout
    assert len(project.ledger_lines()) == 12

    second = project.batch("+experiment=demo", env=env)
    assert second.returncode == 0, second.stderr
    assert "0 executed (0 succeeded, 0 failed), 12 cached" in second.stdout
    assert len(project.ledger_lines()) == 12, "a cached run was executed again"

    listed = project.cosmos("list", "runs", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert len(runs) == 12 and {run["status"] for run in runs} == {"succeeded"}
    assert all(Path(run["output_dir"]).is_dir() for run in runs)
    # The state is in PostgreSQL, not in a SQLite file beside the outputs.
    assert not (project.outputs / "cosmos.db").exists()
    with psycopg.connect(pg_cluster.conninfo(database)) as conn:
        stored = conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
    assert stored == [("succeeded", 12)]

    status = project.cosmos("status", env=env)
    assert status.returncode == 0, status.stderr
    label = f"postgresql+psycopg://postgres:***@127.0.0.1:{pg_cluster.port}/{database}"
    assert f"database: {label}" in status.stdout

    printed = [first, second, listed, status]
    assert all(SECRET not in done.stdout + done.stderr for done in printed)
    assert files_containing(project.root, SECRET) == []


def test_a_postgres_url_with_a_password_is_never_printed_in_errors(
    project: Project, pg_cluster: Any
) -> None:
    """A database that does not exist: the error names it, without the password."""
    env = {"COSMOS_DATABASE__URL": pg_cluster.url("no_such_database", password=SECRET)}
    done = project.batch("+experiment=demo", env=env)
    assert done.returncode == 1, done.stderr
    assert "no_such_database" in done.stderr and "Traceback" not in done.stderr
    listed = project.cosmos("list", "runs", env=env)
    assert listed.returncode == 1 and "no_such_database" in listed.stderr
    for result in (done, listed):
        assert SECRET not in result.stdout + result.stderr
    assert files_containing(project.root, SECRET) == []
