"""The dispatcher: a sweep's jobs on every GPU of every target at once.

The main thread plans (engine/scheduler.py) and reacts to events; each
running job has a worker thread that executes it through the JobRunner.

- Jobs start when the plan puts them on free GPUs now; a job's runs are
  claimed atomically, so two runners never execute one run.
- A job whose model fails keeps the outputs it wrote; its other runs are
  planned again as halves, down to single runs (engine/isolation.py).
- A job that fails with a transient fault is tried again after a backoff;
  a target that cannot be reached is drained (its work goes elsewhere) and
  probed again later; when it answers, what was left running there is
  stopped (engine/host_health.py).
- Runs that another live runner holds are watched until they end; if that
  runner dies, its jobs are re-attached (or started again) here.
- The runner beats a heartbeat in the database, so the others can tell; a
  job starts only on GPUs whose leases it took (engine/gpu_leases.py).
- Ctrl-C cancels the runs, stops the running jobs and waits a few seconds
  for their records; a second Ctrl-C quits at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cosmos_workflow.config.settings import SchedulerSettings, Target
from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.database.models import Runner, RunStatus
from cosmos_workflow.database.repository import DataRepository, RunningJob
from cosmos_workflow.engine.comeback import (
    LeftJob,
    adoptable,
    claim_again,
    follow_again,
    sort_out,
)
from cosmos_workflow.engine.gpu_leases import GpuLeases
from cosmos_workflow.engine.host_health import HostHealth, backoff_s
from cosmos_workflow.engine.isolation import SplitHalf
from cosmos_workflow.engine.leftovers import LeftoverCollector
from cosmos_workflow.engine.liveness import Heartbeat, RunnerIdentity, runner_alive
from cosmos_workflow.engine.outcome import JobEvent, JobOutcome, RunTally, Slot
from cosmos_workflow.engine.progress import ProgressSink
from cosmos_workflow.engine.runner import JobRunner
from cosmos_workflow.engine.scheduler import (
    CostModel,
    HostSlots,
    PlannedJob,
    form_jobs,
    split_for_balance,
    start_now,
)
from cosmos_workflow.errors import CosmosError, NetworkFailure
from cosmos_workflow.execution.adapters.base import ModelAdapter
from cosmos_workflow.execution.targets.base import Executor, Leftover
from cosmos_workflow.manifest.specs import RunSpec
from cosmos_workflow.outputs.store import OutputStore
from cosmos_workflow.utils.clock import Clock

logger = logging.getLogger(__name__)

# How long the main loop waits for an event before it looks around again.
TICK_S = 0.05
# How often runs held by other runners are looked at.
WATCH_EVERY_S = 1.0
# How long Ctrl-C waits for stopped jobs to be recorded.
STOP_WAIT_S = 30.0


@dataclass
class _Active:
    """A job with a worker thread."""

    job: PlannedJob
    host: str
    gpus: list[int]
    expected_s: float


@dataclass
class DispatchContext:
    """What the dispatcher works with.

    Attributes:
        repository: Database access.
        store: The output tree.
        executors: One executor per target, by target name.
        targets: The pool.
        adapters: Model adapters by name.
        progress: Receives progress events.
        settings: Batching, retries, heartbeat.
        clock: Wall-clock time (heartbeats, runner timeouts).
        commands: Tells whether a local process still runs.
        identity: This runner.
    """

    repository: DataRepository
    store: OutputStore
    executors: Mapping[str, Executor]
    targets: Sequence[Target]
    adapters: Mapping[str, ModelAdapter]
    progress: ProgressSink
    settings: SchedulerSettings
    clock: Clock
    commands: LocalCommandExecutor
    identity: RunnerIdentity
    unreachable: Mapping[str, CosmosError] = field(default_factory=dict)


class Dispatcher:
    """Executes a set of queued runs over a pool of targets.

    Args:
        context: Collaborators and settings.
    """

    def __init__(self, context: DispatchContext) -> None:
        self._ctx = context
        self._repo = context.repository
        self._progress = context.progress
        self._cost = CostModel(context.adapters)
        self._stopping = threading.Event()
        self._jobs = JobRunner(
            context.repository,
            context.store,
            context.adapters,
            context.progress,
            context.identity.runner_id,
            context.settings.retries,
            self._stopping,
        )
        self._hosts = {t.name: HostSlots(t.name, list(t.gpus), t.speed) for t in context.targets}
        self._health = HostHealth(
            self._hosts,
            context.executors,
            context.store,
            context.settings.retries,
            lambda name, error: self._events.put(JobEvent(probed=name, probe_error=error)),
            self._note,
        )
        machines = {name: executor.machine for name, executor in context.executors.items()}
        timeout_s = context.settings.runner_timeout_s
        self._leases = GpuLeases(
            self._repo, context.identity.runner_id, machines, timeout_s, self._alive, self._note
        )
        self._pending: list[PlannedJob] = []
        self._active: dict[str, _Active] = {}
        self._watch: set[str] = set()
        self._specs: dict[str, RunSpec] = {}
        self._events: queue.Queue[JobEvent] = queue.Queue()
        self._tally = RunTally()
        # Orphaned runs that cannot be taken over from here (their job's host is
        # not in this pool, or unreachable): not waited for once nothing else is left.
        self._stranded: set[str] = set()
        self._replan = True
        self._wake_at = 0.0
        for name, error in context.unreachable.items():
            self._health.drain(name, error)

    # -- the whole run -------------------------------------------------------
    def run(self, runs: Sequence[RunSpec]) -> RunTally:
        """Execute ``runs`` (already queued) and record every outcome."""
        identity = self._ctx.identity
        self._repo.register_runner(identity.runner_id, identity.hostname, identity.pid)
        heartbeat = Heartbeat(self._repo, identity.runner_id, self._ctx.settings.heartbeat_s)
        try:
            self._specs = {run.id: run for run in runs}
            self._start(runs)
            self._loop()
        except KeyboardInterrupt:
            try:
                self._stop_everything("interrupted by the user")
            except KeyboardInterrupt:
                # A second Ctrl-C: quit now, but leave no local program running.
                self._kill_local_jobs()
            raise
        except BaseException as exc:
            self._stop_everything(f"the runner stopped: {type(exc).__name__}: {exc}")
            raise
        finally:
            heartbeat.stop()
            self._leases.release()
            self._repo.stop_runner(identity.runner_id)
        return self._tally

    def _start(self, runs: Sequence[RunSpec]) -> None:
        """Take over what dead runners left, count what others finished, plan and clean up."""
        ids = [run.id for run in runs]
        self._adopt_orphans(ids)
        statuses = self._repo.statuses(ids)
        queued = [run for run in runs if statuses.get(run.id) is RunStatus.QUEUED]
        self._tally.add_by_others({run_id: s for run_id, s in statuses.items() if s.is_final})
        self._watch |= {
            run.id
            for run in runs
            if statuses.get(run.id) is RunStatus.RUNNING and run.id not in self._mine()
        }
        self._add_jobs(queued, balance=True)
        self._remove_leftovers()

    def _add_jobs(self, runs: Sequence[RunSpec], balance: bool = False) -> None:
        jobs = form_jobs(runs, self._ctx.adapters, self._ctx.settings.batching)
        if balance and self._ctx.settings.batching:
            hosts = [host for host in self._hosts.values() if host.up]
            jobs = split_for_balance(jobs, hosts, self._cost, now=time.monotonic())
        self._pending += jobs
        self._replan = True

    def _mine(self) -> set[str]:
        return {run_id for active in self._active.values() for run_id in active.job.run_ids}

    def _loop(self) -> None:
        last_watch = 0.0
        while True:
            now = time.monotonic()
            self._health.probe_due(now)
            self._fail_if_no_host()
            if self._replan or now >= self._wake_at:
                self._dispatch(now)
            if not self._active and not self._pending and self._watch <= self._stranded:
                self._report_stranded()
                return
            if now - last_watch >= WATCH_EVERY_S:
                self._look_at_watched()
                last_watch = now
            try:
                event = self._events.get(timeout=TICK_S)
            except queue.Empty:
                continue
            self._handle(event)

    # -- starting jobs -------------------------------------------------------
    def _dispatch(self, now: float) -> None:
        """Start the jobs the plan puts on free GPUs now; plan again at the next change.

        With jobs left and none startable, look again in a second (a job
        overrunning its estimate moves the plan as time passes).
        """
        self._replan = False
        waits = [job.not_before for job in self._pending if job.not_before > now]
        self._wake_at = min([*waits, now + 1.0]) if self._pending else float("inf")
        hosts = [host for host in self._hosts.values() if host.up]
        hosts = self._leases.visible(hosts, now) if self._pending else hosts
        for booking in start_now(self._pending, hosts, self._cost, now):
            job, job_id = booking.job, f"jb_{uuid.uuid4().hex[:12]}"
            if not self._leases.take(booking.host, booking.gpus, job_id):
                continue
            self._pending.remove(job)
            job.tries += 1
            host = self._hosts[booking.host]
            expected = self._cost.seconds(job, host.speed)
            host.occupy(booking.gpus, now + expected)
            self._active[job_id] = _Active(job, host.name, list(booking.gpus), expected)
            slot = Slot(self._ctx.executors[host.name], list(booking.gpus))
            self._spawn(
                job_id,
                lambda j=job, i=job_id, s=slot: self._jobs.run(j.runs, i, s, j.tries, j.half),
            )

    def _spawn(self, job_id: str, work: Callable[[], JobOutcome | None]) -> None:
        def target() -> None:
            try:
                outcome = work()
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, re-raised there
                self._events.put(JobEvent(job_id, error=exc))
                return
            if outcome is None:
                self._events.put(JobEvent(job_id, lost=True))
            else:
                self._events.put(JobEvent(job_id, outcome))

        threading.Thread(target=target, name=job_id, daemon=True).start()

    # -- events ----------------------------------------------------------------
    def _handle(self, event: JobEvent) -> None:
        self._replan = True
        if event.probed is not None:
            self._come_back(event.probed, self._health.probed(event.probed, event.probe_error))
            return
        active = self._active.pop(event.job_id)
        host = self._hosts[active.host]
        host.release(active.gpus)
        if event.outcome is None or not event.outcome.host_lost:  # else it may still run there
            self._leases.release(event.job_id)
        if event.error is not None:
            raise self._jobs.disk.settle_after(active.job.run_ids, event.error)
        if event.lost:
            # A job re-attached to was gone: its runs start again.
            requeued = self._repo.requeue_running(active.job.run_ids, self._ctx.identity.runner_id)
            self._note(f"job {event.job_id} was gone from {active.host}; running its runs again")
            self._add_jobs([self._specs[run_id] for run_id in requeued])
            return
        outcome = event.outcome
        assert outcome is not None
        self._tally.add(outcome.tally)
        self._watch.update(outcome.elsewhere)
        if outcome.expected_ok:
            host.learn(self._cost.seconds(active.job), outcome.seconds)
        if outcome.host_lost and outcome.fault is not None:
            left = LeftJob(event.job_id, tuple(active.job.run_ids), tuple(active.gpus))
            self._health.abandon(active.host, left)
            self._health.drain(active.host, outcome.fault)
        if outcome.retry:
            self._retry(event.job_id, active, outcome)
        if outcome.split:
            self._isolate(event.job_id, active, outcome)

    def _retry(self, job_id: str, active: _Active, outcome: JobOutcome) -> None:
        job = active.job
        wait = 0.0 if outcome.host_lost else backoff_s(self._ctx.settings.retries, job.tries)
        runs = [self._specs[run_id] for run_id in outcome.retry]
        again = replace(job, runs=runs, not_before=time.monotonic() + wait)
        self._pending.append(again)
        what = "was given back" if outcome.host_lost else "failed"
        self._note(
            f"job {job_id} on {active.host} {what} ({outcome.fault}); "
            f"trying its {len(again.runs)} run(s) again in {wait:.0f}s"
        )

    def _isolate(self, job_id: str, active: _Active, outcome: JobOutcome) -> None:
        """Plan a failed job's runs without output as smaller jobs, to find the failing one.

        The halves share a record (engine/isolation.py): if both fail blank, splitting stops.
        """
        job = active.job
        for run_ids, half in zip(outcome.split, SplitHalf.halves_of(job.half), strict=False):
            runs = [self._specs[run_id] for run_id in run_ids]
            self._pending.append(PlannedJob(runs, job.adapter, job.num_gpus, job.tries, half=half))
        sizes = " + ".join(str(len(run_ids)) for run_ids in outcome.split)
        self._note(
            f"job {job_id} on {active.host} failed ({outcome.fault}); running its "
            f"{sum(map(len, outcome.split))} run(s) without output as smaller jobs ({sizes})"
        )

    def _note(self, message: str) -> None:
        # Once: the progress sink shows it (a log line where there is no terminal).
        self._progress.note(message)

    # -- unreachable hosts -----------------------------------------------------
    def _fail_if_no_host(self) -> None:
        """With every host that could take a job given up, fail that job's runs."""
        for job in list(self._pending):
            if not self._health.hopeless(job.num_gpus):
                continue
            self._pending.remove(job)
            name = next(iter(self._hosts))
            error = NetworkFailure(
                "no target that could run these runs is reachable "
                f"({', '.join(self._health.down)}); run the sweep again when one is"
            )
            outcome = self._jobs.fail_unstarted(
                job.runs, Slot(self._ctx.executors[name], []), error
            )
            for status in ("failed", "cancelled"):
                getattr(self._tally, status).extend(getattr(outcome.tally, status))

    # -- other runners ---------------------------------------------------------
    def _alive(self, runner: Runner | None) -> bool:
        """True if a runner may still work (engine/liveness.py)."""
        ctx = self._ctx
        timeout = ctx.settings.runner_timeout_s
        return runner_alive(runner, ctx.identity.hostname, ctx.clock, timeout, ctx.commands)

    def _adopt_orphans(self, run_ids: Sequence[str]) -> None:
        """Re-attach to (or queue again) the running jobs of runners that died."""
        for job in self._repo.running_jobs(run_ids):
            if job.runner_id == self._ctx.identity.runner_id:
                continue
            self._watch.update(job.run_ids)
            if self._alive(job.runner):
                continue
            host = self._hosts.get(job.target or "")
            if host is None or not host.up or not self._reachable_from_here(job):
                # Its program may still run where this runner cannot look: leave
                # the runs to a runner that can (never start them a second time).
                self._stranded.update(job.run_ids)
                continue
            taken = self._repo.take_over_job(
                job.job_id, job.runner_id, self._ctx.identity.runner_id
            )
            if taken:
                self._watch.difference_update(taken)
                self._stranded.difference_update(taken)
                self._reattach(job, taken, host)

    def _reachable_from_here(self, job: RunningJob) -> bool:
        """A job on the runner's own machine can only be found on the machine that started it."""
        executor = self._ctx.executors.get(job.target or "")
        if executor is not None and executor.jobs_on_this_machine and job.runner is not None:
            return job.runner.hostname == self._ctx.identity.hostname
        return True

    def _reattach(self, job: RunningJob, taken: list[str], host: HostSlots) -> None:
        gpus = tuple(int(g) for g in (job.gpus or "").split(",") if g.strip().isdigit())
        started = self._repo.get_run(taken[0]).started_at
        self._resume(LeftJob(job.job_id, tuple(taken), gpus, started=started), taken, host)

    def _resume(self, left: LeftJob, runs: list[str], host: HostSlots) -> None:
        """Follow a job already on ``host`` (its runs are ours) to its end, in a worker thread."""
        for spec in self._repo.run_specs([r for r in runs if r not in self._specs]):
            self._specs[spec.id] = spec
        specs = [self._specs[run_id] for run_id in runs]
        gpus = [gpu for gpu in left.gpus if gpu in host.gpus and gpu not in host.busy_until]
        self._leases.take(host.name, gpus, left.job_id)
        planned = PlannedJob(specs, specs[0].adapter, specs[0].model["num_gpus"], tries=1)
        expected = self._cost.seconds(planned, host.speed)
        host.occupy(gpus, time.monotonic() + expected)
        self._active[left.job_id] = _Active(planned, host.name, gpus, expected)
        slot = Slot(self._ctx.executors[host.name], gpus)
        self._note(f"re-attaching to job {left.job_id} on {host.name} ({len(specs)} run(s))")
        staging = self._ctx.store.staging_path(left.job_id)
        left = replace(left, started=left.started or self._ctx.clock.now())
        self._spawn(left.job_id, lambda: follow_again(self._jobs, specs, slot, left, staging))

    def _come_back(self, name: str, left: list[LeftJob]) -> None:
        """Follow again the jobs left on a host that answers again; stop the others."""
        plan = sort_out(left, self._pending)
        self._pending = plan.pending
        self._health.stop(name, plan.stop)
        for job in plan.follow:
            claimed, started = claim_again(self._repo, self._ctx.identity.runner_id, name, job)
            self._watch.update(set(job.run_ids) - set(claimed))
            if claimed:
                self._resume(replace(job, started=started), claimed, self._hosts[name])

    def _adopt_leftover(self, target: str, job_id: str, items: list[Leftover]) -> bool:
        """Follow a container left by a runner that quit, whose runs all wait here."""
        left = adoptable(self._repo, self._pending, job_id, items)
        host = self._hosts.get(target)
        if left is None or host is None or not host.up:
            return False
        self._come_back(target, [left])
        return True

    def _look_at_watched(self) -> None:
        """Runs another runner holds: done, given back to the queue, or orphaned."""
        if not self._watch:
            return
        statuses = self._repo.statuses(self._watch)
        done = {run_id for run_id, status in statuses.items() if status.is_final}
        self._tally.add_by_others({run_id: statuses[run_id] for run_id in done})
        self._watch -= done | (self._watch - set(statuses))
        requeued = [run_id for run_id in self._watch if statuses.get(run_id) is RunStatus.QUEUED]
        if requeued:
            self._watch.difference_update(requeued)
            self._add_jobs([self._specs[run_id] for run_id in requeued if run_id in self._specs])
        # Stranded runs are looked at again: their target may answer now.
        self._stranded &= self._watch
        self._adopt_orphans(sorted(self._watch))

    def _report_stranded(self) -> None:
        if self._stranded:
            self._note(
                f"{len(self._stranded)} run(s) were left running by a runner that stopped, on a "
                "target this runner cannot reach; run the sweep again where that target is "
                "configured and reachable"
            )

    def _remove_leftovers(self) -> None:
        """Remove containers and folders of jobs that no live runner owns (engine/leftovers.py)."""
        ctx = self._ctx
        leftovers = LeftoverCollector(self._repo, ctx.store, ctx.executors, self._alive)
        removed = leftovers.sweep(skip=set(ctx.unreachable), adopt=self._adopt_leftover).removed
        if removed:
            self._note(f"removed {len(removed)} container(s) or folder(s) left by earlier runners")

    # -- stopping ----------------------------------------------------------------
    def _stop_everything(self, reason: str) -> None:
        """Cancel every run not finished, stop running jobs, wait (a while) for their records.

        A second Ctrl-C while waiting quits at once.
        """
        waiting = [run_id for job in self._pending for run_id in job.run_ids]
        running = [run_id for active in self._active.values() for run_id in active.job.run_ids]
        if self._active:
            self._note(
                f"stopping {len(self._active)} job(s) and cancelling their runs "
                "(Ctrl-C again to quit at once)"
            )
        self._stopping.set()
        cancelled = self._repo.cancel_unfinished(
            waiting + running, reason, runner_id=self._ctx.identity.runner_id
        )
        waiting_set = set(waiting)
        self._tally.cancelled += [run_id for run_id in cancelled if run_id in waiting_set]
        self._pending.clear()
        for job_id, active in list(self._active.items()):
            executor = self._ctx.executors[active.host]
            staging = self._ctx.store.staging_path(job_id)
            threading.Thread(
                target=self._stop_job, args=(executor, job_id, staging), daemon=True
            ).start()
        deadline = time.monotonic() + STOP_WAIT_S
        while self._active and time.monotonic() < deadline:
            try:
                event = self._events.get(timeout=TICK_S)
            except queue.Empty:
                continue
            active = self._active.pop(event.job_id, None)
            if active is not None and event.outcome is not None:
                self._tally.add(event.outcome.tally)

    def _kill_local_jobs(self) -> None:
        """Kill the programs of this runner's local jobs (or keep them from starting)."""
        for job_id, active in self._active.items():
            self._ctx.executors[active.host].kill_now(job_id, self._ctx.store.staging_path(job_id))

    @staticmethod
    def _stop_job(executor: Executor, job_id: str, staging: Path) -> None:
        try:
            executor.stop_job(job_id, staging)
        except CosmosError as exc:
            logger.warning("Could not stop job %s: %s", job_id, exc)
