"""The Slurm part of benchmarks/scheduling.py: a private test cluster and its overheads.

The cluster is the tests' one-node Slurm cluster with 4 fake GPUs
(tests/slurm.py) inside a disposable test host (tests/testhost.py), whose
sshd is the login node, as ``scripts/test-host up --slurm`` makes it. It
needs root and Debian's Slurm packages (scripts/install-system-deps); it is
removed again afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from statistics import mean

from sweep_project import REPO

sys.path.insert(0, str(REPO / "tests"))


@contextmanager
def slurm_cluster(state_dir: Path) -> Iterator[tuple[list[str], object]]:
    """Start a test host and its Slurm cluster; the ``target=slurm`` overrides and the cluster."""
    import slots
    import slurm
    import testhost

    slot = slots.acquire()
    host = None
    try:
        host = testhost.up(state_dir, slot, noisy=False)
        cluster = slurm.on_host(host, slot.number)
        try:
            work = cluster.work_dir / "bench"
            work.mkdir()
            work.chmod(0o777)
            overrides = [o for o in cluster.overrides(slurm.login(host)) if "work_dir" not in o] + [
                f"target.work_dir={work}"
            ]
            yield overrides, cluster
        finally:
            slurm.down(cluster.root)
    finally:
        if host is not None:
            testhost.down(state_dir)
        slot.release()


def job_overheads(records: list[dict]) -> list[float]:
    """Per job: from the GPUs it needs freeing (the jobs before it on them ended) to its start.

    The slurm target's GPUs are slots 0..max_gpus-1 that our scheduler
    books; a job's times are the batch script's own (start and end on the
    node). So the gap covers noticing the previous job's end (squeue
    polling), collecting it, preparing the next job's folder, sbatch, and
    Slurm starting the job. Jobs that waited for no earlier job are left out.
    """
    jobs: dict[str, dict] = {}
    for record in records:
        jobs.setdefault(record["job_id"], record)
    free_at: dict[int, datetime] = {}
    gaps = []
    for job in sorted(jobs.values(), key=lambda r: r["started_at"]):
        start = datetime.fromisoformat(job["started_at"])
        before = [free_at[gpu] for gpu in job["gpus"] if gpu in free_at]
        if before:
            gaps.append((start - max(before)).total_seconds())
        for gpu in job["gpus"]:
            free_at[gpu] = datetime.fromisoformat(job["finished_at"])
    return gaps


def slurm_start_latency(cluster: object) -> float | None:
    """Mean seconds from submission to start of the cluster's jobs (Slurm's share; 1 s steps)."""
    text = cluster.client("squeue", "-h", "-t", "all", "-o", "%j|%V|%S")  # type: ignore[attr-defined]
    waits = []
    for line in text.splitlines():
        name, submitted, started = line.split("|")
        if name.startswith("cosmos-") and started not in ("N/A", ""):
            waits.append(
                (
                    datetime.fromisoformat(started) - datetime.fromisoformat(submitted)
                ).total_seconds()
            )
    return mean(waits) if waits else None
