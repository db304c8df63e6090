"""Where and when jobs run: batches of compatible runs, packed onto GPU slots.

Pure policy, no I/O: the dispatcher asks it what to start now, and the
benchmarks ask it for a whole plan.

- A job is one model invocation: runs that share an adapter and a batch key
  (same scalar parameters, same control set), at most the adapter's batch
  size, and never runs whose parameters differ.
- Each job gets an estimated time, ``(load + runs x per video) / speed``,
  from the adapter's estimates and the target's speed (configured, then
  learnt from the jobs that finish).
- Placement is list scheduling by earliest finish: jobs in order of
  GPU-time (largest first) are booked, one after another, on the host where
  they would end first; a job starts now only if its booking starts now on
  GPUs that are free. Bookings are made again at every decision, so a slow
  or lost host changes the plan at once.
- A group whose jobs would leave GPUs idle at the end is cut into smaller
  jobs while that shortens the planned makespan (one more model load for a
  shorter tail).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.execution.adapters.base import ModelAdapter
from cosmos_workflow.manifest.specs import RunSpec

if TYPE_CHECKING:
    from cosmos_workflow.engine.isolation import SplitHalf

# Below this many seconds two times count as equal.
EPSILON_S = 1e-6
# How much a learnt speed moves towards each new measurement.
LEARNING_RATE = 0.5


@dataclass(eq=False)
class PlannedJob:
    """Runs that go to one model invocation, and the job's retry state.

    Attributes:
        runs: The runs, sorted by id (the order fixes the output names).
        adapter: The adapter's name.
        num_gpus: GPUs the invocation needs, all on one host.
        tries: How many times it was started by this runner.
        not_before: Monotonic time before which it may not start (backoff).
        group: The compatibility group it was cut from (its runs may share a job).
        half: The half of a failed job it is, when it was split from one (engine/isolation.py).
    """

    runs: list[RunSpec]
    adapter: str
    num_gpus: int
    tries: int = 0
    not_before: float = 0.0
    group: tuple[object, ...] = ()
    half: SplitHalf | None = None

    @property
    def run_ids(self) -> list[str]:
        """The runs' ids, in job order."""
        return [run.id for run in self.runs]


@dataclass
class HostSlots:
    """One target's GPUs as the scheduler sees them.

    Attributes:
        name: The target's name.
        gpus: Its GPU indices.
        speed: Relative throughput (2.0 finishes a job in half the time).
        busy_until: GPU index -> estimated monotonic time it frees up (busy GPUs only).
        up: False while the host is unreachable (drained).
    """

    name: str
    gpus: list[int]
    speed: float = 1.0
    busy_until: dict[int, float] = field(default_factory=dict)
    up: bool = True

    def free_gpus(self) -> list[int]:
        """GPUs with no job now, in configured order."""
        return [gpu for gpu in self.gpus if gpu not in self.busy_until]

    def occupy(self, gpus: Sequence[int], until: float) -> None:
        """Mark ``gpus`` busy until the estimated time ``until``."""
        for gpu in gpus:
            self.busy_until[gpu] = until

    def release(self, gpus: Sequence[int]) -> None:
        """Mark ``gpus`` free."""
        for gpu in gpus:
            self.busy_until.pop(gpu, None)

    def learn(self, expected_s: float, actual_s: float) -> None:
        """Move the speed towards what a finished job showed.

        Args:
            expected_s: The job's estimate at speed 1.
            actual_s: How long it really took.
        """
        if expected_s <= EPSILON_S or actual_s <= EPSILON_S:
            return
        measured = expected_s / actual_s
        self.speed += LEARNING_RATE * (measured - self.speed)


class CostModel:
    """Estimated seconds of a job, from each adapter's load and per-video estimates.

    Args:
        adapters: The adapters by name.
    """

    def __init__(self, adapters: Mapping[str, ModelAdapter]) -> None:
        self._adapters = adapters

    def seconds(self, job: PlannedJob, speed: float = 1.0) -> float:
        """The job's estimated time on a host of ``speed``."""
        adapter = self._adapters[job.adapter]
        load, per_video = adapter.time_estimates()
        return (load + len(job.runs) * per_video) / speed

    def gpu_seconds(self, job: PlannedJob) -> float:
        """The job's estimated GPU-time at speed 1 (its priority: largest first)."""
        return self.seconds(job) * job.num_gpus


@dataclass(frozen=True)
class Booking:
    """Where and when a job is planned.

    Attributes:
        job: The job.
        host: The host's name.
        gpus: The GPU indices it gets.
        start: Planned start (monotonic seconds).
        finish: Planned end.
    """

    job: PlannedJob
    host: str
    gpus: tuple[int, ...]
    start: float
    finish: float


def form_jobs(
    runs: Sequence[RunSpec],
    adapters: Mapping[str, ModelAdapter],
    batching: bool = True,
) -> list[PlannedJob]:
    """Group compatible runs into jobs of near-equal size, at most the adapter's batch size.

    Raises:
        ValidationFailure: a run names an adapter that is not available.
    """
    groups: dict[tuple[object, ...], list[RunSpec]] = {}
    for run in runs:
        adapter = adapters.get(run.adapter)
        if adapter is None:
            known = ", ".join(sorted(adapters))
            raise ValidationFailure(f"unknown model adapter {run.adapter!r} (available: {known})")
        key = (run.adapter, adapter.batch_key(run), run.model["num_gpus"])
        groups.setdefault(key, []).append(run)
    jobs = []
    for key, members in groups.items():
        name = str(key[0])
        size = max(1, adapters[name].max_batch_size) if batching else 1
        count = math.ceil(len(members) / size)
        jobs += _group_jobs(key, sorted(members, key=lambda r: r.id), count)
    return jobs


def _group_jobs(key: tuple[object, ...], members: list[RunSpec], count: int) -> list[PlannedJob]:
    """A group's runs (sorted by id) cut into ``count`` jobs of near-equal size."""
    name, _, num_gpus = key
    return [
        PlannedJob(chunk, str(name), int(str(num_gpus)), group=key)
        for chunk in _even_chunks(members, count)
    ]


def _even_chunks(items: list[RunSpec], count: int) -> list[list[RunSpec]]:
    """``items`` cut into ``count`` chunks whose sizes differ by one at most."""
    base, extra = divmod(len(items), count)
    chunks, start = [], 0
    for index in range(count):
        end = start + base + (1 if index < extra else 0)
        chunks.append(items[start:end])
        start = end
    return chunks


def plan(
    jobs: Sequence[PlannedJob],
    hosts: Sequence[HostSlots],
    cost: CostModel,
    now: float,
) -> list[Booking]:
    """Book every job, largest GPU-time first, on the host where it would end first.

    Jobs that fit no host that is up are left out.
    """
    free_at = {
        host.name: {gpu: _expected_free(host, gpu, now) for gpu in host.gpus}
        for host in hosts
        if host.up
    }
    speeds = {host.name: host.speed for host in hosts}
    order = sorted(jobs, key=cost.gpu_seconds, reverse=True)
    bookings = []
    for job in order:
        best: Booking | None = None
        for host_name, gpu_times in free_at.items():
            if len(gpu_times) < job.num_gpus:
                continue
            chosen = sorted(gpu_times, key=lambda gpu: (gpu_times[gpu], gpu))[: job.num_gpus]
            start = max(now, job.not_before, *(gpu_times[gpu] for gpu in chosen))
            finish = start + cost.seconds(job, speeds[host_name])
            if best is None or finish < best.finish - EPSILON_S:
                best = Booking(job, host_name, tuple(sorted(chosen)), start, finish)
        if best is None:
            continue
        for gpu in best.gpus:
            free_at[best.host][gpu] = best.finish
        bookings.append(best)
    return bookings


def _expected_free(host: HostSlots, gpu: int, now: float) -> float:
    """When a GPU is expected to be free: now, its job's estimated end, or, for a
    job already past its estimate, as long again as it has overrun."""
    until = host.busy_until.get(gpu)
    if until is None:
        return now
    return until if until > now else now + (now - until) + EPSILON_S


def start_now(
    jobs: Sequence[PlannedJob],
    hosts: Sequence[HostSlots],
    cost: CostModel,
    now: float,
) -> list[Booking]:
    """The bookings of the current plan that start now, on GPUs that are free now."""
    free = {host.name: set(host.free_gpus()) for host in hosts}
    return [
        booking
        for booking in plan(jobs, hosts, cost, now)
        if booking.start <= now + EPSILON_S and set(booking.gpus) <= free[booking.host]
    ]


def makespan(bookings: Sequence[Booking], now: float = 0.0) -> float:
    """When the last booked job ends, from ``now``."""
    return max((booking.finish for booking in bookings), default=now) - now


def split_for_balance(
    jobs: list[PlannedJob],
    hosts: Sequence[HostSlots],
    cost: CostModel,
    max_rounds: int | None = None,
    now: float = 0.0,
) -> list[PlannedJob]:
    """Cut the group of the job that ends last into one more job, keeping the best plan.

    Each cut costs one more model load. Groups are always cut evenly (24 runs
    in 4 jobs: 6 each); equal jobs that end together may need several cuts
    before the plan ends earlier, so cuts go on for a few rounds, and the
    plan that ends earliest (with the fewest cuts) wins. ``now`` is the clock
    of the hosts' busy times.
    """
    rounds = max_rounds if max_rounds is not None else 2 * sum(len(h.gpus) for h in hosts)
    groups: dict[tuple[object, ...], list[PlannedJob]] = {}
    for job in jobs:
        groups.setdefault(job.group, []).append(job)
    members = {
        key: sorted((r for j in js for r in j.runs), key=lambda r: r.id)
        for key, js in groups.items()
    }
    current = list(jobs)
    best_jobs, best = current, makespan(plan(current, hosts, cost, now), now)
    for _ in range(rounds):
        bookings = plan(current, hosts, cost, now)
        end = max((booking.finish for booking in bookings), default=now)
        last = [b.job for b in bookings if b.finish >= end - EPSILON_S and b.job.group]
        key = next(
            (job.group for job in last if len(groups[job.group]) < len(members[job.group])), None
        )
        if key is None:
            break
        groups[key] = _group_jobs(key, members[key], len(groups[key]) + 1)
        current = [job for js in groups.values() for job in js]
        span = makespan(plan(current, hosts, cost, now), now)
        if span < best - EPSILON_S:
            best_jobs, best = current, span
    return best_jobs


def lower_bound(
    runs: Sequence[RunSpec],
    adapters: Mapping[str, ModelAdapter],
    hosts: Sequence[HostSlots],
) -> float:
    """A makespan no schedule can beat, whatever it does.

    The larger of: all work at its least (each compatible group loads the
    model as few times as the batch size allows) spread perfectly over every
    GPU at its speed; and the longest single job on the fastest host.
    """
    cost = CostModel(adapters)
    jobs = form_jobs(runs, adapters, batching=True)
    work = sum(cost.gpu_seconds(job) for job in jobs)
    capacity = sum(len(host.gpus) * host.speed for host in hosts)
    fastest = max(host.speed for host in hosts)
    single = max(
        (cost.seconds(PlannedJob(job.runs[:1], job.adapter, job.num_gpus)) for job in jobs),
        default=0.0,
    )
    return max(work / capacity, single / fastest)
