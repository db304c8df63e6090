"""`cosmos list`, `show`, `search`, `rate` and `delete`: what the database holds."""

from __future__ import annotations

import sys
from functools import partial

import click

from cosmos_workflow.cli.common import CliContext, emit, json_option
from cosmos_workflow.cli.complete import complete_any_id, complete_ids_of_kind, complete_run_ids
from cosmos_workflow.database.ratings import MAX_RATING, MIN_RATING
from cosmos_workflow.database.states import RUN_STATUSES
from cosmos_workflow.errors import ValidationFailure


@click.command("list")
@click.argument("what", type=click.Choice(["prompts", "runs", "sweeps"]))
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Runs in this status only.")
@click.option("--rating", type=int, help=f"Runs rated exactly so ({MIN_RATING}-{MAX_RATING}).")
@click.option("--min-rating", type=int, help="Runs rated at least so.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@json_option
@click.pass_obj
def list_(
    obj: CliContext,
    what: str,
    status: str | None,
    rating: int | None,
    min_rating: int | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List prompts, runs or sweeps, newest first."""
    from cosmos_workflow.cli import render

    api = obj.api()
    if status is not None and what != "runs":
        raise ValidationFailure("--status filters runs only")
    for flag, value in (("--rating", rating), ("--min-rating", min_rating)):
        if value is not None and what != "runs":
            raise ValidationFailure(f"{flag} filters runs only")
    if what == "prompts":
        emit(api.list_prompts(limit), as_json, render.render_prompts)
    elif what == "runs":
        emit(api.list_runs(status, limit, rating, min_rating), as_json, render.render_runs)
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
@click.argument("object_id", shell_complete=complete_ids_of_kind)
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
    object_id: str,
    yes: bool,
    delete_outputs: bool,
    with_children: bool,
    as_json: bool,
) -> None:
    """Delete a prompt (and its runs) or a run. Output folders are kept unless asked.

    Prompts and runs made from it (enhanced prompts, upscale runs) are its
    children: without --yes you are asked about them too; with --yes they are
    kept, unlinked, unless --with-children.
    """
    from cosmos_workflow.cli.render import render_deleted

    api = obj.api()
    preview = api.delete_preview(kind, object_id)
    if not yes:
        what = f"{kind} {preview['id']}"
        if kind == "prompt":
            what += f" and its {len(preview['runs'])} run(s)"
        kept = "and remove their output folders" if delete_outputs else "(output folders are kept)"
        if not click.confirm(f"Delete {what} {kept}?", default=False, err=True):
            click.echo("nothing deleted", err=True)
            sys.exit(1)
        with_children = with_children or _confirm_children(preview["children"])
    result = api.delete(
        kind, preview["id"], delete_outputs=delete_outputs, with_children=with_children
    )
    emit(result, as_json, partial(render_deleted, kind))


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
