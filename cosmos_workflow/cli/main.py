"""`cosmos`: manage prompts, runs and sweeps (over CosmosAPI only).

Exit codes: 0 ok, 1 runs failed, 2 bad input (or nothing to kill),
3 connection or auth (`status`: a configured target could not be reached),
130 interrupted, 141 output pipe closed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from cosmos_workflow.api import (
    DEFAULT_UPSCALE_WEIGHT,
    RUN_STATUSES,
    CosmosAPI,
    InferenceResult,
)
from cosmos_workflow.cli.complete import (
    SHELLS,
    complete_any_id,
    complete_ids_of_kind,
    complete_prompt_ids,
    complete_run_ids,
    complete_sweep_ids,
    completion_script,
)
from cosmos_workflow.cli.console import (
    configure_logging,
    guarded,
    make_progress,
    status_text,
    stderr_console,
    stdout_console,
)
from cosmos_workflow.cli.step_display import make_step_progress
from cosmos_workflow.database.ratings import MAX_RATING, MIN_RATING
from cosmos_workflow.engine.eta import format_duration
from cosmos_workflow.errors import NetworkFailure, ValidationFailure
from cosmos_workflow.local_ai.prepare import DEFAULT_FPS, MAX_FPS

STATUS_CHOICES = list(RUN_STATUSES)
TARGET_SET_HELP = "Config override, e.g. the target overrides that cosmos-batch was given."
# What a shell reports for a command stopped by Ctrl-C (128 + SIGINT).
INTERRUPTED_EXIT = 130


class _Context:
    """Builds the API lazily, with the config overrides a command needs."""

    def __init__(self) -> None:
        self._api: CosmosAPI | None = None
        self.composed: dict[str, Any] = {}

    def api(self, overrides: list[str] | None = None, all_targets: bool = False) -> CosmosAPI:
        """The API for this command.

        Args:
            overrides: Hydra overrides (``--set``) applied to conf/.
            all_targets: Also compose every target in conf/target/ (status, logs, kill).
        """
        if self._api is None:
            self._api = CosmosAPI.from_project(overrides=overrides or [], all_targets=all_targets)
            self.composed = self._api.composed
            level = self._api.settings.log_level
            # Management commands print their own results: routine INFO lines
            # (a migration, a run finishing) would clutter them.
            configure_logging(level if level != "INFO" else "WARNING")
            click.get_current_context().call_on_close(self._api.close)
        return self._api


class _Group(click.Group):
    """Turns expected failures into a one-line message and their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        result: list[Any] = []

        def action() -> int:
            result.append(super(_Group, self).invoke(ctx))
            return 0

        try:
            code = guarded(action)
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            code = INTERRUPTED_EXIT
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
    """Manage Cosmos prompts, runs and sweeps. Sweeps run with `cosmos-batch`.

    Every list, show and status command takes --json. Ids complete on Tab
    once the shell knows the script: eval "$(cosmos completion bash)".

    \b
    Exit codes:
      0    ok
      1    runs failed or were cancelled, or the output tree is busy
      2    bad input: an unknown id, option or value (nothing is changed)
      3    a target could not be reached, or SSH refused the login or host key
      130  interrupted (Ctrl-C)
      141  the output pipe was closed (| head)
    """
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


# -- prepare -----------------------------------------------------------------
def _render_prepared(data: dict[str, Any]) -> None:
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


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--fps", type=click.IntRange(1, MAX_FPS), default=DEFAULT_FPS, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Where the videos go [FOLDER].")
@click.option("--dry-run", is_flag=True, help="Check and show the plan; write nothing.")
@click.option("--force", is_flag=True, help="Replace videos that exist already.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def prepare(
    obj: _Context,
    folder: Path,
    fps: int,
    out: Path | None,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Turn the PNG sequences in FOLDER into one mp4 per modality (color.mp4, depth.mp4...).

    Names: color.0001.png (Houdini), depth_0001.png, frame_000.png or 0001.png
    (color). Every modality must have the same frames and size. Other passes
    (normal, albedo...) are skipped with a warning.
    """
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
    _emit(result.to_dict(), as_json, _render_prepared)


# -- inference ---------------------------------------------------------------
def _emit_run(result: InferenceResult, extra: dict[str, Any], as_json: bool) -> None:
    """Print a run's id, status and folder (or JSON); exit 1 unless it succeeded."""
    data = {
        "id": result.run_id,
        **extra,
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
@click.argument("prompt_id", shell_complete=complete_prompt_ids)
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
    _emit_run(result, {}, as_json)


# -- enhance / upscale -----------------------------------------------------------
@cli.command()
@click.argument("prompt_id", shell_complete=complete_prompt_ids)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any config override.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def enhance(obj: _Context, prompt_id: str, sets: tuple[str, ...], as_json: bool) -> None:
    """Rewrite PROMPT_ID with the prompt upsampler; print the NEW prompt's id.

    The upsampler (of the configured model's family: simulated or transfer1)
    reads the prompt and its input video. The new prompt keeps the inputs
    and is linked to the original (`cosmos show` lists both directions).
    """
    api = obj.api(_set_overrides(sets))
    result = api.enhance(prompt_id, obj.composed["model"], make_progress(stderr_console()))
    run = result.run
    data = {
        "id": result.prompt_id,
        "created": result.created,
        "parent_id": result.parent_id,
        "run": {"id": run.run_id, "status": run.status, "cached": run.cached},
        "output_dir": str(run.output_dir),
    }

    def render(_: Any) -> None:
        if result.prompt_id is None:
            click.echo(f"the upsampler run {run.run_id} {run.status}: {run.output_dir}", err=True)
            return
        click.echo(result.prompt_id)
        if not result.created:
            click.echo("(this enhanced prompt already existed)", err=True)

    _emit(data, as_json, render)
    if result.prompt_id is None:
        sys.exit(1)


@cli.command()
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option(
    "--weight",
    type=click.FloatRange(min=0),
    default=DEFAULT_UPSCALE_WEIGHT,
    show_default=True,
    help="Upscale control weight.",
)
@click.option("--prompt", "text", help="Prompt for the upscaler (default: the run's prompt).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=TARGET_SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def upscale(
    obj: _Context,
    run_id: str,
    weight: float,
    text: str | None,
    sets: tuple[str, ...],
    as_json: bool,
) -> None:
    """4K-upscale RUN_ID's output video: a new run (rs_...) linked to RUN_ID.

    The run uses the upscaler of RUN_ID's model family, with its version,
    image and seed, and 10 steps. Prints the new run's id and folder.
    """
    api = obj.api(_set_overrides(sets))
    result = api.upscale(run_id, weight, text, make_progress(stderr_console()))
    _emit_run(result, {"parent_run_id": api.resolve_id(run_id, "rs")}, as_json)


# -- list / show / status ------------------------------------------------------
def _origin_note(row: dict[str, Any]) -> str:
    origin = row.get("origin") or {}
    if origin.get("kind") == "enhanced":
        return f"  (enhanced from {row['parent_id'] or 'a deleted prompt'})"
    if origin.get("kind") == "upscale_input":
        return f"  (input of upscales of {origin.get('run')})"
    return ""


def _render_prompts(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        click.echo(
            f"{row['id']}  {_short(row['name'], 16):<16}  {_short(row['text'], 60)}"
            f"{_origin_note(row)}"
        )
    click.echo(f"{len(rows)} prompt(s)")


def _rating(value: int | None) -> str:
    return "-" if value is None else f"{value}/{MAX_RATING}"


def _render_runs(rows: list[dict[str, Any]]) -> None:
    out = stdout_console()
    for row in rows:
        out.print(
            Text.assemble(
                f"{row['id']}  ",
                status_text(row["status"], 9),
                f"  {_rating(row['rating']):<3}  {row['prompt_id']}  "
                f"{row['target'] or '-':<8}  {row['output_path'] or '-'}",
            )
        )
    click.echo(f"{len(rows)} run(s)")


def _render_sweeps(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        counts = ", ".join(f"{v} {k}" for k, v in row["counts"].items() if v)
        stages = "".join(f" (+{n} {stage})" for stage, n in row["stages"].items())
        click.echo(
            f"{row['id']}  {_short(row['name'], 20):<20}  {row['runs']} runs: {counts}{stages}"
        )
    click.echo(f"{len(rows)} sweep(s)")


@cli.command("list")
@click.argument("what", type=click.Choice(["prompts", "runs", "sweeps"]))
@click.option("--status", type=click.Choice(STATUS_CHOICES), help="Runs in this status only.")
@click.option("--rating", type=int, help=f"Runs rated exactly so ({MIN_RATING}-{MAX_RATING}).")
@click.option("--min-rating", type=int, help="Runs rated at least so.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_(
    obj: _Context,
    what: str,
    status: str | None,
    rating: int | None,
    min_rating: int | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List prompts, runs or sweeps, newest first."""
    api = obj.api()
    if status is not None and what != "runs":
        raise ValidationFailure("--status filters runs only")
    for flag, value in (("--rating", rating), ("--min-rating", min_rating)):
        if value is not None and what != "runs":
            raise ValidationFailure(f"{flag} filters runs only")
    if what == "prompts":
        _emit(api.list_prompts(limit), as_json, _render_prompts)
    elif what == "runs":
        _emit(api.list_runs(status, limit, rating, min_rating), as_json, _render_runs)
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
@click.argument("object_id", shell_complete=complete_any_id)
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
            f" (job {row['job_id']})"
        )
    if not data["active_sweeps"]:
        click.echo("no active sweep")
    for sweep in data["active_sweeps"]:
        _render_sweep(sweep)
    for target in data["targets"]:
        _render_target(target)


SWEEP_COUNTS = ("succeeded", "running", "queued", "failed", "cancelled")


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
        runs = f"{job['runs']} run" if job["runs"] == 1 else f"{job['runs']} runs"
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


@cli.command()
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=TARGET_SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status(obj: _Context, sets: tuple[str, ...], as_json: bool) -> None:
    """Run counts, what runs where, sweeps under way (ETA, jobs), targets' GPUs and containers.

    Targets are the selected one (conf/ and --set) and every file in
    conf/target/. Exits 3 if a target could not be reached (after printing
    everything).
    """
    data = obj.api(_set_overrides(sets), all_targets=True).status()
    _emit(data, as_json, _render_status)
    unreachable = [t["name"] for t in data["targets"] if t["configured"] and not t["reachable"]]
    if unreachable:
        raise NetworkFailure(f"cannot reach target(s): {', '.join(unreachable)}")


def _set_overrides(sets: tuple[str, ...]) -> list[str]:
    for item in sets:
        if "=" not in item:
            raise ValidationFailure(f"--set takes KEY=VALUE, got {item!r}")
    return list(sets)


# -- logs / kill -------------------------------------------------------------------
@cli.command()
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run ends.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=TARGET_SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end.")
@click.pass_obj
def logs(obj: _Context, run_id: str, follow: bool, sets: tuple[str, ...], as_json: bool) -> None:
    """Print a run's log: live while it runs, else the copy in its run folder.

    With -f, wait for a queued run to start and follow a running one until
    it ends. A unique id prefix is enough. With --json, the lines are
    collected and printed once, with the run's status and where the log
    came from.
    """
    api = obj.api(_set_overrides(sets), all_targets=True)
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


def _render_kill(report: dict[str, Any]) -> None:
    for job in report["jobs"]:
        what = f"stopped {job['stopped']}" if job["stopped"] else "it had not started its program"
        runs = job["runs"]
        click.echo(f"job {job['job_id']} on {job['target']}: {what}")
        if len(runs) > 1:
            click.echo(f"  it held {len(runs)} runs; all of them are cancelled: {', '.join(runs)}")
    cancelled = report["cancelled"]
    click.echo(f"cancelled {len(cancelled)} run(s): {', '.join(cancelled) or '-'}")


@cli.command()
@click.option("--sweep", "sweep", is_flag=True, help="ID is a sweep: kill all of it.")
@click.argument("object_id", metavar="ID", shell_complete=complete_ids_of_kind)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=TARGET_SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def kill(obj: _Context, object_id: str, sweep: bool, sets: tuple[str, ...], as_json: bool) -> None:
    """Stop run ID (or with --sweep, sweep ID) and mark it cancelled.

    A run runs in a job (one container or process) that may hold several
    runs of a batch: killing the run stops the job and cancels all of them.
    --sweep cancels every unfinished run of the sweep, queued ones too.
    A run or sweep with nothing unfinished exits 2.
    """
    api = obj.api(_set_overrides(sets), all_targets=True)
    report = api.kill_sweep(object_id) if sweep else api.kill(object_id)
    _emit(report.to_dict(), as_json, _render_kill)


# -- report --------------------------------------------------------------------
@cli.command()
@click.argument("sweep_id", shell_complete=complete_sweep_ids)
@click.option("--rows", metavar="AXIS", help="Axis for the rows, e.g. model.seed or prompt.")
@click.option("--cols", metavar="AXIS", help="Axis for the columns.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (path, axes, layout, counts).")
@click.pass_obj
def report(obj: _Context, sweep_id: str, rows: str | None, cols: str | None, as_json: bool) -> None:
    """Write the sweep's report.html (a grid of its outputs) and print its path.

    By default the two axes with the most values are the rows and columns and
    any other axis makes sections. A unique id prefix is enough.
    """
    result = obj.api().report(sweep_id, rows=rows, cols=cols)
    _emit(result.to_dict(), as_json, lambda data: click.echo(data["path"]))


# -- delete --------------------------------------------------------------------
@cli.command()
@click.argument("kind", type=click.Choice(["prompt", "run"]))
@click.argument("object_id", shell_complete=complete_ids_of_kind)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--delete-outputs", is_flag=True, help="Also remove the run folders.")
@click.option(
    "--with-children",
    is_flag=True,
    help="Also delete the prompts and runs made from it (enhanced prompts, upscales).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def delete(
    obj: _Context,
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

    def render(data: dict[str, Any]) -> None:
        prompts = data["deleted_prompts"]
        also = f", {len(prompts)} child prompt(s)" if prompts else ""
        click.echo(f"deleted {kind} {data['id']} ({len(data['deleted_runs'])} run(s){also})")
        if data["removed_outputs"]:
            click.echo(f"removed {len(data['removed_outputs'])} output folder(s)")

    _emit(result, as_json, render)


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


# -- search / rate / completion --------------------------------------------------
def _render_search(data: dict[str, Any]) -> None:
    if not data["prompts"] and not data["runs"]:
        click.echo(f"no prompt or run contains {data['query']!r}")
        return
    _render_found("prompt", len(data["prompts"]), data["prompts_total"])
    for row in data["prompts"]:
        fields = ",".join(row["matched"])
        click.echo(
            f"  {row['id']}  {_short(row['name'], 16):<16}  [{fields}]  {_short(row['text'], 60)}"
        )
    _render_found("run", len(data["runs"]), data["runs_total"])
    out = stdout_console()
    for row in data["runs"]:
        out.print(
            Text.assemble(
                f"  {row['id']}  ",
                status_text(row["status"], 9),
                f"  {_rating(row['rating']):<3}  {row['prompt_id']}",
            )
        )


def _render_found(kind: str, shown: int, total: int) -> None:
    more = f" (the newest {shown}; --limit shows more)" if total > shown else ""
    click.echo(f"{total} {kind}(s){more}")


@cli.command()
@click.argument("text")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most this many prompts and this many runs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def search(obj: _Context, text: str, limit: int, as_json: bool) -> None:
    """Find prompts whose text, name or negative prompt contains TEXT, and their runs.

    TEXT is matched literally, ignoring case: % _ and \\ are plain
    characters. Newest first.
    """
    _emit(obj.api().search(text, limit), as_json, _render_search)


@cli.command()
@click.argument("run_id", shell_complete=complete_run_ids)
@click.argument("rating", type=int, required=False)
@click.option("--clear", is_flag=True, help="Remove the run's rating.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def rate(obj: _Context, run_id: str, rating: int | None, clear: bool, as_json: bool) -> None:
    """Rate a succeeded run's output from 1 (bad) to 5 (good); --clear removes it.

    A unique id prefix is enough. `cosmos list runs --rating N` or
    `--min-rating N` lists rated runs.
    """
    if clear == (rating is not None):
        raise ValidationFailure(
            f"give a rating from {MIN_RATING} to {MAX_RATING}, or --clear (not both)"
        )
    result = obj.api().rate(run_id, rating)

    def render(data: dict[str, Any]) -> None:
        before = f" (was {_rating(data['previous'])})" if data["previous"] is not None else ""
        now = "not rated" if data["rating"] is None else f"rated {_rating(data['rating'])}"
        click.echo(f"{data['id']} {now}{before}")

    _emit(result, as_json, render)


@cli.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the script that makes SHELL complete cosmos commands and ids.

    \b
    bash: eval "$(cosmos completion bash)"     (in ~/.bashrc)
    zsh:  eval "$(cosmos completion zsh)"      (in ~/.zshrc)
    fish: cosmos completion fish | source      (in ~/.config/fish/config.fish)
    """
    click.echo(completion_script(cli, shell, "cosmos"))


def main() -> None:
    """Console entry point of `cosmos`."""
    cli(prog_name="cosmos")


if __name__ == "__main__":
    main()
