"""How `cosmos` prints results for people: lines, tables, coloured statuses, ratings.

Every function takes the data a command would print with --json (plain
dicts and lists) and prints it to stdout with click or, where a run status
is coloured, the result console (colour only on a terminal without
NO_COLOR; see console.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from cosmos_workflow.database.ratings import MAX_RATING
from cosmos_workflow.database.states import RUN_STATUSES
from cosmos_workflow.engine.eta import format_duration
from cosmos_workflow.utils.words import counted

if TYPE_CHECKING:
    from cosmos_workflow.api import InferenceResult

# The counts of a sweep, in this order.
SWEEP_COUNTS = ("succeeded", "running", "queued", "failed", "cancelled")


def short(text: str | None, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with "..." if longer."""
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def rating(value: int | None) -> str:
    """A rating as "4/5", or "-" when the run is not rated."""
    return "-" if value is None else f"{value}/{MAX_RATING}"


def _print_run_lines(lines: list[tuple[str, str, str]]) -> None:
    """Lines of runs (before, status, after), each status in its colour on a terminal."""
    from rich.text import Text

    from cosmos_workflow.cli.console import status_text, stdout_console

    out = stdout_console()
    for before, status, after in lines:
        out.print(Text.assemble(before, status_text(status, 9), after))


# -- inputs ---------------------------------------------------------------------
def render_prepared(data: dict[str, Any]) -> None:
    """The videos `cosmos prepare` made (or would make)."""
    verb = "would make" if data["dry_run"] else "made"
    click.echo(f"{verb} {len(data['videos'])} video(s) from {data['source']}:")
    for video in data["videos"]:
        replaced = " (replaces the existing file)" if video["replaces"] else ""
        click.echo(
            f"  {video['modality']:<5}  {video['frames']} frames {video['first_frame']}-"
            f"{video['last_frame']}  {video['width']}x{video['height']}  {video['fps']} fps  "
            f"{video['pattern']} -> {video['output']}{replaced}"
        )
    if data["dry_run"]:
        click.echo("nothing was written (dry run)")
    else:
        click.echo(f"next: cosmos create prompt TEXT {data['out']}")


def render_created_prompt(data: dict[str, Any]) -> None:
    """A new prompt's id (and a note on stderr if it existed already)."""
    click.echo(data["id"])
    if not data["created"]:
        click.echo("(an identical prompt already existed)", err=True)


# -- runs -----------------------------------------------------------------------
def render_run(result: InferenceResult, line: str = "") -> None:
    """A run's id, then its status and folder (then ``line``, if any)."""
    click.echo(result.run_id)
    note = " (cached)" if result.cached else ""
    click.echo(f"{result.status}{note}: {result.output_dir}")
    if line:
        click.echo(line)


def render_enhanced(data: dict[str, Any]) -> None:
    """The enhanced prompt's id, or on stderr what became of the upsampler run."""
    run = data["run"]
    if data["id"] is None:
        click.echo(f"the upsampler run {run['id']} {run['status']}: {data['output_dir']}", err=True)
        return
    click.echo(data["id"])
    if not data["created"]:
        click.echo("(this enhanced prompt already existed)", err=True)


# -- catalogue ------------------------------------------------------------------
def _origin_note(row: dict[str, Any]) -> str:
    origin = row.get("origin") or {}
    if origin.get("kind") == "enhanced":
        return f"  (enhanced from {row['parent_id'] or 'a deleted prompt'})"
    if origin.get("kind") == "upscale_input":
        return f"  (input of upscales of {origin.get('run')})"
    return ""


def render_prompts(rows: list[dict[str, Any]]) -> None:
    """One line per prompt: id, name, text (and where it came from)."""
    for row in rows:
        click.echo(
            f"{row['id']}  {short(row['name'], 16):<16}  {short(row['text'], 60)}"
            f"{_origin_note(row)}"
        )
    click.echo(f"{len(rows)} prompt(s)")


def render_runs(rows: list[dict[str, Any]]) -> None:
    """One line per run: id, status, rating, prompt, target, folder.

    A succeeded run whose folder is damaged shows as ``damaged``, and why.
    """
    _print_run_lines(
        [
            (
                f"{row['id']}  ",
                "damaged" if row.get("damaged") else row["status"],
                f"  {rating(row['rating']):<3}  {row['prompt_id']}  "
                f"{row['target'] or '-':<8}  {row['output_path'] or '-'}{_damage_note(row)}",
            )
            for row in rows
        ]
    )
    click.echo(f"{len(rows)} run(s)")


def _damage_note(row: dict[str, Any]) -> str:
    return f"  (succeeded, but {'; '.join(row['damaged'])})" if row.get("damaged") else ""


def render_sweeps(rows: list[dict[str, Any]]) -> None:
    """One line per sweep: id, name, run counts (and its stages' runs)."""
    for row in rows:
        counts = ", ".join(f"{v} {k}" for k, v in row["counts"].items() if v)
        stages = "".join(f" (+{n} {stage})" for stage, n in row["stages"].items())
        click.echo(
            f"{row['id']}  {short(row['name'], 20):<20}  {row['runs']} runs: {counts}{stages}"
        )
    click.echo(f"{len(rows)} sweep(s)")


def render_show(data: dict[str, Any]) -> None:
    """``key: value`` lines; nested values as indented JSON.

    A damaged run's status says so: ``succeeded (damaged: result.json is missing)``.
    """
    for key, value in data.items():
        if key == "damaged":
            continue  # said with the status
        if key == "status" and data.get("damaged"):
            click.echo(f"status: {value} (damaged: {'; '.join(data['damaged'])})")
        elif isinstance(value, dict | list):
            click.echo(f"{key}:")
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
            click.echo("\n".join(f"  {line}" for line in text.splitlines()))
        else:
            click.echo(f"{key}: {value}")


def render_search(data: dict[str, Any]) -> None:
    """The prompts that matched (with the fields that did) and their runs."""
    if not data["prompts"] and not data["runs"]:
        click.echo(f"no prompt or run contains {data['query']!r}")
        return
    _render_found("prompt", len(data["prompts"]), data["prompts_total"])
    for row in data["prompts"]:
        fields = ",".join(row["matched"])
        click.echo(
            f"  {row['id']}  {short(row['name'], 16):<16}  [{fields}]  {short(row['text'], 60)}"
        )
    _render_found("run", len(data["runs"]), data["runs_total"])
    _print_run_lines(
        [
            (f"  {row['id']}  ", row["status"], f"  {rating(row['rating']):<3}  {row['prompt_id']}")
            for row in data["runs"]
        ]
    )


def _render_found(kind: str, shown: int, total: int) -> None:
    more = f" (the newest {shown}; --limit shows more)" if total > shown else ""
    click.echo(f"{total} {kind}(s){more}")


def render_rated(data: dict[str, Any]) -> None:
    """The run's rating now (and what it was)."""
    before = f" (was {rating(data['previous'])})" if data["previous"] is not None else ""
    now = "not rated" if data["rating"] is None else f"rated {rating(data['rating'])}"
    click.echo(f"{data['id']} {now}{before}")


def render_deleted(kind: str, data: dict[str, Any]) -> None:
    """What a deletion removed."""
    prompts = data["deleted_prompts"]
    also = f", {len(prompts)} child prompt(s)" if prompts else ""
    if data["id"] is not None:
        what = f"{kind} {data['id']}"
    else:
        count = len(data["ids"])
        what = counted(count, kind)
    click.echo(f"deleted {what} ({len(data['deleted_runs'])} run(s){also})")
    if data["removed_outputs"]:
        click.echo(f"removed {len(data['removed_outputs'])} output folder(s)")


def render_verified(data: dict[str, Any]) -> None:
    """What `cosmos verify` found, and what --fix did."""
    checked = f"{data['checked']} succeeded run(s) checked in {data['runs_dir']}"
    if data["elsewhere"]:
        checked += f" ({data['elsewhere']} made in another output tree: not checked here)"
    click.echo(checked + (": no problem" if data["ok"] and not data["fixed"] else ""))
    for run in data["damaged"]:
        click.echo(f"damaged {run['id']}  {run['output_dir']}")
        for problem in run["problems"]:
            click.echo(f"  {problem}")
    for orphan in data["orphaned"]:
        click.echo(f"orphaned {orphan['name']}  {orphan['path']} (no database row)")
    unfixed = [run for run in data["damaged"] if not run["fixed"]]
    if data["fixed"]:
        click.echo(
            f"marked {len(data['fixed'])} run(s) failed: the next sweep or cosmos inference that "
            "asks for them runs them again (their files stay in their folders until then, "
            "when the new outputs replace them)"
        )
    if unfixed:
        click.echo(
            f"{len(unfixed)} damaged run(s): cosmos verify --fix marks them failed, so that they "
            "run again (no file is deleted)"
        )
    if data["orphaned"]:
        click.echo(
            f"{len(data['orphaned'])} orphaned folder(s) left in place: neither --fix nor any "
            "command removes them (a sweep that plans the same run again adopts outputs that "
            "verify); remove them with rm -r if you do not need them"
        )


# -- operate --------------------------------------------------------------------
def render_status(data: dict[str, Any]) -> None:
    """Run counts, running runs, active sweeps and every target."""
    click.echo(f"database: {data['database']}")
    counts = data["counts"]
    click.echo("runs: " + ", ".join(f"{counts[s]} {s}" for s in RUN_STATUSES))
    if not data["running"]:
        click.echo("nothing is running")
    for row in data["running"]:
        click.echo(
            f"running {row['id']} on {row['target']} gpus {row['gpus']} since {row['started_at']}"
            f" (job {row['job_id']})"
        )
    if not data["active_sweeps"]:
        click.echo("no active sweep")
    for sweep in data["active_sweeps"]:
        _render_sweep(sweep)
    for target in data["targets"]:
        _render_target(target)
    click.echo(f"job work folders on this machine: {data['staging_folders']}")


def _counts_text(counts: dict[str, int]) -> str:
    shown = ", ".join(f"{counts[name]} {name}" for name in SWEEP_COUNTS)
    pending = f", {counts['pending']} pending" if counts["pending"] else ""
    return f"{shown}{pending} of {counts['total']}"


def _render_sweep(sweep: dict[str, Any]) -> None:
    eta = f"; eta {format_duration(sweep['eta_s'])}"
    main = sweep["stage"] == "main"
    click.echo(
        f"sweep {sweep['id']} {sweep['name']}: {_counts_text(sweep['counts'])}{eta if main else ''}"
    )
    for stage, counts in sweep["stages"].items():
        now = eta if stage == sweep["stage"] else ""
        click.echo(f"  {stage} stage: {_counts_text(counts)}{now}")
    for job in sweep["jobs"]:
        gpus = ",".join(str(gpu) for gpu in job["gpus"]) or "-"
        runs = counted(job["runs"], "run")
        click.echo(
            f"  job {job['job_id']} on {job['target']} gpus {gpus}: {runs}, started"
            f" {job['started_at']}, running for {format_duration(job['elapsed_s'])}"
        )


def _render_target(target: dict[str, Any]) -> None:
    if not target["configured"]:
        click.echo(f"target {target['name']} ({target['source']}): not usable: {target['problem']}")
        return
    where = target.get("address") or target["source"]
    if target.get("kind") == "ssh":
        where = f"ssh {where}"
    click.echo(f"target {target['name']} ({where}):")
    if not target["reachable"]:
        click.echo(f"  unreachable: {target['error']}")
        return
    if target["gpus"] is None:
        click.echo("  no GPU information")
    for gpu in target["gpus"] or []:
        click.echo(
            f"  gpu {gpu['index']}: {gpu['name']}, {_or_na(gpu['memory_used_mib'])}/"
            f"{_or_na(gpu['memory_total_mib'])} MiB used, "
            f"{_or_na(gpu['utilization_pct'])}% busy"
        )
    if target["error"]:
        click.echo(f"  containers: unknown ({target['error']})")
    elif target["containers"] is not None:
        _render_containers(target["containers"])
    if target.get("job_folders") is not None:
        click.echo(f"  job folders of ours: {target['job_folders']}")


def render_gc(report: dict[str, Any]) -> None:
    """What `cosmos gc` removed (or would remove), kept, and could not look at."""
    verb = "would remove" if report["dry_run"] else "removed"
    for item in report["removed"]:
        click.echo(f"{verb} {item['what']} {item['name']} ({item['target']}, job {item['job_id']})")
    for item in report["kept"]:
        click.echo(f"kept {item['what']} {item['name']} ({item['target']}): {item['why']}")
    for name, error in report["unreachable"].items():
        click.echo(f"target {name}: not looked at: {error}")
    click.echo(f"{verb} {len(report['removed'])}, kept {len(report['kept'])}")


def _render_containers(containers: list[dict[str, Any]]) -> None:
    if not containers:
        click.echo("  no containers of ours")
    for container in containers:
        labels = container["labels"]
        click.echo(
            f"  container {container['name']} {container['state']}: job {labels.get('job', '-')}"
            f", runs {labels.get('runs', '-')}"
        )


def _or_na(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def render_kill(report: dict[str, Any]) -> None:
    """The jobs stopped and the runs cancelled."""
    for job in report["jobs"]:
        what = f"stopped {job['stopped']}" if job["stopped"] else "it had not started its program"
        runs = job["runs"]
        click.echo(f"job {job['job_id']} on {job['target']}: {what}")
        if len(runs) > 1:
            click.echo(f"  it held {len(runs)} runs; all of them are cancelled: {', '.join(runs)}")
    cancelled = report["cancelled"]
    click.echo(f"cancelled {len(cancelled)} run(s): {', '.join(cancelled) or '-'}")
