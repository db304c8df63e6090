"""Adds ``<project>/manifests`` after ``<project>/conf`` on Hydra's search path.

So ``+experiment=NAME`` finds ``manifests/experiment/NAME.yaml`` and a
manifest's defaults list finds ``manifests/prompts/*.yaml``. Only a folder
named ``conf`` that holds ``config.yaml`` and has a sibling ``manifests``
folder is taken as a project. Both folders are read through the ``cosmos``
config source (source.py), which checks each file before Hydra uses it.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathElement
from hydra.plugins.search_path_plugin import SearchPathPlugin

_FILE_SCHEME = "file://"
_COSMOS_SCHEME = "cosmos://"


class CosmosManifestsSearchPath(SearchPathPlugin):
    """Appends the manifests folder of the project whose conf/ is in use."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        """Read a project's conf/ through cosmos://, and append cosmos://<project>/manifests."""
        elements = search_path.get_path()
        present = {element.path for element in elements}
        # Hydra hands the primary config dir over with or without file://.
        for index, element in enumerate(list(elements)):
            path = element.path or ""
            if path.startswith(_FILE_SCHEME):
                path = path[len(_FILE_SCHEME) :]
            elif "://" in path or not path:
                continue
            conf = Path(path)
            manifests = conf.parent / "manifests"
            if conf.name != "conf" or not (conf / "config.yaml").is_file():
                continue
            if not manifests.is_dir():
                continue
            elements[index] = SearchPathElement(element.provider, f"{_COSMOS_SCHEME}{conf}")
            entry = f"{_COSMOS_SCHEME}{manifests}"
            if entry not in present:
                search_path.append(provider="cosmos-workflow", path=entry)
                present.add(entry)
