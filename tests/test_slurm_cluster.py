"""The private Slurm cluster of the tests (tests/slurm.py), used as a login node over SSH.

The test host's sshd is the login node: every Slurm command here goes over
SSH (our SSHManager, through the host's noisy login shell), as the slurm
target will send them. Fault injection (node down, a time limit up) comes
from this machine, as a cluster admin's would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmos_workflow.connection.remote import RemoteCommandExecutor
from cosmos_workflow.connection.ssh import SSHEndpoint, SSHManager

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


class Login:
    """Slurm commands run on the login node over SSH."""

    def __init__(self, remote: RemoteCommandExecutor, work_dir: Path) -> None:
        self.remote = remote
        self.work_dir = work_dir

    def run(self, *argv: str) -> str:
        done = self.remote.run(list(argv), timeout=30)
        assert done.exit_code == 0, f"{argv}: {done.stderr}"
        return done.stdout

    def sbatch(self, *args: str, name: str = "t") -> str:
        """Submit; the job id. Its output goes to <work_dir>/<name>-<id>.out."""
        output = str(self.work_dir / f"{name}-%j.out")
        return self.run("sbatch", "--parsable", f"--output={output}", *args).strip()

    def job(self, job_id: str) -> dict[str, str]:
        fields: dict[str, str] = {}
        for word in self.run("scontrol", "-o", "show", "job", job_id).split():
            key, _, value = word.partition("=")
            fields.setdefault(key, value)
        return fields

    def wait(self, job_id: str, states: set[str], timeout_s: float = 20) -> dict[str, str]:
        """Poll until the job is in one of ``states``; its scontrol fields."""
        deadline = time.monotonic() + timeout_s
        while True:
            fields = self.job(job_id)
            if fields["JobState"] in states:
                return fields
            assert time.monotonic() < deadline, f"job {job_id} still {fields['JobState']}"
            time.sleep(0.2)

    def output(self, name: str, job_id: str) -> str:
        return (self.work_dir / f"{name}-{job_id}.out").read_text()


@pytest.fixture(scope="module")
def login(host: Any, slurm_host: Any) -> Iterator[Login]:
    endpoint = SSHEndpoint(
        host=host.address,
        port=host.sshd.port,
        user=host.sshd.user,
        key_file=host.sshd.client_key,
        known_hosts=host.sshd.known_hosts,
        connect_timeout=5.0,
    )
    with SSHManager(endpoint) as ssh:
        yield Login(RemoteCommandExecutor(ssh), slurm_host.work_dir)


@pytest.fixture(autouse=True)
def idle_cluster(login: Login, slurm_host: Any) -> Iterator[None]:
    """Each test starts and leaves the node idle, with no job of its own left."""
    yield
    login.run("scancel", f"--user={login.run('id', '-un').strip()}")
    if slurm_host.node_state().startswith("down"):
        slurm_host.set_node("resume")
    deadline = time.monotonic() + 20
    while slurm_host.node_state() != "idle":
        assert time.monotonic() < deadline, f"node left {slurm_host.node_state()}"
        time.sleep(0.1)


def test_the_login_node_sees_a_partition_with_one_idle_four_gpu_node(
    login: Login, slurm_host: Any
) -> None:
    assert login.run("sinfo", "-h", "-o", "%P %a %D %t %G").split() == [
        "gpu*",
        "up",
        "1",
        "idle",
        "gpu:4",
    ]
    node = login.run("scontrol", "-o", "show", "node", slurm_host.node)
    assert "Gres=gpu:4" in node and "State=IDLE" in node
    assert login.run("squeue", "-h") == ""


def test_a_job_gets_the_gpus_it_asks_for_and_runs_as_the_login_user(
    login: Login, host: Any
) -> None:
    job = login.sbatch(
        "--gres=gpu:2",
        "--wrap",
        'echo "gpus=$CUDA_VISIBLE_DEVICES"; id -un; hostname; echo "job=$SLURM_JOB_ID"',
        name="gpus",
    )
    fields = login.wait(job, FINAL)
    assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0")
    # The job's output is in the shared work dir: the login node sees it as written.
    gpus, user, node, job_line = login.output("gpus", job).splitlines()
    indices = gpus.removeprefix("gpus=").split(",")
    assert len(indices) == len(set(indices)) == 2
    assert set(indices) <= {"0", "1", "2", "3"}
    assert user == host.sshd.user
    assert node == fields["NodeList"]
    assert job_line == f"job={job}"


def test_a_failing_job_ends_failed_with_its_exit_code(login: Login) -> None:
    job = login.sbatch("--wrap", "exit 3")
    fields = login.wait(job, FINAL)
    assert (fields["JobState"], fields["ExitCode"]) == ("FAILED", "3:0")


def test_the_setup_line_of_the_overrides_makes_python_the_interpreter(
    login: Login, slurm_host: Any, host: Any
) -> None:
    overrides = dict(o.split("=", 1) for o in slurm_host.overrides(_login(host)))
    setup, python = overrides["target.setup"], overrides["target.python"]
    script = f'{setup} && {python} -c "import sys; print(sys.version_info[0])"'
    job = login.sbatch("--wrap", script, name="py")
    assert login.wait(job, FINAL)["JobState"] == "COMPLETED"
    assert login.output("py", job) == "3\n"
    # Without the setup line there is no `python` (Debian has python3 only).
    bare = login.sbatch("--wrap", f"{python} -c pass", name="py")
    assert login.wait(bare, FINAL)["JobState"] == "FAILED"


def test_four_one_gpu_jobs_run_at_once_and_a_fifth_waits(login: Login) -> None:
    wrap = "echo $CUDA_VISIBLE_DEVICES; sleep 30"
    jobs = [login.sbatch("--gres=gpu:1", "--wrap", wrap, name="one") for _ in range(4)]
    for job in jobs:
        login.wait(job, {"RUNNING"})
    fifth = login.sbatch("--gres=gpu:1", "--wrap", "true", name="one")
    time.sleep(1)
    waiting = login.job(fifth)
    assert (waiting["JobState"], waiting["Reason"]) == ("PENDING", "Resources")
    running = login.run("squeue", "-h", "-t", "RUNNING", "-o", "%i").split()
    assert sorted(running) == sorted(jobs)
    deadline = time.monotonic() + 10
    while not all((login.work_dir / f"one-{job}.out").stat().st_size for job in jobs):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    indices = sorted(login.output("one", job).strip() for job in jobs)
    assert indices == ["0", "1", "2", "3"]


def test_scancel_cancels_a_running_job(login: Login) -> None:
    job = login.sbatch("--wrap", "sleep 60")
    login.wait(job, {"RUNNING"})
    login.run("scancel", job)
    assert login.wait(job, FINAL)["JobState"] == "CANCELLED"


def test_a_job_past_its_time_limit_ends_with_timeout(login: Login, slurm_host: Any) -> None:
    job = login.sbatch("--time=1", "--wrap", "sleep 300")
    assert login.job(job)["TimeLimit"] == "00:01:00"
    login.wait(job, {"RUNNING"})
    slurm_host.expire(job)
    fields = login.wait(job, FINAL, timeout_s=35)
    assert (fields["JobState"], fields["Reason"]) == ("TIMEOUT", "TimeLimit")


def test_a_node_set_down_fails_its_running_job_and_comes_back_on_resume(
    login: Login, slurm_host: Any
) -> None:
    job = login.sbatch("--no-requeue", "--gres=gpu:1", "--wrap", "sleep 60")
    login.wait(job, {"RUNNING"})
    slurm_host.set_node("down", reason="test fault")
    fields = login.wait(job, FINAL)
    assert (fields["JobState"], fields["Reason"]) == ("NODE_FAIL", "NodeDown")
    assert slurm_host.node_state().startswith("down")
    # While the node is down a new job waits; on resume it runs.
    later = login.sbatch("--wrap", "echo back", name="later")
    time.sleep(1)
    assert login.job(later)["JobState"] == "PENDING"
    slurm_host.set_node("resume")
    assert login.wait(later, FINAL)["JobState"] == "COMPLETED"
    assert login.output("later", later) == "back\n"


def _login(host: Any) -> dict[str, str]:
    import slurm

    return slurm.login(host)


def test_a_cluster_on_taken_ports_fails_fast_and_leaves_nothing_behind(
    host: Any, slot: Any, slurm_host: Any, tmp_path: Path, login: Login
) -> None:
    import slots
    import slurm

    root, wrappers = tmp_path / "second", tmp_path / "bin"
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"(slurmctld|slurmd)\b.* exited") as failed:
        slurm.up(
            root,
            netns=host.netns,
            address=host.address,
            slot_number=slot.number,
            wrapper_dir=wrappers,
        )
    assert time.monotonic() - started < 10
    assert "Address already in use" in str(failed.value)
    assert slots.pids_mentioning([f"{root}/"]) == set()
    assert not root.exists()
    assert list(wrappers.iterdir()) == []
    # The worker's own cluster is untouched.
    assert slurm_host.node_state() == "idle"
    assert login.run("sinfo", "-h", "-o", "%t") == "idle\n"
    with pytest.raises(RuntimeError, match=r"up in .* already"):
        slurm.up(
            slurm_host.root,
            netns=host.netns,
            address=host.address,
            slot_number=slot.number,
            wrapper_dir=wrappers,
        )
