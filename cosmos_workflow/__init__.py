"""cosmos-workflow: declarative batch runner for NVIDIA Cosmos world models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cosmos-workflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
