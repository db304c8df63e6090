"""Key paths of pydantic models: is a dotted key one of theirs, and which is closest to a typo.

``model.num_step`` -> ``model.num_steps``; ``prompts.scene.txt`` ->
``prompts.scene.text`` (a mapping of models, like the prompts, takes any
name on its level). Used for "did you mean" in errors about unknown keys.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any, Union

from pydantic import BaseModel

# How alike a typo and a key must be (difflib's ratio) to be suggested.
CUTOFF = 0.6


class _Free:
    """Below this key anything goes (a mapping of free names, a list, Any)."""


FREE = _Free()


def _members(annotation: Any) -> list[Any]:
    """The types of a union (X | None, A | B), or the annotation itself."""
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    return [annotation]


def _node(annotation: Any) -> Any:
    """What a field's annotation holds below it.

    A dict of field name -> annotation for models (several models of a union
    merged), ("*", annotation) for a mapping whose keys are free names of one
    kind, FREE for anything else that has keys, None for a plain value.
    """
    fields: dict[str, Any] = {}
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            for name, info in member.model_fields.items():
                fields.setdefault(name, info.annotation)
            continue
        origin = typing.get_origin(member)
        if origin is dict:
            value = typing.get_args(member)[1] if typing.get_args(member) else Any
            if any(isinstance(m, type) and issubclass(m, BaseModel) for m in _members(value)):
                return ("*", value)
            return FREE
        if member is Any or origin in (list, tuple):
            return FREE
    return fields or None


class KeyTree:
    """The keys of one or more pydantic models, laid over each other at the top.

    Args:
        models: The models whose fields are the top-level keys.
        skip: Top-level field names that are no keys (computed or internal).
        free: Extra top-level keys below which anything goes (e.g. ``hydra``).
    """

    def __init__(
        self,
        models: Iterable[type[BaseModel]],
        skip: Iterable[str] = (),
        free: Iterable[str] = (),
    ) -> None:
        self._top: dict[str, Any] = {}
        for model in models:
            for name, info in model.model_fields.items():
                self._top.setdefault(name, info.annotation)
        for name in skip:
            self._top.pop(name, None)
        for name in free:
            self._top[name] = Any

    def known(self, key: str) -> bool:
        """True if ``key`` (dotted) is a key of the models."""
        return self._walk(key.split("."), correct=False) == key

    def closest(self, key: str) -> str | None:
        """The known key most like ``key`` (each unknown part replaced), or None."""
        found = self._walk(key.split("."), correct=True)
        return found if found != key else None

    def siblings(self, key: str) -> list[str]:
        """The known keys beside the last part of ``key`` (its parent's keys), if a model's."""
        parent = key.rpartition(".")[0]
        node: Any = self._top
        for part in [p for p in parent.split(".") if p]:
            node = _child(node, part)
            if node is None or node is FREE:
                return []
        return sorted(node) if isinstance(node, dict) else []

    def _walk(self, parts: list[str], correct: bool) -> str | None:
        node: Any = self._top
        done: list[str] = []
        for part in parts:
            if node is FREE:
                done.append(part)
                continue
            if isinstance(node, tuple):
                node = _node(node[1])
                done.append(part)
                continue
            if not isinstance(node, dict):
                return None
            if part not in node:
                if not correct:
                    return None
                match = difflib.get_close_matches(part, list(node), n=1, cutoff=CUTOFF)
                if not match:
                    return None
                part = match[0]
            done.append(part)
            node = _node(node[part])
        return ".".join(done)


def _child(node: Any, part: str) -> Any:
    if isinstance(node, tuple):
        return _node(node[1])
    if isinstance(node, dict):
        return _node(node[part]) if part in node else None
    return node
