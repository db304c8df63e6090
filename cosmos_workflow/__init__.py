"""cosmos-workflow: declarative batch runner for NVIDIA Cosmos world models."""

from __future__ import annotations

from functools import cache

__all__ = ["__version__"]


@cache
def _installed_version() -> str:
    """The installed package's version (importlib.metadata is read on first use only)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cosmos-workflow")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+source"


def __getattr__(name: str) -> str:
    """``__version__``, looked up when first asked for (every command imports this package)."""
    if name == "__version__":
        return _installed_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
