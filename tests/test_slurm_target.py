"""The slurm target against a real one-node Slurm cluster (tests/slurm.py, 4 fake GPUs).

The test host's sshd is the login node; jobs run as the login user on this
machine's file system, so the cluster's work_dir (and the simulated model's
ledger in it) is visible to the test as it is to the jobs.

Every test of this module runs on one worker, in order (xdist group): a job
hits its time limit only at slurmctld's check every 30 s, so that job starts
in a fixture of the first test and its outcome is asserted by the last.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, make_project
from test_demo_sweep import RUN_FILES

pytestmark = pytest.mark.xdist_group("slurm_target")

# Fast polling; the second runner of a test takes over a killed one's jobs at once.
FAST = {"target.poll_s": "0.2", "scheduler.heartbeat_s": "0.5", "scheduler.runner_timeout_s": "3"}


def slurm_overrides(host: Any, cluster: Any, work: Path, **changes: str) -> list[str]:
    """The overrides of the cluster's target, its work_dir ``work``, plus ``changes``."""
    import slurm

    values = dict(o.split("=", 1) for o in cluster.overrides(slurm.login(host)))
    values.update(FAST)
    values["target.work_dir"] = str(work)
    values.update(changes)
    return [f"{key}={value}" for key, value in values.items()]


def ledger(work: Path) -> list[dict[str, Any]]:
    path = work / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def model_processes(work: Path) -> dict[tuple[int, float], tuple[float, float, str]]:
    """Each model process of the ledger: (start, end of its last video, CUDA_VISIBLE_DEVICES)."""
    found: dict[tuple[int, float], tuple[float, float, str]] = {}
    for line in ledger(work):
        key = (line["pid"], line["started_at"])
        end = max(found.get(key, (0.0, 0.0, ""))[1], line["at"])
        found[key] = (line["started_at"], end, line["cuda_visible_devices"] or "")
    return found


def most_at_once(processes: dict[tuple[int, float], tuple[float, float, str]]) -> int:
    edges = sorted(
        [(start, 1) for start, _, _ in processes.values()]
        + [(end, -1) for _, end, _ in processes.values()]
    )
    busy = best = 0
    for _, step in edges:
        busy += step
        best = max(best, busy)
    return best


def slurm_jobs(cluster: Any, *fields: str) -> list[list[str]]:
    """Every job slurmctld knows (queued, running, or over in the last MinJobAge)."""
    out = cluster.client("squeue", "-h", "-t", "all", "-o", "|".join(fields))
    return [line.split("|") for line in out.splitlines() if line.strip()]


def wait_for(what: str, check: Any, timeout_s: float = 20.0, runner: Any = None) -> Any:
    """Wait until ``check()`` is true; fail with the runner's output if it ended meanwhile."""
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        if runner is not None and runner.poll() is not None:
            out, err = runner.communicate()
            raise AssertionError(f"the runner ended before {what}: {out}{err}")
        if time.monotonic() > deadline:
            if runner is not None:
                runner.kill()
                out, err = runner.communicate()
                raise AssertionError(
                    f"not seen in {timeout_s}s: {what}; the runner said {out}{err}"
                )
            raise AssertionError(f"not seen in {timeout_s}s: {what}")
        time.sleep(0.1)
    return found


def new_project(root: Path, cluster: Any, name: str) -> tuple[Project, Path]:
    """A project, and its folder on the cluster's file system that jobs can write to."""
    project = make_project(root / "proj")
    work = cluster.work_dir / name
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o777)
    project.env["COSMOS_SIMULATOR__LEDGER"] = str(work / "ledger.jsonl")
    return project, work


def runs_by_status(project: Project) -> Counter[str]:
    return Counter(run["status"] for run in project.cosmos_json("list", "runs"))


@pytest.fixture
def slurm_project(tmp_path: Path, slurm_host: Any) -> Iterator[tuple[Project, Path]]:
    project, work = new_project(tmp_path, slurm_host, tmp_path.name)
    yield project, work
    # Leave no job of the test behind (a failed test may leave its runner's jobs).
    left = ours(slurm_host, work, "RUNNING") + ours(slurm_host, work, "PENDING")
    if left:
        slurm_host.client("scancel", *left)
    if slurm_host.node_state().startswith(("down", "drain")):
        slurm_host.set_node("resume")


@pytest.fixture(scope="module")
def timed_out(
    host: Any, slurm_host: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Project, Path, Any]]:
    """A runner whose only job (one run) is past its time limit: TIMEOUT within 30 s.

    Started by the first test of the module; the last test collects it.
    """
    project, work = new_project(tmp_path_factory.mktemp("timeout"), slurm_host, "timeout")
    runner = project.start_batch(
        "+experiment=demo",
        "model.seed=1",
        "model.weights.depth=0.5",
        *slurm_overrides(host, slurm_host, work, **{"target.time_limit": "1"}),
        env={"COSMOS_SIMULATOR__MODEL_LOAD_S": "120"},
        capture=True,
    )
    running = wait_for("the job running", lambda: ours(slurm_host, work, "RUNNING"), runner=runner)
    for job in running:
        slurm_host.expire(job)
    yield project, work, runner
    if runner.poll() is None:
        runner.kill()
    runner.communicate()


def ours(cluster: Any, work: Path, state: str | None = None) -> list[str]:
    """The Slurm ids of the jobs submitted for a project (their folders are in ``work``)."""
    return [
        job
        for job, found, folder in slurm_jobs(cluster, "%i", "%T", "%Z")
        if folder.startswith(f"{work}/jobs/") and state in (None, found)
    ]


def test_the_demo_via_slurm_gives_the_local_layout_and_uploads_each_input_once(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path], timed_out: Any
) -> None:
    project, work = slurm_project
    done = project.batch("+experiment=demo", *slurm_overrides(host, slurm_host, work))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 executed (12 succeeded, 0 failed), 0 cached" in done.stdout
    assert len(ledger(work)) == 12
    runs = project.cosmos_json("list", "runs")
    assert {r["status"] for r in runs} == {"succeeded"} and len(runs) == 12
    local = make_project(work.parent / f"{work.name}-local")
    assert local.batch("+experiment=demo", "target.name=test-slurm").returncode == 0
    for run in runs:
        folder = Path(run["output_dir"])
        present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        assert RUN_FILES <= present
        result = json.loads((folder / "result.json").read_text())
        assert result["target"] == "test-slurm" and result["exit_code"] == 0
        assert "[simulated]" in (folder / "logs" / "run.log").read_text()
    # Each input was uploaded once (2 videos in the cluster's cache); the job
    # folders are gone once the runs are recorded.
    assert len(list((work / "cache").iterdir())) == 2
    assert list((work / "jobs").iterdir()) == []
    # One sbatch job per scheduled job, named after it, in its folder, the sweep's id its comment.
    sweep = project.cosmos_json("list", "sweeps")[0]["id"]
    submitted = [
        (name, folder, state, comment)
        for name, folder, state, comment in slurm_jobs(slurm_host, "%j", "%Z", "%T", "%k")
        if folder.startswith(str(work))
    ]
    jobs = {run["job_id"] for run in runs}
    assert sorted(submitted) == sorted(
        (f"cosmos-{job}", f"{work}/jobs/{job}", "COMPLETED", sweep) for job in jobs
    )
    # The same run folders as a local run of the same sweep.
    local_runs = {Path(r["output_dir"]).name for r in local.cosmos_json("list", "runs")}
    assert {Path(r["output_dir"]).name for r in runs} == local_runs


def test_a_two_gpu_run_gets_two_gpus_from_slurm(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    done = project.batch(
        "+experiment=demo",
        "model.seed=1",
        "model.num_gpus=2",
        *slurm_overrides(host, slurm_host, work),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for _, _, devices in model_processes(work).values():
        gpus = devices.split(",")
        assert len(gpus) == len(set(gpus)) == 2 and set(gpus) <= {"0", "1", "2", "3"}


def test_max_gpus_2_keeps_two_jobs_in_flight(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    done = project.batch(
        "+experiment=demo",
        "model.seed=1",
        "scheduler.batching=false",
        *slurm_overrides(host, slurm_host, work, **{"target.max_gpus": "2"}),
        env={"COSMOS_SIMULATOR__MODEL_LOAD_S": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    processes = model_processes(work)
    assert len(processes) == 6
    assert most_at_once(processes) == 2


def test_two_runners_sharing_the_cluster_never_hold_more_than_max_gpus_together(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    args = [
        "scheduler.batching=false",
        "model.weights.depth=0.5",
        "model.seed=1",
        *slurm_overrides(host, slurm_host, work, **{"target.max_gpus": "2"}),
    ]
    slow = {"COSMOS_SIMULATOR__MODEL_LOAD_S": "1.5"}
    first = project.start_batch("+experiment=demo", *args, env=slow, capture=True)
    second = project.start_batch(
        "+experiment=demo", "model.guidance=7", *args, env=slow, capture=True
    )
    for runner in (first, second):
        out, err = runner.communicate(timeout=28)
        assert runner.returncode == 0, out + err
    assert runs_by_status(project) == {"succeeded": 4}
    processes = model_processes(work)
    assert len(processes) == 4
    assert most_at_once(processes) == 2


def test_cosmos_gc_removes_a_job_folder_left_on_the_cluster(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    overrides = slurm_overrides(host, slurm_host, work)
    done = project.batch("+experiment=demo", "model.seed=1", "model.weights.depth=0.5", *overrides)
    assert done.returncode == 0, done.stdout + done.stderr
    # A job folder its runner could not remove (its runs are recorded), and one that
    # no run of this project names (another project's): only the first goes.
    job = project.cosmos_json("list", "runs")[0]["job_id"]
    left, foreign = work / "jobs" / job, work / "jobs" / "jb_0123456789ab"
    for folder in (left, foreign):
        (folder / "logs").mkdir(parents=True)
    sets = [arg for override in overrides for arg in ("--set", override)]
    gc = project.cosmos("gc", *sets, "--json")
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert not left.exists() and foreign.is_dir()


def test_bad_sbatch_args_are_refused_as_bad_input(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    args = slurm_overrides(host, slurm_host, work)
    done = project.batch("+experiment=demo", *args, 'target.sbatch_args=["--wrap=rm -rf /"]')
    assert done.returncode == 2, done.stdout + done.stderr
    assert "target.sbatch_args" in done.stderr and "--wrap" in done.stderr
    allowed = project.batch(
        "+experiment=demo", *args, 'target.sbatch_args=["--mem=100M"]', "dry_run=true"
    )
    assert allowed.returncode == 0, allowed.stderr
    without = [a for a in args if not a.startswith("target.partition=")]
    done = project.batch("+experiment=demo", *without)
    assert done.returncode == 2 and "target.partition" in done.stderr
    assert not (work / "jobs").exists()
    env = project.batch("+experiment=demo", *args, "+target.env.CUDA_VISIBLE_DEVICES=0")
    assert env.returncode == 2 and "CUDA_VISIBLE_DEVICES" in env.stderr


def test_scancel_from_outside_cancels_the_jobs_runs(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    runner = project.start_batch(
        "+experiment=demo",
        "model.seed=1",
        "model.weights.depth=0.5",
        *slurm_overrides(host, slurm_host, work),
        env={"COSMOS_SIMULATOR__MODEL_LOAD_S": "60"},
        capture=True,
    )
    # Two runs on four free slots: two jobs of one run. Both are cancelled
    # from outside once both run (a job still waiting would load for 60 s).
    job = wait_for(
        "both jobs of ours running",
        lambda: running if len(running := ours(slurm_host, work, "RUNNING")) == 2 else [],
        runner=runner,
    )
    slurm_host.client("scancel", *job)
    out, err = runner.communicate(timeout=25)
    assert runs_by_status(project) == {"cancelled": 2}, out + err
    named = set()
    for run in project.cosmos_json("list", "runs"):
        message = run["error_message"]
        assert "cancelled (scancel)" in message
        named |= {j for j in job if f"job {j} " in message}
    assert named == set(job), "each run names its own Slurm job"
    assert ledger(work) == []


def test_ctrl_c_scancels_the_sweeps_jobs_and_cancels_their_runs(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    runner = project.start_batch(
        "+experiment=demo",
        "model.seed=1",
        *slurm_overrides(host, slurm_host, work, **{"target.max_gpus": "6"}),
        env={"COSMOS_SIMULATOR__MODEL_LOAD_S": "60"},
        capture=True,
    )
    # Six jobs (one run each) on six slots: four run, two wait in Slurm's queue.
    wait_for(
        "four jobs running, two pending",
        lambda: (
            len(ours(slurm_host, work, "RUNNING")) == 4
            and len(ours(slurm_host, work, "PENDING")) == 2
        ),
        runner=runner,
    )
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=25)
    assert runner.returncode != 0, out + err
    # The user saw that jobs waited in Slurm's queue, and why (Slurm's reason).
    assert re.search(r"job \d+ queued: pending \((Resources|Priority)\)", err), err
    assert runs_by_status(project) == {"cancelled": 6}, out + err
    submitted = set(ours(slurm_host, work))
    states = {state for job, state in slurm_jobs(slurm_host, "%i", "%T") if job in submitted}
    assert states == {"CANCELLED"}, states
    assert ledger(work) == []


def test_cosmos_kill_sweep_scancels_its_jobs(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    overrides = slurm_overrides(host, slurm_host, work)
    runner = project.start_batch(
        "+experiment=demo",
        "model.seed=1",
        *overrides,
        env={"COSMOS_SIMULATOR__MODEL_LOAD_S": "60"},
        capture=True,
    )
    running = wait_for("a job running", lambda: ours(slurm_host, work, "RUNNING"), runner=runner)
    sweep = wait_for("the sweep", lambda: project.cosmos_json("list", "sweeps"))[0]["id"]
    sets = [arg for override in overrides for arg in ("--set", override)]
    done = project.cosmos("kill", "--sweep", sweep, *sets)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Slurm job {running[0]} on test-slurm" in done.stdout
    out, err = runner.communicate(timeout=25)
    assert runs_by_status(project) == {"cancelled": 6}, out + err
    assert not ours(slurm_host, work, "RUNNING") and not ours(slurm_host, work, "PENDING")
    assert ledger(work) == []


def test_a_node_set_down_mid_job_is_transient_and_the_job_runs_again(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    runner = project.start_batch(
        "+experiment=demo",
        "model.seed=1",
        "model.weights.depth=0.5",
        *slurm_overrides(host, slurm_host, work, **{"scheduler.retries.backoff_s": "0"}),
        env={"COSMOS_SIMULATOR__MODEL_LOAD_S": "3"},
        capture=True,
    )
    wait_for(
        "both jobs running", lambda: len(ours(slurm_host, work, "RUNNING")) == 2, runner=runner
    )
    slurm_host.set_node("down", reason="test fault")
    # The job is tried again: it waits in Slurm's queue while the node is down.
    wait_for("the job again, pending", lambda: ours(slurm_host, work, "PENDING"), runner=runner)
    slurm_host.set_node("resume")
    out, err = runner.communicate(timeout=25)
    assert runner.returncode == 0, out + err
    runs = project.cosmos_json("list", "runs")
    assert [run["status"] for run in runs] == ["succeeded", "succeeded"]
    # Both jobs ran on the node (one run each): both failed with it and ran again.
    assert [run["attempts"] for run in runs] == [2, 2]
    assert "NODE_FAIL" in err


def test_a_login_node_cut_off_is_waited_for_and_its_jobs_are_collected(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    runner = project.start_batch(
        "+experiment=demo",
        "model.seed=1",
        "model.weights.depth=0.5",
        *slurm_overrides(host, slurm_host, work, **{"target.login.connect_timeout": "2"}),
        env={"COSMOS_SIMULATOR__MODEL_LOAD_S": "3"},
        capture=True,
    )
    wait_for(
        "both jobs running", lambda: len(ours(slurm_host, work, "RUNNING")) == 2, runner=runner
    )
    running = ours(slurm_host, work, "RUNNING")
    host.set_link(False)
    try:
        # The jobs go on on the cluster while its login node cannot be reached.
        wait_for("a video made", lambda: ledger(work), timeout_s=10)
        time.sleep(1)
    finally:
        host.set_link(True)
    out, err = runner.communicate(timeout=25)
    assert runner.returncode == 0, out + err
    assert runs_by_status(project) == {"succeeded": 2}
    outputs = [line["output"] for line in ledger(work)]
    assert len(outputs) == len(set(outputs)) == 2, "a video was made twice"
    # The jobs that ran through the outage were collected, not submitted again.
    assert sorted(ours(slurm_host, work)) == sorted(running)
    assert "silent since" in err and "answers again" in err


def test_kill_9_while_jobs_wait_and_run_then_again_submits_and_runs_nothing_twice(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    # Six slots on a node of four GPUs: four jobs run, two wait in Slurm's queue.
    args = [
        "+experiment=demo",
        "scheduler.batching=false",
        *slurm_overrides(host, slurm_host, work, **{"target.max_gpus": "6"}),
    ]
    slow = {"COSMOS_SIMULATOR__MODEL_LOAD_S": "2"}
    runner = project.start_batch(*args, env=slow)
    wait_for(
        "jobs running and pending",
        lambda: len(ours(slurm_host, work, "RUNNING")) == 4 and ours(slurm_host, work, "PENDING"),
    )
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    done = project.batch(*args, env=slow)
    assert done.returncode == 0, done.stdout + done.stderr
    assert runs_by_status(project) == {"succeeded": 12}
    outputs = [line["output"] for line in ledger(work)]
    assert len(outputs) == len(set(outputs)) == 12, "a video was made twice"
    # Each job was submitted once: one Slurm job per job folder (its name, its --chdir).
    submitted = Counter(
        folder
        for name, folder in slurm_jobs(slurm_host, "%j", "%Z")
        if folder.startswith(str(work))
    )
    assert len(submitted) == 12 and set(submitted.values()) == {1}, submitted
    assert "re-attaching" in done.stderr


def test_a_job_past_its_time_limit_fails_with_time_limit(timed_out: Any) -> None:
    project, work, runner = timed_out
    out, err = runner.communicate(timeout=29)
    assert runner.returncode == 1, out + err
    runs = project.cosmos_json("list", "runs")
    assert [run["status"] for run in runs] == ["failed", "failed"]
    for run in runs:
        assert "time limit" in run["error_message"] and run["attempts"] == 1
    assert ledger(work) == []


def test_four_one_gpu_jobs_run_at_once_on_the_four_gpu_node(
    host: Any, slurm_host: Any, slurm_project: tuple[Project, Path]
) -> None:
    project, work = slurm_project
    done = project.batch(
        "+experiment=demo",
        "scheduler.batching=false",
        *slurm_overrides(host, slurm_host, work),
        env={"COSMOS_SIMULATOR__MODEL_LOAD_S": "1.5"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    processes = model_processes(work)
    assert len(processes) == 12, done.stderr
    assert most_at_once(processes) == 4
    assert {devices for _, _, devices in processes.values()} == {"0", "1", "2", "3"}
