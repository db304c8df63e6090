"""`cosmos status`, `logs`, `kill` and `report`: watch and steer runs and sweeps."""

from __future__ import annotations

import json
import sys

import click

from cosmos_workflow.cli.common import (
    INTERRUPTED_EXIT,
    CliContext,
    emit,
    json_option,
    set_overrides,
    target_set_option,
)
from cosmos_workflow.cli.complete import complete_ids_of_kind, complete_run_ids, complete_sweep_ids
from cosmos_workflow.errors import NetworkFailure


@click.command()
@target_set_option
@json_option
@click.pass_obj
def status(obj: CliContext, sets: tuple[str, ...], as_json: bool) -> None:
    """Run counts, what runs where, sweeps under way (ETA, jobs), targets' GPUs and containers.

    Targets are the selected one (conf/ and --set) and every file in
    conf/target/. Exits 3 if a target could not be reached (after printing
    everything).
    """
    from cosmos_workflow.cli.render import render_status

    data = obj.api(set_overrides(sets), all_targets=True).status()
    emit(data, as_json, render_status)
    unreachable = [t["name"] for t in data["targets"] if t["configured"] and not t["reachable"]]
    if unreachable:
        raise NetworkFailure(f"cannot reach target(s): {', '.join(unreachable)}")


@click.command()
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run ends.")
@target_set_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end.")
@click.pass_obj
def logs(obj: CliContext, run_id: str, follow: bool, sets: tuple[str, ...], as_json: bool) -> None:
    """Print a run's log: live while it runs, else the copy in its run folder.

    With -f, wait for a queued run to start and follow a running one until
    it ends. A unique id prefix is enough. With --json, the lines are
    collected and printed once, with the run's status and where the log
    came from.
    """
    api = obj.api(set_overrides(sets), all_targets=True)
    lines: list[str] = []
    try:
        result = api.logs(run_id, lines.append if as_json else click.echo, follow=follow)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED_EXIT)
    if as_json:
        data = {"id": result.run_id, "status": result.status, "source": result.source}
        click.echo(json.dumps({**data, "lines": lines}, indent=2, ensure_ascii=False))
    elif result.source is None:
        click.echo(f"run {result.run_id} is {result.status}: it has no log", err=True)


@click.command()
@click.option("--sweep", "sweep", is_flag=True, help="ID is a sweep: kill all of it.")
@click.argument("object_id", metavar="ID", shell_complete=complete_ids_of_kind)
@target_set_option
@json_option
@click.pass_obj
def kill(
    obj: CliContext, object_id: str, sweep: bool, sets: tuple[str, ...], as_json: bool
) -> None:
    """Stop run ID (or with --sweep, sweep ID) and mark it cancelled.

    A run runs in a job (one container or process) that may hold several
    runs of a batch: killing the run stops the job and cancels all of them.
    --sweep cancels every unfinished run of the sweep, queued ones too.
    A run or sweep with nothing unfinished exits 2.
    """
    from cosmos_workflow.cli.render import render_kill

    api = obj.api(set_overrides(sets), all_targets=True)
    report = api.kill_sweep(object_id) if sweep else api.kill(object_id)
    emit(report.to_dict(), as_json, render_kill)


@click.command()
@click.argument("sweep_id", shell_complete=complete_sweep_ids)
@click.option("--rows", metavar="AXIS", help="Axis for the rows, e.g. model.seed or prompt.")
@click.option("--cols", metavar="AXIS", help="Axis for the columns.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (path, axes, layout, counts).")
@click.pass_obj
def report(
    obj: CliContext, sweep_id: str, rows: str | None, cols: str | None, as_json: bool
) -> None:
    """Write the sweep's report.html (a grid of its outputs) and print its path.

    By default the two axes with the most values are the rows and columns and
    any other axis makes sections. A unique id prefix is enough.
    """
    result = obj.api().report(sweep_id, rows=rows, cols=cols)
    emit(result.to_dict(), as_json, lambda data: click.echo(data["path"]))


@click.command()
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@target_set_option
@json_option
@click.pass_obj
def gc(obj: CliContext, dry_run: bool, sets: tuple[str, ...], as_json: bool) -> None:
    """Remove containers and job folders of ours that no live runner owns.

    Looks at every configured target (conf/ and --set, and every file in
    conf/target/) and at the staging folders of the output tree. What a live
    runner uses, an orphan the next run of its sweep re-attaches to, and what
    this project's database does not know are kept. Exits 3 if a target
    could not be reached (after printing everything).
    """
    from cosmos_workflow.cli.render import render_gc

    data = obj.api(set_overrides(sets), all_targets=True).gc(dry_run=dry_run).to_dict()
    emit(data, as_json, render_gc)
    if data["unreachable"]:
        raise NetworkFailure(f"cannot reach target(s): {', '.join(data['unreachable'])}")
