"""One prompt, one run: `cosmos create prompt`, `enhance`, `upscale` and a run without sweep.

A single run is stored and executed on the pool like a sweep's (cached if
its outputs exist), without a sweep. Enhancement and upscale runs are made
from a prompt or a run as a sweep's stages make them (sweeps/stages.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmos_workflow.database.models import Prompt, Run, RunStatus
from cosmos_workflow.engine.progress import NullProgress, ProgressSink
from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.local_ai.checks import check_video_folder
from cosmos_workflow.local_ai.sequences import unused_note
from cosmos_workflow.local_ai.video_dir import ROLE_ALIASES, ROLES, detect_videos
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, ResolvedPrompt, RunSpec
from cosmos_workflow.manifest.text_checks import name_problem, text_problem
from cosmos_workflow.sweeps.derive import (
    DEFAULT_UPSCALE_WEIGHT,
    enhanced_origin,
    enhanced_prompt,
    enhancement_spec,
    upscale_origin,
)
from cosmos_workflow.sweeps.plan import (
    SweepPlan,
    cached_runs,
    refuse_problems,
    with_target_image,
)
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
    _refuse_bad_text(ws, text, negative, name or video_dir.resolve().name, name is not None)
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


def _refuse_bad_text(
    ws: Workspace, text: str, negative: str | None, name: str, named: bool
) -> None:
    """Refuse control characters in a new prompt's name or texts, and over-long texts.

    Raises:
        ValidationFailure: naming the argument or option.
    """
    limit = ws.settings.limits.prompt_chars
    for what, value in (("TEXT", text), ("--negative", negative)):
        problem = text_problem(value, limit) if value is not None else None
        if problem is not None:
            raise ValidationFailure(f"{what}: {problem}")
    problem = name_problem(name)
    if problem is not None:
        raise ValidationFailure(f"{'--name' if named else 'the folder name'}: {problem}")


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
    spec = enhance_plan(ws, prompt_id, model).runs[0]
    result = execute_single(ws, spec, progress)
    if result.status != RunStatus.SUCCEEDED.value:
        return EnhanceResult(None, False, prompt_id, result)
    new = enhanced_prompt(spec.prompt, enhanced_text(ws, spec))
    created = ws.repository.add_derived_prompt(new, prompt_id, enhanced_origin(spec))
    return EnhanceResult(new.id, created, prompt_id, result)


def enhance_plan(ws: Workspace, prompt_id: str, model: dict[str, Any]) -> SweepPlan:
    """The upsampler's run of `cosmos enhance` (writes nothing; see :func:`enhance`).

    Raises:
        ValidationFailure: the model has no upsampler, the prompt no input video.
    """
    original = resolved_prompt(ws.repository.get_prompt(prompt_id))
    params = with_target_image(ws, {"model": dict(model)})["model"]
    spec = enhancement_spec(original, params, f"enhance {prompt_id}")
    refuse_problems(ws, spec, f"prompt {prompt_id} cannot be enhanced")
    return single_plan(ws, f"cosmos enhance {prompt_id}", spec)


def upscale(
    ws: Workspace,
    parent_id: str,
    weight: float | None,
    text: str | None,
    progress: ProgressSink | None,
) -> InferenceResult:
    """4K-upscale a succeeded run's output video: a new run, linked to its parent.

    Args:
        ws: The workspace.
        parent_id: A full rs_ id.
        weight: The upscale control's weight (None: DEFAULT_UPSCALE_WEIGHT).
        text: A prompt for the upscaler (None: the parent's prompt).
        progress: Where progress goes.

    Raises:
        ValidationFailure: the run has not succeeded, its outputs are gone or
            changed, or its model has no upscaler.
    """
    spec = upscale_plan(ws, parent_id, weight, text).runs[0]
    return execute_single(ws, spec, progress, ws.repository.get_run(parent_id))


def upscale_plan(
    ws: Workspace, parent_id: str, weight: float | None, text: str | None
) -> SweepPlan:
    """The run of `cosmos upscale` (writes nothing; see :func:`upscale`).

    Raises:
        ValidationFailure: see :func:`upscale`.
    """
    weight = DEFAULT_UPSCALE_WEIGHT if weight is None else weight
    spec = upscale_spec_of(ws, parent_id, weight, text)
    refuse_problems(ws, spec, f"run {parent_id} cannot be upscaled so")
    return single_plan(ws, f"cosmos upscale {parent_id}", spec)


def single_plan(ws: Workspace, name: str, spec: RunSpec) -> SweepPlan:
    """One run, without a sweep (``sweep_id`` ""), as a plan: what a dry run shows."""
    cached = frozenset(cached_runs(ws, [spec.id]))
    return SweepPlan("", name, {}, [], [spec], cached, duplicates=0)


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


def resolved_prompt(prompt: Prompt, hashes: dict[Path, str] | None = None) -> ResolvedPrompt:
    """A stored prompt as a resolved prompt (its inputs must be unchanged).

    Args:
        prompt: The stored prompt.
        hashes: Checksums of files read already (each file is read once per
            command, however many prompts share it); new ones are added.

    Raises:
        ValidationFailure: an input file is gone or changed.
    """
    hashes = {} if hashes is None else hashes
    inputs = PromptInputSet.from_dict(prompt.inputs)
    for item in inputs.files():
        if not item.path.is_file():
            raise ValidationFailure(f"input file is gone: {item.path}")
        if item.path not in hashes:
            hashes[item.path] = sha256_file(item.path)
        if hashes[item.path] != item.sha256:
            raise ValidationFailure(
                f"input file changed since the prompt was created: {item.path}; "
                "create a new prompt for the new content"
            )
    return ResolvedPrompt(prompt.name, prompt.text, prompt.negative_prompt, inputs)
