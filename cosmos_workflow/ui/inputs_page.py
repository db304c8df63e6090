"""The inputs page (``/inputs``): input folders and videos, their facts, previews and uses.

``q`` in the query string keeps the folders whose path holds it. Previews
are thumbnails made on first view (``/inputs/thumb?path=...``, loaded
lazily by the browser); a video plays from the files route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cosmos_workflow.ui.render import page

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from cosmos_workflow.api import CosmosAPI


def routes() -> list[BaseRoute]:
    """The page and its thumbnails."""
    from starlette.routing import Route

    return [Route("/inputs", inputs_page), Route("/inputs/thumb", thumbnail)]


def inputs_page(request: Request) -> Response:
    """Every input folder (or those matching ``q``) with videos, prompts and runs."""
    api: CosmosAPI = request.app.state.api
    text = request.query_params.get("q", "").strip()
    return page(request, "inputs.html.j2", found=api.web.inputs.inputs(text or None), q=text)


def thumbnail(request: Request) -> Response:
    """The JPEG preview of an input video (``path``), made on first request."""
    from starlette.responses import FileResponse

    api: CosmosAPI = request.app.state.api
    path = api.web.inputs.thumbnail(request.query_params.get("path", ""))
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})
