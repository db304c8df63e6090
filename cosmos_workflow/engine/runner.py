"""The job runner: executes one job (a batch of runs) on a GPU slot, records every run.

It never looks at what kind of target it drives: it hands invocations to an
:class:`Executor` and reads the staged outputs back. The dispatcher decides
which job runs where, and calls it from several threads at once.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cosmos_workflow.config.settings import RetrySettings
from cosmos_workflow.database.models import RunStatus
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.engine.io_faults import DiskGuard
from cosmos_workflow.engine.isolation import Failure, SplitHalf, assess_failure, missing_message
from cosmos_workflow.engine.outcome import JobOutcome, RunTally, Slot, run_record
from cosmos_workflow.engine.progress import ProgressSink
from cosmos_workflow.errors import CosmosError, ExecutionFailure, NetworkFailure, StateError
from cosmos_workflow.execution.adapters.base import Invocation, ModelAdapter
from cosmos_workflow.execution.targets.base import LOG_NAME, ExecutionResult
from cosmos_workflow.manifest.specs import RunSpec
from cosmos_workflow.outputs.store import OutputStore, RunRecord

logger = logging.getLogger(__name__)


TRANSIENT_KINDS = frozenset({"network", "runtime"})


class JobRunner:
    """Executes one job at a time on a slot and records every run's outcome.

    Safe to use from several threads at once (one job per call).

    Args:
        repository: Database access.
        store: The output tree.
        adapters: Model adapters by name.
        progress: Receives progress events.
        runner_id: This runner's id (stored with the runs it claims).
        retries: How many extra tries transient and deterministic faults get.
        stopping: Set when the runner stops: no program starts any more.
    """

    def __init__(
        self,
        repository: DataRepository,
        store: OutputStore,
        adapters: Mapping[str, ModelAdapter],
        progress: ProgressSink,
        runner_id: str,
        retries: RetrySettings,
        stopping: threading.Event | None = None,
    ) -> None:
        self._repo = repository
        self._store = store
        self._adapters = adapters
        self._progress = progress
        self._runner_id = runner_id
        self._retries = retries
        self._stopping = stopping or threading.Event()
        self.disk = DiskGuard(repository, store, progress, runner_id)

    def may_retry(self, kind: str, tries: int) -> bool:
        """True if a job that failed with an error of ``kind`` may start again after ``tries``."""
        allowed = (
            self._retries.transient if kind in TRANSIENT_KINDS else self._retries.deterministic
        )
        return tries <= allowed

    def run(
        self,
        batch: list[RunSpec],
        job_id: str,
        slot: Slot,
        tries: int,
        half: SplitHalf | None = None,
    ) -> JobOutcome:
        """Claim, stage and execute one job on ``slot``; record each run.

        Args:
            batch: The job's runs, in job order.
            job_id: The job's id.
            slot: Where it runs.
            tries: How many times this job was started (this start counted).
            half: The half of a split job it is, if it is one (engine/isolation.py).
        """
        outcome = JobOutcome()
        if self.disk.full:  # no job starts on a full disk: its runs stay queued
            return outcome
        batch = self._claim(batch, job_id, slot, outcome)
        with self.disk.recording([run.id for run in batch], outcome):
            batch = self._drop_unstageable(batch, slot, tries, outcome) if batch else []
            if not batch or outcome.retry:
                return outcome
            # The work folder exists before the last look at cancellations: a
            # `cosmos kill` that comes later finds it and waits for the program
            # to start, to stop it; one that came earlier is seen here.
            staging = self._store.staging(job_id)
            try:
                batch = self._drop_cancelled(batch, outcome.tally)
                if self._stopping.is_set():
                    # The runner stops: its runs were cancelled, nothing starts now.
                    for run in batch:
                        self._skip_cancelled(run.id, outcome.tally)
                    batch = []
                if batch:
                    self._execute(batch, job_id, slot, staging, tries, outcome, half)
            finally:
                self._store.discard_staging(staging)
        return outcome

    def fail_unstarted(self, batch: list[RunSpec], slot: Slot, error: CosmosError) -> JobOutcome:
        """Record queued runs as failed without running them (nowhere to run them)."""
        outcome = JobOutcome(fault=error)
        for run in self._claim(batch, f"jb_{uuid.uuid4().hex[:12]}", slot, outcome):
            status = self._unsuccessful(run, None, slot, None, (error.kind, str(error)), 0.0)
            getattr(outcome.tally, status).append(run.id)
        return outcome

    def resume(
        self, batch: list[RunSpec], job_id: str, slot: Slot, started_at: datetime, tries: int = 1
    ) -> JobOutcome | None:
        """Re-attach to a job an earlier runner started (its runs are ours now).

        ``tries`` 0: a failure of the job is not its runs' (e.g. a runner killed
        it), so its runs without output are tried again.

        Returns:
            None if the job is gone from its target (its runs must run again).
        """
        outcome = JobOutcome()
        adapter = self._adapters[batch[0].adapter]
        staging = self._store.staging_path(job_id)
        staging.mkdir(parents=True, exist_ok=True)
        try:
            rendered = self._rendered_runs(job_id, batch)
        except StateError:
            # Its runner died before the program could start: run them again.
            self._store.discard_staging(staging)
            return None
        invocation = adapter.render(job_id, rendered, slot.executor.layout(job_id, staging))
        self._progress.job_started(
            job_id, [r.id for r in batch], slot.executor.target_name, slot.gpus
        )
        try:
            result = slot.executor.reattach(
                invocation, staging, started_at, lambda line: self._progress.log_line(job_id, line)
            )
        except CosmosError as exc:
            self._job_error(exc, batch, invocation, staging, slot, 0, outcome)
            self._store.discard_staging(staging)
            return outcome
        if result is None:
            self._progress.job_finished(job_id, slot.executor.target_name, slot.gpus)
            # The dispatcher queues them again.
            self._progress.runs_requeued([r.id for r in batch])
            self._store.discard_staging(staging)
            return None
        try:
            with self.disk.recording([run.id for run in batch], outcome):
                self._record_result(batch, invocation, staging, slot, result, tries, outcome)
        finally:
            slot.executor.release(job_id, staging)
            self._store.discard_staging(staging)
        return outcome

    def _requeue(self, run_ids: list[str]) -> list[str]:
        """Queue ``run_ids`` again (those still running for us); return those queued."""
        queued = self._repo.requeue_running(run_ids, self._runner_id)
        self._progress.runs_requeued(queued)
        return queued

    def _rendered_runs(self, job_id: str, batch: list[RunSpec]) -> list[RunSpec]:
        """The runs the job's program was given, in their order (outputs map by position).

        Raises:
            StateError: the order was never recorded (the program cannot have started).
        """
        ids = self._repo.job_run_order(job_id)
        if not ids:
            raise StateError(f"job {job_id} has no recorded runs; it never started")
        known = {run.id: run for run in batch}
        missing = [run_id for run_id in ids if run_id not in known]
        known.update({spec.id: spec for spec in self._repo.run_specs(missing)})
        return [known[run_id] for run_id in ids]

    def _execute(
        self,
        batch: list[RunSpec],
        job_id: str,
        slot: Slot,
        staging: Path,
        tries: int,
        outcome: JobOutcome,
        half: SplitHalf | None,
    ) -> None:
        """Run one job's program in ``staging`` and record the outcome of each run."""
        adapter = self._adapters[batch[0].adapter]
        ids = [run.id for run in batch]
        executor = slot.executor
        invocation = adapter.render(job_id, batch, executor.layout(job_id, staging))
        self._repo.set_job_positions(job_id, ids)
        self._progress.job_started(job_id, ids, executor.target_name, slot.gpus)
        try:
            result = executor.execute(
                invocation, staging, slot.gpus, lambda line: self._progress.log_line(job_id, line)
            )
        except CosmosError as exc:
            self._job_error(exc, batch, invocation, staging, slot, tries, outcome)
            return
        try:
            self._record_result(batch, invocation, staging, slot, result, tries, outcome, half)
        finally:
            executor.release(job_id, staging)

    def _job_error(
        self,
        exc: CosmosError,
        batch: list[RunSpec],
        invocation: Invocation,
        staging: Path,
        slot: Slot,
        tries: int,
        outcome: JobOutcome,
    ) -> None:
        """A job whose executor raised: its runs again if allowed, else failed (or cancelled:
        a job cancelled on its target by someone else, e.g. scancel, kind ``cancelled``)."""
        self._progress.job_finished(invocation.job_id, slot.executor.target_name, slot.gpus)
        outcome.fault = exc
        outcome.host_lost = isinstance(exc, NetworkFailure)
        ids = [run.id for run in batch]
        if exc.kind == "cancelled":
            self._repo.cancel_unfinished(ids, str(exc), runner_id=self._runner_id)
        elif self.may_retry(exc.kind, tries):
            outcome.retry = self._requeue(ids)
            ids = [run_id for run_id in ids if run_id not in outcome.retry]
        job = _Job(invocation, staging / LOG_NAME)
        for run in batch:
            if run.id in ids:
                status = self._unsuccessful(run, job, slot, None, (exc.kind, str(exc)), 0.0)
                getattr(outcome.tally, status).append(run.id)

    def _record_result(
        self,
        batch: list[RunSpec],
        invocation: Invocation,
        staging: Path,
        slot: Slot,
        result: ExecutionResult,
        tries: int,
        outcome: JobOutcome,
        half: SplitHalf | None = None,
    ) -> None:
        """Record each run of a job whose program ended (a failed one: engine/isolation.py)."""
        self._progress.job_finished(invocation.job_id, slot.executor.target_name, slot.gpus)
        outcome.seconds = (result.finished_at - result.started_at).total_seconds()
        outcome.expected_ok = result.exit_code == 0
        failure = None
        if result.exit_code != 0:
            adapter = self._adapters[batch[0].adapter]
            retry = self.may_retry(ExecutionFailure.kind, tries)
            job = (batch, invocation, staging)
            failure = assess_failure(adapter, self._store, job, result, retry, half)
            failure = self.disk.model_failure(failure, staging, result.log_path)
            batch = self._queue_again(batch, failure, outcome)
            if failure.common and len(batch) > 1:
                self._progress.note(
                    f"job {invocation.job_id} failed without output, as both halves of the "
                    "batch it was split from did: a fault common to its runs (not split further)"
                )
        for run in batch:
            status = self._finish_safely(run, invocation, staging, slot, result, failure)
            getattr(outcome.tally, status).append(run.id)

    def _queue_again(
        self, batch: list[RunSpec], failure: Failure, outcome: JobOutcome
    ) -> list[RunSpec]:
        """Queue again the runs a failed job tries again; return the runs to record now."""
        again = failure.plan.again()
        queued = set(self._requeue(again) if again else [])
        if queued:
            outcome.fault = failure.error
            outcome.retry, outcome.split = failure.plan.kept(queued)
        # Runs cancelled meanwhile were not queued again: they are recorded (cancelled).
        return [run for run in batch if run.id not in queued]

    def _claim(
        self, batch: list[RunSpec], job_id: str, slot: Slot, outcome: JobOutcome
    ) -> list[RunSpec]:
        """Start the batch's runs as one job (atomically: no other runner gets them too).

        Outputs an earlier attempt left in a claimed run's folder are removed:
        only what this job writes can be adopted.
        """
        claimed = set(
            self._repo.claim(
                [run.id for run in batch],
                target=slot.executor.target_name,
                gpus=",".join(str(g) for g in slot.gpus),
                job_id=job_id,
                runner_id=self._runner_id,
                job_position=None,
            )
        )
        for run_id in claimed:
            self._store.clear_stale_outputs(run_id)
        missed = [run.id for run in batch if run.id not in claimed]
        if missed:
            cancelled = set(self._repo.cancelled_among(missed))
            for run_id in missed:
                if run_id in cancelled:
                    self._skip_cancelled(run_id, outcome.tally)
                else:
                    outcome.elsewhere.append(run_id)
        return [run for run in batch if run.id in claimed]

    def _drop_cancelled(self, batch: list[RunSpec], tally: RunTally) -> list[RunSpec]:
        """Leave out runs that the user cancelled while their inputs were staged."""
        cancelled = set(self._repo.cancelled_among(run.id for run in batch))
        for run_id in cancelled:
            self._skip_cancelled(run_id, tally)
        return [run for run in batch if run.id not in cancelled]

    def _skip_cancelled(self, run_id: str, tally: RunTally) -> None:
        tally.cancelled.append(run_id)
        self._report_cancelled(run_id, 0.0)

    def _report_cancelled(self, run_id: str, seconds: float) -> None:
        reason = self._cancel_reason(run_id) or "cancelled"
        self._progress.run_finished(run_id, "cancelled", seconds, reason)

    def _cancel_reason(self, run_id: str) -> str | None:
        """Why the run was cancelled, or None if it is not cancelled."""
        run = self._repo.get_run(run_id)
        if run.status is not RunStatus.CANCELLED:
            return None
        return run.error_message or "cancelled"

    def _drop_unstageable(
        self, batch: list[RunSpec], slot: Slot, tries: int, outcome: JobOutcome
    ) -> list[RunSpec]:
        """Stage the batch's inputs; fail (without executing) runs whose inputs fail.

        A target that cannot be reached fails none of them: the whole job is
        tried again (elsewhere, if the target stays unreachable).
        """
        items = {item.sha256: item for run in batch for item in run.prompt.inputs.files()}
        failures = slot.executor.stage_inputs(list(items.values()))
        lost = next((e for e in failures.values() if isinstance(e, NetworkFailure)), None)
        if lost is not None:
            outcome.fault = lost
            outcome.host_lost = True
            ids = [run.id for run in batch]
            outcome.retry = self._requeue(ids)
            for run in batch:
                if run.id not in outcome.retry:
                    self._skip_cancelled(run.id, outcome.tally)
            return []
        kept = []
        for run in batch:
            errors = [failures[f.sha256] for f in run.prompt.inputs.files() if f.sha256 in failures]
            if not errors:
                kept.append(run)
                continue
            error = errors[0]
            status = self._unsuccessful(run, None, slot, None, (error.kind, str(error)), 0.0)
            getattr(outcome.tally, status).append(run.id)
        return kept

    def _record(
        self,
        run: RunSpec,
        status: RunStatus,
        job_id: str,
        batch_size: int,
        slot: Slot,
        result: ExecutionResult | None,
        error: tuple[str, str] | None = None,
    ) -> RunRecord:
        stored, now = self._repo.get_run(run.id), self._repo.now()
        job = (job_id, batch_size, slot.executor.target_name, slot.gpus)
        times = (stored.started_at or now, now, stored.attempts)
        return run_record(status, job, result, times, error)

    def _finish_safely(
        self,
        run: RunSpec,
        invocation: Invocation,
        staging: Path,
        slot: Slot,
        result: ExecutionResult,
        failure: Failure | None,
    ) -> str:
        """Record one run; a failure to record marks only that run failed."""
        try:
            return self._finish(run, invocation, staging, slot, result, failure)
        except StateError:
            # Another process already recorded verified outputs for this run.
            result = self._store.read_result(run.id) or {}
            self._repo.adopt_succeeded(run.id, str(self._store.run_dir(run.id)), result)
            return "succeeded"
        except OSError as exc:
            if self.disk.relieved(exc):  # the reserve is free now: record the run once more
                return self._finish_safely(run, invocation, staging, slot, result, failure)
            message = self.disk.record_error(exc)
            logger.error("Run %s: %s", run.id, message)
            if self._settle_failed(run.id, ("execution", message), 0.0):
                return "failed"
            self._report_cancelled(run.id, 0.0)
            return "cancelled"

    def _finish(
        self,
        run: RunSpec,
        invocation: Invocation,
        staging: Path,
        slot: Slot,
        result: ExecutionResult,
        failure: Failure | None,
    ) -> str:
        seconds = (result.finished_at - result.started_at).total_seconds()
        outputs = invocation.outputs[run.id]
        missing = self._store.missing_outputs(staging, outputs, run.id)
        size = len(invocation.outputs)
        if (failure is None or run.id in failure.plan.adopt) and not missing:
            record = self._record(run, RunStatus.SUCCEEDED, invocation.job_id, size, slot, result)
            folder = self._store.record_success(
                run, invocation, staging, result.log_path, record, seconds
            )
            if not self._repo.settle(
                run.id, RunStatus.SUCCEEDED, exit_code=result.exit_code, output_dir=str(folder)
            ):
                # Cancelled as it finished: its verified outputs are adopted next time.
                self._report_cancelled(run.id, seconds)
                return "cancelled"
            self._progress.run_finished(run.id, "succeeded", seconds, str(folder))
            return "succeeded"
        if failure is None:
            message = missing_message(self._adapters[run.adapter], result.log_path, run.id, missing)
        else:
            message = failure.run_message()
        job = _Job(invocation, result.log_path)
        return self._unsuccessful(run, job, slot, result, ("execution", message), seconds)

    def _unsuccessful(
        self,
        run: RunSpec,
        job: _Job | None,
        slot: Slot,
        result: ExecutionResult | None,
        error: tuple[str, str],
        seconds: float,
    ) -> str:
        """Record a run that did not succeed: failed, or cancelled if the user cancelled it.

        A cancelled run stays cancelled: its record says so and keeps the log.

        Returns:
            "failed" or "cancelled".
        """
        reason = self._cancel_reason(run.id)
        if reason is None:
            folder = self._write_outcome(run, RunStatus.FAILED, job, slot, result, error, seconds)
            fields: dict[str, object] = {"output_dir": str(folder)}
            if result is not None:
                fields["exit_code"] = result.exit_code
            if self._settle_failed(run.id, error, seconds, **fields):
                return "failed"
            reason = self._cancel_reason(run.id) or "cancelled"
        self._write_outcome(
            run, RunStatus.CANCELLED, job, slot, result, ("cancelled", reason), seconds
        )
        self._progress.run_finished(run.id, "cancelled", seconds, reason)
        return "cancelled"

    def _write_outcome(
        self,
        run: RunSpec,
        status: RunStatus,
        job: _Job | None,
        slot: Slot,
        result: ExecutionResult | None,
        error: tuple[str, str],
        seconds: float,
    ) -> Path:
        """Write the run folder of a run that did not succeed (with the job's log, if it ran)."""
        if job is None:
            record = self._record(run, status, "", 0, Slot(slot.executor, []), None, error)
            return self._store.record_unstarted(run, record)
        invocation = job.invocation
        size = len(invocation.outputs)
        record = self._record(run, status, invocation.job_id, size, slot, result, error)
        return self._store.record_failure(run, invocation, job.log_path, record, seconds)

    def _settle_failed(
        self, run_id: str, error: tuple[str, str], seconds: float, **fields: object
    ) -> bool:
        """Record a failure in the database and report it; False if the user cancelled first."""
        if not self._repo.settle(
            run_id, RunStatus.FAILED, error_class=error[0], error_message=error[1], **fields
        ):
            return False
        self._progress.run_finished(run_id, "failed", seconds, error[1])
        return True


@dataclass(frozen=True)
class _Job:
    """An invocation that ran (or was about to), and where its log is."""

    invocation: Invocation
    log_path: Path
