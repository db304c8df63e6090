"""`cosmos inference`: prompts by id, prefix or name; default control weights; one run or a sweep.

One prompt makes one run (no sweep). Several make ONE sweep (named
``inference``), executed like a manifest's: its runs are batched into as few
model invocations as their batch keys allow and spread over the pool. A
prompt's control video that no ``--weight`` (``model.weights``) gives a
weight gets the default of the settings (``inference.weights.KEY``, else
``inference.default_weight``); which weights came from there is kept, so the
command can say so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from cosmos_workflow.config.settings import InferenceSettings
from cosmos_workflow.engine.progress import ProgressSink
from cosmos_workflow.errors import NotFoundFailure, Problem, ValidationFailure
from cosmos_workflow.manifest.expansion import pydantic_problems
from cosmos_workflow.manifest.models import ModelConfig
from cosmos_workflow.manifest.specs import CONTROL_KEYS, ResolvedPrompt, RunSpec
from cosmos_workflow.sweeps.plan import (
    SweepPlan,
    cached_runs,
    run_checker,
    sweep_id_of,
    with_target_image,
)
from cosmos_workflow.sweeps.single import InferenceResult, execute_single, resolved_prompt
from cosmos_workflow.sweeps.workspace import Workspace

if TYPE_CHECKING:
    from cosmos_workflow.database.repository import DataRepository

# The name of the sweep that several prompts make.
SWEEP_NAME = "inference"
NO_PROMPTS = (
    "give at least one PROMPT (a ps_ id, a unique prefix of one, or a prompt name), "
    "or --prompts-file FILE"
)


@dataclass(frozen=True)
class PromptRef:
    """A prompt as the user named it: an id, a unique id prefix or a name.

    Attributes:
        text: What was given.
        where: Where it was given (``FILE:LINE``), for messages; "" on the command line.
    """

    text: str
    where: str = ""

    def shown(self) -> str:
        """The reference quoted, with where it came from."""
        return f"{self.text!r}" + (f" ({self.where})" if self.where else "")


@dataclass(frozen=True)
class InferencePlan:
    """The runs of `cosmos inference`: one (no sweep), or a sweep of several.

    Attributes:
        plan: The runs; ``plan.sweep_id`` is "" for a single run.
        defaults: Run id -> control -> the setting its weight came from
            (controls whose weight was given are not listed).
    """

    plan: SweepPlan
    defaults: dict[str, dict[str, str]]

    @property
    def single(self) -> bool:
        """One run, without a sweep."""
        return not self.plan.sweep_id


def active_weights(run: RunSpec) -> dict[str, float]:
    """The control weights a run uses, in canonical order."""
    weights = run.model.get("weights") or {}
    return {key: weights[key] for key in CONTROL_KEYS if weights.get(key) is not None}


def plan_inference(
    ws: Workspace, prompts: Sequence[str | PromptRef], model: dict[str, Any]
) -> InferencePlan:
    """One run per prompt, with the model parameters and the default weights filled in.

    Writes nothing.

    Args:
        ws: The workspace.
        prompts: The prompts (duplicates run once, with a note).
        model: Model config (adapter, parameters) as composed from conf/.

    Raises:
        ValidationFailure: no prompts, unknown or ambiguous ones, invalid
            parameters, or a run that cannot run (every problem at once).
    """
    refs = [ref if isinstance(ref, PromptRef) else PromptRef(ref) for ref in prompts]
    prompt_ids, notes = resolve_prompts(ws, refs)
    params = _model_params(ws, model)
    runs: list[RunSpec] = []
    defaults: dict[str, dict[str, str]] = {}
    # (key path, message) -> the prompts that have the problem.
    problems: dict[tuple[str, str], list[str]] = {}
    check = run_checker(ws)
    hashes: dict[Path, str] = {}
    for prompt_id in prompt_ids:
        prompt = resolved_prompt(ws.repository.get_prompt(prompt_id), hashes)
        weights, given, missing = _weights(prompt, params["weights"], ws.settings.inference)
        run = RunSpec(prompt, {**params, "weights": weights})
        for problem in missing or check(run):
            label = f"{prompt.name} ({prompt.id})"
            problems.setdefault((problem.key_path, problem.message), []).append(label)
        runs.append(run)
        defaults[run.id] = given
    if problems:
        raise ValidationFailure(_problems_text(problems))
    if len(runs) > 1:
        runs = [RunSpec(run.prompt, run.model, _shown(run)) for run in runs]
    ids = [run.id for run in runs]
    plan = SweepPlan(
        # The same prompts in another order are the same sweep.
        sweep_id=sweep_id_of(SWEEP_NAME, sorted(ids)) if len(runs) > 1 else "",
        name=SWEEP_NAME if len(runs) > 1 else "cosmos inference",
        manifest={
            "name": SWEEP_NAME,
            "command": "cosmos inference",
            "prompts": prompt_ids,
            "model": params,
        },
        overrides=[],
        runs=runs,
        cached=frozenset(cached_runs(ws, ids)),
        duplicates=0,
        notes=notes + _default_notes(runs, defaults),
    )
    return InferencePlan(plan, defaults)


def run_single(
    ws: Workspace, planned: InferencePlan, progress: ProgressSink | None
) -> InferenceResult:
    """Execute the one run of ``planned`` (cached if made before).

    Raises:
        ValueError: ``planned`` is a sweep (run it as one: sweeps/session.py).
    """
    if not planned.single:
        raise ValueError("several prompts make a sweep: run it with run_sweep")
    return execute_single(ws, planned.plan.runs[0], progress)


def weights_text(run: RunSpec, defaults: dict[str, str]) -> str:
    """A run's weights and where defaults came from: ``depth=0.5 (default: SETTING), vis=0.2``."""
    return ", ".join(
        f"{key}={weight:g}" + (f" (default: {defaults[key]})" if key in defaults else "")
        for key, weight in active_weights(run).items()
    )


def _problems_text(problems: dict[tuple[str, str], list[str]]) -> str:
    """Every problem once, with the prompts that have it (the first three, and a count)."""
    lines = [f"cosmos inference cannot run ({len(problems)} problem(s)):"]
    for (key_path, message), prompts in problems.items():
        shown = ", ".join(prompts[:3]) + (
            f" and {len(prompts) - 3} more" if len(prompts) > 3 else ""
        )
        noun = "prompt" if len(prompts) == 1 else "prompts"
        lines.append(f"  {noun} {shown}: {key_path}: {message}")
    return "\n".join(lines)


def _model_params(ws: Workspace, model: dict[str, Any]) -> dict[str, Any]:
    try:
        params = ModelConfig.model_validate(model).model_dump()
    except ValidationError as exc:
        detail = "; ".join(f"{p.key_path}: {p.message}" for p in pydantic_problems(exc, "model"))
        raise ValidationFailure(f"invalid model parameters: {detail}") from exc
    return with_target_image(ws, {"model": params})["model"]


def _weights(
    prompt: ResolvedPrompt, given: dict[str, float | None], settings: InferenceSettings
) -> tuple[dict[str, float | None], dict[str, str], list[Problem]]:
    """A prompt's weights: those given, and the defaults for its other control videos.

    Returns:
        (the weights, control -> the setting that gave it, problems).
    """
    weights = dict(given)
    defaulted: dict[str, str] = {}
    problems: list[Problem] = []
    for key in sorted(prompt.inputs.controls, key=CONTROL_KEYS.index):
        if weights.get(key) is not None:
            continue
        value, setting = settings.weight_for(key)
        if value is None:
            message = f"no weight: pass --weight {key}=W, or set {setting} (conf/config.yaml)"
            problems.append(Problem(f"inputs.controls.{key}", message))
            continue
        weights[key] = value
        defaulted[key] = setting
    if not prompt.inputs.controls and all(value is None for value in weights.values()):
        problems.append(
            Problem(
                "inputs.controls",
                "no control videos and no weight is given: pass --weight KEY=W for a "
                "control the model computes from the input video (e.g. depth, edge or vis)",
            )
        )
    return weights, defaulted, problems


def _shown(run: RunSpec) -> dict[str, Any]:
    """What the plan and the report show of a run of several prompts: its weights."""
    return {f"model.weights.{key}": value for key, value in active_weights(run).items()}


def _default_notes(runs: list[RunSpec], defaults: dict[str, dict[str, str]]) -> list[str]:
    """One note per default weight used: which, from which setting, for how many prompts."""
    used: Counter[tuple[str, float, str]] = Counter()
    for run in runs:
        weights = active_weights(run)
        for key, setting in defaults.get(run.id, {}).items():
            used[(key, weights[key], setting)] += 1
    return [
        f"default weight {key}={value:g} (from {setting}; --weight {key}=W sets another) "
        f"for {count} prompt(s)"
        for (key, value, setting), count in used.items()
    ]


# -- prompts by id, prefix or name -------------------------------------------------------
def resolve_prompts(ws: Workspace, refs: list[PromptRef]) -> tuple[list[str], list[str]]:
    """The prompt ids of ``refs``, in order, each once; and notes on those given twice.

    Raises:
        ValidationFailure: no refs, or any ref unknown or ambiguous (all named at once).
    """
    if not refs:
        raise ValidationFailure(NO_PROMPTS)
    if not ws.database_exists():
        raise NotFoundFailure(
            f"no prompt {refs[0].shown()}: the database is empty (cosmos create prompt makes one)"
        )
    repo = ws.repository
    named = repo.prompt_ids_named(ref.text for ref in refs)
    found: list[str] = []
    problems: list[str] = []
    for ref in refs:
        prompt_id = _resolve(repo, ref, named, problems)
        if prompt_id is not None:
            found.append(prompt_id)
    if problems:
        raise ValidationFailure("\n".join(problems))
    counts = Counter(found)
    notes = [
        f"prompt {prompt_id} was given {count} times; it runs once"
        for prompt_id, count in counts.items()
        if count > 1
    ]
    return list(counts), notes


def _resolve(
    repo: DataRepository,
    ref: PromptRef,
    named: dict[str, list[tuple[str, bool]]],
    problems: list[str],
) -> str | None:
    """One ref's prompt id: a ps_ id or unique prefix, else a name; None (and a problem) if not.

    A name means the prompt typed in with it (`cosmos create prompt`, a
    manifest); enhanced prompts and upscale inputs keep the name of the
    prompt they were made from, so they count only where no typed one has it.
    """
    text = ref.text
    if text.startswith("ps_"):
        matches = [found for found in repo.find_ids(text) if found.startswith("ps_")]
        if text in matches or len(matches) == 1:
            return text if text in matches else matches[0]
        if len(matches) > 1:
            problems.append(f"prompt id {ref.shown()} is ambiguous: {', '.join(matches)}")
            return None
    elif text.startswith(("rs_", "sw_")):
        problems.append(f"{ref.shown()} is a run or sweep id; cosmos inference takes prompts")
        return None
    candidates = named.get(text, [])
    # A name means the prompt typed in with it; those made from it share it.
    typed = [prompt_id for prompt_id, derived in candidates if not derived]
    ids = typed if typed else [prompt_id for prompt_id, _ in candidates]
    if len(ids) == 1:
        return ids[0]
    if ids:
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        problems.append(f"the name {ref.shown()} is ambiguous: {shown}; give an id")
    else:
        problems.append(f"no prompt with id or name {ref.shown()}")
    return None
