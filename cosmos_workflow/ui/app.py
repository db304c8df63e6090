"""The web app of `cosmos ui`: one CosmosAPI, the pages' routes, security, static files.

Each page module listed in :data:`PAGE_MODULES` exposes ``routes() ->
list[BaseRoute]``; its endpoints reach the API as ``request.app.state.api``
and render with :func:`cosmos_workflow.ui.render.page`. Synchronous endpoints
run in Starlette's thread pool: the API's read models (api/views.py) are
safe to call from several threads.
"""

from __future__ import annotations

import importlib
import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosmos_workflow.ui.security import is_loopback

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from cosmos_workflow.api import CosmosAPI

# Every page module; each has routes() -> list[BaseRoute].
PAGE_MODULES = (
    "cosmos_workflow.ui.files",
    "cosmos_workflow.ui.live",
    "cosmos_workflow.ui.sweeps_page",
    "cosmos_workflow.ui.compare_page",
    "cosmos_workflow.ui.run_page",
    "cosmos_workflow.ui.prompts_page",
    "cosmos_workflow.ui.inputs_page",
    "cosmos_workflow.ui.queue_page",
)
STATIC_DIR = Path(__file__).resolve().parent / "static"
# Seconds requests still open get to end when the server stops.
GRACEFUL_S = 2


@dataclass(frozen=True)
class UiOptions:
    """How the app is served.

    Attributes:
        host: The address it binds (127.0.0.1 by default: this machine only).
        port: The port it listens on.
        token: The access token; required when ``host`` is not a loopback
            address (None there: a random one is made, see :func:`access_token`).
        poll_s: How often the live updates poll the database (one poller per app).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    poll_s: float = 0.5


def access_token(options: UiOptions) -> str | None:
    """The token a request needs: the given one, a new random one off loopback, else None."""
    if options.token:
        return options.token
    return None if is_loopback(options.host) else secrets.token_urlsafe(24)


def build_app(api: CosmosAPI, options: UiOptions) -> Starlette:
    """The app: every page module's routes, /static/, the security middleware.

    Args:
        api: The project's API (shared by every request).
        options: Where it is served; ``options.token`` is used as given (see
            :func:`access_token` to make one).
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    from cosmos_workflow.errors import NotFoundFailure, ValidationFailure
    from cosmos_workflow.ui.files import FileAccess
    from cosmos_workflow.ui.live import Broadcaster
    from cosmos_workflow.ui.render import make_environment
    from cosmos_workflow.ui.security import SecurityMiddleware

    api.views.open()  # the database opened before the thread pool shares the API
    routes: list[Any] = []
    for name in PAGE_MODULES:
        routes.extend(importlib.import_module(name).routes())
    routes.append(Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"))
    csrf = secrets.token_urlsafe(24)
    broadcaster = Broadcaster(api, options.poll_s)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await broadcaster.stop()

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                SecurityMiddleware,
                token=options.token,
                csrf=csrf,
                loopback=is_loopback(options.host),
            )
        ],
        exception_handlers={NotFoundFailure: _not_found, ValidationFailure: _bad_request},
        lifespan=lifespan,
    )
    app.state.api = api
    app.state.options = options
    app.state.csrf = csrf
    app.state.jinja = make_environment()
    app.state.broadcaster = broadcaster
    app.state.files = FileAccess(api)
    return app


def make_server(app: Starlette, host: str, port: int) -> Any:
    """A uvicorn server of ``app`` (``port`` 0: any free one) that ends open streams on exit.

    Its ``run()`` serves until Ctrl-C or ``stop(server)``; open pages' event
    streams are ended first, so it stops at once.
    """
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.broadcaster.close()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_S,
    )
    return Server(config)


def stop(server: Any) -> None:
    """Stop a server of :func:`make_server` from another thread."""
    server.config.app.state.broadcaster.close()
    server.should_exit = True


async def _not_found(request: Request, exc: Exception) -> Response:
    from cosmos_workflow.ui.render import page

    return page(request, "error.html.j2", status_code=404, title="Not found", message=str(exc))


async def _bad_request(request: Request, exc: Exception) -> Response:
    from cosmos_workflow.ui.render import page

    return page(request, "error.html.j2", status_code=400, title="Bad request", message=str(exc))
