"""The operating half of CosmosAPI: reports, logs, kill and gc.

CosmosAPI (api/cosmos_api.py) inherits these; each method hands off to
outputs/report.py, engine/control.py or api/housekeeping.py, imported when
called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cosmos_workflow.database.repository import DataRepository
    from cosmos_workflow.engine.control import KillReport, LogResult, RunControl
    from cosmos_workflow.engine.leftovers import LeftoverReport
    from cosmos_workflow.outputs.report import ReportResult
    from cosmos_workflow.outputs.store import OutputStore
    from cosmos_workflow.sweeps.workspace import Workspace


class Operations:
    """Reports, logs, kill and gc of CosmosAPI (which provides the workspace and id lookup)."""

    # Provided by CosmosAPI.
    _ws: Workspace
    store: OutputStore
    repository: DataRepository
    resolve_id: Callable[..., str]

    def gc(self, dry_run: bool = False) -> LeftoverReport:
        """Remove our containers and job folders that no live runner owns (api/housekeeping.py)."""
        from cosmos_workflow.api.housekeeping import collect_garbage

        return collect_garbage(self._ws, dry_run)

    # -- reports, logs and kill ------------------------------------------------------------
    def report(
        self,
        given: str,
        rows: str | None = None,
        cols: str | None = None,
        thumbnails: bool = True,
    ) -> ReportResult:
        """Write (or refresh) a sweep's report.html: a grid of its outputs.

        Args:
            given: A sw_ id or unique prefix.
            rows: The rows' axis (``model.seed``, ``prompt``, ...); None: outputs/axes.py's rule.
            cols: The columns' axis.
            thumbnails: Make missing thumbnails (False: only those made before; quick).

        Raises:
            NotFoundFailure: no such sweep. ValidationFailure: not a sweep id or
            an unknown axis. StateError: the report cannot be written.
        """
        from cosmos_workflow.outputs.report import SweepReport

        sweep_id = self.resolve_id(given, "sw")
        report = SweepReport(self.repository, self.store, self._ws.clock)
        return report.write(sweep_id, rows, cols, thumbnails=thumbnails)

    def logs(self, given: str, on_line: Callable[[str], None], follow: bool = False) -> LogResult:
        """Pass a run's log to ``on_line``: live while it runs, else its run folder's copy.

        Args:
            given: A rs_ id or unique prefix.
            on_line: Receives each line.
            follow: Wait for a queued run to start; follow a running one until it ends.

        Raises:
            NotFoundFailure: no such run. ValidationFailure: not a run id, or
            the run's target is not configured here.
        """
        return self._control().logs(self.resolve_id(given, "rs"), on_line, follow)

    def kill(self, given: str) -> KillReport:
        """Cancel a run and stop the container or process of its job (with its other runs).

        Raises:
            NotFoundFailure: no such run. ValidationFailure: not a run id, the
            run is over (nothing to kill), or its target is not configured here.
            NetworkFailure: the target cannot be reached (nothing was cancelled).
        """
        return self._control().kill(self.resolve_id(given, "rs"))

    def kill_sweep(self, given: str) -> KillReport:
        """Cancel every unfinished run of a sweep and stop its running jobs.

        Raises:
            NotFoundFailure: no such sweep. ValidationFailure: not a sweep id,
            nothing unfinished, or a target is not configured here.
            NetworkFailure: a target cannot be reached (nothing was cancelled).
        """
        return self._control().kill_sweep(self.resolve_id(given, "sw"))

    def _control(self) -> RunControl:
        from cosmos_workflow.engine.control import RunControl

        return RunControl(self.repository, self.store, self._ws.executor_named)
