"""One prompt, one run: `cosmos create prompt`, `inference`, `enhance` and `upscale`.

A single run is stored and executed on the pool like a sweep's (cached if
its outputs exist), without a sweep. Enhancement and upscale runs are made
from a prompt or a run as a sweep's stages make them (sweeps/stages.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cosmos_workflow.database.models import Prompt, Run, RunStatus
from cosmos_workflow.engine.progress import NullProgress, ProgressSink
from cosmos_workflow.errors import Problem, ValidationFailure
from cosmos_workflow.local_ai.checks import check_video_folder
from cosmos_workflow.local_ai.sequences import unused_note
from cosmos_workflow.local_ai.video_dir import ROLE_ALIASES, ROLES, detect_videos
from cosmos_workflow.manifest.expansion import pydantic_problems
from cosmos_workflow.manifest.models import ModelConfig
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, ResolvedPrompt, RunSpec
from cosmos_workflow.sweeps.derive import (
    enhanced_origin,
    enhanced_prompt,
    enhancement_spec,
    upscale_origin,
)
from cosmos_workflow.sweeps.plan import cached_runs, refuse_problems, with_target_image
from cosmos_workflow.sweeps.queue import adopt_unless_succeeded, queue_runs
from cosmos_workflow.sweeps.stages import enhanced_text, upscale_spec_of
from cosmos_workflow.sweeps.workspace import Workspace
from cosmos_workflow.utils.hashing import sha256_file

# Why `cosmos create prompt` does not use a file of the folder.
UNUSED_VIDEO = (
    "a video is named by its role, as the whole name or its last word: "
    + ", ".join(ROLES)
    + "".join(f" ({alias} is {role})" for alias, role in ROLE_ALIASES.items())
)


@dataclass(frozen=True)
class InferenceResult:
    """Outcome of `cosmos inference` (and of one enhancement or upscale run)."""

    run_id: str
    status: str
    cached: bool
    output_dir: Path


@dataclass(frozen=True)
class EnhanceResult:
    """Outcome of `cosmos enhance`.

    Attributes:
        prompt_id: The enhanced prompt (None if the upsampler failed).
        created: True if that prompt was new.
        parent_id: The prompt it was made from.
        run: The upsampler's run.
    """

    prompt_id: str | None
    created: bool
    parent_id: str
    run: InferenceResult


@dataclass(frozen=True)
class CreatedPrompt:
    """Outcome of `cosmos create prompt`.

    Attributes:
        id: The prompt's id.
        created: True if it was new (False: an identical prompt existed).
        notes: What the user should know: the files of the folder not used.
    """

    id: str
    created: bool
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"id": self.id, "created": self.created, "notes": list(self.notes)}


def create_prompt(
    ws: Workspace, text: str, video_dir: Path, name: str | None, negative: str | None
) -> CreatedPrompt:
    """Create a prompt from a folder of videos named by role; name the files not used."""
    if not text.strip():
        raise ValidationFailure("the prompt text is empty")
    videos = detect_videos(video_dir)
    files = {role: InputFile(path.resolve(), sha256_file(path)) for role, path in videos.items()}
    check_video_folder(
        video_dir,
        {role: (path, files[role].sha256) for role, path in videos.items()},
        ws.probes,
    )
    prompt = ResolvedPrompt(
        name=name or video_dir.resolve().name,
        text=text,
        negative=negative,
        inputs=PromptInputSet(video=files.pop("color"), controls=dict(sorted(files.items()))),
    )
    unused = unused_note(video_dir, set(videos.values()), UNUSED_VIDEO)
    notes = [unused] if unused else []
    return CreatedPrompt(prompt.id, ws.repository.add_prompts([prompt]) == 1, notes)


def inference(
    ws: Workspace, prompt_id: str, model: dict[str, Any], progress: ProgressSink | None
) -> InferenceResult:
    """Run one prompt with the given model parameters on the pool.

    Args:
        ws: The workspace.
        prompt_id: A full ps_ id.
        model: Model config (adapter, parameters) as composed from conf/.
        progress: Where progress goes.
    """
    prompt = ws.repository.get_prompt(prompt_id)
    try:
        params = ModelConfig.model_validate(model).model_dump()
    except ValidationError as exc:
        detail = "; ".join(f"{p.key_path}: {p.message}" for p in pydantic_problems(exc, "model"))
        raise ValidationFailure(f"invalid model parameters: {detail}") from exc
    params = with_target_image(ws, {"model": params})["model"]
    resolved = _resolved(prompt)
    spec = RunSpec(prompt=resolved, model=params, varying={})
    problems = [
        Problem(f"prompts.{prompt.name}.inputs.controls.{key}", f"pass --weight {key}=W")
        for key in resolved.inputs.controls
        if params["weights"][key] is None
    ]
    refuse_problems(ws, spec, f"prompt {prompt.id} cannot run so", problems)
    return execute_single(ws, spec, progress)


def enhance(
    ws: Workspace, prompt_id: str, model: dict[str, Any], progress: ProgressSink | None
) -> EnhanceResult:
    """Run the prompt upsampler on a prompt; store its text as a NEW, linked prompt.

    Args:
        ws: The workspace.
        prompt_id: A full ps_ id.
        model: The video model (as composed from conf/); its family's
            upsampler runs, with its version and image.
        progress: Where progress goes.

    Raises:
        ValidationFailure: the model has no upsampler, the prompt no input video.
    """
    prompt = ws.repository.get_prompt(prompt_id)
    original = _resolved(prompt)
    params = with_target_image(ws, {"model": dict(model)})["model"]
    spec = enhancement_spec(original, params, f"enhance {prompt.id}")
    refuse_problems(ws, spec, f"prompt {prompt.id} cannot be enhanced")
    result = execute_single(ws, spec, progress)
    if result.status != RunStatus.SUCCEEDED.value:
        return EnhanceResult(None, False, prompt.id, result)
    new = enhanced_prompt(original, enhanced_text(ws, spec))
    created = ws.repository.add_derived_prompt(new, prompt.id, enhanced_origin(spec))
    return EnhanceResult(new.id, created, prompt.id, result)


def upscale(
    ws: Workspace, parent_id: str, weight: float, text: str | None, progress: ProgressSink | None
) -> InferenceResult:
    """4K-upscale a succeeded run's output video: a new run, linked to its parent.

    Args:
        ws: The workspace.
        parent_id: A full rs_ id.
        weight: The upscale control's weight.
        text: A prompt for the upscaler (None: the parent's prompt).
        progress: Where progress goes.

    Raises:
        ValidationFailure: the run has not succeeded, its outputs are gone or
            changed, or its model has no upscaler.
    """
    spec = upscale_spec_of(ws, parent_id, weight, text)
    refuse_problems(ws, spec, f"run {parent_id} cannot be upscaled so")
    return execute_single(ws, spec, progress, ws.repository.get_run(parent_id))


def execute_single(
    ws: Workspace,
    spec: RunSpec,
    progress: ProgressSink | None,
    parent_run: Run | None = None,
) -> InferenceResult:
    """Store one run and execute it on the pool, unless it is cached.

    Args:
        ws: The workspace.
        spec: The run (its prompt is stored already, unless ``parent_run``).
        progress: Where progress goes.
        parent_run: The run whose output ``spec`` upscales: the run's
            input prompt is stored and both are linked to it.
    """
    unreachable = ws.preflight()
    repo = ws.repository
    with ws.runner_lock():
        if parent_run is not None:
            origin = upscale_origin(parent_run.id)
            repo.add_derived_prompt(spec.prompt, parent_run.prompt_id, origin)
        repo.add_runs([spec])
        if parent_run is not None:
            repo.link_runs([(parent_run.id, spec.id)])
        if cached_runs(ws, [spec.id]):
            adopt_unless_succeeded(ws, spec.id)
            return InferenceResult(spec.id, "succeeded", True, ws.store.run_dir(spec.id))
        queue_runs(ws, [spec.id])
        progress = progress or NullProgress()
        progress.start(1, 0, 1)
        try:
            ws.dispatch([spec], progress, unreachable)
        finally:
            progress.finish()
    run = repo.get_run(spec.id)
    return InferenceResult(spec.id, run.status.value, False, ws.store.run_dir(spec.id))


def _resolved(prompt: Prompt) -> ResolvedPrompt:
    """A stored prompt as a resolved prompt (its inputs must be unchanged).

    Raises:
        ValidationFailure: an input file is gone or changed.
    """
    inputs = PromptInputSet.from_dict(prompt.inputs)
    for item in inputs.files():
        if not item.path.is_file():
            raise ValidationFailure(f"input file is gone: {item.path}")
        if sha256_file(item.path) != item.sha256:
            raise ValidationFailure(
                f"input file changed since the prompt was created: {item.path}; "
                "create a new prompt for the new content"
            )
    return ResolvedPrompt(prompt.name, prompt.text, prompt.negative_prompt, inputs)
