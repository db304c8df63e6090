"""What a slurm target sends to the cluster and reads back: the batch script, the sbatch
command, Slurm's job states, the outcome file the script writes, and how a job ended.

The batch script runs in the job folder on the shared file system. It
records when it started and on which node (``started``), runs the model
program (its output in ``logs/job.log``), and on exit, whatever ends it
(the program's exit, a failing set-up line, SIGTERM from ``scancel`` or a
time limit), writes its outcome (exit code, start and end times, node) to
``outcome`` through a temporary name and a rename: the outcome survives
accounting being off and ``scontrol`` forgetting the job after MinJobAge.
Every argument is quoted (BashScriptBuilder); only the target's ``setup``
line is the user's shell text, as configured.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cosmos_workflow.config.target_kinds import SlurmTargetSettings
from cosmos_workflow.connection.scripts import BashScriptBuilder
from cosmos_workflow.errors import CosmosError, ExecutionFailure, RuntimeFailure

# Files of a job in its folder on the cluster.
SCRIPT_NAME = "job.sh"
SLURM_ID_NAME = "slurm.id"
STARTED_NAME = "started"
OUTCOME_NAME = "outcome"
# Written before we scancel a job ourselves (`cosmos kill`, Ctrl-C): not a cancel from outside.
STOPPED_NAME = "stopped"
SLURM_OUT = "slurm.out"
SLURM_ERR = "slurm.err"
# The model program's output (the runner's logs/job.log).
PROGRAM_LOG = "logs/job.log"

# Slurm job states: still in the queue or running, and over.
ACTIVE_STATES = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}
)
# Over because the batch script exited (it wrote its outcome first).
ENDED_BY_ITSELF = frozenset({"COMPLETED", "FAILED", "OUT_OF_MEMORY"})
# Over through the cluster's fault, not the job's: tried again (transient).
TRANSIENT_STATES = frozenset({"NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "REQUEUE_FED"})
# squeue's fields, separated by '|': state, reason, node list.
SQUEUE_FORMAT = "%T|%r|%N"

# The EXIT trap: the outcome, written atomically. $1 is the exit status.
_OUTCOME = r"""cosmos_outcome() {
  printf 'exit_code=%s\nstarted=%s\nfinished=%s\nnode=%s\nslurm_job_id=%s\n' \
    "$1" "$cosmos_started" "$(date +%s.%N)" "$(hostname)" "${SLURM_JOB_ID:-}" \
    > outcome.tmp && mv -f outcome.tmp outcome
}"""


class SlurmJobCancelled(CosmosError):
    """The Slurm job was cancelled (scancel) by someone else than this runner: its runs are."""

    kind = "cancelled"


class SlurmTimeLimit(ExecutionFailure):
    """The Slurm job hit its time limit (failed, not tried again)."""


def job_name(job_id: str) -> str:
    """The Slurm job name of one of our jobs."""
    return f"cosmos-{job_id}"


def launch_argv(
    target: SlurmTargetSettings, argv: list[str], workdir: str, job_id: str
) -> list[str]:
    """The model's command as the target's launcher runs it inside the allocation.

    CUDA_VISIBLE_DEVICES is Slurm's: never set here (docker passes it on).
    """
    image = target.image or ""
    mount = f"{target.work_dir}:{target.work_dir}"
    if target.launcher == "apptainer":
        return ["apptainer", "exec", "--nv", "--bind", mount, "--pwd", workdir, image, *argv]
    if target.launcher == "pyxis":
        return [
            "srun",
            "--ntasks=1",
            f"--container-image={image}",
            f"--container-mounts={mount}",
            f"--container-workdir={workdir}",
            *argv,
        ]
    if target.launcher == "docker":
        return [
            "docker",
            "run",
            "--rm",
            "--pull=never",
            "--name",
            job_name(job_id),
            "--gpus",
            "all",
            "-e",
            "CUDA_VISIBLE_DEVICES",
            "-v",
            mount,
            "-w",
            workdir,
            image,
            *argv,
        ]
    return argv


def batch_script(
    target: SlurmTargetSettings,
    job_dir: str,
    argv: list[str],
    env: Mapping[str, str],
    workdir: str,
    job_id: str,
) -> str:
    """The batch script of one job (run by sbatch in ``job_dir``)."""
    builder = BashScriptBuilder()
    builder.cd(job_dir)
    builder.shell('cosmos_started="$(date +%s.%N)"')
    builder.shell(_OUTCOME)
    builder.shell("trap 'cosmos_outcome $?' EXIT")
    # scancel and time limits send SIGTERM: exit so that the EXIT trap records it.
    builder.shell("trap 'exit 143' TERM")
    builder.shell(
        'printf \'%s\\n%s\\n\' "$cosmos_started" "$(hostname)" > started.tmp '
        "&& mv -f started.tmp started"
    )
    builder.shell(f"exec >> {shlex.quote(PROGRAM_LOG)} 2>&1")
    if target.setup:
        builder.shell(target.setup)
    for name, value in sorted(env.items()):
        builder.export(name, value)
    builder.export("PYTHONUNBUFFERED", "1")
    builder.cd(workdir)
    builder.run(*launch_argv(target, argv, workdir, job_id))
    return "#!/bin/bash\n" + builder.script()


def sbatch_argv(
    target: SlurmTargetSettings, job_dir: str, job_id: str, num_gpus: int, comment: str
) -> list[str]:
    """The sbatch command that submits a job's script (``--parsable``: it prints the id)."""
    argv = [
        "sbatch",
        "--parsable",
        f"--job-name={job_name(job_id)}",
        f"--comment={comment}",
        f"--partition={target.partition}",
        f"--gres={target.gres}:{num_gpus}",
        f"--time={target.time_limit}",
        "--nodes=1",
        "--ntasks=1",
        "--no-requeue",
        f"--chdir={job_dir}",
        f"--output={job_dir}/{SLURM_OUT}",
        f"--error={job_dir}/{SLURM_ERR}",
    ]
    for flag, value in (
        ("--account", target.account),
        ("--qos", target.qos),
        ("--constraint", target.constraint),
    ):
        if value:
            argv.append(f"{flag}={value}")
    return [*argv, *target.sbatch_args, f"{job_dir}/{SCRIPT_NAME}"]


@dataclass(frozen=True)
class JobState:
    """A Slurm job as squeue shows it.

    Attributes:
        state: PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT, NODE_FAIL, ...
        reason: Why it waits (Resources, Priority, ...) or how it ended.
        nodes: Its node list ("" while it waits).
    """

    state: str
    reason: str
    nodes: str

    @property
    def active(self) -> bool:
        """True while it waits or runs."""
        return self.state in ACTIVE_STATES


def parse_state(line: str) -> JobState | None:
    """One squeue line in :data:`SQUEUE_FORMAT`; None if it is not one."""
    parts = line.strip().split("|")
    if len(parts) != 3 or not parts[0]:
        return None
    state = parts[0].split()[0].rstrip("+")
    return JobState(state, parts[1], parts[2])


@dataclass(frozen=True)
class Outcome:
    """What the batch script recorded when it exited.

    Attributes:
        exit_code: The script's exit status (the program's, or 143 after SIGTERM).
        started_at: When the script started.
        finished_at: When it exited.
        node: The node it ran on.
    """

    exit_code: int
    started_at: datetime
    finished_at: datetime
    node: str


def parse_outcome(text: str) -> Outcome | None:
    """The outcome file's content; None if it is not a complete outcome."""
    fields = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
    try:
        return Outcome(
            exit_code=int(fields["exit_code"]),
            started_at=_epoch(fields["started"]),
            finished_at=_epoch(fields["finished"]),
            node=fields.get("node", ""),
        )
    except (KeyError, ValueError):
        return None


def parse_started(text: str) -> datetime | None:
    """When the job started, from its ``started`` file; None if it is not complete."""
    first = text.splitlines()[0] if text.strip() else ""
    try:
        return _epoch(first)
    except ValueError:
        return None


def _epoch(text: str) -> datetime:
    return datetime.fromtimestamp(float(text), tz=UTC)


def state_line(slurm_id: str, state: JobState) -> str:
    """A log line saying where the job is: queued with Slurm's reason, or running on a node."""
    if state.state == "PENDING":
        reason = f" ({state.reason})" if state.reason not in ("", "None") else ""
        return f"[slurm] job {slurm_id} queued: pending{reason}"
    if state.state == "RUNNING":
        return f"[slurm] job {slurm_id} running on {state.nodes}"
    return f"[slurm] job {slurm_id} {state.state.lower()}"


def check_ended(
    where: str, final: JobState | None, outcome: Outcome | None, started: bool, time_limit: str
) -> None:
    """Classify how a job that is over ended: return if it ended by itself, else raise.

    Args:
        where: The job, for messages ("Slurm job 12 on gpu-cluster").
        final: Its last state in squeue (None: Slurm has forgotten it).
        outcome: What its batch script recorded, if it did.
        started: True if its batch script started.
        time_limit: The target's time limit (for the message).

    Raises:
        SlurmTimeLimit: TIMEOUT (failed, "time limit" in the reason).
        SlurmJobCancelled: CANCELLED by someone else (its runs are cancelled).
        RuntimeFailure: NODE_FAIL, PREEMPTED, ... or no outcome (transient: tried again).
    """
    state = final.state if final is not None else "UNKNOWN"
    if state == "TIMEOUT":
        raise SlurmTimeLimit(f"{where} hit its time limit (target.time_limit={time_limit})")
    if state == "CANCELLED":
        raise SlurmJobCancelled(f"{where} was cancelled (scancel)")
    if state in TRANSIENT_STATES:
        reason = f" ({final.reason})" if final is not None and final.reason else ""
        raise RuntimeFailure(f"{where} ended with {state}{reason}")
    if outcome is None:
        what = "after it started" if started else "before it started"
        raise RuntimeFailure(f"{where} ended ({state}) {what} without writing its outcome")
