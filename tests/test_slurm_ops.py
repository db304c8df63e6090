"""Watching a sweep on a real Slurm cluster: `cosmos status` and `cosmos logs -f`.

The cluster is the private one-node cluster of the tests (tests/slurm.py, 4
fake GPUs); its login node is the test host's sshd, reached over SSH as the
slurm target reaches it. Another user's job (a job not named ``cosmos-...``)
holding every GPU makes our jobs wait in Slurm's queue with the reason
Resources, as on a busy cluster; cancelling it lets them run.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, make_project

from cosmos_workflow.execution.targets.slurm_queue import parse_queue


def slurm_overrides(host: Any, cluster: Any, work: Path) -> list[str]:
    """The overrides of ``target=slurm`` on the test cluster, polling fast."""
    import slurm

    values = dict(o.split("=", 1) for o in cluster.overrides(slurm.login(host)))
    values.update({"target.poll_s": "0.2", "target.work_dir": str(work)})
    return [f"{key}={value}" for key, value in values.items()]


@pytest.fixture
def cluster_project(tmp_path: Path, slurm_host: Any, host: Any) -> Iterator[tuple[Project, list]]:
    """A project, the slurm target's overrides, and a work dir jobs can write in.

    Afterwards only this test's Slurm jobs are cancelled: ours (by their
    folder in the work dir) and the other user's job (by its comment).
    """
    project = make_project(tmp_path / "proj")
    work = slurm_host.work_dir / tmp_path.name
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o777)
    project.env["COSMOS_SIMULATOR__LEDGER"] = str(work / "ledger.jsonl")
    yield project, slurm_overrides(host, slurm_host, work)
    listed = slurm_host.client("squeue", "-h", "-o", "%i|%Z|%k", check=False)
    mine = [
        job
        for job, folder, comment in (line.split("|") for line in listed.splitlines())
        if folder.startswith(f"{work}/") or comment == str(work)
    ]
    if mine:
        slurm_host.client("scancel", *mine, check=False)


def blocker(cluster: Any, overrides: list[str]) -> str:
    """Another user's job (by name) that holds every free GPU until cancelled; its Slurm id.

    Every GPU but those of jobs already there (another test module's, e.g.
    one waiting for its time limit, on this worker's cluster).
    """
    work = dict(o.split("=", 1) for o in overrides)["target.work_dir"]
    others = cluster.client("squeue", "-h", "-t", "RUNNING,CONFIGURING,PENDING", "-o", "%b")
    free = cluster.gpus - sum(int(n) for n in re.findall(r"gpu:(\d+)", others))
    job = cluster.client(
        "sbatch", "--parsable", "--job-name=other", f"--gres=gpu:{free}", "--output=/dev/null",
        f"--comment={work}", "--wrap", "sleep 120",
    ).strip()  # fmt: skip
    wait_until(lambda: cluster.job(job).get("JobState") == "RUNNING", "the blocker runs")
    return job


def wait_until(ready: Callable[[], Any], what: str, timeout_s: float = 20) -> Any:
    """Poll ``ready()`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = ready()
        if value:
            return value
        assert time.monotonic() < deadline, f"not in {timeout_s}s: {what}"
        time.sleep(0.2)


def status(project: Project, overrides: list[str]) -> dict[str, Any]:
    """`cosmos status --json` with the slurm target; the slurm target's entry.

    Its ``queued_jobs`` are this project's: a job of another project on this
    worker's cluster (another test module's) has no runs here.
    """
    sets = [f"--set={override}" for override in overrides]
    done = project.cosmos("status", "--json", *sets)
    assert done.returncode == 0, done.stdout
    data = json.loads(done.stdout)
    target = next(t for t in data["targets"] if t.get("kind") == "slurm")
    if target["queued_jobs"] is not None:
        target["queued_jobs"] = [job for job in target["queued_jobs"] if job["runs"]]
    return target


def considered(target: dict[str, Any]) -> dict[str, Any] | None:
    """The target if it shows 4 jobs of ours waiting, each with Slurm's reason."""
    jobs = target["queued_jobs"] or []
    reasons = {job["reason"] for job in jobs}
    return target if len(jobs) == 4 and reasons <= {"Resources", "Priority"} else None


def test_status_shows_jobs_pending_with_slurm_reason_then_running_with_node_gpus_and_time(
    cluster_project: tuple[Project, list], slurm_host: Any
) -> None:
    project, overrides = cluster_project
    other = blocker(slurm_host, overrides)
    runner = project.start_batch(
        "+experiment=demo", *overrides, env={"COSMOS_SIMULATOR__PER_VIDEO_S": "3"}
    )
    try:
        # Our cap is 4 GPUs: four 1-GPU jobs go to Slurm and wait behind the other job,
        # the first for Resources, the others behind it (Priority).
        target = wait_until(lambda: considered(status(project, overrides)), "4 jobs considered")
        assert target["reachable"] and target["error"] is None
        jobs = target["queued_jobs"]
        assert {(j["state"], j["node"], j["gpus"], j["elapsed_s"]) for j in jobs} == {
            ("PENDING", None, 1, 0)
        }
        assert "Resources" in {j["reason"] for j in jobs}
        assert other not in {j["slurm_id"] for j in jobs}
        runs = {run["id"]: run for run in project.cosmos_json("list", "runs")}
        [sweep] = project.cosmos_json("list", "sweeps")
        for job in jobs:
            # Each Slurm job is one of our jobs, with the runs it holds (a batch of 2).
            assert job["job_id"].startswith("jb_") and len(job["runs"]) == 2
            assert job["sweep_id"] == sweep["id"]
            assert all(runs[run_id]["status"] == "running" for run_id in job["runs"])
        text = project.cosmos("status", *[f"--set={o}" for o in overrides]).stdout
        assert f"target test-slurm (slurm root@{slurm_host.address}:" in text
        assert text.count("pending (Resources), 1 GPU; runs rs_") >= 1
        assert text.count(", 1 GPU; runs rs_") == 4
        assert text.count(f", sweep {sweep['id']}): pending (") == 4
        slurm_host.client("scancel", other)
        line = re.compile(rf"running on {slurm_host.node}, 1 GPU, for \d+s; runs rs_")
        sets = [f"--set={o}" for o in overrides]

        def running_as_json_then_text() -> list[dict[str, Any]]:
            # The text is asked for right after the JSON showed a job running:
            # the jobs (6 s each) are still running on a busy machine.
            found = [
                j for j in status(project, overrides)["queued_jobs"]
                if j["state"] == "RUNNING" and j["elapsed_s"] >= 1
            ]  # fmt: skip
            if found:
                assert line.search(project.cosmos("status", *sets).stdout), "running, as text"
            return found

        running = wait_until(running_as_json_then_text, "a job of ours running for a second")
        assert {(j["node"], j["gpus"], j["reason"]) for j in running} == {
            (slurm_host.node, 1, None)
        }
        assert runner.wait(timeout=40) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert status(project, overrides)["queued_jobs"] == []
    text = project.cosmos("status", *[f"--set={o}" for o in overrides]).stdout
    assert "; runs rs_" not in text


def test_status_says_why_a_slurm_target_could_not_be_asked(
    cluster_project: tuple[Project, list],
) -> None:
    project, overrides = cluster_project
    # The login node is this machine, whose Slurm clients know no cluster
    # (no SLURM_CONF here): squeue fails; the target itself is there.
    local = [o for o in overrides if not o.startswith("target.login.")] + ["target.login=local"]
    target = status(project, local)
    assert target["reachable"] and target["queued_jobs"] is None
    assert target["error"].startswith("squeue failed: ")
    text = project.cosmos("status", *[f"--set={o}" for o in local]).stdout
    assert "target test-slurm (slurm this machine):\n  jobs: unknown (squeue failed: " in text
    # A login node that does not answer: unreachable (exit 3), said in its entry.
    closed = [*overrides, "target.login.port=1", "target.login.connect_timeout=2"]
    done = project.cosmos("status", *[f"--set={o}" for o in closed])
    assert done.returncode == 3
    assert "target test-slurm (slurm root@" in done.stdout and "  unreachable: " in done.stdout


def test_logs_follow_waits_for_a_job_pending_in_slurm_and_follows_it_to_its_end(
    cluster_project: tuple[Project, list], slurm_host: Any
) -> None:
    project, overrides = cluster_project
    other = blocker(slurm_host, overrides)
    runner = project.start_batch(
        "+experiment=demo", *overrides, env={"COSMOS_SIMULATOR__PER_VIDEO_S": "0.5"}
    )
    try:
        queued = wait_until(
            lambda: status(project, overrides)["queued_jobs"], "a job of ours queued"
        )
        run_id = queued[0]["runs"][-1]
        # The other job ends in 2 s: logs -f waits for ours to run, then follows it.
        threading.Timer(2.0, slurm_host.client, ("scancel", other)).start()
        started = time.monotonic()
        done = project.cosmos("logs", "-f", run_id, "--json", *[f"--set={o}" for o in overrides])
        assert done.returncode == 0, done.stdout
        assert time.monotonic() - started >= 2.0
        result = json.loads(done.stdout)
        assert result["status"] == "succeeded"
        log = "\n".join(result["lines"])
        # The simulated model's own lines, from its start to its last video.
        assert "[simulated]" in log and log.count("[simulated] video") >= 2, log
        assert runner.wait(timeout=25) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


# squeue's lines as Debian's Slurm 22.05 prints them in QUEUE_FORMAT.
SQUEUE = """\
3|PENDING|Resources||gres:gpu:2|0:00|sw_1|cosmos-jb_3
4|PENDING|Priority||N/A|0:00|(null)|other
1|RUNNING|None|node1|gres:gpu:2|1:02:03|jb_1|cosmos-jb_1
2|RUNNING|None|gpu-a|gres/gpu:a100:4|2-03:04:05|jb_2|cosmos-jb_2
motd: welcome
"""


def test_the_queue_keeps_our_jobs_with_reason_node_gpus_and_elapsed_seconds() -> None:
    jobs = [job.to_dict() for job in parse_queue(SQUEUE)]
    assert [(j["slurm_id"], j["job_id"]) for j in jobs] == [
        ("3", "jb_3"), ("1", "jb_1"), ("2", "jb_2")
    ]  # fmt: skip
    assert jobs[0] | {"slurm_id": "", "job_id": ""} == {
        "slurm_id": "", "job_id": "", "state": "PENDING", "reason": "Resources",
        "node": None, "gpus": 2, "elapsed_s": 0, "sweep_id": "sw_1",
    }  # fmt: skip
    assert jobs[1]["sweep_id"] is None  # a comment that is no sweep id
    assert (jobs[1]["node"], jobs[1]["reason"], jobs[1]["elapsed_s"]) == ("node1", None, 3723)
    assert (jobs[2]["gpus"], jobs[2]["elapsed_s"]) == (4, 2 * 86400 + 3 * 3600 + 245)
