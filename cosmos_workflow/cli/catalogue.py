"""`cosmos list`, `show`, `search`, `rate`, `delete` and `verify`: what the database holds."""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import click

from cosmos_workflow.cli.common import CliContext, emit, json_option
from cosmos_workflow.cli.complete import (
    complete_any_id,
    complete_ids_of_kind,
    complete_prompt_ids,
    complete_run_ids,
)
from cosmos_workflow.database.ratings import MAX_RATING, MIN_RATING
from cosmos_workflow.database.states import RUN_STATUSES
from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.utils.words import counted

PROMPT_FILTER_HELP = (
    "Runs of this prompt: an id (a unique prefix is enough) or a name (every prompt so named)."
)


@click.command("list")
@click.argument("what", type=click.Choice(["prompts", "runs", "sweeps"]))
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Runs in this status only.")
@click.option("--rating", type=int, help=f"Runs rated exactly so ({MIN_RATING}-{MAX_RATING}).")
@click.option("--min-rating", type=int, help="Runs rated at least so.")
@click.option("--prompt", shell_complete=complete_prompt_ids, help=PROMPT_FILTER_HELP)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@json_option
@click.pass_obj
def list_(
    obj: CliContext,
    what: str,
    status: str | None,
    rating: int | None,
    min_rating: int | None,
    prompt: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List prompts, runs or sweeps, newest first."""
    from cosmos_workflow.cli import render

    api = obj.api()
    filters = (("--status", status), ("--rating", rating), ("--min-rating", min_rating))
    for flag, value in (*filters, ("--prompt", prompt)):
        if value is not None and what != "runs":
            raise ValidationFailure(f"{flag} filters runs only")
    if what == "prompts":
        emit(api.list_prompts(limit), as_json, render.render_prompts)
    elif what == "runs":
        runs = api.list_runs(status, limit, rating, min_rating, prompt)
        emit(runs, as_json, render.render_runs)
    else:
        emit(api.list_sweeps(limit), as_json, render.render_sweeps)


@click.command()
@click.argument("object_id", shell_complete=complete_any_id)
@json_option
@click.pass_obj
def show(obj: CliContext, object_id: str, as_json: bool) -> None:
    """Show a prompt (ps_), run (rs_) or sweep (sw_); a unique prefix is enough."""
    from cosmos_workflow.cli.render import render_show

    emit(obj.api().show(object_id), as_json, render_show)


@click.command()
@click.argument("text")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most this many prompts and this many runs.",
)
@json_option
@click.pass_obj
def search(obj: CliContext, text: str, limit: int, as_json: bool) -> None:
    """Find prompts whose text, name or negative prompt contains TEXT, and their runs.

    TEXT is matched literally, ignoring case: % _ and \\ are plain
    characters. Newest first.
    """
    from cosmos_workflow.cli.render import render_search

    emit(obj.api().search(text, limit), as_json, render_search)


@click.command()
@click.argument("run_id", shell_complete=complete_run_ids)
@click.argument("rating", type=int, required=False)
@click.option("--clear", is_flag=True, help="Remove the run's rating.")
@json_option
@click.pass_obj
def rate(obj: CliContext, run_id: str, rating: int | None, clear: bool, as_json: bool) -> None:
    """Rate a succeeded run's output from 1 (bad) to 5 (good); --clear removes it.

    A unique id prefix is enough. `cosmos list runs --rating N` or
    `--min-rating N` lists rated runs.
    """
    from cosmos_workflow.cli.render import render_rated

    if clear == (rating is not None):
        raise ValidationFailure(
            f"give a rating from {MIN_RATING} to {MAX_RATING}, or --clear (not both)"
        )
    emit(obj.api().rate(run_id, rating), as_json, render_rated)


@click.command()
@click.argument("kind", type=click.Choice(["prompt", "run"]))
@click.argument("object_id", required=False, shell_complete=complete_ids_of_kind)
@click.option("--all", "every", is_flag=True, help="Every prompt or run that the filters select.")
@click.option("--status", type=click.Choice(RUN_STATUSES), help="With --all: runs in this status.")
@click.option(
    "--prompt",
    shell_complete=complete_prompt_ids,
    help="With --all: runs of this prompt, or prompts of this name (id or name).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--delete-outputs", is_flag=True, help="Also remove the run folders.")
@click.option(
    "--with-children",
    is_flag=True,
    help="Also delete the prompts and runs made from it (enhanced prompts, upscales).",
)
@json_option
@click.pass_obj
def delete(
    obj: CliContext,
    kind: str,
    object_id: str | None,
    every: bool,
    status: str | None,
    prompt: str | None,
    yes: bool,
    delete_outputs: bool,
    with_children: bool,
    as_json: bool,
) -> None:
    """Delete a prompt (and its runs) or a run, or every one (--all).

    Output folders are kept unless asked. With --all, --status and --prompt
    select what goes (`cosmos delete run --all --status failed`); the
    question says how many.

    Prompts and runs made from it are its children: without --yes you are
    asked about them too; with --yes they are kept, unlinked, unless
    --with-children.
    """
    from cosmos_workflow.cli.render import render_deleted

    if every == (object_id is not None):
        raise ValidationFailure(f"give a {kind} id or --all (one of them)")
    if not every and (status is not None or prompt is not None):
        flag = "--status" if status is not None else "--prompt"
        raise ValidationFailure(f"{flag} selects what --all deletes: add --all, or give no filter")
    api = obj.api()
    preview = api.delete_preview(kind, object_id, status, prompt)
    if not preview["ids"]:
        click.echo(f"nothing to delete: no {kind} matches", err=True)
        emit(
            {
                "id": None,
                "ids": [],
                "deleted_runs": [],
                "deleted_prompts": [],
                "removed_outputs": [],
            },
            as_json,
            lambda _: None,
        )
        return
    if not yes:
        kept = "and remove their output folders" if delete_outputs else "(output folders are kept)"
        filters = (("--status", status), ("--prompt", prompt))
        selection = " ".join(f"{flag} {value}" for flag, value in filters if value is not None)
        question = f"Delete {_what(kind, preview, selection)} {kept}?"
        if not click.confirm(question, default=False, err=True):
            click.echo("nothing deleted", err=True)
            sys.exit(1)
        with_children = with_children or _confirm_children(preview["children"])
    chosen = preview["id"] if preview["id"] is not None else preview["ids"]
    result = api.delete(kind, chosen, delete_outputs=delete_outputs, with_children=with_children)
    emit(result, as_json, partial(render_deleted, kind))


def _what(kind: str, preview: dict[str, Any], selection: str) -> str:
    """What the question names: one prompt or run, or how many the selection holds."""
    runs = len(preview["runs"])
    if preview["id"] is not None:
        return f"{kind} {preview['id']}" + (f" and its {runs} run(s)" if kind == "prompt" else "")
    count = counted(len(preview["ids"]), kind)
    what = f"{count} matching {selection}" if selection else f"all {count}"
    return what + (f" with their {counted(runs, 'run')}" if kind == "prompt" else "")


def _confirm_children(children: dict[str, list[str]]) -> bool:
    """Ask whether the children go too (False: they are kept, unlinked)."""
    named = [*children["prompts"], *children["runs"]]
    if not named:
        return False
    shown = ", ".join(named[:10]) + (f" and {len(named) - 10} more" if len(named) > 10 else "")
    question = (
        f"It has {len(named)} child prompt(s)/run(s) made from it: {shown}. "
        "Delete them too (no: they are kept, unlinked)?"
    )
    return click.confirm(question, default=False, err=True)


@click.command()
@click.option(
    "--fix",
    is_flag=True,
    help="Mark the damaged runs failed, so that they run again (no file is deleted).",
)
@json_option
@click.pass_obj
def verify(obj: CliContext, fix: bool, as_json: bool) -> None:
    """Check the database against the run folders: missing, changed or orphaned outputs.

    Every succeeded run's folder must hold result.json and the outputs it
    lists, with their recorded sizes and the sha256 of outputs.sha256. A run
    folder without a database row is orphaned. Exit code 0: nothing is
    wrong; 1: something is (after --fix: orphaned folders, which are never
    removed). --fix marks damaged runs failed: the next sweep or inference
    that asks for them runs them again (they are no longer cached).
    """
    from cosmos_workflow.cli.console import stderr_console
    from cosmos_workflow.cli.render import render_verified
    from cosmos_workflow.cli.step_display import make_step_progress

    report = obj.api().verify(fix, make_step_progress(stderr_console()))
    emit(report.to_dict(), as_json, render_verified)
    if not report.ok:
        sys.exit(1)
