"""What jobs left behind: containers and job folders that no live runner owns, removed.

A job's container and job folder are removed by its runner once the job's
outcome is recorded. What a runner could not remove (it was killed, quit on
a second Ctrl-C, lost the host, or its upload failed) is found here by our
marks only (the container label, ``<work_dir>/jobs/jb_*`` on a target, the
staging folders ``<outputs>/.staging/jb_*`` on this machine) and traced back
to its job's runs in the database:

- a job one of whose runs a live runner holds is in use: never touched;
- a job with running runs of a runner that stopped is an orphan that the
  next run of its sweep re-attaches to (engine/dispatch.py): kept;
- a job on a target that no run of this database names, whose container
  names none of its runs either, is not this project's: kept;
- everything else is removed: the runs' outcomes are recorded (or they run
  again), nothing will look at it any more.

The runner does this at its start (``sweep``), and ``cosmos gc`` on demand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from cosmos_workflow.database.models import Runner, RunStatus
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.errors import CosmosError
from cosmos_workflow.execution.targets.base import Executor, Leftover
from cosmos_workflow.outputs.store import OutputStore

logger = logging.getLogger(__name__)

# Where staging folders are, in reports.
THIS_MACHINE = "this machine"

# Why something is kept.
IN_USE = "a live runner uses it"
ORPHAN = "its runs are still running (the next run of their sweep re-attaches to it)"
NOT_OURS = "no run of this project's database names it"
ADOPTED = "its runs wait for this runner, which follows it"

# Offered a job's leftovers on a target before they are removed; True: adopted.
Adopt = Callable[[str, str, list[Leftover]], bool]


@dataclass
class LeftoverReport:
    """What was found, removed and kept.

    Attributes:
        dry_run: True if nothing was removed (``removed`` is what would be).
        removed: (target, leftover) removed (or to remove).
        kept: (target, leftover, why) kept.
        unreachable: Targets that could not be looked at, and why.
    """

    dry_run: bool
    removed: list[tuple[str, Leftover]] = field(default_factory=list)
    kept: list[tuple[str, Leftover, str]] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "dry_run": self.dry_run,
            "removed": [{"target": t, **item.to_dict()} for t, item in self.removed],
            "kept": [{"target": t, **item.to_dict(), "why": why} for t, item, why in self.kept],
            "unreachable": dict(self.unreachable),
        }


class LeftoverCollector:
    """Finds and removes what jobs left behind, on the targets and in the staging folders.

    Args:
        repository: Database access (which runs name a job, and their runners).
        store: The output tree (its staging folders).
        executors: The executors of the targets to look at, by target name.
        alive: Tells whether a runner still works (engine/liveness.py).
    """

    def __init__(
        self,
        repository: DataRepository,
        store: OutputStore,
        executors: Mapping[str, Executor],
        alive: Callable[[Runner | None], bool],
    ) -> None:
        self._repo = repository
        self._store = store
        self._executors = executors
        self._alive = alive

    def sweep(
        self, dry_run: bool = False, skip: Collection[str] = (), adopt: Adopt | None = None
    ) -> LeftoverReport:
        """Remove (or with ``dry_run`` only list) what no live runner owns.

        Args:
            dry_run: List only.
            skip: Targets not to look at (known to be unreachable).
            adopt: Offered each job on a target before it is removed (target,
                job id, what it left); True: a runner follows it now (kept).
        """
        report = LeftoverReport(dry_run)
        found = self._find(skip, report)
        holders = self._repo.job_holders({item.job_id for _, item in found})
        named = self._named_by_labels(found, holders)
        adopted: set[str] = set()
        # Staging folders last: those of the jobs adopted are their work folders now.
        groups = sorted(_by_job(found).items(), key=lambda group: group[0][0] == THIS_MACHINE)
        for (target, job_id), items in groups:
            # Staging folders are in this project's output tree: ours whoever made them.
            ours = job_id in named or target == THIS_MACHINE
            why = ADOPTED if job_id in adopted else self._why_kept(holders.get(job_id, []), ours)
            if why is None and adopt is not None and target != THIS_MACHINE and not dry_run:
                if adopt(target, job_id, items):
                    adopted.add(job_id)
                    why = ADOPTED
            if why is not None:
                report.kept += [(target, item, why) for item in items]
                continue
            if not dry_run:
                self._remove(target, job_id, items)
            report.removed += [(target, item) for item in items]
        return report

    def _find(self, skip: Collection[str], report: LeftoverReport) -> list[tuple[str, Leftover]]:
        """Everything of ours on the targets and in the staging folders (listed first)."""
        found: list[tuple[str, Leftover]] = []
        for name, executor in self._executors.items():
            if name in skip:
                continue
            try:
                found += [(name, item) for item in executor.leftovers()]
            except CosmosError as exc:
                report.unreachable[name] = str(exc)
        for folder in self._store.staging_folders():
            found.append((THIS_MACHINE, Leftover(folder.name, "staging folder", str(folder))))
        return found

    def _named_by_labels(
        self, found: list[tuple[str, Leftover]], holders: Mapping[str, object]
    ) -> set[str]:
        """Jobs that no run names any more (they moved) whose container names runs of ours."""
        runs = {
            item.job_id: item.runs
            for _, item in found
            if item.what == "container" and item.job_id not in holders
        }
        if not runs:
            return set()
        stored = self._repo.stored_run_ids({r for ids in runs.values() for r in ids})
        return {job_id for job_id, ids in runs.items() if stored & set(ids)}

    def _why_kept(self, holders: list[tuple[RunStatus, Runner | None]], ours: bool) -> str | None:
        if not holders:
            return None if ours else NOT_OURS
        if any(self._alive(runner) for _, runner in holders):
            return IN_USE
        if any(status is RunStatus.RUNNING for status, _ in holders):
            return ORPHAN
        return None

    def _remove(self, target: str, job_id: str, items: list[Leftover]) -> None:
        staging = self._store.staging_path(job_id)
        for item in items:
            if item.what == "staging folder":
                self._store.discard_staging(staging)
        if target == THIS_MACHINE:
            return
        try:
            self._executors[target].release(job_id, staging)
        except CosmosError as exc:
            logger.warning("Could not remove what job %s left on %s: %s", job_id, target, exc)
        else:
            logger.info("Removed what job %s left on %s", job_id, target)


def _by_job(found: list[tuple[str, Leftover]]) -> dict[tuple[str, str], list[Leftover]]:
    groups: dict[tuple[str, str], list[Leftover]] = {}
    for target, item in found:
        groups.setdefault((target, item.job_id), []).append(item)
    return groups
