"""A full disk: every run is recorded with the real reason, and the next command finishes.

The project's outputs folder (output tree and SQLite database) is a small
tmpfs of its own, filled for real while a sweep runs. Needs root (mount).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project

from cosmos_workflow.api.cosmos_api import CosmosAPI
from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.database.models import RunStatus
from cosmos_workflow.engine.dispatch import DispatchContext, Dispatcher
from cosmos_workflow.engine.liveness import RunnerIdentity
from cosmos_workflow.engine.progress import NullProgress
from cosmos_workflow.execution.adapters.registry import build_adapters
from cosmos_workflow.execution.programs import local_job
from cosmos_workflow.execution.targets.local import LocalExecutor
from cosmos_workflow.transfer.input_cache import LocalInputCache
from cosmos_workflow.utils.clock import SystemClock
from cosmos_workflow.utils.disk import RESERVE_NAME, DiskReserve

DEMO_RUNS = 12


def mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def small_disk(project: Project) -> Iterator[Project]:
    """The project with its outputs folder on a 16 MiB tmpfs."""
    mount_tmpfs(project.outputs, "16m")
    try:
        yield project
    finally:
        unmount(project.outputs)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; return the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == 28, exc
    finally:
        os.close(fd)
    return filler


def fill_after(project: Project, videos: int) -> threading.Thread:
    """Fill the outputs' disk as soon as the model has produced ``videos`` videos."""

    def work() -> None:
        project.wait_for_ledger(videos, timeout=30)
        fill(project.outputs)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_disk_filling_during_a_sweep_fails_no_run_by_mistake_and_the_next_command_finishes(
    small_disk: Project,
) -> None:
    project = small_disk
    # Jobs of 2 runs; the disk fills after the 3rd video, while job 2 makes its 2nd.
    filler = fill_after(project, 3)
    done = project.batch("+experiment=demo", env={"COSMOS_SIMULATOR__PER_VIDEO_S": "1"})
    filler.join(timeout=5)
    assert done.returncode == 1, done.stderr
    assert "disk" in done.stderr and "is full" in done.stderr
    runs = project.cosmos_json("list", "runs")
    statuses = [run["status"] for run in runs]
    assert "running" not in statuses
    assert set(statuses) <= {"succeeded", "failed", "queued"}
    succeeded = {run["id"] for run in runs if run["status"] == "succeeded"}
    failed = [run for run in runs if run["status"] == "failed"]
    # The 3 videos made before the disk filled are kept (the third one's job failed).
    assert len(succeeded) == 3 and len(project.ledger_lines()) == 3
    assert failed, "the run whose video could not be written is recorded as failed"
    for run in failed:
        message = run["error_message"]
        assert "is full" in message or "no space left on device writing" in message, run
        assert run["exit_code"] != -9, "a SIGKILL that never happened"
    # Runs not started stay queued: the next command runs them.
    assert statuses.count("queued") == DEMO_RUNS - len(succeeded) - len(failed)

    (project.outputs / "filler").unlink()
    again = project.batch("+experiment=demo")
    assert again.returncode == 0, again.stderr
    assert f"{len(succeeded)} cached" in again.stdout
    runs = project.cosmos_json("list", "runs")
    assert [run["status"] for run in runs] == ["succeeded"] * DEMO_RUNS
    # Nothing was made twice: one video per run in all.
    assert len(project.ledger_lines()) == DEMO_RUNS
    assert project.cosmos("verify").returncode == 0


def test_the_supervisor_records_the_exit_code_of_a_program_that_filled_the_disk(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "job"
    mount_tmpfs(folder, "256k")
    try:
        (folder / local_job.START_NAME).write_text("jb_x\n")
        program = (
            "import os\n"
            f"fd = os.open({str(folder / 'big')!r}, os.O_WRONLY | os.O_CREAT)\n"
            "try:\n"
            "    while True: os.write(fd, b'x' * 4096)\n"
            "except OSError: pass\n"
            "try:\n"
            "    while True: os.write(fd, b'x')\n"
            "except OSError: raise SystemExit(5)\n"
        )
        code = local_job.main(
            [
                str(folder / "job.log"),
                str(folder / "job.exit"),
                str(folder / local_job.START_NAME),
                "--",
                sys.executable,
                "-c",
                program,
            ]
        )
        assert code == 0
        assert (folder / "job.exit").read_text().strip() == "5"
    finally:
        unmount(folder)


def test_a_local_write_error_fails_the_runs_with_it_and_leaves_none_running(
    project: Project,
) -> None:
    # The input cache cannot be made: a file is where its folder goes.
    blocker = project.outputs / ".cache" / "inputs"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder\n")
    done = project.batch("+experiment=demo")
    assert done.returncode == 1, done.stderr
    runs = project.cosmos_json("list", "runs")
    assert [run["status"] for run in runs] == ["failed"] * DEMO_RUNS
    for run in runs:
        assert run["error_class"] == "io"
        assert run["error_message"].startswith("I/O error: ")
        assert str(blocker) in run["error_message"]
    assert not project.ledger_lines()

    blocker.unlink()
    again = project.batch("+experiment=demo")
    assert again.returncode == 0, again.stderr
    assert f"{DEMO_RUNS} executed ({DEMO_RUNS} succeeded, 0 failed)" in again.stdout


def test_a_supervisor_killed_outright_gives_no_invented_exit_code(project: Project) -> None:
    killed: list[int] = []

    def kill_first_job() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not killed:
            for pid_file in project.outputs.glob(".staging/jb_*/job.pid"):
                text = pid_file.read_text().split()
                if text and project.ledger_lines():
                    # The supervisor and its model (one process group of their own).
                    os.killpg(int(text[0]), signal.SIGKILL)
                    killed.append(int(text[0]))
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_job, daemon=True)
    killer.start()
    done = project.batch("+experiment=demo", env={"COSMOS_SIMULATOR__PER_VIDEO_S": "0.5"})
    killer.join(timeout=5)
    assert killed, "no job was running to kill"
    assert "exit code was not recorded" in done.stderr
    assert "code -9" not in done.stdout + done.stderr
    runs = project.cosmos_json("list", "runs")
    assert all(run["exit_code"] != -9 for run in runs)
    assert "running" not in {run["status"] for run in runs}


class BrokenLocalExecutor(LocalExecutor):
    """The local target with a bug: its execute raises what no runner expects."""

    def execute(self, invocation, staging, gpus, on_line):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug in the executor")


def test_a_job_that_breaks_leaves_none_of_its_runs_running(demo_project: Project) -> None:
    project = demo_project
    api = CosmosAPI.from_project(project.root, environ=project.env)
    try:
        repo = api.repository
        ids = sorted(run["id"] for run in project.cosmos_json("list", "runs"))[:1]
        for run_id in ids:
            shutil.rmtree(api.store.run_dir(run_id))
        assert sorted(repo.requeue_lost(ids)) == ids
        clock = SystemClock()
        commands = LocalCommandExecutor()
        executor = BrokenLocalExecutor(
            "local", commands, LocalInputCache(api.store.input_cache_dir), clock
        )
        context = DispatchContext(
            repository=repo,
            store=api.store,
            executors={"local": executor},
            targets=api.settings.pool,
            adapters=build_adapters(api.settings),
            progress=NullProgress(),
            settings=api.settings.scheduler,
            clock=clock,
            commands=commands,
            identity=RunnerIdentity.new("this-host", os.getpid()),
        )
        with pytest.raises(RuntimeError, match="a bug in the executor"):
            Dispatcher(context).run(repo.run_specs(ids))
        for run_id in ids:
            run = repo.get_run(run_id)
            assert run.status is RunStatus.FAILED, run.status
            assert "RuntimeError: a bug in the executor" in (run.error_message or "")
    finally:
        api.close()


# -- the output tree's disk reserve -----------------------------------------------
@pytest.fixture
def small_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 2 MiB tmpfs of its own."""
    folder = tmp_path / "disk"
    mount_tmpfs(folder, "2m")
    try:
        yield folder
    finally:
        unmount(folder)


def test_the_reserve_holds_real_disk_blocks_until_released(tmp_path: Path) -> None:
    reserve = DiskReserve(tmp_path / "outputs" / RESERVE_NAME, size=1 << 20)
    assert reserve.hold() is True
    stat = reserve.path.stat()
    assert stat.st_size == 1 << 20
    assert stat.st_blocks * 512 >= 1 << 20, "a sparse file reserves nothing"
    assert reserve.hold() is True and reserve.path.stat().st_ino == stat.st_ino
    assert reserve.release() is True
    assert not reserve.path.exists() and reserve.release() is False
    # Taken again by the next runner; a reserve cut short (a crash) is made whole.
    reserve.path.write_bytes(b"x" * 10)
    assert reserve.hold() is True and reserve.path.stat().st_size == 1 << 20


def test_a_reserve_without_room_is_left_out_and_says_so(
    small_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reserve = DiskReserve(small_folder / RESERVE_NAME, size=4 << 20)
    with caplog.at_level(logging.WARNING):
        assert reserve.hold() is False
    assert not reserve.path.exists(), "a partial reserve fills the disk for nothing"
    assert shutil.disk_usage(small_folder).used < 1 << 20
    assert any("No room for the disk reserve" in r.getMessage() for r in caplog.records)
