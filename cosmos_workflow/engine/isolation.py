"""Fault isolation: what becomes of a job's runs when its program fails.

A model program that fails part-way through a batch may have written the
outputs of some runs already (Cosmos-Transfer1 saves each video as soon as
it is made, then dies on a prompt its guardrail blocks). Those outputs are
verified and adopted: their runs succeeded. The runs without output are
tried again, as one job while ``scheduler.retries`` allows (a failure the
adapter cannot explain may be a fluke), then in two halves, each a job of
its own, down to single runs: only a run that fails alone has failed.
A failure the adapter explains (its reason, e.g. a guardrail block) is the
runs' content, not a fluke: it is not retried, only isolated.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cosmos_workflow.errors import ExecutionFailure
from cosmos_workflow.execution.adapters.base import Invocation, ModelAdapter, RunOutputs
from cosmos_workflow.execution.targets.base import ExecutionResult
from cosmos_workflow.manifest.specs import RunSpec
from cosmos_workflow.outputs.store import OutputStore

# How much of the end of a failed job's log its adapter reads for a reason.
LOG_TAIL_BYTES = 1 << 20
# An MP4 box header: 32-bit size and 4-byte type; size 1 adds a 64-bit size.
_BOX = struct.Struct(">I4s")
_LARGE_SIZE = struct.Struct(">Q")


@dataclass(frozen=True)
class AfterFailure:
    """What becomes of each run of a job whose program failed.

    A run in none of the lists failed for good (a single run, no retry left).

    Attributes:
        adopt: Runs whose outputs were written whole: they succeeded.
        retry: Runs tried again together as one job (scheduler.retries).
        split: Groups of runs, each tried again as a job of its own.
    """

    adopt: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    split: list[list[str]] = field(default_factory=list)

    def again(self) -> list[str]:
        """The runs to put back in the queue."""
        return [*self.retry, *(run_id for group in self.split for run_id in group)]

    def kept(self, queued: Collection[str]) -> tuple[list[str], list[list[str]]]:
        """``retry`` and ``split`` without the runs that did not go back to the queue."""
        groups = ([run_id for run_id in group if run_id in queued] for group in self.split)
        return [run_id for run_id in self.retry if run_id in queued], [g for g in groups if g]


@dataclass(frozen=True)
class Failure:
    """A job's failed program: why, and what becomes of its runs.

    Attributes:
        exit_code: The program's exit code.
        reason: Why it failed, for people, as its adapter read it from the log (or None).
        plan: What becomes of each run.
    """

    exit_code: int
    reason: str | None
    plan: AfterFailure

    @property
    def error(self) -> ExecutionFailure:
        """The job's fault (for notes and the dispatcher)."""
        return model_fault(self.exit_code, self.reason)

    def run_message(self) -> str:
        """The error message of a run that failed in this job."""
        return f"{self.error}; see the run's logs/run.log"


def model_fault(exit_code: int, reason: str | None) -> ExecutionFailure:
    """The fault of a job whose program exited with ``exit_code``."""
    text = f"the model exited with code {exit_code}"
    return ExecutionFailure(f"{reason}; {text}" if reason else text)


def assess_failure(
    adapter: ModelAdapter,
    store: OutputStore,
    job: tuple[list[RunSpec], Invocation, Path],
    result: ExecutionResult,
    retry: bool,
) -> Failure:
    """Why a job's program failed, and what becomes of each of its runs.

    Args:
        adapter: The job's model adapter (it reads the reason from the log).
        store: The output tree (outputs a dead runner moved there count as written).
        job: The job's runs (in job order), its invocation and its staging folder.
        result: How the program ended (exit code, log).
        retry: True if scheduler.retries lets the job be tried again as it is.
    """
    batch, invocation, staging = job
    reason = adapter.failure_reason(log_tail(result.log_path))
    whole = set()
    for run in batch:
        outputs = invocation.outputs[run.id]
        if (staging / outputs.video).is_file():
            if written_whole(staging, outputs):
                whole.add(run.id)
        elif not store.missing_outputs(staging, outputs, run.id):
            whole.add(run.id)  # a runner that died recording the run had moved them
    plan = after_failure([run.id for run in batch], whole, retry and reason is None)
    return Failure(result.exit_code, reason, plan)


def after_failure(run_ids: Sequence[str], whole: Collection[str], retry: bool) -> AfterFailure:
    """Decide what becomes of each run of a failed job.

    Args:
        run_ids: The job's runs, in job order.
        whole: The runs whose outputs were written whole.
        retry: True if the job may be tried again as it is (scheduler.retries
            allows it and the failure is not one the adapter explained).
    """
    adopt = [run_id for run_id in run_ids if run_id in whole]
    rest = [run_id for run_id in run_ids if run_id not in whole]
    if retry:
        return AfterFailure(adopt=adopt, retry=rest)
    return AfterFailure(adopt=adopt, split=halves(rest) if len(rest) > 1 else [])


def halves(run_ids: Sequence[str]) -> list[list[str]]:
    """``run_ids`` cut in two, in order (the first half the larger by one at most)."""
    middle = (len(run_ids) + 1) // 2
    return [list(run_ids[:middle]), list(run_ids[middle:])]


def written_whole(staging: Path, outputs: RunOutputs) -> bool:
    """True if a run's outputs are all in ``staging`` and its video is complete.

    Every output a run declares must be there (programs write the prompt
    after the video, so a prompt file means the video was saved), the main
    output must not be empty, and an MP4 must be whole: its top-level boxes
    add up to the file's size exactly.
    """
    video = staging / outputs.video
    files = [video, *(staging / extra for extra in outputs.extras.values())]
    if not all(path.is_file() for path in files) or video.stat().st_size == 0:
        return False
    return video.suffix.lower() != ".mp4" or mp4_whole(video)


def mp4_whole(path: Path) -> bool:
    """True if the MP4 (ISO BMFF) file's top-level boxes tile it exactly."""
    size = path.stat().st_size
    offset = 0
    with path.open("rb") as handle:
        while offset < size:
            handle.seek(offset)
            header = handle.read(_BOX.size + _LARGE_SIZE.size)
            if len(header) < _BOX.size:
                return False
            box, _ = _BOX.unpack_from(header)
            if box == 0:
                return True  # the last box runs to the end of the file
            if box == 1:
                if len(header) < _BOX.size + _LARGE_SIZE.size:
                    return False
                (box,) = _LARGE_SIZE.unpack_from(header, _BOX.size)
            if box < _BOX.size:
                return False
            offset += box
    return offset == size


def missing_message(adapter: ModelAdapter, log_path: Path, run_id: str, missing: list[str]) -> str:
    """Why a run of a job whose program exited 0 has no outputs, for people.

    A program that keeps going past a sample it could not make (Transfer2.5
    skips a prompt its guardrail blocks) says why in its log; else the
    missing files are named.
    """
    reason = adapter.skipped_reason(log_tail(log_path), run_id)
    return reason or f"the model exited 0 but did not write {', '.join(missing)}"


def log_tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    """The end of a job's log as text ("" if there is none)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - limit))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
