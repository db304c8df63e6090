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

Halving finds a run that fails; it cannot find a fault every run meets (a
wrong checkpoint path, an input all of them read, too little memory): split
down to single runs, a batch of 8 would load the model 15 times. So the two
halves of a split share a record: when both fail "blank" (no output
written, no reason the adapter can read), the fault is not the runs'
doing, and splitting stops there; that job's runs, and those of jobs split
from the same batch that fail blank too, fail with the program's message.
"""

from __future__ import annotations

import struct
import threading
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


@dataclass(eq=False)
class SplitRecord:
    """What the two halves of one split job share: which of them failed blank.

    Attributes:
        parent: The record of the split the job that was split came from (None: a first split).
        blank: The halves (0, 1) that failed blank.
        common: True once both did: a fault common to the runs, not one of theirs.
    """

    parent: SplitRecord | None = None
    blank: set[int] = field(default_factory=set)
    common: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def failed_blank(self, side: int) -> bool:
        """Note that half ``side`` failed blank; True if the fault is common to the runs.

        Safe to call from the threads of both halves at once.
        """
        with self._lock:
            self.blank.add(side)
            if len(self.blank) == 2:
                self.common = True
        return self.in_common()

    def in_common(self) -> bool:
        """True if this split, or one it came from, met a fault common to its runs."""
        record: SplitRecord | None = self
        while record is not None:
            if record.common:
                return True
            record = record.parent
        return False


@dataclass(frozen=True)
class SplitHalf:
    """One half of a split job: the record it shares with the other half, and its side."""

    record: SplitRecord
    side: int

    def failed_blank(self) -> bool:
        """Note that this half failed blank; True if the fault is common to the runs."""
        return self.record.failed_blank(self.side)

    @staticmethod
    def halves_of(parent: SplitHalf | None) -> tuple[SplitHalf, SplitHalf]:
        """The two halves of a job split now (``parent``: the half the job itself was)."""
        record = SplitRecord(parent.record if parent is not None else None)
        return SplitHalf(record, 0), SplitHalf(record, 1)


@dataclass(frozen=True)
class Failure:
    """A job's failed program: why, and what becomes of its runs.

    Attributes:
        exit_code: The program's exit code.
        reason: Why it failed, for people, as its adapter read it from the log (or None).
        plan: What becomes of each run.
        common: True if the fault is common to the runs (both halves of a split failed blank).
    """

    exit_code: int | None
    reason: str | None
    plan: AfterFailure
    common: bool = False

    @property
    def error(self) -> ExecutionFailure:
        """The job's fault (for notes and the dispatcher)."""
        return model_fault(self.exit_code, self.reason)

    def run_message(self) -> str:
        """The error message of a run that failed in this job."""
        return f"{self.error}; see the run's logs/run.log"


def model_fault(exit_code: int | None, reason: str | None) -> ExecutionFailure:
    """The fault of a job whose program exited with ``exit_code`` (None: not recorded)."""
    text = f"the model exited with code {exit_code}"
    if exit_code is None:
        text = "the model's exit code was not recorded (its supervisor ended without writing it)"
    return ExecutionFailure(f"{reason}; {text}" if reason else text)


def assess_failure(
    adapter: ModelAdapter,
    store: OutputStore,
    job: tuple[list[RunSpec], Invocation, Path],
    result: ExecutionResult,
    retry: bool,
    half: SplitHalf | None = None,
) -> Failure:
    """Why a job's program failed, and what becomes of each of its runs.

    Args:
        adapter: The job's model adapter (it reads the reason from the log).
        store: The output tree (outputs a dead runner moved there count as written).
        job: The job's runs (in job order), its invocation and its staging folder.
        result: How the program ended (exit code, log).
        retry: True if scheduler.retries lets the job be tried again as it is.
        half: The half of a split job this job is (None: it was not split from one).
    """
    reason = adapter.failure_reason(log_tail(result.log_path))
    whole = whole_runs(store, job)
    if not whole and reason is None and half is not None and half.failed_blank():
        return Failure(result.exit_code, reason, AfterFailure(), common=True)
    plan = after_failure([run.id for run in job[0]], whole, retry and reason is None)
    return Failure(result.exit_code, reason, plan)


def whole_runs(store: OutputStore, job: tuple[list[RunSpec], Invocation, Path]) -> set[str]:
    """The runs of a failed job whose outputs were written whole (they are adopted).

    Args:
        store: The output tree (outputs a dead runner moved there count as written).
        job: The job's runs, its invocation and its staging folder.
    """
    batch, invocation, staging = job
    whole = set()
    for run in batch:
        outputs = invocation.outputs[run.id]
        if (staging / outputs.video).is_file():
            if written_whole(staging, outputs):
                whole.add(run.id)
        elif not store.missing_outputs(staging, outputs, run.id):
            whole.add(run.id)  # a runner that died recording the run had moved them
    return whole


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
