"""Atomic claims: several runner processes on one database never start a run twice.

Real OS processes (tests/db_worker.py) claim the same queued runs, or submit
the same runs, at the same time, on a SQLite file and on a real PostgreSQL
database. On SQLite only the transactions that read then write take the
write lock at BEGIN (BEGIN IMMEDIATE); readers such as `cosmos status` never
wait for a runner.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from test_database import T0, FakeClock, make_prompt, make_spec, other_writer, sqlite_url

from cosmos_workflow.database.engine import create_db_engine, migrate, session_factory
from cosmos_workflow.database.models import RunStatus
from cosmos_workflow.database.repository import DataRepository

WORKER = Path(__file__).with_name("db_worker.py")
RUNS = 2000


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def repo(engine: Engine) -> DataRepository:
    return DataRepository(session_factory(engine), FakeClock(T0))


def queue_runs(repo: DataRepository, count: int) -> list[str]:
    prompt = make_prompt("claimed by many runners")
    specs = [make_spec(prompt, seed=seed) for seed in range(count)]
    repo.add_prompts([prompt])
    repo.add_runs(specs)
    ids = [spec.id for spec in specs]
    repo.transition(ids, RunStatus.QUEUED)
    return ids


def race(mode: str, url: str, *args: str) -> dict[str, dict]:
    """Start workers ``alpha`` and ``beta`` (seeds 1 and 2), release them at once.

    Returns each worker's JSON report, after checking that both ended
    without an error and that their calls overlapped in time.
    """
    workers = {
        name: subprocess.Popen(
            [sys.executable, str(WORKER), mode, url, name, str(seed), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, seed in (("alpha", 1), ("beta", 2))
    }
    reports = {}
    try:
        for process in workers.values():
            assert process.stdout.readline().strip() == "ready", process.stderr.read()
        for process in workers.values():
            process.stdin.write("go\n")
            process.stdin.flush()
        for name, process in workers.items():
            out, err = process.communicate(timeout=240)
            assert process.returncode == 0, err
            assert "locked" not in err and "Traceback" not in err, err
            reports[name] = json.loads(out)
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    # They worked at the same time (which of them does more is up to the locks).
    (alpha_from, alpha_to), (beta_from, beta_to) = (r["between"] for r in reports.values())
    assert alpha_from < beta_to and beta_from < alpha_to, "the workers did not overlap"
    backend = url.split(":")[0]
    for name, report in reports.items():
        print(f"{backend} {mode} {name}: {report['calls']} calls, {report['seconds']:.2f} s")
    return reports


def test_two_processes_claiming_the_same_runs_start_each_exactly_once(
    db_url: str, repo: DataRepository, tmp_path: Path
) -> None:
    ids = queue_runs(repo, RUNS)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids))
    outcomes = race("claim", db_url, str(ids_file))

    alpha, beta = (set(outcomes[name]["claimed"]) for name in ("alpha", "beta"))
    assert len(outcomes["alpha"]["claimed"]) == len(alpha), "a claimer got a run twice"
    assert len(outcomes["beta"]["claimed"]) == len(beta), "a claimer got a run twice"
    assert alpha & beta == set(), "two runners started the same run"
    assert alpha | beta == set(ids), "a queued run was started by nobody"
    runs = {run.id: run for run in repo.list_runs()}
    assert {run.status for run in runs.values()} == {RunStatus.RUNNING}
    assert {run.attempts for run in runs.values()} == {1}
    for name, claimed in (("alpha", alpha), ("beta", beta)):
        assert all(runs[run_id].target == name for run_id in claimed)
        assert all(runs[run_id].job_id.startswith(f"jb_{name}_") for run_id in claimed)
    print(f"{RUNS} runs: alpha claimed {len(alpha)}, beta {len(beta)}")


def test_two_processes_submitting_the_same_runs_store_each_once(
    db_url: str, repo: DataRepository
) -> None:
    """Adding prompts, runs and sweep links reads then writes: writers take turns."""
    prompts, seeds = 40, 25
    reports = race("submit", db_url, str(prompts), str(seeds))
    # Each prompt and the sweep were new to exactly one of the two.
    assert sum(r["new_prompts"] for r in reports.values()) == prompts
    assert sum(r["new_sweeps"] for r in reports.values()) == 1
    assert len(repo.list_prompts()) == prompts
    runs = repo.list_runs()
    assert len(runs) == prompts * seeds
    assert {run.status for run in runs} == {RunStatus.QUEUED}
    links = repo.sweep_runs("sw_00000000000000aa")
    assert sorted(run.id for _, run in links) == sorted(run.id for run in runs)


def test_a_claim_returns_the_started_ids_in_the_order_given(repo: DataRepository) -> None:
    ids = queue_runs(repo, 6)
    repo.transition([ids[4]], RunStatus.PENDING)
    order = [ids[5], ids[1], ids[4], ids[3]]
    assert repo.claim(order, job_id="jb_o") == [ids[5], ids[1], ids[3]]
    assert repo.claim(order, job_id="jb_p") == []
    assert repo.claim([], job_id="jb_q") == []
    assert repo.claim(["rs_0000000000000000"], job_id="jb_r") == []
    assert repo.get_run(ids[4]).status is RunStatus.PENDING
    assert [run.id for run in repo.runs_of_job("jb_o")] == sorted([ids[5], ids[1], ids[3]])


def test_a_claim_of_many_runs_starts_them_all(repo: DataRepository) -> None:
    ids = queue_runs(repo, 1200)
    assert repo.claim(ids, job_id="jb_all") == ids
    assert repo.counts_by_status()["running"] == 1200


# ---------------------------------------------------------------- SQLite transactions


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(sqlite_url(tmp_path / "cosmos.db"))
    migrate(engine)
    yield engine
    engine.dispose()


def test_sqlite_connections_keep_wal_busy_timeout_and_foreign_keys(
    sqlite_engine: Engine,
) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_sqlite_reads_do_not_wait_for_a_runner_that_holds_the_write_lock(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """`cosmos status` and listings answer at once, with the committed state."""
    repo = DataRepository(session_factory(sqlite_engine), FakeClock(T0))
    ids = queue_runs(repo, 3)
    update = "UPDATE runs SET status = 'running' WHERE id = :id"
    with other_writer(sqlite_url(tmp_path / "cosmos.db"), update, id=ids[0]) as runner:
        answers: list[object] = []
        reader = threading.Thread(
            target=lambda: answers.extend(
                [repo.counts_by_status(), repo.statuses(ids), len(repo.list_runs())]
            )
        )
        began = time.monotonic()
        reader.start()
        reader.join(timeout=10)
        waited = time.monotonic() - began
        runner.commit()
    assert answers, "a read waited for the runner's write lock"
    counts, statuses, listed = answers
    assert counts["queued"] == 3 and counts["running"] == 0
    assert set(statuses.values()) == {RunStatus.QUEUED} and listed == 3
    assert waited < 5
    assert repo.statuses([ids[0]]) == {ids[0]: RunStatus.RUNNING}


def test_sqlite_read_then_write_transactions_wait_for_the_write_lock(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """Adding runs reads then writes: it waits for a runner's lock instead of failing."""
    repo = DataRepository(session_factory(sqlite_engine), FakeClock(T0))
    ids = queue_runs(repo, 2)
    prompt = make_prompt("added while a runner writes", "b")
    specs = [make_spec(prompt, seed=seed) for seed in range(3)]
    update = "UPDATE runs SET status = 'running' WHERE id = :id"
    with other_writer(sqlite_url(tmp_path / "cosmos.db"), update, id=ids[0]) as runner:
        errors: list[BaseException] = []

        def add() -> None:
            try:
                repo.add_prompts([prompt])
                repo.add_runs(specs)
                repo.transition([s.id for s in specs], RunStatus.QUEUED)
            except Exception as exc:  # noqa: BLE001 - handed to the test thread
                errors.append(exc)

        writer = threading.Thread(target=add)
        writer.start()
        time.sleep(0.3)
        assert writer.is_alive(), "the writer did not wait for the write lock"
        runner.commit()
        writer.join(timeout=30)
    assert errors == []
    assert repo.counts_by_status()["queued"] == 4
