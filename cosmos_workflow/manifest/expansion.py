"""Expansion of a manifest: prompt set x sweep points -> RunSpecs.

Every problem found is collected with its key path and raised at once as a
:class:`ManifestError`, so that the user sees all of them on one screen.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cosmos_workflow.errors import ManifestError, Problem, format_loc
from cosmos_workflow.manifest.models import CONTROL_KEYS, Manifest, ModelConfig
from cosmos_workflow.manifest.specs import (
    IMAGE_CONTEXT,
    MAPPED_ROLES,
    PLAIN_SUFFIX,
    VIDEO_ROLE,
    InputFile,
    InputVideo,
    PromptInputSet,
    ResolvedPrompt,
    RunSpec,
)
from cosmos_workflow.manifest.templates import PromptRenderer, TemplateProblem
from cosmos_workflow.utils.hashing import sha256_file

# Stop expanding after this many distinct problems: one screen is enough.
MAX_PROBLEMS = 20

Blame = Callable[[str], str]
RunCheck = Callable[[RunSpec], list[Problem]]
# Problems of one prompt's input files (the input video first).
InputCheck = Callable[[list[InputVideo]], list[Problem]]


@dataclass(frozen=True)
class Expansion:
    """The result of expanding a manifest.

    Attributes:
        manifest: The validated manifest.
        runs: One spec per distinct run, prompts in manifest order.
        run_ids: The id of each run, in the order of ``runs``.
        duplicates: Sweep points that gave an already listed run.
        notes: Things the user should know (e.g. two prompts that are identical).
    """

    manifest: Manifest
    runs: list[RunSpec]
    run_ids: list[str]
    duplicates: int
    notes: list[str]


def pydantic_problems(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """Convert a pydantic ValidationError into problems with key paths."""
    problems = []
    for error in exc.errors():
        loc = format_loc(tuple(error["loc"]))
        key = f"{prefix}.{loc}" if prefix and loc else prefix or loc
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(Problem(key_path=key or "(top level)", message=message))
    return problems


class _Expander:
    """Holds the state of one expansion (problems found, file hashes, templates)."""

    def __init__(self, project_dir: Path, blame: Blame) -> None:
        self.project_dir = project_dir
        self.blame = blame
        self.problems: list[Problem] = []
        self.templates = PromptRenderer()
        self._hashes: dict[Path, str] = {}

    def problem(self, key_path: str, message: str) -> None:
        found = Problem(key_path=key_path, message=message)
        if found not in self.problems:
            self.problems.append(found)

    def fail_if_problems(self) -> None:
        if self.problems:
            sources = {p.key_path: self.blame(p.key_path) for p in self.problems}
            located = [
                Problem(key_path=f"{sources[p.key_path]}: {p.key_path}", message=p.message)
                for p in self.problems
            ]
            raise ManifestError(located)

    def input_file(self, key_path: str, relative: str) -> InputFile | None:
        path = (self.project_dir / relative).resolve()
        if path not in self._hashes:
            if not path.is_file():
                self.problem(key_path, f"file not found: {relative} (looked for {path})")
                return None
            if not PLAIN_SUFFIX.fullmatch(path.suffix.lower()):
                self.problem(key_path, f"{relative}: the name must end in a plain suffix (.mp4)")
                return None
            self._hashes[path] = sha256_file(path)
        return InputFile(path=path, sha256=self._hashes[path])


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


def _model_path_exists(dotted: str) -> bool:
    fields: Any = ModelConfig.model_fields
    parts = dotted.split(".")
    for index, part in enumerate(parts):
        if part not in fields:
            return False
        annotation = fields[part].annotation
        if index < len(parts) - 1:
            sub = getattr(annotation, "model_fields", None)
            if sub is None:
                return False
            fields = sub
    return True


def _check_sweep(manifest: Manifest, ex: _Expander) -> None:
    base_model = manifest.model.model_dump()
    lengths = {len(v) for v in manifest.sweep.zip.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in manifest.sweep.zip.items())
        ex.problem("sweep.zip", f"lists that vary together must have equal lengths ({sizes})")
    for block, entries in (("grid", manifest.sweep.grid), ("zip", manifest.sweep.zip)):
        for key, values in entries.items():
            where = f"sweep.{block}.{key}"
            if key in manifest.sweep.grid and block == "zip":
                ex.problem(where, "a key may be in grid or in zip, not both")
            if not values:
                ex.problem(where, "needs at least one value")
            root, _, rest = key.partition(".")
            if root == "vars" and rest and "." not in rest:
                continue
            if root != "model" or not _model_path_exists(rest):
                ex.problem(where, "unknown sweep key: use model.<parameter> or vars.<name>")
                continue
            for index, value in enumerate(values):
                trial = copy.deepcopy(base_model)
                _set_path(trial, rest, value)
                try:
                    ModelConfig.model_validate(trial)
                except ValidationError as exc:
                    for error in exc.errors():
                        ex.problem(f"{where}[{index}]", error["msg"])


def _points(manifest: Manifest) -> Iterator[dict[str, Any]]:
    grid_keys = list(manifest.sweep.grid)
    zip_keys = list(manifest.sweep.zip)
    zip_rows = list(zip(*manifest.sweep.zip.values(), strict=True)) if zip_keys else [()]
    for combo in itertools.product(*manifest.sweep.grid.values()):
        for row in zip_rows:
            point = dict(zip(grid_keys, combo, strict=True))
            point.update(zip(zip_keys, row, strict=True))
            yield point


def _resolve_inputs(
    manifest: Manifest, ex: _Expander, check_inputs: InputCheck | None
) -> dict[str, PromptInputSet]:
    resolved = {}
    for name, prompt in manifest.prompts.items():
        base = f"prompts.{name}.inputs"
        named: list[InputVideo] = []
        video = ex.input_file(f"{base}.video", prompt.inputs.video) if prompt.inputs.video else None
        if video is not None:
            named.append(
                InputVideo(
                    f"{base}.video", prompt.inputs.video, VIDEO_ROLE, video.path, video.sha256
                )
            )
        controls = {}
        for key in CONTROL_KEYS:
            if key in prompt.inputs.controls:
                where, written = f"{base}.controls.{key}", prompt.inputs.controls[key]
                found = ex.input_file(where, written)
                if found is not None:
                    controls[key] = found
                    named.append(InputVideo(where, written, key, found.path, found.sha256))
        if video is None and not prompt.inputs.video and not prompt.inputs.controls:
            ex.problem(base, "a prompt needs an input video or at least one control video")
        if check_inputs is not None and named and (video is not None or not prompt.inputs.video):
            for found in check_inputs(named):
                ex.problem(found.key_path, found.message)
        mapped = {
            role: _mapped_files(ex, f"{base}.{role}", getattr(prompt.inputs, role))
            for role in MAPPED_ROLES
        }
        context = prompt.inputs.image_context
        resolved[name] = PromptInputSet(
            video=video,
            controls=controls,
            image_context=ex.input_file(f"{base}.{IMAGE_CONTEXT}", context) if context else None,
            **mapped,
        )
    return resolved


def _mapped_files(ex: _Expander, base: str, written: dict[str, str]) -> dict[str, InputFile]:
    """Files by control key (weight maps, masks), in canonical key order."""
    found = {}
    for key in CONTROL_KEYS:
        if key in written:
            item = ex.input_file(f"{base}.{key}", written[key])
            if item is not None:
                found[key] = item
    return found


def _apply_point(manifest: Manifest, point: dict[str, Any]) -> tuple[dict, dict]:
    model = manifest.model.model_dump()
    variables = dict(manifest.vars)
    for key, value in point.items():
        root, _, rest = key.partition(".")
        if root == "vars":
            variables[rest] = value
        else:
            _set_path(model, rest, value)
    return ModelConfig.model_validate(model).model_dump(), variables


def _check_controls(name: str, inputs: PromptInputSet, model: dict, ex: _Expander) -> None:
    what = {"controls": "control video", "weight_maps": "weight map", "masks": "mask"}
    for role, label in what.items():
        for key in getattr(inputs, role):
            if model["weights"][key] is None:
                ex.problem(
                    f"prompts.{name}.inputs.{role}.{key}",
                    f"a {key} {label} is given but model.weights.{key} is not set",
                )
    for key in model.get("controls", {}):
        if model["weights"][key] is None:
            ex.problem(
                f"model.controls.{key}",
                f"settings for the {key} control are given but model.weights.{key} is not set",
            )


def _swept_key(key_path: str, manifest: Manifest) -> str:
    """Point a problem at the sweep entry that set the value, if one did."""
    for block, entries in (("grid", manifest.sweep.grid), ("zip", manifest.sweep.zip)):
        if key_path in entries:
            return f"sweep.{block}.{key_path}"
    return key_path


def _render(
    name: str, field: str, template: str | None, context: dict[str, Any], ex: _Expander
) -> str | None:
    if template is None:
        return None
    try:
        return ex.templates.render(template, {**context, "prompt_name": name})
    except TemplateProblem as exc:
        ex.problem(f"prompts.{name}.{field}", str(exc))
        return None


def expand(
    raw: dict[str, Any],
    project_dir: Path,
    blame: Blame,
    check_run: RunCheck | None = None,
    check_inputs: InputCheck | None = None,
) -> Expansion:
    """Validate a composed manifest and expand it into run specs.

    Args:
        raw: The manifest part of the composed config, as plain data.
        project_dir: Folder that relative input paths are resolved against.
        blame: Maps a key path to the file (or override) that set it.
        check_run: Finds problems the model or target would have with a run
            (called for every run; its key paths get blamed like the others).
        check_inputs: Finds problems in a prompt's input files (called once per
            prompt whose files exist; key paths get blamed like the others).

    Raises:
        ManifestError: with every problem found, each naming file and key path.
    """
    ex = _Expander(project_dir, blame)
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        ex.problems.extend(pydantic_problems(exc))
        ex.fail_if_problems()
        raise  # unreachable: fail_if_problems raised
    _check_sweep(manifest, ex)
    inputs = _resolve_inputs(manifest, ex, check_inputs)
    ex.fail_if_problems()

    runs: list[tuple[str, RunSpec]] = []
    owner: dict[str, str] = {}
    notes: list[str] = []
    duplicates = 0
    for point in _points(manifest):
        model, variables = _apply_point(manifest, point)
        context = {**variables, "vars": variables, "model": model}
        for name, prompt in manifest.prompts.items():
            _check_controls(name, inputs[name], model, ex)
            text = _render(name, "text", prompt.text, context, ex)
            negative = _render(name, "negative", prompt.negative, context, ex)
            if text is None or (prompt.negative is not None and negative is None):
                continue
            spec = RunSpec(
                prompt=ResolvedPrompt(name=name, text=text, negative=negative, inputs=inputs[name]),
                model=model,
                varying={"prompt": name, **point},
            )
            for found in check_run(spec) if check_run else []:
                ex.problem(_swept_key(found.key_path, manifest), found.message)
            run_id = spec.id
            if run_id in owner:
                duplicates += 1
                note = (
                    f"prompt {name!r} gives the same runs as prompt {owner[run_id]!r} "
                    "(same text and inputs): they run once"
                )
                if owner[run_id] != name and note not in notes:
                    notes.append(note)
                continue
            owner[run_id] = name
            runs.append((run_id, spec))
        if len(ex.problems) >= MAX_PROBLEMS:
            break
    ex.fail_if_problems()
    order = {name: index for index, name in enumerate(manifest.prompts)}
    runs.sort(key=lambda pair: order[pair[1].prompt.name])
    return Expansion(
        manifest=manifest,
        runs=[spec for _, spec in runs],
        run_ids=[run_id for run_id, _ in runs],
        duplicates=duplicates,
        notes=notes,
    )
