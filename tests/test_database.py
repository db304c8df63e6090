"""The database: migrations, the run status machine and DataRepository queries.

Real SQLite files under tmp_path; the repository tests run on SQLite and on a
fresh database of a real PostgreSQL cluster (tests/postgres.py). Time comes
from an injected fake clock.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import OperationalError, StatementError

from cosmos_workflow.database.engine import (
    MIGRATIONS_DIR,
    _switch_to_wal,
    create_db_engine,
    current_revision,
    migrate,
    session_factory,
)
from cosmos_workflow.database.models import Base, RunStatus
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.errors import NotFoundFailure, StateError
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, ResolvedPrompt, RunSpec

UTC = timezone.utc
T0 = datetime(2031, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


class FakeClock:
    """A clock whose time only moves when the test says so."""

    def __init__(self, start: datetime) -> None:
        self.current = start
        self.mono = 100.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        self.mono += seconds
        return self.current


def make_prompt(text: str, tag: str = "a") -> ResolvedPrompt:
    inputs = PromptInputSet(
        video=InputFile(Path(f"/data/{tag}/color.mp4"), tag * 64),
        controls={"depth": InputFile(Path(f"/data/{tag}/depth.mp4"), "d" * 63 + tag)},
    )
    return ResolvedPrompt(name=f"scene-{tag}", text=text, negative=None, inputs=inputs)


def make_spec(prompt: ResolvedPrompt, seed: int, depth: float = 0.5) -> RunSpec:
    model = {
        "adapter": "simulated",
        "version": "1",
        "seed": seed,
        "num_steps": 35,
        "weights": {"depth": depth},
    }
    return RunSpec(prompt=prompt, model=model, varying={"model.seed": seed})


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def open_repo(path: Path, clock: FakeClock) -> tuple[Engine, DataRepository]:
    engine = create_db_engine(sqlite_url(path))
    migrate(engine)
    return engine, DataRepository(session_factory(engine), clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def repo(db_url: str, clock: FakeClock) -> DataRepository:
    engine = create_db_engine(db_url)
    migrate(engine)
    yield DataRepository(session_factory(engine), clock)
    engine.dispose()


def query(url: str, sql: str) -> list[tuple]:
    """Rows of ``sql``, read through a connection of its own."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


@contextmanager
def other_writer(url: str, sql: str, **params: object) -> Iterator[Connection]:
    """Another client that ran ``sql`` in a transaction it has not committed yet.

    Until the caller commits it, that client holds the write lock (SQLite)
    or the locks of the rows it changed (PostgreSQL).
    """
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            conn.begin()
            conn.execute(text(sql), params)
            yield conn
    finally:
        engine.dispose()


def expected_head() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def backups_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".bak-" in p.name)


# ---------------------------------------------------------------- migrations


def test_many_connections_opening_a_new_database_at_once_all_get_it(tmp_path: Path) -> None:
    """Two runners started together on a new project both open its database.

    Switching a new SQLite file to WAL deadlocks when two connections do it at
    once, and SQLite fails one at once, without waiting (CI saw a runner exit
    with "database is locked"). Rounds of eight openers started by a barrier
    hit that race in about one round in twenty.
    """
    openers, rounds = 8, 150
    for number in range(rounds):
        db_file = tmp_path / f"round{number}" / "cosmos.db"
        barrier = threading.Barrier(openers)
        failures: list[Exception] = []
        engines = [create_db_engine(sqlite_url(db_file)) for _ in range(openers)]

        def open_it(
            engine: Engine,
            barrier: threading.Barrier = barrier,
            failures: list[Exception] = failures,
        ) -> None:
            barrier.wait()
            try:
                with engine.connect() as conn:
                    mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                    assert mode == "wal"
            except (OperationalError, AssertionError) as exc:
                failures.append(exc)

        threads = [threading.Thread(target=open_it, args=(engine,)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for engine in engines:
            engine.dispose()
        assert failures == [], f"round {number}: {failures[0]!r}"


class WalCursor:
    """A SQLite cursor whose switch to WAL fails with the given errors first."""

    def __init__(self, errors: list[str]) -> None:
        self.errors, self.calls = errors, 0

    def execute(self, sql: str) -> WalCursor:
        assert sql == "PRAGMA journal_mode=WAL"
        self.calls += 1
        assert self.calls < 10_000, "retried without end"
        if self.errors:
            raise sqlite3.OperationalError(self.errors.pop(0))
        return self

    def fetchone(self) -> tuple[str]:
        return ("wal",)


def test_the_switch_to_wal_is_tried_again_while_locked_and_only_then() -> None:
    locked = WalCursor(["database is locked"] * 3)
    _switch_to_wal(locked)
    assert locked.calls == 4
    broken = WalCursor(["disk I/O error", "database is locked"])
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _switch_to_wal(broken)
    assert broken.calls == 1
    # Locked for longer than the wait: the error, after trying for that long.
    began = time.monotonic()
    forever = WalCursor(["database is locked"] * 9_000)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _switch_to_wal(forever, wait_s=0.3)
    assert 0.3 <= time.monotonic() - began < 5 and forever.calls > 2


def test_migrate_empty_database_gives_the_model_schema(tmp_path: Path) -> None:
    db_file = tmp_path / "not" / "yet" / "there" / "cosmos.db"
    engine = create_db_engine(sqlite_url(db_file))
    assert current_revision(engine) is None
    migrate(engine)
    try:
        assert db_file.is_file()
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert current_revision(engine) == expected_head()
        tables = set(inspect(engine).get_table_names())
        assert tables == set(Base.metadata.tables) | {"alembic_version"}
        assert backups_in(db_file.parent) == []
    finally:
        engine.dispose()


def test_schema_has_indexes_for_status_prompt_sweep_and_creation_time(tmp_path: Path) -> None:
    engine = create_db_engine(sqlite_url(tmp_path / "cosmos.db"))
    migrate(engine)
    try:
        inspector = inspect(engine)

        def indexed(table: str) -> set[tuple[str, ...]]:
            found = {tuple(ix["column_names"]) for ix in inspector.get_indexes(table)}
            found.add(tuple(inspector.get_pk_constraint(table)["constrained_columns"]))
            return found

        runs = indexed("runs")
        assert {("status",), ("prompt_id",), ("created_at",)} <= runs
        links = indexed("sweep_runs")
        assert ("run_id",) in links
        assert any(cols[0] == "sweep_id" for cols in links)
        assert ("created_at",) in indexed("prompts")
        assert ("created_at",) in indexed("sweeps")
    finally:
        engine.dispose()


def test_migrating_twice_is_harmless_and_keeps_data(tmp_path: Path, clock: FakeClock) -> None:
    db_file = tmp_path / "cosmos.db"
    engine, repo = open_repo(db_file, clock)
    prompt = make_prompt("kept across restarts")
    spec = make_spec(prompt, seed=3)
    repo.add_prompts([prompt])
    repo.add_runs([spec])
    engine.dispose()

    # A second start on the same file (already at head): no change, no backup.
    engine, repo = open_repo(db_file, clock)
    migrate(engine)
    try:
        assert current_revision(engine) == expected_head()
        assert repo.get_run(spec.id).prompt_id == prompt.id
        assert [p.id for p in repo.list_prompts()] == [prompt.id]
        assert backups_in(tmp_path) == []
    finally:
        engine.dispose()


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    db_file = tmp_path / "cosmos.db"
    future = "9f3e_from_the_future"
    with sqlite3.connect(db_file) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (future,))
    conn.close()

    engine = create_db_engine(sqlite_url(db_file))
    try:
        with pytest.raises(StateError) as info:
            migrate(engine)
        assert future in str(info.value)
    finally:
        engine.dispose()

    with sqlite3.connect(db_file) as conn:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    conn.close()
    assert tables == {"alembic_version"}
    assert version == [(future,)]


def test_a_database_at_0001_is_upgraded_with_a_backup_and_keeps_its_runs(
    tmp_path: Path, clock: FakeClock
) -> None:
    db_file = tmp_path / "cosmos.db"
    engine = create_db_engine(sqlite_url(db_file))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    command.upgrade(config, "0001")
    engine.dispose()
    with sqlite3.connect(db_file) as conn:
        conn.execute(
            "INSERT INTO prompts (id, name, text, inputs, created_at) "
            "VALUES ('ps_old', 'old', 'an old prompt', '{}', '2030-01-01 00:00:00')"
        )
        conn.execute(
            "INSERT INTO runs (id, prompt_id, adapter, spec, status, created_at, attempts) "
            "VALUES ('rs_old', 'ps_old', 'simulated', '{}', 'succeeded', "
            "'2030-01-01 00:00:00', 1)"
        )
    conn.close()

    engine, repo = open_repo(db_file, clock)
    try:
        assert current_revision(engine) == expected_head()
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("runs")}
        assert "ix_runs_job_id" in indexes
        old = repo.get_run("rs_old")
        assert old.status is RunStatus.SUCCEEDED and old.job_id is None
    finally:
        engine.dispose()
    assert backups_in(tmp_path) == ["cosmos.db.bak-0001"]
    with sqlite3.connect(tmp_path / "cosmos.db.bak-0001") as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    conn.close()
    assert "job_id" not in columns and version == [("0001",)]


def test_downgrading_and_upgrading_again_keeps_sweep_links_and_job_ids(
    tmp_path: Path, clock: FakeClock
) -> None:
    db_file = tmp_path / "cosmos.db"
    engine, repo = open_repo(db_file, clock)
    prompt = make_prompt("linked")
    specs = [make_spec(prompt, seed=seed) for seed in range(3)]
    repo.add_prompts([prompt])
    repo.add_runs(specs)
    repo.add_sweep("sw_0123456789abcdef", "s", {}, [], "/o", specs)
    repo.transition([specs[0].id], RunStatus.QUEUED)
    repo.claim([specs[0].id], job_id="jb_kept")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine

    def links() -> list[tuple[str, str]]:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            rows = conn.exec_driver_sql("SELECT sweep_id, run_id FROM sweep_runs ORDER BY run_id")
            return [tuple(row) for row in rows]

    expected = sorted(("sw_0123456789abcdef", spec.id) for spec in specs)
    try:
        assert links() == expected
        command.downgrade(config, "0001")
        assert current_revision(engine) == "0001"
        assert links() == expected
        command.upgrade(config, "head")
        assert current_revision(engine) == expected_head()
        assert links() == expected
        assert [run.id for run in repo.runs_of_job("jb_kept")] == []
        assert len(repo.sweep_runs("sw_0123456789abcdef")) == 3
        assert repo.get_run(specs[0].id).status is RunStatus.RUNNING
    finally:
        engine.dispose()


# ---------------------------------------------------------------- status machine


def stored(repo: DataRepository, run_id: str) -> dict[str, object]:
    run = repo.get_run(run_id)
    return {
        "status": run.status,
        "attempts": run.attempts,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "exit_code": run.exit_code,
        "error_class": run.error_class,
        "error_message": run.error_message,
    }


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


@pytest.fixture
def one_run(repo: DataRepository) -> str:
    prompt = make_prompt("a misty forest")
    spec = make_spec(prompt, seed=1)
    repo.add_prompts([prompt])
    repo.add_runs([spec])
    return spec.id


def test_happy_path_sets_timestamps_from_the_clock(
    repo: DataRepository, clock: FakeClock, one_run: str
) -> None:
    row = stored(repo, one_run)
    assert row["status"] is RunStatus.PENDING
    assert row["attempts"] == 0
    assert row["created_at"] == T0
    assert row["started_at"] is None and row["finished_at"] is None

    clock.advance(5)
    repo.transition([one_run], RunStatus.QUEUED)
    row = stored(repo, one_run)
    assert row["status"] is RunStatus.QUEUED
    assert row["started_at"] is None and row["attempts"] == 0

    # An aware non-UTC time is stored as the same instant, read back in UTC.
    started = clock.advance(7).astimezone(timezone(timedelta(hours=2)))
    clock.current = started
    repo.transition([one_run], RunStatus.RUNNING, target="local", gpus="0")
    row = stored(repo, one_run)
    assert row["status"] is RunStatus.RUNNING
    assert row["attempts"] == 1
    assert row["started_at"] == started
    assert_utc(row["started_at"])
    assert row["finished_at"] is None

    finished = clock.advance(42.5)
    repo.transition([one_run], RunStatus.SUCCEEDED, exit_code=0)
    row = stored(repo, one_run)
    assert row["status"] is RunStatus.SUCCEEDED
    assert row["started_at"] == started
    assert row["finished_at"] == finished
    assert row["created_at"] == T0
    assert row["exit_code"] == 0
    assert row["attempts"] == 1
    for key in ("created_at", "started_at", "finished_at"):
        assert_utc(row[key])
    run = repo.get_run(one_run)
    assert (run.target, run.gpus) == ("local", "0")


@pytest.mark.parametrize(
    ("path", "forbidden"),
    [
        ([], RunStatus.SUCCEEDED),  # pending -> succeeded
        ([], RunStatus.RUNNING),  # pending -> running (must be queued first)
        ([RunStatus.QUEUED], RunStatus.FAILED),  # queued -> failed
        ([RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED], RunStatus.RUNNING),
        ([RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED], RunStatus.QUEUED),
        ([RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED], RunStatus.FAILED),
        ([RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.FAILED], RunStatus.SUCCEEDED),
    ],
)
def test_forbidden_transition_raises_and_leaves_the_row_unchanged(
    repo: DataRepository,
    clock: FakeClock,
    one_run: str,
    path: list[RunStatus],
    forbidden: RunStatus,
) -> None:
    for status in path:
        clock.advance(1)
        repo.transition([one_run], status)
    before = stored(repo, one_run)
    clock.advance(1000)
    with pytest.raises(StateError) as info:
        repo.transition([one_run], forbidden, exit_code=99, error_message="should not land")
    assert one_run in str(info.value)
    assert stored(repo, one_run) == before


def test_a_forbidden_transition_in_a_batch_changes_no_run(
    repo: DataRepository, clock: FakeClock
) -> None:
    prompt = make_prompt("batch")
    ready, stuck = make_spec(prompt, seed=1), make_spec(prompt, seed=2)
    repo.add_prompts([prompt])
    repo.add_runs([ready, stuck])
    repo.transition([ready.id], RunStatus.QUEUED)
    before = {run_id: stored(repo, run_id) for run_id in (ready.id, stuck.id)}

    clock.advance(10)
    with pytest.raises(StateError):
        repo.transition([ready.id, stuck.id], RunStatus.RUNNING)  # stuck is still pending
    assert {run_id: stored(repo, run_id) for run_id in (ready.id, stuck.id)} == before


def test_retry_after_failure_counts_a_second_attempt(
    repo: DataRepository, clock: FakeClock, one_run: str
) -> None:
    repo.transition([one_run], RunStatus.QUEUED)
    first_start = clock.advance(1)
    repo.transition([one_run], RunStatus.RUNNING)
    failed_at = clock.advance(3)
    repo.transition(
        [one_run], RunStatus.FAILED, exit_code=137, error_class="execution", error_message="OOM"
    )
    row = stored(repo, one_run)
    assert row["status"] is RunStatus.FAILED
    assert (row["exit_code"], row["error_class"], row["error_message"]) == (137, "execution", "OOM")
    assert row["started_at"] == first_start
    assert row["finished_at"] == failed_at

    clock.advance(60)
    repo.transition([one_run], RunStatus.QUEUED)  # failed -> queued is allowed (retry)
    second_start = clock.advance(1)
    repo.transition([one_run], RunStatus.RUNNING)
    row = stored(repo, one_run)
    assert row["status"] is RunStatus.RUNNING
    assert row["attempts"] == 2
    assert row["started_at"] == second_start
    assert row["finished_at"] is None
    assert (row["exit_code"], row["error_class"], row["error_message"]) == (None, None, None)

    done = clock.advance(2)
    repo.transition([one_run], RunStatus.SUCCEEDED, exit_code=0)
    row = stored(repo, one_run)
    assert (row["status"], row["attempts"], row["finished_at"]) == (RunStatus.SUCCEEDED, 2, done)


def test_cancelled_run_can_be_queued_again(
    repo: DataRepository, clock: FakeClock, one_run: str
) -> None:
    repo.transition([one_run], RunStatus.QUEUED)
    cancelled_at = clock.advance(1)
    repo.transition([one_run], RunStatus.CANCELLED)
    row = stored(repo, one_run)
    assert row["finished_at"] == cancelled_at
    assert row["attempts"] == 0
    repo.transition([one_run], RunStatus.QUEUED)
    assert stored(repo, one_run)["status"] is RunStatus.QUEUED


@pytest.mark.parametrize(
    ("path", "again"),
    [
        ([RunStatus.QUEUED, RunStatus.RUNNING], RunStatus.RUNNING),
        ([RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED], RunStatus.SUCCEEDED),
    ],
)
def test_re_entering_the_current_status_changes_nothing(
    repo: DataRepository,
    clock: FakeClock,
    one_run: str,
    path: list[RunStatus],
    again: RunStatus,
) -> None:
    """running -> running is no new attempt, succeeded -> succeeded no new finish time.

    Either refused (StateError) or a no-op; never a changed row.
    """
    for status in path:
        clock.advance(1)
        repo.transition([one_run], status)
    before = stored(repo, one_run)
    clock.advance(30)
    try:
        repo.transition([one_run], again)
    except StateError:
        pass
    assert stored(repo, one_run) == before


def test_transition_of_unknown_run_is_not_found(repo: DataRepository) -> None:
    with pytest.raises(NotFoundFailure):
        repo.transition(["rs_0000000000000000"], RunStatus.QUEUED)


def test_naive_datetimes_are_refused(repo: DataRepository, clock: FakeClock) -> None:
    prompt = make_prompt("naive")
    clock.current = datetime(2031, 1, 1, 12, 0, 0)  # no tzinfo
    with pytest.raises((ValueError, StatementError)) as info:
        repo.add_prompts([prompt])
    assert "naive" in str(info.value)
    assert repo.list_prompts() == []

    clock.current = T0
    repo.add_prompts([prompt])
    spec = make_spec(prompt, seed=1)
    repo.add_runs([spec])
    repo.transition([spec.id], RunStatus.QUEUED)
    clock.current = datetime(2031, 1, 1, 12, 0, 0)
    with pytest.raises((ValueError, StatementError)):
        repo.transition([spec.id], RunStatus.RUNNING)  # would stamp started_at
    row = stored(repo, spec.id)
    assert (row["status"], row["attempts"], row["started_at"]) == (RunStatus.QUEUED, 0, None)


# ---------------------------------------------------------------- sweeps and deletion


def test_run_shared_by_two_sweeps_and_cascading_prompt_delete(
    db_url: str, repo: DataRepository
) -> None:
    forest, street = make_prompt("forest", "a"), make_prompt("street", "b")
    f1, f2 = make_spec(forest, 1), make_spec(forest, 2)
    s1, s2 = make_spec(street, 1), make_spec(street, 2)
    repo.add_prompts([forest, street])
    repo.add_runs([f1, f2, s1, s2])

    assert repo.add_sweep("sw_aaaaaaaaaaaaaaaa", "first", {}, [], "/o/a", [f1, f2, s1]) is True
    assert repo.add_sweep("sw_bbbbbbbbbbbbbbbb", "second", {}, ["x=1"], "/o/b", [s1, f2, s2])
    # The same sweep again (same runs, as its id implies) adds nothing.
    assert repo.add_sweep("sw_bbbbbbbbbbbbbbbb", "second", {}, [], "/o/b", [s1, f2, s2]) is False
    assert len(repo.sweep_runs("sw_bbbbbbbbbbbbbbbb")) == 3

    assert sorted(repo.sweeps_of_run(f2.id)) == ["sw_aaaaaaaaaaaaaaaa", "sw_bbbbbbbbbbbbbbbb"]
    assert sorted(repo.sweeps_of_run(s1.id)) == ["sw_aaaaaaaaaaaaaaaa", "sw_bbbbbbbbbbbbbbbb"]
    assert repo.sweeps_of_run(f1.id) == ["sw_aaaaaaaaaaaaaaaa"]
    assert repo.sweeps_of_run(s2.id) == ["sw_bbbbbbbbbbbbbbbb"]

    second = repo.sweep_runs("sw_bbbbbbbbbbbbbbbb")
    assert [run.id for _, run in second] == [s1.id, f2.id, s2.id]
    assert [link.params for link, _ in second] == [s1.varying, f2.varying, s2.varying]
    assert repo.sweep_status_counts("sw_bbbbbbbbbbbbbbbb")["pending"] == 3

    deleted = repo.delete_prompt(forest.id)
    assert sorted(r.id for r in deleted) == sorted([f1.id, f2.id])
    assert sorted(r.id for r in repo.list_runs()) == sorted([s1.id, s2.id])
    assert [p.id for p in repo.list_prompts()] == [street.id]
    for run_id in (f1.id, f2.id):
        with pytest.raises(NotFoundFailure):
            repo.get_run(run_id)
    # Sweeps stay, with only the links of the runs that remain.
    assert [run.id for _, run in repo.sweep_runs("sw_aaaaaaaaaaaaaaaa")] == [s1.id]
    assert [run.id for _, run in repo.sweep_runs("sw_bbbbbbbbbbbbbbbb")] == [s1.id, s2.id]
    assert sum(repo.sweep_status_counts("sw_aaaaaaaaaaaaaaaa").values()) == 1

    repo.delete_run(s1.id)
    assert repo.sweep_runs("sw_aaaaaaaaaaaaaaaa") == []
    assert query(db_url, "SELECT sweep_id, run_id FROM sweep_runs") == [
        ("sw_bbbbbbbbbbbbbbbb", s2.id)
    ]

    # Running the sweep again re-creates the deleted runs: their links come back
    # at their places, and the sweep's own record is not replaced.
    repo.add_prompts([forest, street])
    repo.add_runs([f2, s1])
    assert repo.add_sweep("sw_bbbbbbbbbbbbbbbb", "renamed", {}, [], "/o/x", [s1, f2, s2]) is False
    assert [run.id for _, run in repo.sweep_runs("sw_bbbbbbbbbbbbbbbb")] == [s1.id, f2.id, s2.id]
    assert repo.get_sweep("sw_bbbbbbbbbbbbbbbb").name == "second"


def test_adding_the_same_runs_again_keeps_their_state(
    repo: DataRepository, clock: FakeClock, one_run: str
) -> None:
    repo.transition([one_run], RunStatus.QUEUED)
    repo.transition([one_run], RunStatus.RUNNING)
    repo.transition([one_run], RunStatus.SUCCEEDED)
    before = stored(repo, one_run)
    clock.advance(100)
    spec = make_spec(make_prompt("a misty forest"), seed=1)
    assert spec.id == one_run
    assert repo.add_prompts([spec.prompt]) == 0
    repo.add_runs([spec])
    assert stored(repo, one_run) == before
    assert len(repo.list_runs()) == 1


def table_rows(url: str, table: str) -> list[tuple]:
    """Every row of ``table``, as the database stores it, in primary-key order."""
    return query(url, f"SELECT * FROM {table} ORDER BY 1, 2")


def test_thousands_of_runs_are_stored_once_and_stored_runs_keep_their_state(
    db_url: str, repo: DataRepository, clock: FakeClock
) -> None:
    prompts = [make_prompt(f"scene {tag}", tag) for tag in "abc"]
    specs = [
        make_spec(p, seed, depth) for p in prompts for seed in range(700) for depth in (0.3, 0.6)
    ]
    # An earlier, smaller sweep stored some of these runs and executed a few.
    early = [s for s in specs if s.prompt is not prompts[2]][::9]
    assert repo.add_prompts(prompts[:2]) == 2
    repo.add_runs(early)
    assert repo.add_sweep("sw_eeeeeeeeeeeeeeee", "early", {}, [], "/o/e", early) is True
    moved = [s.id for s in early[:40]]
    repo.transition(moved, RunStatus.QUEUED)
    repo.transition(moved[:25], RunStatus.RUNNING, target="local")
    repo.transition(moved[:10], RunStatus.SUCCEEDED, exit_code=0)
    before = {s.id: stored(repo, s.id) for s in early}

    clock.advance(60)
    assert repo.add_prompts(run.prompt for run in specs) == 1
    repo.add_runs(iter(specs + specs[:50]))
    assert repo.add_sweep("sw_bbbbbbbbbbbbbbbb", "big", {"n": 1}, ["x=1"], "/o/b", specs) is True

    assert len(specs) == 4200
    counts = repo.counts_by_status()
    assert sum(counts.values()) == len(specs)
    assert (counts["succeeded"], counts["running"], counts["queued"]) == (10, 15, 15)
    assert {s.id: stored(repo, s.id) for s in early} == before
    runs = {run.id: run for run in repo.list_runs()}
    for spec in specs[1::97]:
        if spec.id not in before:
            run = runs[spec.id]
            assert (run.status, run.created_at, run.attempts) == (
                RunStatus.PENDING,
                T0 + timedelta(seconds=60),
                0,
            )
            assert (run.prompt_id, run.adapter, run.spec) == (
                spec.prompt.id,
                "simulated",
                spec.to_dict(),
            )
    links = repo.sweep_runs("sw_bbbbbbbbbbbbbbbb")
    assert [run.id for _, run in links] == [s.id for s in specs]
    assert [(link.position, link.params) for link, _ in links] == [
        (position, s.varying) for position, s in enumerate(specs)
    ]
    assert [run.id for _, run in repo.sweep_runs("sw_eeeeeeeeeeeeeeee")] == [s.id for s in early]

    # Storing the same sweep again changes nothing.
    snapshot = {
        table: table_rows(db_url, table) for table in ("prompts", "runs", "sweeps", "sweep_runs")
    }
    clock.advance(60)
    assert repo.add_prompts(run.prompt for run in specs) == 0
    repo.add_runs(specs)
    assert repo.add_sweep("sw_bbbbbbbbbbbbbbbb", "big", {}, [], "/o/x", specs) is False
    assert {table: table_rows(db_url, table) for table in snapshot} == snapshot

    # Deleted runs come back as pending, with their links at their old places.
    gone = specs[5::400]
    for spec in gone:
        repo.delete_run(spec.id)
    assert sum(repo.counts_by_status().values()) == len(specs) - len(gone)
    repo.add_runs(specs)
    assert repo.add_sweep("sw_bbbbbbbbbbbbbbbb", "big", {}, [], "/o/b", specs) is False
    links = repo.sweep_runs("sw_bbbbbbbbbbbbbbbb")
    assert [(link.position, run.id) for link, run in links] == [
        (position, s.id) for position, s in enumerate(specs)
    ]
    assert all(repo.get_run(s.id).status is RunStatus.PENDING for s in gone)


# ---------------------------------------------------------------- find_ids


def test_find_ids_treats_wildcards_literally(repo: DataRepository) -> None:
    prompt = make_prompt("ids")
    specs = [make_spec(prompt, seed) for seed in (1, 2, 3)]
    repo.add_prompts([prompt])
    repo.add_runs(specs)
    repo.add_sweep("sw_0123456789abcdef", "s", {}, [], "/o", specs)
    run_id = specs[0].id

    assert repo.find_ids(run_id) == [run_id]
    assert repo.find_ids(run_id[:8]) == [s.id for s in specs if s.id.startswith(run_id[:8])]
    assert sorted(repo.find_ids("rs_")) == sorted(s.id for s in specs)
    assert repo.find_ids("ps_") == [prompt.id]
    assert repo.find_ids("sw_0123") == ["sw_0123456789abcdef"]

    # '_' and '%' are characters of the prefix, not LIKE wildcards.
    wildcard_prefix = run_id[:5] + "_" + run_id[6:10]
    assert wildcard_prefix != run_id[:10]
    assert repo.find_ids(wildcard_prefix) == []
    assert repo.find_ids("_s_") == []
    assert repo.find_ids("%") == []
    assert repo.find_ids("rs%") == []
    assert repo.find_ids(run_id[:4] + "%") == []
    assert repo.find_ids("rs\\") == []


# ---------------------------------------------------------------- cancellation


def queued_runs(repo: DataRepository, count: int) -> list[str]:
    prompt = make_prompt("cancellable")
    specs = [make_spec(prompt, seed=seed) for seed in range(count)]
    repo.add_prompts([prompt])
    repo.add_runs(specs)
    ids = [spec.id for spec in specs]
    repo.transition(ids, RunStatus.QUEUED)
    return ids


def test_claim_starts_queued_runs_as_one_job_and_skips_cancelled_ones(
    repo: DataRepository,
) -> None:
    first, second, third = queued_runs(repo, 3)
    assert repo.cancel_unfinished([second], "cancelled by the user") == [second]
    started = repo.claim([first, second, third], target="local", gpus="0", job_id="jb_1")
    assert started == [first, third]
    assert [run.id for run in repo.runs_of_job("jb_1")] == sorted([first, third])
    assert repo.get_run(first).status is RunStatus.RUNNING and repo.get_run(first).attempts == 1
    skipped = repo.get_run(second)
    assert skipped.status is RunStatus.CANCELLED and skipped.job_id is None
    assert skipped.attempts == 0
    assert repo.cancelled_among([third, second, first]) == [second]


def test_settle_never_overwrites_a_cancelled_run(repo: DataRepository) -> None:
    kept, cancelled = queued_runs(repo, 2)
    repo.claim([kept, cancelled], job_id="jb_2")
    repo.cancel_unfinished([cancelled], "cancelled by cosmos kill")
    assert repo.settle(cancelled, RunStatus.FAILED, error_class="execution") is False
    assert repo.settle(cancelled, RunStatus.SUCCEEDED, exit_code=0) is False
    run = repo.get_run(cancelled)
    assert run.status is RunStatus.CANCELLED
    assert (run.error_class, run.error_message) == ("cancelled", "cancelled by cosmos kill")
    assert repo.settle(kept, RunStatus.SUCCEEDED, exit_code=0) is True
    assert repo.get_run(kept).status is RunStatus.SUCCEEDED
    with pytest.raises(StateError):
        repo.settle(kept, RunStatus.FAILED)


def race_with_a_kill(
    url: str, run_id: str, call: Callable[[], object], waits: bool = True
) -> object:
    """Run ``call`` while another client holds its locks with a kill.

    The other client marks ``run_id`` cancelled inside a transaction, ``call``
    starts in a thread and the kill commits 0.3 s later. ``call`` must still
    be waiting for the kill's locks then if ``waits``, else it must have
    returned already. Returns what ``call`` returned.
    """
    outcome: list[object] = []
    update = "UPDATE runs SET status = 'cancelled' WHERE id = :id"
    with other_writer(url, update, id=run_id) as kill:
        worker = threading.Thread(target=lambda: outcome.append(call()))
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive() is waits, (
            "the repository did not wait for the kill's locks"
            if waits
            else "the repository waited for a row that it should skip"
        )
        kill.commit()
        worker.join(timeout=30)
    assert len(outcome) == 1
    return outcome[0]


def test_settle_loses_the_race_to_a_concurrent_kill(db_url: str, repo: DataRepository) -> None:
    (run_id,) = queued_runs(repo, 1)
    repo.claim([run_id], job_id="jb_race")
    settled = race_with_a_kill(
        db_url,
        run_id,
        lambda: repo.settle(run_id, RunStatus.SUCCEEDED, exit_code=0, output_dir="/o/x"),
    )
    assert settled is False
    run = repo.get_run(run_id)
    assert run.status is RunStatus.CANCELLED
    assert (run.exit_code, run.output_dir) == (None, None)


def test_claim_loses_the_race_to_a_concurrent_kill(db_url: str, repo: DataRepository) -> None:
    """SQLite: the claim waits for the kill's write lock, then sees the run cancelled.

    PostgreSQL: the claim skips the row that the kill has locked (SKIP LOCKED)
    and does not wait; the run ends up cancelled, never started.
    """
    cancelled, kept = queued_runs(repo, 2)
    started = race_with_a_kill(
        db_url,
        cancelled,
        lambda: repo.claim([cancelled, kept], job_id="jb_r"),
        waits=db_url.startswith("sqlite"),
    )
    assert started == [kept]
    run = repo.get_run(cancelled)
    assert (run.status, run.attempts, run.job_id) == (RunStatus.CANCELLED, 0, None)
    assert repo.get_run(kept).status is RunStatus.RUNNING


def test_cancel_unfinished_leaves_a_run_that_finished_meanwhile(
    db_url: str, repo: DataRepository
) -> None:
    finished, running = queued_runs(repo, 2)
    repo.claim([finished, running], job_id="jb_c")
    outcome: list[list[str]] = []
    update = "UPDATE runs SET status = 'succeeded' WHERE id = :id"
    with other_writer(db_url, update, id=finished) as finish:
        worker = threading.Thread(
            target=lambda: outcome.append(repo.cancel_unfinished([finished, running], "kill"))
        )
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive(), "cancel_unfinished did not wait for the other writer"
        finish.commit()
        worker.join(timeout=30)
    assert outcome == [[running]]
    assert repo.get_run(finished).status is RunStatus.SUCCEEDED
    assert repo.get_run(running).status is RunStatus.CANCELLED


def running_job(repo: DataRepository, runner_id: str, count: int = 3) -> list[str]:
    """Runs of one job ``jb_orphan`` that runner ``runner_id`` executes."""
    prompt = make_prompt("an orphaned job")
    specs = [make_spec(prompt, seed) for seed in range(1, count + 1)]
    repo.add_prompts([prompt])
    repo.add_runs(specs)
    ids = [spec.id for spec in specs]
    repo.transition(ids, RunStatus.QUEUED)
    assert repo.claim(ids, job_id="jb_orphan", runner_id=runner_id) == ids
    return sorted(ids)


def test_only_one_runner_takes_over_an_abandoned_job(repo: DataRepository) -> None:
    ids = running_job(repo, "rn_dead")
    assert repo.take_over_job("jb_orphan", "rn_other", "rn_b") == []
    assert repo.take_over_job("jb_orphan", "rn_dead", "rn_b") == ids
    assert repo.take_over_job("jb_orphan", "rn_dead", "rn_c") == [], "taken twice"
    assert {job.runner_id for job in repo.running_jobs(ids)} == {"rn_b"}


def test_a_runner_requeues_and_cancels_only_its_own_running_runs(repo: DataRepository) -> None:
    ids = running_job(repo, "rn_a")
    assert repo.requeue_running(ids, "rn_b") == []
    assert repo.cancel_unfinished(ids, "Ctrl-C in b", runner_id="rn_b") == []
    assert set(repo.statuses(ids).values()) == {RunStatus.RUNNING}
    assert repo.requeue_running(ids[:1], "rn_a") == ids[:1]
    assert repo.cancel_unfinished(ids, "Ctrl-C in a", runner_id="rn_a") == ids
