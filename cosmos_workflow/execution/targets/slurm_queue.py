"""What a Slurm cluster holds for us, for `cosmos status`: our jobs in squeue.

One squeue call on the login node, with a fixed format (fields separated by
``|``, the job name last), lists the login user's jobs in the target's
partition; only ours (named ``cosmos-<job id>``) are kept. Each comes back
with Slurm's state: a pending job with Slurm's reason (Resources, Priority,
QOSMaxGpuPerUser, ...), a running one with its node, GPUs and elapsed time.
The login node's command output arrives already unframed (login noise cut
off, connection/framing.py), so every line here is squeue's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cosmos_workflow.connection.local import CommandResult

# Job id, state, reason, node list, TRES per node (the GPUs asked for), elapsed
# time, comment, name (last: the one field a user could fill with anything).
QUEUE_FORMAT = "%i|%T|%r|%N|%b|%M|%k|%j"
_FIELDS = QUEUE_FORMAT.count("|") + 1
# Our job names (slurm_script.job_name).
NAME_PREFIX = "cosmos-"
# A job's comment is its sweep's id (SlurmExecutor.label_jobs).
SWEEP_PREFIX = "sw_"
# "gres:gpu:2", "gres/gpu:a100:2", "gpu:2": the count is the last number.
_GPU_COUNT = re.compile(r"gpu(?::[^:,]+)?:(\d+)")


@dataclass(frozen=True)
class QueuedJob:
    """One of our jobs in the cluster's queue.

    Attributes:
        slurm_id: Slurm's job id.
        job_id: Our job id (from the job name).
        state: Slurm's state: PENDING, RUNNING, COMPLETING, ...
        reason: Why it waits (Resources, Priority; None: not considered yet),
            as Slurm says it; None while it runs.
        node: The node it runs on; None while it waits.
        gpus: The GPUs it holds or asks for; None if squeue did not say.
        elapsed_s: How long it has been running (0 while it waits).
        sweep_id: The sweep it belongs to (its ``--comment``), if any.
    """

    slurm_id: str
    job_id: str
    state: str
    reason: str | None
    node: str | None
    gpus: int | None
    elapsed_s: int
    sweep_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "slurm_id": self.slurm_id,
            "job_id": self.job_id,
            "state": self.state,
            "reason": self.reason,
            "node": self.node,
            "gpus": self.gpus,
            "elapsed_s": self.elapsed_s,
            "sweep_id": self.sweep_id,
        }


def queue_argv(partition: str) -> list[str]:
    """The squeue command: the login user's jobs in ``partition``, no header, fixed format."""
    return ["squeue", "--noheader", "--me", f"--partition={partition}", "--format", QUEUE_FORMAT]


def parse_queue(stdout: str) -> list[QueuedJob]:
    """Our jobs among squeue's lines in :data:`QUEUE_FORMAT` (other lines are skipped)."""
    jobs = []
    for line in stdout.splitlines():
        job = _parse_line(line)
        if job is not None:
            jobs.append(job)
    return jobs


def list_queue(run: Callable[[list[str]], CommandResult], partition: str) -> list[QueuedJob]:
    """Our jobs in the cluster's queue, asked on the login node with ``run``.

    Raises:
        RuntimeError: squeue failed (its message).
    """
    done = run(queue_argv(partition))
    if done.exit_code != 0:
        raise RuntimeError(f"squeue failed: {done.stderr.strip()[-300:] or done.exit_code}")
    return parse_queue(done.stdout)


def _parse_line(line: str) -> QueuedJob | None:
    parts = line.strip().split("|", _FIELDS - 1)
    if len(parts) != _FIELDS:
        return None
    slurm_id, state, reason, node, tres, elapsed, comment, name = parts
    if not name.startswith(NAME_PREFIX) or not slurm_id:
        return None
    waiting = state == "PENDING"
    return QueuedJob(
        slurm_id=slurm_id,
        job_id=name.removeprefix(NAME_PREFIX),
        state=state,
        reason=(reason or None) if waiting else None,
        node=node or None if not waiting else None,
        gpus=_gpus(tres),
        elapsed_s=_seconds(elapsed),
        sweep_id=comment if comment.startswith(SWEEP_PREFIX) else None,
    )


def _gpus(tres: str) -> int | None:
    found = _GPU_COUNT.search(tres)
    return int(found.group(1)) if found else None


def _seconds(elapsed: str) -> int:
    """squeue's time used (``M:SS``, ``H:MM:SS`` or ``D-HH:MM:SS``) in seconds; 0 if unknown."""
    days, _, clock = elapsed.rpartition("-")
    try:
        total = 0
        for part in clock.split(":"):
            total = total * 60 + int(part)
        return total + int(days or 0) * 86400
    except ValueError:
        return 0
