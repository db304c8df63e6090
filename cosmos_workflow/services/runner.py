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
from cosmos_workflow.execution.executors import ExecutionResult, Executor
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
        batch = self._drop_unstageable(batch, tally)
        if not batch:
            return
        adapter = self._adapters[batch[0].adapter]
        job_id = f"jb_{uuid.uuid4().hex[:12]}"
        gpus = self._gpus[: batch[0].model["num_gpus"]]
        ids = [run.id for run in batch]
        staging = self._store.staging(job_id)
        try:
            invocation = adapter.render(job_id, batch, self._executor.layout(job_id, staging))
            self._repo.transition(
                ids, RunStatus.RUNNING, target=self._executor.target_name, gpus=_gpu_text(gpus)
            )
            self._progress.job_started(job_id, ids, self._executor.target_name, gpus)
            try:
                result = self._executor.execute(
                    invocation, staging, gpus, lambda line: self._progress.log_line(job_id, line)
                )
            except CosmosError as exc:
                self._fail_all(batch, invocation, staging, gpus, exc)
                tally.failed += ids
                return
            except KeyboardInterrupt:
                self._record_cancelled(batch, invocation, staging, gpus)
                raise
            for run in batch:
                getattr(tally, self._finish_safely(run, invocation, staging, gpus, result)).append(
                    run.id
                )
        finally:
            self._store.discard_staging(staging)

    def _drop_unstageable(self, batch: list[RunSpec], tally: RunTally) -> list[RunSpec]:
        """Stage the batch's inputs; fail (without executing) runs whose inputs fail."""
        items = {item.sha256: item for run in batch for item in run.prompt.inputs.files()}
        failures = self._executor.stage_inputs(list(items.values()))
        kept = []
        for run in batch:
            errors = [failures[f.sha256] for f in run.prompt.inputs.files() if f.sha256 in failures]
            if not errors:
                kept.append(run)
                continue
            self._repo.transition([run.id], RunStatus.RUNNING, target=self._executor.target_name)
            error = errors[0]
            record = self._record(run, RunStatus.FAILED, "", 0, [], None, (error.kind, str(error)))
            folder = self._store.record_unstarted(run, record)
            self._mark_failed(run.id, error.kind, str(error), folder)
            tally.failed.append(run.id)
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
            self._mark_failed(run.id, "execution", message, None)
            return "failed"

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
            self._repo.transition(
                [run.id], RunStatus.SUCCEEDED, exit_code=0, output_dir=str(folder)
            )
            self._progress.run_finished(run.id, "succeeded", seconds, str(folder))
            return "succeeded"
        if result.exit_code == 0:
            message = f"the model exited 0 but did not write {', '.join(missing)}"
        else:
            message = f"the model exited with code {result.exit_code}; see the run's logs/run.log"
        error = ("execution", message)
        record = self._record(run, RunStatus.FAILED, invocation.job_id, size, gpus, result, error)
        folder = self._store.record_failure(run, invocation, result.log_path, record, seconds)
        self._mark_failed(run.id, "execution", message, folder, seconds, exit_code=result.exit_code)
        return "failed"

    def _fail_all(
        self,
        batch: list[RunSpec],
        invocation: Invocation,
        staging: Path,
        gpus: list[int],
        exc: CosmosError,
    ) -> None:
        log_path = staging / "logs" / "job.log"
        for run in batch:
            error = (exc.kind, str(exc))
            record = self._record(
                run, RunStatus.FAILED, invocation.job_id, len(batch), gpus, None, error
            )
            folder = self._store.record_failure(run, invocation, log_path, record, 0.0)
            self._mark_failed(run.id, exc.kind, str(exc), folder)

    def _mark_failed(
        self,
        run_id: str,
        kind: str,
        message: str,
        folder: Path | None,
        seconds: float = 0.0,
        **fields: object,
    ) -> None:
        """Record a failure in the database and report it."""
        if folder is not None:
            fields["output_dir"] = str(folder)
        self._repo.transition(
            [run_id], RunStatus.FAILED, error_class=kind, error_message=message, **fields
        )
        self._progress.run_finished(run_id, "failed", seconds, message)

    def _record_cancelled(
        self, batch: list[RunSpec], invocation: Invocation, staging: Path, gpus: list[int]
    ) -> None:
        """Keep the log and a result.json of runs interrupted mid-execution."""
        log_path = staging / "logs" / "job.log"
        for run in batch:
            error = ("cancelled", "interrupted by the user")
            record = self._record(
                run, RunStatus.CANCELLED, invocation.job_id, len(batch), gpus, None, error
            )
            self._store.record_failure(run, invocation, log_path, record, 0.0)


def _gpu_text(gpus: list[int]) -> str:
    return ",".join(str(g) for g in gpus)
