"""`cosmos inference`, `cosmos enhance` and `cosmos upscale`: one run at a time."""

from __future__ import annotations

import sys
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
    from cosmos_workflow.api import InferenceResult


def _emit_run(result: InferenceResult, extra: dict[str, Any], as_json: bool) -> None:
    """Print a run's id, status and folder (or JSON); exit 1 unless it succeeded."""
    from cosmos_workflow.cli.render import render_run

    data = {
        "id": result.run_id,
        **extra,
        "status": result.status,
        "cached": result.cached,
        "output_dir": str(result.output_dir),
    }
    emit(data, as_json, lambda _: render_run(result))
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


@click.command()
@click.argument("prompt_id", shell_complete=complete_prompt_ids)
@click.option("--seed", type=int)
@click.option("--num-steps", type=int)
@click.option("--guidance", type=float)
@click.option("--sigma-max", type=float)
@click.option("--fps", type=int)
@click.option("--num-gpus", type=int)
@click.option("--weight", "weights", multiple=True, metavar="MOD=W", help="Control weight.")
@set_option
@json_option
@click.pass_obj
def inference(
    obj: CliContext,
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
    result = api.inference(prompt_id, obj.composed["model"], _progress())
    _emit_run(result, {}, as_json)


@click.command()
@click.argument("prompt_id", shell_complete=complete_prompt_ids)
@set_option
@json_option
@click.pass_obj
def enhance(obj: CliContext, prompt_id: str, sets: tuple[str, ...], as_json: bool) -> None:
    """Rewrite PROMPT_ID with the prompt upsampler; print the NEW prompt's id.

    The upsampler (of the configured model's family: simulated or transfer1)
    reads the prompt and its input video. The new prompt keeps the inputs
    and is linked to the original (`cosmos show` lists both directions).
    """
    from cosmos_workflow.cli.render import render_enhanced

    api = obj.api(set_overrides(sets))
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
@target_set_option
@json_option
@click.pass_obj
def upscale(
    obj: CliContext,
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
    api = obj.api(set_overrides(sets))
    result = api.upscale(run_id, weight, text, _progress())
    _emit_run(result, {"parent_run_id": api.resolve_id(run_id, "rs")}, as_json)
