"""`cosmos`: manage prompts, runs and sweeps (over CosmosAPI only).

Exit codes: 0 ok, 1 runs failed, 2 bad input, 3 connection or auth.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cosmos_workflow.api.cosmos_api import RUN_STATUSES, CosmosAPI
from cosmos_workflow.cli.console import (
    configure_logging,
    guarded,
    make_progress,
    stderr_console,
)
from cosmos_workflow.config.compose import compose_config
from cosmos_workflow.config.manager import ConfigManager
from cosmos_workflow.config.project import find_project
from cosmos_workflow.errors import ValidationFailure

STATUS_CHOICES = list(RUN_STATUSES)


class _Context:
    """Builds the API lazily, with the config overrides a command needs."""

    def __init__(self) -> None:
        self._api: CosmosAPI | None = None
        self.composed: dict[str, Any] = {}

    def api(self, overrides: list[str] | None = None) -> CosmosAPI:
        if self._api is None:
            project = find_project(Path.cwd(), os.environ)
            self.composed = compose_config(project, overrides or [])
            settings = ConfigManager(project, os.environ).settings(self.composed)
            # Management commands print their own results: routine INFO lines
            # (a migration, a run finishing) would clutter them.
            configure_logging(settings.log_level if settings.log_level != "INFO" else "WARNING")
            self._api = CosmosAPI(settings)
            click.get_current_context().call_on_close(self._api.close)
        return self._api


class _Group(click.Group):
    """Turns expected failures into a one-line message and their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        result: list[Any] = []

        def action() -> int:
            result.append(super(_Group, self).invoke(ctx))
            return 0

        code = guarded(action)
        if code:
            sys.exit(code)
        return result[0] if result else None


def _emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        render(data)


def _short(text: str | None, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Manage Cosmos prompts, runs and sweeps. Sweeps run with `cosmos-batch`."""
    ctx.obj = _Context()


# -- create ------------------------------------------------------------------
@cli.group(cls=_Group)
def create() -> None:
    """Create prompts."""


@create.command("prompt")
@click.argument("text")
@click.argument("video_dir", type=click.Path(path_type=Path))
@click.option("--name", help="Short name (default: the folder's name).")
@click.option("--negative", help="Negative prompt.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def create_prompt(
    obj: _Context, text: str, video_dir: Path, name: str | None, negative: str | None, as_json: bool
) -> None:
    """Create a prompt from TEXT and the videos in VIDEO_DIR.

    Videos are recognised by name: color.mp4 (the input video) and
    vis/edge/depth/seg.mp4 (control videos), or NAME_depth.mp4 and the like.
    Prints the prompt id (ps_...).
    """
    api = obj.api()
    prompt_id, created = api.create_prompt(text, video_dir, name=name, negative=negative)
    if as_json:
        click.echo(json.dumps({"id": prompt_id, "created": created}))
    else:
        click.echo(prompt_id)
        if not created:
            click.echo("(an identical prompt already existed)", err=True)


# -- inference ---------------------------------------------------------------
def _model_overrides(
    seed: int | None,
    num_steps: int | None,
    guidance: float | None,
    sigma_max: float | None,
    fps: int | None,
    num_gpus: int | None,
    weights: tuple[str, ...],
    sets: tuple[str, ...],
) -> list[str]:
    overrides = []
    for key, value in (
        ("seed", seed),
        ("num_steps", num_steps),
        ("guidance", guidance),
        ("sigma_max", sigma_max),
        ("fps", fps),
        ("num_gpus", num_gpus),
    ):
        if value is not None:
            overrides.append(f"model.{key}={value}")
    for item in weights:
        modality, sep, value = item.partition("=")
        if not sep or not modality or not value:
            raise ValidationFailure(f"--weight takes MODALITY=WEIGHT, got {item!r}")
        overrides.append(f"model.weights.{modality}={value}")
    for item in sets:
        if "=" not in item:
            raise ValidationFailure(f"--set takes KEY=VALUE, got {item!r}")
        overrides.append(item)
    return overrides


@cli.command()
@click.argument("prompt_id")
@click.option("--seed", type=int)
@click.option("--num-steps", type=int)
@click.option("--guidance", type=float)
@click.option("--sigma-max", type=float)
@click.option("--fps", type=int)
@click.option("--num-gpus", type=int)
@click.option("--weight", "weights", multiple=True, metavar="MOD=W", help="Control weight.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any config override.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def inference(
    obj: _Context,
    prompt_id: str,
    seed: int | None,
    num_steps: int | None,
    guidance: float | None,
    sigma_max: float | None,
    fps: int | None,
    num_gpus: int | None,
    weights: tuple[str, ...],
    sets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run PROMPT_ID once on the configured target; print the run id and output."""
    overrides = _model_overrides(seed, num_steps, guidance, sigma_max, fps, num_gpus, weights, sets)
    api = obj.api(overrides)
    result = api.inference(prompt_id, obj.composed["model"], make_progress(stderr_console()))
    data = {
        "id": result.run_id,
        "status": result.status,
        "cached": result.cached,
        "output_dir": str(result.output_dir),
    }

    def render(_: Any) -> None:
        click.echo(result.run_id)
        note = " (cached)" if result.cached else ""
        click.echo(f"{result.status}{note}: {result.output_dir}")

    _emit(data, as_json, render)
    if result.status != "succeeded":
        sys.exit(1)


# -- list / show / status ------------------------------------------------------
def _render_prompts(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        click.echo(f"{row['id']}  {_short(row['name'], 16):<16}  {_short(row['text'], 60)}")
    click.echo(f"{len(rows)} prompt(s)")


def _render_runs(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        click.echo(
            f"{row['id']}  {row['status']:<9}  {row['prompt_id']}  {row['target'] or '-':<8}  "
            f"{row['output_path'] or '-'}"
        )
    click.echo(f"{len(rows)} run(s)")


def _render_sweeps(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        counts = ", ".join(f"{v} {k}" for k, v in row["counts"].items() if v)
        click.echo(f"{row['id']}  {_short(row['name'], 20):<20}  {row['runs']} runs: {counts}")
    click.echo(f"{len(rows)} sweep(s)")


@cli.command("list")
@click.argument("what", type=click.Choice(["prompts", "runs", "sweeps"]))
@click.option("--status", type=click.Choice(STATUS_CHOICES), help="Runs in this status only.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_(obj: _Context, what: str, status: str | None, limit: int | None, as_json: bool) -> None:
    """List prompts, runs or sweeps, newest first."""
    api = obj.api()
    if status is not None and what != "runs":
        raise ValidationFailure("--status filters runs only")
    if what == "prompts":
        _emit(api.list_prompts(limit), as_json, _render_prompts)
    elif what == "runs":
        _emit(api.list_runs(status, limit), as_json, _render_runs)
    else:
        _emit(api.list_sweeps(limit), as_json, _render_sweeps)


def _render_show(data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict | list):
            click.echo(f"{key}:")
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
            click.echo("\n".join(f"  {line}" for line in text.splitlines()))
        else:
            click.echo(f"{key}: {value}")


@cli.command()
@click.argument("object_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show(obj: _Context, object_id: str, as_json: bool) -> None:
    """Show a prompt (ps_), run (rs_) or sweep (sw_); a unique prefix is enough."""
    _emit(obj.api().show(object_id), as_json, _render_show)


def _render_status(data: dict[str, Any]) -> None:
    click.echo(f"database: {data['database']}")
    counts = data["counts"]
    click.echo("runs: " + ", ".join(f"{counts[s]} {s}" for s in STATUS_CHOICES))
    if not data["running"]:
        click.echo("nothing is running")
    for row in data["running"]:
        click.echo(
            f"running {row['id']} on {row['target']} gpus {row['gpus']} since {row['started_at']}"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status(obj: _Context, as_json: bool) -> None:
    """What is running where, and run counts by status."""
    _emit(obj.api().status(), as_json, _render_status)


# -- delete --------------------------------------------------------------------
@cli.command()
@click.argument("kind", type=click.Choice(["prompt", "run"]))
@click.argument("object_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--delete-outputs", is_flag=True, help="Also remove the run folders.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def delete(
    obj: _Context, kind: str, object_id: str, yes: bool, delete_outputs: bool, as_json: bool
) -> None:
    """Delete a prompt (and its runs) or a run. Output folders are kept unless asked."""
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
    result = api.delete(kind, preview["id"], delete_outputs=delete_outputs)

    def render(data: dict[str, Any]) -> None:
        click.echo(f"deleted {kind} {data['id']} ({len(data['deleted_runs'])} run(s))")
        if data["removed_outputs"]:
            click.echo(f"removed {len(data['removed_outputs'])} output folder(s)")

    _emit(result, as_json, render)


def main() -> None:
    """Console entry point of `cosmos`."""
    cli(prog_name="cosmos")


if __name__ == "__main__":
    main()
