"""Classified errors. Each class maps to one process exit code.

Exit codes (documented in docs/user-guide.md):
    0 ok, 1 runs failed or execution error, 2 bad input, 3 connection or auth.
"""

from __future__ import annotations

from dataclasses import dataclass


class CosmosError(Exception):
    """Base of every error this package raises on purpose."""

    kind = "execution"
    exit_code = 1


class ValidationFailure(CosmosError):
    """The user's input (manifest, option, id, file) is invalid."""

    kind = "validation"
    exit_code = 2


class NotFoundFailure(ValidationFailure):
    """An id or name that the user gave does not exist."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a manifest: where it is and what is wrong."""

    key_path: str
    message: str


class ManifestError(ValidationFailure):
    """A manifest failed validation; lists every problem with its key path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [f"invalid manifest ({len(problems)} problem(s)):"]
        lines += [f"  {p.key_path}: {p.message}" for p in problems]
        super().__init__("\n".join(lines))


class NetworkFailure(CosmosError):
    """A host could not be reached or the connection dropped."""

    kind = "network"
    exit_code = 3


class AuthFailure(NetworkFailure):
    """Authentication or host-key verification was refused."""

    kind = "auth"


class ExecutionFailure(CosmosError):
    """A model invocation or a local step failed."""

    kind = "execution"
    exit_code = 1


class RuntimeFailure(ExecutionFailure):
    """The container runtime on a host did not answer or broke down (usually transient)."""

    kind = "runtime"


class StateError(CosmosError):
    """The database or output tree is in a state that forbids the operation."""

    kind = "state"
    exit_code = 1


def format_loc(loc: tuple[object, ...]) -> str:
    """Turn a pydantic error location into a key path like ``a.b[2].c``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path
