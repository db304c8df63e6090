"""Resolved, content-addressed prompt and run specifications."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmos_workflow.utils.hashing import content_id

# Model fields that cannot change the output: they are not part of a run id.
EXECUTION_ONLY_FIELDS = frozenset({"num_gpus"})
# Version of the identity layout; bump it only with a migration of stored ids.
IDENTITY_VERSION = 1
PLAIN_SUFFIX = re.compile(r"\.[a-z0-9]{1,10}")
# The role of a prompt's input (color) video; controls are named by their key.
VIDEO_ROLE = "video"
# Input roles besides the video and the control videos: files by control key ...
MAPPED_ROLES: tuple[str, ...] = ("weight_maps", "masks")
# ... and one image.
IMAGE_CONTEXT = "image_context"
# What a run's identity holds instead of the scalar weight of a control given a weight map.
WEIGHT_MAP = "weight map"
# The control inputs a prompt may have, by key (manifest/models.py spells them too).
# Which of them a model takes is its adapter's rule (Transfer1 takes all seven).
CONTROL_KEYS: tuple[str, ...] = ("vis", "edge", "depth", "seg", "keypoint", "hdmap", "lidar")


def _without_nulls(data: Any) -> Any:
    """Drop None values from mappings, so adding an optional field keeps old ids."""
    if isinstance(data, dict):
        return {
            k: _without_nulls(v) if isinstance(v, dict) else v
            for k, v in data.items()
            if v is not None
        }
    return data


@dataclass(frozen=True)
class InputFile:
    """An input video: where it is and what it contains."""

    path: Path
    sha256: str

    @property
    def stored_name(self) -> str:
        """Content-addressed file name: the sha256 plus a plain suffix such as ``.mp4``.

        Programs tell formats by suffix, so a plain one is kept (lowercase);
        nothing else of the user's file name ever reaches a host. Manifests
        with other suffixes are refused before this is used.
        """
        suffix = self.path.suffix.lower()
        return self.sha256 + (suffix if PLAIN_SUFFIX.fullmatch(suffix) else "")

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"path": str(self.path), "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> InputFile:
        """Inverse of :meth:`to_dict`."""
        return cls(path=Path(data["path"]), sha256=data["sha256"])


@dataclass(frozen=True)
class PromptInputSet:
    """The input files of one prompt.

    Attributes:
        video: The input (color) video.
        controls: Control videos by control key.
        weight_maps: Spatio-temporal control weights (``.pt`` files) by control key.
        masks: Mask videos by control key (where the control applies).
        image_context: An image the model takes as context.
    """

    video: InputFile | None = None
    controls: dict[str, InputFile] = field(default_factory=dict)
    weight_maps: dict[str, InputFile] = field(default_factory=dict)
    masks: dict[str, InputFile] = field(default_factory=dict)
    image_context: InputFile | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with paths (the newer roles only when set)."""
        data: dict[str, Any] = {
            "video": self.video.to_dict() if self.video else None,
            "controls": {k: v.to_dict() for k, v in sorted(self.controls.items())},
        }
        for role in MAPPED_ROLES:
            files = getattr(self, role)
            if files:
                data[role] = {k: v.to_dict() for k, v in sorted(files.items())}
        if self.image_context is not None:
            data[IMAGE_CONTEXT] = self.image_context.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptInputSet:
        """Inverse of :meth:`to_dict`."""
        video = InputFile.from_dict(data["video"]) if data.get("video") else None
        mapped = {
            role: {k: InputFile.from_dict(v) for k, v in data.get(role, {}).items()}
            for role in ("controls", *MAPPED_ROLES)
        }
        context = data.get(IMAGE_CONTEXT)
        return cls(
            video=video,
            image_context=InputFile.from_dict(context) if context else None,
            **mapped,
        )

    def identity(self) -> dict[str, Any]:
        """What identifies the inputs: checksums by role, never paths.

        The newer roles appear only when set, so the ids of prompts without
        them are the ids they always had.
        """
        found: dict[str, Any] = {
            "video": self.video.sha256 if self.video else None,
            "controls": {k: v.sha256 for k, v in sorted(self.controls.items())},
        }
        for role in MAPPED_ROLES:
            files = getattr(self, role)
            if files:
                found[role] = {k: v.sha256 for k, v in sorted(files.items())}
        if self.image_context is not None:
            found[IMAGE_CONTEXT] = self.image_context.sha256
        return found

    def files(self) -> list[InputFile]:
        """Every input file, video first."""
        found = [self.video] if self.video else []
        for role in ("controls", *MAPPED_ROLES):
            files = getattr(self, role)
            found += [files[k] for k in sorted(files)]
        return found + ([self.image_context] if self.image_context else [])


@dataclass(frozen=True)
class ResolvedPrompt:
    """A prompt with rendered text and checksummed inputs."""

    name: str
    text: str
    negative: str | None
    inputs: PromptInputSet

    @property
    def id(self) -> str:
        """ps_ id: hash of the text, negative text and input checksums."""
        return content_id(
            "ps",
            {"text": self.text, "negative": self.negative, "inputs": self.inputs.identity()},
        )


@dataclass(frozen=True)
class RunSpec:
    """A fully resolved run: a prompt plus every model parameter.

    Attributes:
        prompt: The resolved prompt.
        model: The validated model parameters (adapter, version, image, ...).
        varying: The sweep values that produced this run (key path -> value).
    """

    prompt: ResolvedPrompt
    model: dict[str, Any]
    varying: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """Everything that can change the output, and nothing else."""
        model = _without_nulls(
            {k: v for k, v in self.model.items() if k not in EXECUTION_ONLY_FIELDS}
        )
        if isinstance(model.get("controls"), dict):
            # A control whose settings are all null has none.
            model["controls"] = {k: v for k, v in model["controls"].items() if v}
        for optional in ("options", "controls"):
            if not model.get(optional):
                # None set is the same spec as before the field existed.
                model.pop(optional, None)
        weights = model.get("weights")
        if self.prompt.inputs.weight_maps and isinstance(weights, dict):
            # A weight map replaces the control's scalar weight (the program reads
            # the map's values instead): the scalar only turns the control on.
            model["weights"] = {
                key: WEIGHT_MAP if key in self.prompt.inputs.weight_maps else value
                for key, value in weights.items()
            }
        return {
            "v": IDENTITY_VERSION,
            "model": model,
            "prompt": {
                "text": self.prompt.text,
                "negative": self.prompt.negative,
                "inputs": self.prompt.inputs.identity(),
            },
        }

    @property
    def id(self) -> str:
        """rs_ id: hash of :meth:`identity`."""
        return content_id("rs", self.identity())

    @property
    def adapter(self) -> str:
        """Name of the model adapter."""
        return str(self.model["adapter"])

    def to_dict(self) -> dict[str, Any]:
        """The resolved run spec as stored in the database and run.yaml."""
        return {
            "id": self.id,
            "prompt": {
                "id": self.prompt.id,
                "name": self.prompt.name,
                "text": self.prompt.text,
                "negative": self.prompt.negative,
                "inputs": self.prompt.inputs.to_dict(),
            },
            "model": dict(self.model),
            "varying": dict(self.varying),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """Inverse of :meth:`to_dict`."""
        prompt = data["prompt"]
        return cls(
            prompt=ResolvedPrompt(
                name=prompt["name"],
                text=prompt["text"],
                negative=prompt["negative"],
                inputs=PromptInputSet.from_dict(prompt["inputs"]),
            ),
            model=dict(data["model"]),
            varying=dict(data.get("varying", {})),
        )


@dataclass(frozen=True)
class InputVideo:
    """One input file of a prompt, as the user named it (what input checks look at).

    Attributes:
        where: Where it is named: a manifest key path, or the file for `create prompt`.
        shown: The path as the user wrote it (for messages).
        role: ``video`` (the input video) or a control key (depth, seg, ...).
        path: The file.
        sha256: Its checksum (the probe cache key).
    """

    where: str
    shown: str
    role: str
    path: Path
    sha256: str
