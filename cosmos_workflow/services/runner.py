"""The runner: batches runs, executes them through an executor, records results.

It never looks at what kind of target it drives: it hands invocations to an
:class:`Executor` and reads the staged outputs back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cosmos_workflow.database.models import RunStatus
from cosmos_workflow.errors import CosmosError, StateError, ValidationFailure
from cosmos_workflow.execution.adapters.base import Invocation, ModelAdapter
from cosmos_workflow.execution.executors import LOG_NAME, ExecutionResult, Executor
from cosmos_workflow.manifest.specs import RunSpec
from cosmos_workflow.services.outputs import OutputStore, RunRecord
from cosmos_workflow.services.progress import ProgressSink
from cosmos_workflow.services.repository import DataRepository

logger = logging.getLogger(__name__)


@dataclass
class RunTally:
    """How the executed runs ended."""

    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


def plan_batches(runs: list[RunSpec], adapters: Mapping[str, ModelAdapter]) -> list[list[RunSpec]]:
    """Group runs that may share one invocation, in first-seen order.

    Raises:
        ValidationFailure: a run names an adapter that is not available.
    """
    groups: dict[tuple, list[RunSpec]] = {}
    for run in runs:
        adapter = adapters.get(run.adapter)
        if adapter is None:
            known = ", ".join(sorted(adapters))
            raise ValidationFailure(f"unknown model adapter {run.adapter!r} (available: {known})")
        groups.setdefault((run.adapter, adapter.batch_key(run)), []).append(run)
    batches = []
    for (name, _key), members in groups.items():
        size = max(1, adapters[name].max_batch_size)
        batches += [members[i : i + size] for i in range(0, len(members), size)]
    return batches


class Runner:
    """Executes runs on one target, one invocation at a time.

    Args:
        repository: Database access.
        store: The output tree.
        executor: Runs invocations on the target.
        adapters: Model adapters by name.
        gpus: GPU indices of the target.
        progress: Receives progress events.
    """

    def __init__(
        self,
        repository: DataRepository,
        store: OutputStore,
        executor: Executor,
        adapters: Mapping[str, ModelAdapter],
        gpus: list[int],
        progress: ProgressSink,
    ) -> None:
        self._repo = repository
        self._store = store
        self._executor = executor
        self._adapters = adapters
        self._gpus = gpus
        self._progress = progress

    def run(self, runs: list[RunSpec]) -> RunTally:
        """Execute ``runs`` (already queued) and record every outcome."""
        tally = RunTally()
        batches = plan_batches(runs, self._adapters)
        for index, batch in enumerate(batches):
            try:
                self._run_batch(batch, tally)
            except BaseException as exc:
                # Nothing may stay queued or running when the runner stops.
                reason = (
                    "interrupted by the user"
                    if isinstance(exc, KeyboardInterrupt)
                    else f"the runner stopped: {type(exc).__name__}: {exc}"
                )
                unfinished = [run.id for later in batches[index:] for run in later]
                cancelled = self._repo.cancel_unfinished(unfinished, reason)
                tally.cancelled += [run_id for run_id in cancelled if run_id not in tally.cancelled]
                raise
        return tally

    def _run_batch(self, batch: list[RunSpec], tally: RunTally) -> None:
        job_id = f"jb_{uuid.uuid4().hex[:12]}"
        gpus = self._gpus[: batch[0].model["num_gpus"]]
        batch = self._claim(batch, job_id, gpus, tally)
        batch = self._drop_unstageable(batch, gpus, tally)
        if not batch:
            return
        # The work folder exists before the last look at cancellations: a
        # `cosmos kill` that comes later finds it and waits for the program
        # to start, to stop it; one that came earlier is seen here.
        staging = self._store.staging(job_id)
        try:
            batch = self._drop_cancelled(batch, tally)
            if batch:
                self._execute(batch, job_id, gpus, staging, tally)
        finally:
            self._store.discard_staging(staging)

    def _execute(
        self, batch: list[RunSpec], job_id: str, gpus: list[int], staging: Path, tally: RunTally
    ) -> None:
        """Run one job's program in ``staging`` and record the outcome of each run."""
        adapter = self._adapters[batch[0].adapter]
        ids = [run.id for run in batch]
        invocation = adapter.render(job_id, batch, self._executor.layout(job_id, staging))
        self._progress.job_started(job_id, ids, self._executor.target_name, gpus)
        try:
            result = self._executor.execute(
                invocation, staging, gpus, lambda line: self._progress.log_line(job_id, line)
            )
        except CosmosError as exc:
            job = _Job(invocation, staging / LOG_NAME)
            for run in batch:
                outcome = self._unsuccessful(run, job, gpus, None, (exc.kind, str(exc)), 0.0)
                getattr(tally, outcome).append(run.id)
            return
        except KeyboardInterrupt:
            self._record_cancelled(batch, invocation, staging, gpus)
            raise
        finally:
            self._progress.job_finished(job_id, self._executor.target_name, gpus)
        for run in batch:
            outcome = self._finish_safely(run, invocation, staging, gpus, result)
            getattr(tally, outcome).append(run.id)

    def _claim(
        self, batch: list[RunSpec], job_id: str, gpus: list[int], tally: RunTally
    ) -> list[RunSpec]:
        """Start the batch's runs as one job; skip those cancelled while they were queued."""
        claimed = set(
            self._repo.claim(
                [run.id for run in batch],
                target=self._executor.target_name,
                gpus=_gpu_text(gpus),
                job_id=job_id,
            )
        )
        for run in batch:
            if run.id not in claimed:
                self._skip_cancelled(run.id, tally)
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
        self, batch: list[RunSpec], gpus: list[int], tally: RunTally
    ) -> list[RunSpec]:
        """Stage the batch's inputs; fail (without executing) runs whose inputs fail."""
        items = {item.sha256: item for run in batch for item in run.prompt.inputs.files()}
        failures = self._executor.stage_inputs(list(items.values()))
        kept = []
        for run in batch:
            errors = [failures[f.sha256] for f in run.prompt.inputs.files() if f.sha256 in failures]
            if not errors:
                kept.append(run)
                continue
            error = errors[0]
            outcome = self._unsuccessful(run, None, gpus, None, (error.kind, str(error)), 0.0)
            getattr(tally, outcome).append(run.id)
        return kept

    def _record(
        self,
        run: RunSpec,
        status: RunStatus,
        job_id: str,
        batch_size: int,
        gpus: list[int],
        result: ExecutionResult | None,
        error: tuple[str, str] | None = None,
    ) -> RunRecord:
        stored = self._repo.get_run(run.id)
        now = self._repo.now()
        started = result.started_at if result else stored.started_at or now
        finished = result.finished_at if result else now
        return RunRecord(
            status=status.value,
            target=self._executor.target_name,
            gpus=gpus,
            job_id=job_id,
            batch_size=batch_size,
            started_at=started.isoformat(),
            finished_at=finished.isoformat(),
            exit_code=result.exit_code if result else None,
            attempts=stored.attempts,
            error_class=error[0] if error else None,
            error_message=error[1] if error else None,
        )

    def _finish_safely(
        self,
        run: RunSpec,
        invocation: Invocation,
        staging: Path,
        gpus: list[int],
        result: ExecutionResult,
    ) -> str:
        """Record one run; a failure to record marks only that run failed."""
        try:
            return self._finish(run, invocation, staging, gpus, result)
        except StateError:
            # Another process already recorded verified outputs for this run.
            result = self._store.read_result(run.id) or {}
            self._repo.adopt_succeeded(run.id, str(self._store.run_dir(run.id)), result)
            return "succeeded"
        except OSError as exc:
            message = f"could not record the run's outputs: {exc}"
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
        gpus: list[int],
        result: ExecutionResult,
    ) -> str:
        seconds = (result.finished_at - result.started_at).total_seconds()
        outputs = invocation.outputs[run.id]
        missing = self._store.missing_outputs(staging, outputs)
        size = len(invocation.outputs)
        if result.exit_code == 0 and not missing:
            record = self._record(run, RunStatus.SUCCEEDED, invocation.job_id, size, gpus, result)
            folder = self._store.record_success(
                run, invocation, staging, result.log_path, record, seconds
            )
            if not self._repo.settle(
                run.id, RunStatus.SUCCEEDED, exit_code=0, output_dir=str(folder)
            ):
                # Cancelled as it finished: its verified outputs are adopted next time.
                self._report_cancelled(run.id, seconds)
                return "cancelled"
            self._progress.run_finished(run.id, "succeeded", seconds, str(folder))
            return "succeeded"
        if result.exit_code == 0:
            message = f"the model exited 0 but did not write {', '.join(missing)}"
        else:
            message = f"the model exited with code {result.exit_code}; see the run's logs/run.log"
        job = _Job(invocation, result.log_path)
        return self._unsuccessful(run, job, gpus, result, ("execution", message), seconds)

    def _unsuccessful(
        self,
        run: RunSpec,
        job: _Job | None,
        gpus: list[int],
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
            folder = self._write_outcome(run, RunStatus.FAILED, job, gpus, result, error, seconds)
            fields: dict[str, object] = {"output_dir": str(folder)}
            if result is not None:
                fields["exit_code"] = result.exit_code
            if self._settle_failed(run.id, error, seconds, **fields):
                return "failed"
            reason = self._cancel_reason(run.id) or "cancelled"
        self._write_outcome(
            run, RunStatus.CANCELLED, job, gpus, result, ("cancelled", reason), seconds
        )
        self._progress.run_finished(run.id, "cancelled", seconds, reason)
        return "cancelled"

    def _write_outcome(
        self,
        run: RunSpec,
        status: RunStatus,
        job: _Job | None,
        gpus: list[int],
        result: ExecutionResult | None,
        error: tuple[str, str],
        seconds: float,
    ) -> Path:
        """Write the run folder of a run that did not succeed (with the job's log, if it ran)."""
        if job is None:
            record = self._record(run, status, "", 0, [], None, error)
            return self._store.record_unstarted(run, record)
        invocation = job.invocation
        size = len(invocation.outputs)
        record = self._record(run, status, invocation.job_id, size, gpus, result, error)
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

    def _record_cancelled(
        self, batch: list[RunSpec], invocation: Invocation, staging: Path, gpus: list[int]
    ) -> None:
        """Keep the log and a result.json of runs interrupted mid-execution."""
        job = _Job(invocation, staging / LOG_NAME)
        for run in batch:
            error = ("cancelled", "interrupted by the user")
            self._write_outcome(run, RunStatus.CANCELLED, job, gpus, None, error, 0.0)


@dataclass(frozen=True)
class _Job:
    """An invocation that ran (or was about to), and where its log is."""

    invocation: Invocation
    log_path: Path


def _gpu_text(gpus: list[int]) -> str:
    return ",".join(str(g) for g in gpus)
