"""OmegaConf interpolations in a manifest: none in prompt text, no resolver anywhere.

A run's id is the hash of what it renders, so nothing in a manifest may
depend on when or where it is composed: ``${now:...}`` would make a new
sweep on every run (the cache never hits) and ``${oc.env:HOME}`` would store
the user's home folder with every run. So, checked on the manifest as
composed but not yet resolved:

- prompt text and negative prompts take no ``${...}`` at all: they are jinja2
  templates (``{{ style }}``); ``\\${`` writes a literal ``${``;
- no value of a manifest calls a resolver (``${name:...}``); a plain
  reference to another key (``${vars.steps}``) is resolved once, when the
  config is composed, and is saved resolved with the sweep.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from cosmos_workflow.errors import Problem

_INTERPOLATION = re.compile(r"(?<!\\)\$\{")
_RESOLVER = re.compile(r"(?<!\\)\$\{\s*[A-Za-z_][\w.]*\s*:")
_PROMPT_FIELDS = ("text", "negative")


def interpolation_problems(manifest: Mapping[str, Any]) -> list[Problem]:
    """Problems of the interpolations of an unresolved manifest (key paths as in the manifest)."""
    problems = []
    for key, value in _strings(manifest, ""):
        if _is_prompt_text(key) and _INTERPOLATION.search(value):
            problems.append(
                Problem(
                    key,
                    f"{_shorten(value)}: OmegaConf interpolations (${{...}}) are not allowed in "
                    "prompt text, which is a jinja2 template: write {{ name }} for a variable "
                    "of vars or the sweep, or \\${ for a literal '${'",
                )
            )
        elif _RESOLVER.search(value):
            problems.append(
                Problem(
                    key,
                    f"{_shorten(value)}: resolvers (${{now:...}}, ${{oc.env:...}}, ...) are not "
                    "allowed in a manifest, whose values make the runs' ids: write the value "
                    "itself",
                )
            )
    return problems


def _is_prompt_text(key: str) -> bool:
    parts = key.split(".")
    return len(parts) == 3 and parts[0] == "prompts" and parts[2] in _PROMPT_FIELDS


def _strings(data: Any, prefix: str) -> Iterator[tuple[str, str]]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from _strings(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _strings(value, f"{prefix}[{index}]")
    elif isinstance(data, str):
        yield prefix, data


def _shorten(value: str, width: int = 60) -> str:
    found = _INTERPOLATION.search(value)
    start = max(0, found.start() - 10) if found else 0
    shown = value[start : start + width]
    return repr(("..." if start else "") + shown + ("..." if start + width < len(value) else ""))
