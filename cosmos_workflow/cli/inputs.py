"""`cosmos create prompt` and `cosmos prepare`: the inputs of runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cosmos_workflow.cli.common import (
    INTERRUPTED_EXIT,
    CliContext,
    GuardedGroup,
    emit,
    json_option,
)
from cosmos_workflow.local_ai.prepare import DEFAULT_FPS, MAX_FPS


@click.group(cls=GuardedGroup)
def create() -> None:
    """Create prompts."""


@create.command("prompt")
@click.argument("text")
@click.argument("video_dir", type=click.Path(path_type=Path))
@click.option("--name", help="Short name (default: the folder's name).")
@click.option("--negative", help="Negative prompt.")
@json_option
@click.pass_obj
def create_prompt(
    obj: CliContext,
    text: str,
    video_dir: Path,
    name: str | None,
    negative: str | None,
    as_json: bool,
) -> None:
    """Create a prompt from TEXT and the videos in VIDEO_DIR.

    Videos are recognised by name: color.mp4 (the input video) and
    vis/edge/depth/seg.mp4 (control videos; segmentation.mp4 is seg), or
    NAME_depth.mp4 and the like. Every other file is named in a note.
    Prints the prompt id (ps_...).
    """
    from cosmos_workflow.cli.render import render_created_prompt

    api = obj.api()
    data = api.create_prompt(text, video_dir, name=name, negative=negative).to_dict()
    for note in data["notes"]:
        click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(json.dumps(data))
    else:
        render_created_prompt(data)


@click.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--fps", type=click.IntRange(1, MAX_FPS), default=DEFAULT_FPS, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Where the videos go [FOLDER].")
@click.option("--dry-run", is_flag=True, help="Check and show the plan; write nothing.")
@click.option("--force", is_flag=True, help="Replace videos that exist already.")
@json_option
@click.pass_obj
def prepare(
    obj: CliContext,
    folder: Path,
    fps: int,
    out: Path | None,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Turn the PNG sequences in FOLDER into one mp4 per modality (color.mp4, depth.mp4...).

    Names: color.0001.png (Houdini), depth_0001.png, segmentation.0001.png
    (seg), frame_000.png or 0001.png (color). Every modality must have the
    same frames and size. Other passes (normal, albedo...) are skipped with a
    warning; other files are named in a note.
    """
    from cosmos_workflow.cli.console import stderr_console
    from cosmos_workflow.cli.render import render_prepared
    from cosmos_workflow.cli.step_display import make_step_progress

    api = obj.api()
    try:
        result = api.prepare_inputs(
            folder,
            out,
            fps,
            dry_run=dry_run,
            force=force,
            progress=make_step_progress(stderr_console()),
        )
    except KeyboardInterrupt:
        click.echo("interrupted: nothing was written", err=True)
        sys.exit(INTERRUPTED_EXIT)
    for item in result.skipped:
        click.echo(
            f"warning: skipped {item.pattern} ({item.frames} frames): {item.reason}", err=True
        )
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    emit(result.to_dict(), as_json, render_prepared)
