"""`cosmos inference`, `cosmos enhance` and `cosmos upscale`: one run at a time."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cosmos_workflow.api import DEFAULT_UPSCALE_WEIGHT
from cosmos_workflow.cli.common import (
    CliContext,
    emit,
    json_option,
    set_option,
    set_overrides,
    target_set_option,
)
from cosmos_workflow.cli.complete import complete_prompt_ids, complete_run_ids
from cosmos_workflow.errors import ValidationFailure

if TYPE_CHECKING:
    from cosmos_workflow.api import InferenceResult, PromptRef

# The largest --prompts-file read (a list of ids or names is far smaller).
PROMPTS_FILE_MAX_BYTES = 2**20


def _emit_run(
    result: InferenceResult, extra: dict[str, Any], as_json: bool, line: str = ""
) -> None:
    """Print a run's id, status and folder, and ``line`` (or JSON); exit 1 unless it succeeded."""
    from cosmos_workflow.cli.render import render_run

    data = {
        "id": result.run_id,
        **extra,
        "status": result.status,
        "cached": result.cached,
        "output_dir": str(result.output_dir),
    }
    emit(data, as_json, lambda _: render_run(result, line))
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
    return [*overrides, *set_overrides(sets)]


def _progress() -> Any:
    """The live display (terminal) or log lines of a run, on stderr."""
    from cosmos_workflow.cli.console import make_progress, stderr_console

    return make_progress(stderr_console())


def _prompt_refs(prompts: tuple[str, ...], listing: Path | None) -> list[PromptRef]:
    """The prompts of the command line, then those of the file (one per line).

    Raises:
        ValidationFailure: the file is not UTF-8 text, or lists no prompt.
    """
    from cosmos_workflow.api import PromptRef

    refs = [PromptRef(text) for text in prompts]
    if listing is None:
        return refs
    if not listing.is_file():
        # A named pipe or a device might never end: it is not read.
        raise ValidationFailure(f"--prompts-file {listing}: not a regular file")
    try:
        with listing.open("rb") as handle:
            data = handle.read(PROMPTS_FILE_MAX_BYTES + 1)
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValidationFailure(f"--prompts-file {listing}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise ValidationFailure(f"--prompts-file {listing}: {exc.strerror}") from exc
    if len(data) > PROMPTS_FILE_MAX_BYTES:
        raise ValidationFailure(
            f"--prompts-file {listing}: larger than {PROMPTS_FILE_MAX_BYTES // 2**20} MiB; "
            "give a list of prompt ids or names, one per line"
        )
    listed = [
        PromptRef(line.strip(), f"{listing}:{number}")
        for number, line in enumerate(lines, start=1)
        if line.strip() and not line.strip().startswith("#")
    ]
    if not listed:
        raise ValidationFailure(f"--prompts-file {listing}: no prompt in it (one per line)")
    return refs + listed


dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (run ids, cached or not, the jobs and where); run and write nothing. "
    "--set dry_run=true does the same.",
)
"""``--dry-run`` of the run commands."""


@click.command()
@click.argument("prompts", nargs=-1, metavar="[PROMPT]...", shell_complete=complete_prompt_ids)
@click.option(
    "--prompts-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A text file (UTF-8) with one prompt per line: a ps_ id, a unique prefix of one, "
    "or a prompt name; blank lines and lines starting with # are skipped.",
)
@click.option("--seed", type=int)
@click.option("--num-steps", type=int)
@click.option("--guidance", type=float)
@click.option("--sigma-max", type=float)
@click.option("--fps", type=int)
@click.option("--num-gpus", type=int)
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="MOD=W",
    help="Control weight (repeatable). A control video of a prompt without one gets "
    "inference.weights.MOD, else inference.default_weight (conf/config.yaml).",
)
@dry_run_option
@set_option
@json_option
@click.pass_obj
def inference(
    obj: CliContext,
    prompts: tuple[str, ...],
    prompts_file: Path | None,
    seed: int | None,
    num_steps: int | None,
    guidance: float | None,
    sigma_max: float | None,
    fps: int | None,
    num_gpus: int | None,
    weights: tuple[str, ...],
    dry_run: bool,
    sets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run PROMPTs on the configured target; several run as one sweep, batched.

    Each PROMPT is a ps_ id, a unique prefix of one, or a prompt name (and
    --prompts-file adds one per line). One prompt makes one run (its id and
    folder are printed); several make ONE sweep (named inference), batched
    into as few model loads as their controls and parameters allow, with a
    summary and a report. An identical earlier run is reused (cached).
    The weights used are printed; defaults say where they came from.
    """
    from cosmos_workflow.cli.plans import finish_sweep, print_plan

    refs = _prompt_refs(prompts, prompts_file)
    overrides = _model_overrides(seed, num_steps, guidance, sigma_max, fps, num_gpus, weights, sets)
    api = obj.api(overrides)
    planned = api.plan_inference(refs, obj.composed["model"])
    dry = dry_run or api.settings.dry_run
    if not planned.single:
        code = finish_sweep(api, planned.plan, dry_run=dry, as_json=as_json)
        if code:
            sys.exit(code)
        return
    if dry:
        emit(api.preview(planned.plan), as_json, print_plan)
        return
    from cosmos_workflow.api import active_weights, weights_text

    run = planned.plan.runs[0]
    defaults = planned.defaults[run.id]
    result = api.inference(planned, _progress())
    extra = {"weights": active_weights(run), "default_weights": defaults}
    _emit_run(result, extra, as_json, f"weights: {weights_text(run, defaults)}")


@click.command()
@click.argument("prompt_id", shell_complete=complete_prompt_ids)
@dry_run_option
@set_option
@json_option
@click.pass_obj
def enhance(
    obj: CliContext, prompt_id: str, dry_run: bool, sets: tuple[str, ...], as_json: bool
) -> None:
    """Rewrite PROMPT_ID with the prompt upsampler; print the NEW prompt's id.

    The upsampler (of the configured model's family: simulated or transfer1)
    reads the prompt and its input video. The new prompt keeps the inputs
    and is linked to the original (`cosmos show` lists both directions).
    """
    from cosmos_workflow.cli.plans import print_plan
    from cosmos_workflow.cli.render import render_enhanced

    api = obj.api(set_overrides(sets))
    if dry_run or api.settings.dry_run:
        emit(api.preview(api.plan_enhance(prompt_id, obj.composed["model"])), as_json, print_plan)
        return
    result = api.enhance(prompt_id, obj.composed["model"], _progress())
    run = result.run
    data = {
        "id": result.prompt_id,
        "created": result.created,
        "parent_id": result.parent_id,
        "run": {"id": run.run_id, "status": run.status, "cached": run.cached},
        "output_dir": str(run.output_dir),
    }
    emit(data, as_json, render_enhanced)
    if result.prompt_id is None:
        sys.exit(1)


@click.command()
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option(
    "--weight",
    type=click.FloatRange(min=0),
    default=DEFAULT_UPSCALE_WEIGHT,
    show_default=True,
    help="Upscale control weight.",
)
@click.option("--prompt", "text", help="Prompt for the upscaler (default: the run's prompt).")
@dry_run_option
@target_set_option
@json_option
@click.pass_obj
def upscale(
    obj: CliContext,
    run_id: str,
    weight: float,
    text: str | None,
    dry_run: bool,
    sets: tuple[str, ...],
    as_json: bool,
) -> None:
    """4K-upscale RUN_ID's output video: a new run (rs_...) linked to RUN_ID.

    The run uses the upscaler of RUN_ID's model family, with its version,
    image and seed, and 10 steps. Prints the new run's id and folder.
    """
    from cosmos_workflow.cli.plans import print_plan

    api = obj.api(set_overrides(sets))
    if dry_run or api.settings.dry_run:
        emit(api.preview(api.plan_upscale(run_id, weight, text)), as_json, print_plan)
        return
    result = api.upscale(run_id, weight, text, _progress())
    _emit_run(result, {"parent_run_id": api.resolve_id(run_id, "rs")}, as_json)
