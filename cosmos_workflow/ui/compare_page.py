"""The compare view (``/compare?runs=a,b,...``): runs side by side, played in sync.

Every video of the page (the runs' outputs, their input and control videos)
follows one set of controls: play, pause, seek and frame steps; an A/B wipe
shows two outputs in one frame, split where the slider is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cosmos_workflow.ui.render import page

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from cosmos_workflow.api import CosmosAPI

DEFAULT_FPS = 24


def routes() -> list[BaseRoute]:
    """``/compare``."""
    from starlette.routing import Route

    return [Route("/compare", compare)]


def compare(request: Request) -> Response:
    """Two or more runs (``runs=a,b`` or repeated ``runs``), their videos in sync."""
    api: CosmosAPI = request.app.state.api
    given = [part for value in request.query_params.getlist("runs") for part in value.split(",")]
    run_ids = [api.resolve_id(part.strip(), "rs") for part in given if part.strip()]
    runs = api.views.compare(list(dict.fromkeys(run_ids)))
    fps = next((run["fps"] for run in runs if run["fps"]), None) or DEFAULT_FPS
    return page(request, "compare.html.j2", runs=runs, fps=fps)
