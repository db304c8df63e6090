"""The web app's part of the API: read models of its pages and background launches.

``CosmosAPI.web`` holds one of each, for the life of the API (the inputs
page's hashes and probes are kept between requests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cosmos_workflow.api.catalogue import Catalogue
from cosmos_workflow.api.input_views import InputViews
from cosmos_workflow.api.launch import Launcher
from cosmos_workflow.api.run_views import RunViews
from cosmos_workflow.sweeps.workspace import Workspace

if TYPE_CHECKING:
    from cosmos_workflow.api.cosmos_api import CosmosAPI


class WebViews:
    """What the web app reads and starts besides the API's own methods.

    Attributes:
        runs: A run's page and the queue (api/run_views.py).
        inputs: The input folders and videos (api/input_views.py).
        launch: Detached `cosmos` commands (api/launch.py).
    """

    def __init__(self, ws: Workspace, catalogue: Catalogue, api: CosmosAPI) -> None:
        self.runs = RunViews(ws, catalogue)
        self.inputs = InputViews(ws)
        self.launch = Launcher(ws, api)
