"""A run's page (``/runs/{id}``) and its actions: rate, upscale, enhance, kill, delete.

The page shows the run's output video, input, the controls given and those
the model computed, its prompts, parameters (those that differ from its
sweep siblings marked), spec, command and log (followed live while it runs:
``/runs/{id}/log`` is a stream of server-sent events), its parent and
children. Upscale and enhance start the same `cosmos` command a user would,
detached (api/launch.py); "run again" posts the prompts page's launch form.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from cosmos_workflow.errors import CosmosError, ValidationFailure
from cosmos_workflow.ui.actions import (
    answered,
    call,
    read_form,
    refused,
    see_other,
    wants_json,
)
from cosmos_workflow.ui.launch_form import form_defaults
from cosmos_workflow.ui.render import page

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from cosmos_workflow.api import CosmosAPI

# A run in these states may still write its log: the page follows it.
LIVE_STATUSES = ("pending", "queued", "running")
# The end of a finished run's log shown on its page.
LOG_LINES = 500
# How often a followed log is read again.
LOG_POLL_S = 1.0


def routes() -> list[BaseRoute]:
    """The run page, its live log and its actions."""
    from starlette.routing import Route

    return [
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/log", run_log),
        Route("/runs/{run_id}/rate", rate, methods=["POST"]),
        Route("/runs/{run_id}/upscale", upscale, methods=["POST"]),
        Route("/runs/{run_id}/enhance", enhance, methods=["POST"]),
        Route("/runs/{run_id}/kill", kill, methods=["POST"]),
        Route("/runs/{run_id}/delete", delete_page, methods=["GET"]),
        Route("/runs/{run_id}/delete", delete, methods=["POST"]),
    ]


def _api(request: Request) -> CosmosAPI:
    return request.app.state.api


def run_page(request: Request) -> Response:
    """Everything about one run (see the module's docstring)."""
    api = _api(request)
    view = api.web.runs.run(request.path_params["run_id"])
    params = {p["key"]: p["value"] for p in view["params"]}
    live = view["status"] in LIVE_STATUSES
    lines: list[str] = []
    if not live:
        api.logs(view["id"], lines.append)
    return page(
        request,
        "run.html.j2",
        run=view,
        again=form_defaults(api, params),
        live=live,
        log_text="\n".join(lines[-LOG_LINES:]),
    )


async def run_log(request: Request) -> Response:
    """The run's log as server-sent events: ``line`` events (JSON strings), then ``end``."""
    from starlette.responses import StreamingResponse

    api = _api(request)
    run_id = api.resolve_id(request.path_params["run_id"], "rs")
    return StreamingResponse(
        _log_events(api, run_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _log_events(api: CosmosAPI, run_id: str) -> AsyncIterator[str]:
    """The log as it grows: read (api.logs, in a worker thread) every LOG_POLL_S, new lines sent.

    Each read is short, so a page that closes stops the reading at once;
    once the run is over, its run folder's copy gives the last lines.
    """
    sent = 0
    while True:
        lines: list[str] = []
        try:
            result = await asyncio.to_thread(api.logs, run_id, lines.append)
        except CosmosError as exc:
            yield _event("end", f"{exc.kind}: {exc}")
            return
        for line in lines[sent:]:
            yield _event("line", line)
        sent = max(sent, len(lines))
        if result.status not in LIVE_STATUSES:
            yield _event("end", result.status)
            return
        await asyncio.sleep(LOG_POLL_S)


def _event(kind: str, text: str) -> str:
    """One server-sent event; the text as a JSON string (one line, whatever it holds)."""
    return f"event: {kind}\ndata: {json.dumps(text)}\n\n"


async def rate(request: Request) -> Response:
    """Rate the run 1-5 (``rating``; empty clears it)."""
    from starlette.responses import JSONResponse

    form = await read_form(request)
    given = form.one("rating")
    if given is not None and not given.isdigit():
        return refused(request, ValidationFailure(f"a rating is 1 to 5, got {given!r}"))
    rating = None if given is None else int(given)
    run_id = request.path_params["run_id"]
    done = await call(request, lambda: _api(request).rate(run_id, rating))
    if answered(done):
        return done
    if wants_json(request):
        return JSONResponse(done)
    return see_other(f"/runs/{done['id']}")


async def upscale(request: Request) -> Response:
    """Upscale the run's output (``weight``): a new run; go to its page."""
    form = await read_form(request)
    weight = form.one("weight")
    try:
        value = None if weight is None else float(weight)
    except ValueError:
        return refused(request, ValidationFailure(f"the weight must be a number, got {weight!r}"))
    run_id = request.path_params["run_id"]
    launched = await call(request, lambda: _api(request).web.launch.upscale(run_id, value))
    if answered(launched):
        return launched
    return see_other(f"/runs/{launched.run_ids[0]}")


async def enhance(request: Request) -> Response:
    """Enhance the run's prompt (the upsampler's run; its page shows the new text)."""
    api = _api(request)
    run_id = request.path_params["run_id"]

    def work() -> Any:
        prompt_id = api.show(api.resolve_id(run_id, "rs"))["prompt_id"]
        return api.web.launch.enhance(prompt_id)

    launched = await call(request, work)
    if answered(launched):
        return launched
    return see_other(f"/runs/{launched.run_ids[0]}")


async def kill(request: Request) -> Response:
    """Cancel the run (and stop its job); back to where the request came from."""
    form = await read_form(request)
    run_id = request.path_params["run_id"]
    done = await call(request, lambda: _api(request).kill(run_id))
    if answered(done):
        return done
    return see_other(_back(form.one("next"), f"/runs/{run_id}"))


def delete_page(request: Request) -> Response:
    """The question before deleting: what goes, and what was made from the run."""
    api = _api(request)
    preview = api.delete_preview("run", request.path_params["run_id"])
    return page(request, "delete.html.j2", kind="run", preview=preview)


async def delete(request: Request) -> Response:
    """Delete the run (``children``: what was made from it too; ``outputs``: its folder)."""
    form = await read_form(request)
    run_id = request.path_params["run_id"]
    api = _api(request)
    done = await call(
        request,
        lambda: api.delete("run", run_id, form.flag("outputs"), form.flag("children")),
    )
    if answered(done):
        return done
    return page(request, "deleted.html.j2", done=done)


def _back(given: str | None, default: str) -> str:
    """A local path to go back to (never another site)."""
    if given and given.startswith("/") and not given.startswith("//"):
        return given
    return default
