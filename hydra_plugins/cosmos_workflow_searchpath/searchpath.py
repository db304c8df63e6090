"""Adds ``<project>/manifests`` after ``<project>/conf`` on Hydra's search path.

So ``+experiment=NAME`` finds ``manifests/experiment/NAME.yaml`` and a
manifest's defaults list finds ``manifests/prompts/*.yaml``. Only a folder
named ``conf`` that holds ``config.yaml`` and has a sibling ``manifests``
folder is taken as a project.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

_FILE_SCHEME = "file://"


class CosmosManifestsSearchPath(SearchPathPlugin):
    """Appends the manifests folder of the project whose conf/ is in use."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        """Append file://<project>/manifests if a project conf/ is present."""
        present = {element.path for element in search_path.get_path()}
        # Hydra hands the primary config dir over with or without file://.
        for element in list(search_path.get_path()):
            path = element.path or ""
            if path.startswith(_FILE_SCHEME):
                path = path[len(_FILE_SCHEME) :]
            elif "://" in path or not path:
                continue
            conf = Path(path)
            manifests = conf.parent / "manifests"
            entry = f"{_FILE_SCHEME}{manifests}"
            if (
                conf.name == "conf"
                and (conf / "config.yaml").is_file()
                and manifests.is_dir()
                and entry not in present
            ):
                search_path.append(provider="cosmos-workflow", path=entry)
                present.add(entry)
