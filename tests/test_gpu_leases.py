"""GPUs booked across runners: two runners never put two jobs on one GPU.

The leases themselves on SQLite and PostgreSQL (the `db_url` fixture), then
real cosmos-batch processes sharing a 2-GPU local target: the simulated
model's ledger says when each model process started and ended, so the test
counts how many ran at once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project, make_project
from sqlalchemy import Engine, create_engine, text
from test_database import T0, FakeClock

from cosmos_workflow.database.engine import create_db_engine, migrate, session_factory
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.engine.gpu_leases import LOOK_AGAIN_S, GpuLeases
from cosmos_workflow.engine.scheduler import HostSlots
from cosmos_workflow.execution.targets.docker import LABEL_PREFIX

TIMEOUT_S = 60.0
MACHINE = "local:gpu-box"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def repo(engine: Engine, clock: FakeClock) -> DataRepository:
    repo = DataRepository(session_factory(engine), clock)
    for runner_id in ("rn_a", "rn_b", "rn_c"):
        repo.register_runner(runner_id, "gpu-box", 100)
    return repo


def take(repo: DataRepository, runner: str, gpus: list[int], job: str, machine: str = MACHINE):
    return repo.take_gpus(machine, gpus, runner, job, TIMEOUT_S)


# -- the leases ------------------------------------------------------------------
def test_a_gpu_leased_to_one_runner_is_refused_to_another(repo: DataRepository) -> None:
    assert take(repo, "rn_a", [0, 1], "jb_a1")
    assert not take(repo, "rn_b", [1], "jb_b1")
    assert not take(repo, "rn_b", [0], "jb_b1")
    assert take(repo, "rn_b", [2], "jb_b1")
    assert repo.gpus_held_by_others("rn_b", TIMEOUT_S) == {MACHINE: {0, 1}}
    assert repo.gpus_held_by_others("rn_a", TIMEOUT_S) == {MACHINE: {2}}
    assert repo.gpus_held_by_others("rn_c", TIMEOUT_S) == {MACHINE: {0, 1, 2}}


def test_a_job_taken_over_keeps_its_gpus_and_frees_them_when_it_ends(
    repo: DataRepository,
) -> None:
    """A runner that re-attaches to a dead runner's job takes that job's leases at once.

    Without it the GPUs stay held until the dead runner's heartbeat is old, and
    the rest of the sweep waits that long after a kill -9 (about a minute).
    """
    assert take(repo, "rn_a", [0, 1], "jb_a1")
    assert take(repo, "rn_a", [2], "jb_a2")
    # rn_b follows jb_a1 (taken over): its GPUs are rn_b's now, jb_a2's stay rn_a's.
    assert take(repo, "rn_b", [0, 1], "jb_a1")
    assert not take(repo, "rn_b", [2], "jb_b1")
    assert repo.gpus_held_by_others("rn_c", TIMEOUT_S) == {MACHINE: {0, 1, 2}}
    assert repo.gpus_held_by_others("rn_a", TIMEOUT_S) == {MACHINE: {0, 1}}
    assert repo.release_gpus("rn_b", "jb_a1") == 2
    assert repo.gpus_held_by_others("rn_c", TIMEOUT_S) == {MACHINE: {2}}


def test_leases_are_all_or_none(repo: DataRepository) -> None:
    assert take(repo, "rn_a", [1], "jb_a1")
    assert not take(repo, "rn_b", [0, 1], "jb_b1")
    # GPU 0 was not taken by the refused lease.
    assert take(repo, "rn_c", [0], "jb_c1")
    assert repo.gpus_held_by_others("rn_x", TIMEOUT_S) == {MACHINE: {0, 1}}


def test_gpus_of_other_machines_are_leased_apart(repo: DataRepository) -> None:
    assert take(repo, "rn_a", [0], "jb_a1", machine="ssh:gpu-1:22")
    assert take(repo, "rn_b", [0], "jb_b1", machine="ssh:gpu-2:22")
    assert take(repo, "rn_c", [0], "jb_c1")
    assert repo.gpus_held_by_others("rn_c", TIMEOUT_S) == {
        "ssh:gpu-1:22": {0},
        "ssh:gpu-2:22": {0},
    }


def test_a_released_lease_is_free_and_only_that_jobs_leases_are_released(
    repo: DataRepository,
) -> None:
    assert take(repo, "rn_a", [0], "jb_a1") and take(repo, "rn_a", [1], "jb_a2")
    assert repo.release_gpus("rn_a", "jb_a1") == 1
    assert repo.release_gpus("rn_b", "jb_a2") == 0, "a runner released another's lease"
    assert take(repo, "rn_b", [0], "jb_b1")
    assert not take(repo, "rn_b", [1], "jb_b2")
    assert repo.release_gpus("rn_a") == 1
    assert take(repo, "rn_b", [1], "jb_b2")
    assert repo.gpus_held_by_others("rn_a", TIMEOUT_S) == {MACHINE: {0, 1}}


def test_a_lease_of_a_silent_runner_is_free_after_the_timeout(
    repo: DataRepository, clock: FakeClock
) -> None:
    assert take(repo, "rn_a", [0], "jb_a1")
    clock.advance(TIMEOUT_S - 1)
    repo.heartbeat("rn_b")
    assert not take(repo, "rn_b", [0], "jb_b1"), "a live runner's lease was taken"
    clock.advance(2)
    assert repo.gpus_held_by_others("rn_b", TIMEOUT_S) == {}
    assert take(repo, "rn_b", [0], "jb_b1")
    assert repo.gpus_held_by_others("rn_c", TIMEOUT_S) == {MACHINE: {0}}


def test_a_silent_runner_known_alive_keeps_its_leases(
    repo: DataRepository, clock: FakeClock
) -> None:
    """A busy runner of this machine beats late, yet works: its GPUs stay its own."""
    assert take(repo, "rn_a", [0], "jb_a1") and take(repo, "rn_c", [1], "jb_c1")
    clock.advance(TIMEOUT_S + 1)
    repo.heartbeat("rn_b")
    assert {runner.id for runner in repo.late_runners(TIMEOUT_S)} == {"rn_a", "rn_c"}
    assert repo.gpus_held_by_others("rn_b", TIMEOUT_S, late_alive={"rn_a"}) == {MACHINE: {0}}
    assert not repo.take_gpus(MACHINE, [0], "rn_b", "jb_b1", TIMEOUT_S, late_alive={"rn_a"})
    assert repo.take_gpus(MACHINE, [1], "rn_b", "jb_b2", TIMEOUT_S, late_alive={"rn_a"})
    repo.stop_runner("rn_a")
    # rn_b's lease on GPU 1 is left; the stopped runner's is not kept.
    assert repo.gpus_held_by_others("rn_x", TIMEOUT_S, late_alive={"rn_a"}) == {MACHINE: {1}}


def test_a_lease_of_a_stopped_or_unknown_runner_is_free(repo: DataRepository) -> None:
    assert take(repo, "rn_a", [0], "jb_a1")
    assert take(repo, "rn_ghost", [1], "jb_g1")
    assert repo.gpus_held_by_others("rn_b", TIMEOUT_S) == {MACHINE: {0}}
    repo.stop_runner("rn_a")
    assert repo.gpus_held_by_others("rn_b", TIMEOUT_S) == {}
    assert take(repo, "rn_b", [0, 1], "jb_b1")


def test_a_runner_that_could_not_give_a_lease_back_takes_the_gpu_again(
    repo: DataRepository,
) -> None:
    """It books only GPUs it knows free: its own left-over lease does not lock it out."""
    assert take(repo, "rn_a", [0], "jb_a1")
    assert take(repo, "rn_a", [0, 1], "jb_a2")
    assert repo.release_gpus("rn_a", "jb_a1") == 0
    assert repo.release_gpus("rn_a", "jb_a2") == 2


def test_an_empty_lease_is_granted(repo: DataRepository) -> None:
    assert take(repo, "rn_a", [], "jb_a1")
    assert repo.gpus_held_by_others("rn_b", TIMEOUT_S) == {}


def race_for_gpus(repo: DataRepository, runners: list[str], tag: str) -> list[str]:
    """Each runner in a thread of its own takes GPUs 0 and 1 at once; those that got them."""
    go = threading.Barrier(len(runners))
    won: list[str] = []

    def race(runner_id: str) -> None:
        go.wait()
        if take(repo, runner_id, [0, 1], f"jb_{runner_id}_{tag}"):
            won.append(runner_id)

    threads = [threading.Thread(target=race, args=(runner_id,)) for runner_id in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return won


def test_of_many_runners_taking_one_gpu_at_once_exactly_one_gets_it(
    engine: Engine, clock: FakeClock
) -> None:
    """Threads with connections of their own race for the same GPU, round after round."""
    repo = DataRepository(session_factory(engine), clock)
    runners = [f"rn_{i}" for i in range(6)]
    for runner_id in runners:
        repo.register_runner(runner_id, "gpu-box", 100)
    for round_no in range(8):
        won = race_for_gpus(repo, runners, f"round{round_no}")
        assert len(won) == 1, f"round {round_no}: {won} all took GPUs 0 and 1"
        assert repo.release_gpus(won[0]) == 2


# -- the dispatcher's view ------------------------------------------------------
def test_a_plan_sees_gpus_other_runners_hold_as_busy_and_says_so_once(
    repo: DataRepository,
) -> None:
    notes: list[str] = []
    machines = {"local": MACHINE, "box-by-ip": "ssh:10.0.0.5:22", "other": "ssh:gpu-9:22"}
    leases = GpuLeases(repo, "rn_b", machines, TIMEOUT_S, lambda runner: False, notes.append)
    hosts = [HostSlots("local", [0, 1, 2]), HostSlots("box-by-ip", [0, 1]), HostSlots("other", [0])]
    hosts[0].occupy([2], 50.0)
    assert take(repo, "rn_a", [0, 2], "jb_a1") and take(
        repo, "rn_a", [1], "jb_a2", "ssh:10.0.0.5:22"
    )

    views = leases.visible(hosts, now=10.0)
    assert [view.free_gpus() for view in views] == [[1], [0], [0]]
    # GPU 2 is this runner's own job (until 50); the other runner's GPUs are looked at again soon.
    assert views[0].busy_until == {2: 50.0, 0: 10.0 + LOOK_AGAIN_S}
    assert hosts[0].busy_until == {2: 50.0} and hosts[1].busy_until == {}, "the hosts changed"
    assert notes == [
        "waiting for 2 GPU slot(s) another runner holds (local GPU 0; box-by-ip GPU 1)"
    ]
    leases.visible(hosts, now=11.0)
    assert len(notes) == 1, "the same wait was said twice"

    repo.release_gpus("rn_a", "jb_a1")
    assert [view.free_gpus() for view in leases.visible(hosts, now=12.0)] == [[0, 1], [0], [0]]
    assert notes[1:] == ["waiting for 1 GPU slot(s) another runner holds (box-by-ip GPU 1)"]
    assert leases.take("local", [0, 1], "jb_b1") and not leases.take("box-by-ip", [1], "jb_b2")
    leases.release("jb_b1")
    assert repo.gpus_held_by_others("rn_a", TIMEOUT_S) == {}


def test_a_plan_counts_the_gpus_of_a_late_runner_as_busy_while_it_is_alive(
    repo: DataRepository, clock: FakeClock
) -> None:
    alive, notes = {"rn_a"}, []
    leases = GpuLeases(
        repo, "rn_b", {"local": MACHINE}, TIMEOUT_S, lambda runner: runner.id in alive, notes.append
    )
    assert take(repo, "rn_a", [0], "jb_a1")
    clock.advance(TIMEOUT_S + 1)
    repo.heartbeat("rn_b")
    assert leases.visible([HostSlots("local", [0, 1])], now=0.0)[0].free_gpus() == [1]
    assert not leases.take("local", [0], "jb_b1")
    alive.clear()  # its process is gone: the lease is free
    assert leases.visible([HostSlots("local", [0, 1])], now=0.0)[0].free_gpus() == [0, 1]
    assert leases.take("local", [0], "jb_b1")


# -- real runners ----------------------------------------------------------------
TWO_GPUS = "target.gpus=[0,1]"
SLOW = {"COSMOS_SIMULATOR__PER_VIDEO_S": "0.3", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"}
# The demo is 6 jobs of 2 runs: on 2 GPUs about 9 s, long enough for a second runner to
# start while the first works.
SLOWER = {"COSMOS_SIMULATOR__PER_VIDEO_S": "1.5", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"}
SUMMARY = re.compile(
    r"12 runs: (\d+) executed \(\1 succeeded, 0 failed(?:; (\d+) by another runner)?\), "
    r"(\d+) cached"
)


def summary_counts(stdout: str) -> tuple[int, int, int]:
    """A sweep summary's runs executed (by any runner), by another runner, and cached."""
    found = SUMMARY.search(stdout)
    assert found is not None, stdout
    executed, by_others, cached = found.groups()
    return int(executed), int(by_others or 0), int(cached)


def model_processes(ledger: Path) -> dict[tuple[int, float], tuple[float, float]]:
    """Each model process of a ledger: when it started, when it wrote its last video.

    A process is its pid and start time (in containers, pids repeat).
    """
    spans: dict[tuple[int, float], tuple[float, float]] = {}
    for line in ledger.read_text().splitlines() if ledger.is_file() else []:
        record = json.loads(line)
        key = (record["pid"], record["started_at"])
        spans[key] = (record["started_at"], max(record["at"], spans.get(key, (0, 0))[1]))
    return spans


def most_at_once(spans: dict[tuple[int, float], tuple[float, float]]) -> int:
    """The largest number of model processes that ran at the same time."""
    edges = sorted(
        [(start, 1) for start, _ in spans.values()] + [(end, -1) for _, end in spans.values()]
    )
    busy = best = 0
    for _, step in edges:
        busy += step
        best = max(best, busy)
    return best


def finish(*processes: subprocess.Popen) -> list[tuple[str, str]]:
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stdout + stderr
        outputs.append((stdout, stderr))
    return outputs


def leases_left(project: Project, url: str | None = None) -> int:
    engine = create_engine(url or f"sqlite:///{project.outputs / 'cosmos.db'}")
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM gpu_leases")).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_runners_on_a_two_gpu_machine_never_run_more_than_two_models_at_once(
    project: Project, backend: str, request: pytest.FixtureRequest
) -> None:
    """Two sweeps at once on one machine: 4 jobs on 2 GPUs run two at a time."""
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    database = {"COSMOS_DATABASE__URL": url} if url else {}
    first = project.start_batch(
        "+experiment=demo", TWO_GPUS, env={**SLOWER, **database}, capture=True
    )
    project.wait_for_ledger(1)
    second = project.start_batch(
        "+experiment=demo", "model.guidance=7", TWO_GPUS, env={**SLOW, **database}, capture=True
    )
    (out1, _), (out2, err2) = finish(first, second)
    spans = model_processes(project.ledger)
    assert len(project.ledger_lines()) == 24, "a run was executed twice, or not at all"
    assert len(spans) >= 4
    assert most_at_once(spans) <= 2, f"{most_at_once(spans)} model processes ran on 2 GPUs"
    for out in (out1, out2):
        assert "12 executed (12 succeeded, 0 failed), 0 cached" in out
    # The runner that came second said what it waited for.
    assert re.search(r"waiting for [12] GPU slot\(s\) another runner holds \(local GPU", err2)
    assert leases_left(project, url) == 0


def test_a_runner_waiting_for_another_runners_runs_counts_them_in_its_summary(
    project: Project,
) -> None:
    """Runs the second runner of a sweep waited for are in its summary, as another runner's."""
    first = project.start_batch("+experiment=demo", TWO_GPUS, env=SLOWER, capture=True)
    project.wait_for_ledger(1)
    second = project.start_batch("+experiment=demo", TWO_GPUS, env=SLOW, capture=True)
    (out1, _), (out2, _) = finish(first, second)
    first_counts, second_counts = summary_counts(out1), summary_counts(out2)
    # Each run was executed by one of them; the second found some running (or done) there.
    assert sum(executed - others for executed, others, _ in (first_counts, second_counts)) == 12
    executed, by_others, cached = second_counts
    assert by_others >= 1 and executed + cached == 12
    assert first_counts[2] == 0
    assert len(project.ledger_lines()) == 12
    again = project.batch("+experiment=demo", TWO_GPUS)
    assert again.returncode == 0 and "12 cached" in again.stdout, again.stdout


def test_a_runner_killed_with_sigkill_frees_its_gpus_after_the_runner_timeout(
    project: Project,
) -> None:
    beats = ["scheduler.heartbeat_s=0.2", "scheduler.runner_timeout_s=8"]
    first = project.start_batch("+experiment=demo", TWO_GPUS, *beats, env=SLOW, capture=True)
    project.wait_for_ledger(1)
    os.killpg(first.pid, signal.SIGKILL)
    killed = time.time()
    first.communicate(timeout=30)
    other_ledger = project.root / "second-ledger.jsonl"
    second = project.start_batch(
        "+experiment=demo",
        "model.guidance=7",
        TWO_GPUS,
        *beats,
        env={**SLOW, "COSMOS_SIMULATOR__LEDGER": str(other_ledger)},
        capture=True,
    )
    ((out, err),) = finish(second)
    assert "waiting for 2 GPU slot(s) another runner holds" in err
    started = min(start for start, _ in model_processes(other_ledger).values())
    # Free once the last heartbeat (0.2 s before the kill, earlier on a busy machine) is 8 s
    # old: long enough for the second runner to start up and find the lease held.
    assert started >= killed + 6, f"started {started - killed:.1f}s after the kill"
    assert "12 executed (12 succeeded, 0 failed), 0 cached" in out
    assert leases_left(project) == 0


@pytest.mark.parametrize("how", ["ctrl-c", "failure"])
def test_a_runner_that_ends_gives_its_gpus_back_at_once(project: Project, how: str) -> None:
    """Ctrl-C, or failed runs: the next runner does not wait for the runner timeout."""
    if how == "ctrl-c":
        first = project.start_batch("+experiment=demo", TWO_GPUS, env=SLOWER, capture=True)
        project.wait_for_ledger(1)
        os.killpg(first.pid, signal.SIGINT)
        first.communicate(timeout=30)
        assert first.returncode == 130
    else:
        done = project.batch("+experiment=demo", TWO_GPUS, "simulator.fail_on_seed=2")
        assert done.returncode == 1 and "6 failed" in done.stdout
    assert leases_left(project) == 0
    began = time.monotonic()
    again = project.batch("+experiment=demo", "model.guidance=7", TWO_GPUS)
    assert again.returncode == 0, again.stderr
    assert "another runner holds" not in again.stderr
    assert time.monotonic() - began < 30


# -- two runners sharing an ssh host ---------------------------------------------
@pytest.fixture
def shared_host(tmp_path: Path, host: Any) -> Iterator[tuple[Project, Path]]:
    """A project whose targets gpu-a and gpu-b are one test host (2 GPUs) by two names."""
    project = make_project(tmp_path / "proj")
    work_dir = tmp_path / "gpu-host" / "cosmos"
    work_dir.mkdir(parents=True)
    project.env["COSMOS_SIMULATOR__LEDGER"] = str(work_dir / "ledger.jsonl")
    for name in ("gpu-a", "gpu-b"):
        config = {**host.target_config(work_dir, name=name), "gpus": [0, 1]}
        project.write(f"conf/target/{name}.yaml", yaml.safe_dump(config))
    yield project, work_dir
    docker = {**os.environ, **host.dockerd.env}
    ours = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL_PREFIX}job"],
        env=docker,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if ours:
        subprocess.run(["docker", "rm", "-f", *ours], env=docker, capture_output=True, check=True)


def test_two_runners_whose_targets_name_one_host_never_run_more_than_two_jobs_on_it(
    shared_host: tuple[Project, Path],
) -> None:
    project, work_dir = shared_host
    ledger = work_dir / "ledger.jsonl"
    # Containers take a second or two to start: jobs of 2 s are long enough here.
    slow = {"COSMOS_SIMULATOR__PER_VIDEO_S": "1", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"}
    first = project.start_batch("+experiment=demo", "target=gpu-a", env=slow, capture=True)
    project.wait_for_ledger(1, ledger=ledger)
    # A smaller second sweep (6 runs): the test stays short with containers.
    second = project.start_batch(
        "+experiment=demo",
        "model.guidance=7",
        "sweep.grid.model.seed=[1]",
        "target=gpu-b",
        env=SLOW,
        capture=True,
    )
    (out1, _), (out2, err2) = finish(first, second)
    spans = model_processes(ledger)
    assert len(ledger.read_text().splitlines()) == 18
    assert most_at_once(spans) <= 2, f"{most_at_once(spans)} containers ran on 2 GPUs"
    assert re.search(r"waiting for [12] GPU slot\(s\) another runner holds \(gpu-b GPU", err2)
    assert "12 executed (12 succeeded, 0 failed), 0 cached" in out1
    assert "6 executed (6 succeeded, 0 failed), 0 cached" in out2
