"""The ``cosmos`` config source: a project's conf/ and manifests/, each file checked before use.

Hydra's own file source hands a file straight to PyYAML and OmegaConf: a
syntax error comes back as a long traceback, bytes that are not UTF-8 as an
error that never names the file, and an alias bomb takes minutes and
gigabytes. This source reads the same files, but each one through
:func:`cosmos_workflow.config.yaml_file.read_config_file` first, so that
every such problem is one sentence naming the file, line and column.
The search-path plugin (searchpath.py) points the project's folders at it.
"""

# No "from __future__ import annotations": Hydra's plugin scan executes this
# module outside sys.modules.
import io
import os
from pathlib import Path

from hydra._internal.core_plugins.file_config_source import FileConfigSource
from hydra.plugins.config_source import ConfigLoadError, ConfigResult
from omegaconf import OmegaConf
from omegaconf.errors import GrammarParseError, OmegaConfBaseException

SCHEME = "cosmos"


class CosmosConfigSource(FileConfigSource):
    """A folder of YAML files, read like Hydra's file source after the checks of yaml_file.py."""

    @staticmethod
    def scheme() -> str:
        """The scheme of the project's folders on the search path (cosmos://<folder>)."""
        return SCHEME

    def load_config(self, config_path: str) -> ConfigResult:
        """Check and load one config file.

        Raises:
            ConfigFileError: the file cannot be used (it names the file and the place).
        """
        from cosmos_workflow.config.yaml_file import (
            ConfigFileError,
            project_yaml_limits,
            read_config_file,
            shown_path,
        )

        normalized = self._normalize_file_name(config_path)
        joined = Path(self.path) / normalized
        full_path = Path(os.path.realpath(joined))
        if not full_path.exists():
            raise ConfigLoadError(f"Config not found : {full_path}")
        root = Path(self.path).parent
        shown = shown_path(joined, root)
        group = normalized.split("/", 1)[0] if "/" in normalized else None
        text = read_config_file(full_path, shown, project_yaml_limits(root), group)
        try:
            header = self._get_header_dict(text)
        except ValueError as exc:
            raise ConfigFileError(f"{shown}: {exc}") from exc
        try:
            config = OmegaConf.load(io.StringIO(text))
        except OmegaConfBaseException as exc:
            raise ConfigFileError(_unloadable(shown, header.get("package") or group, exc)) from exc
        return ConfigResult(
            config=config,
            path=f"{self.scheme()}://{self.path}",
            provider=self.provider,
            header=header,
        )


def _unloadable(shown: str, package: "str | None", exc: OmegaConfBaseException) -> str:
    """Why OmegaConf cannot load a file (a malformed ${...}), naming the key as composed."""
    key = str(getattr(exc, "full_key", "") or "")
    if package and package != "_global_" and key:
        key = f"{package}.{key}"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not isinstance(exc, GrammarParseError):
        return f"{shown}: {key or '(top level)'}: cannot be loaded: {detail}"
    return (
        f"{shown}: {key or '(top level)'}: not a valid interpolation ({detail}); "
        "write \\${ for a literal '${' (prompt text is a jinja2 template: {{ name }})"
    )
