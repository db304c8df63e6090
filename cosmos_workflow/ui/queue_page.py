"""The queue page (``/queue``): each target and GPU with its jobs, the queued runs, cancel.

Cancelling posts to ``/queue/kill`` (a run: its job stops, with its other
runs) or ``/queue/kill-sweep`` (every unfinished run of a sweep), which
call the API's kill and kill_sweep. The page follows the live updates: a
run that starts, or one shown that changes, reloads it (never the others,
so that the first poll's baseline does not reload it over and over).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cosmos_workflow.ui.actions import answered, call, read_form, see_other
from cosmos_workflow.ui.render import page

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from cosmos_workflow.api import CosmosAPI


def routes() -> list[BaseRoute]:
    """The page and its two cancel actions."""
    from starlette.routing import Route

    return [
        Route("/queue", queue_page),
        Route("/queue/kill", kill, methods=["POST"]),
        Route("/queue/kill-sweep", kill_sweep, methods=["POST"]),
    ]


def queue_page(request: Request) -> Response:
    """Targets, GPUs, running jobs, queued runs and active sweeps."""
    api: CosmosAPI = request.app.state.api
    queue = api.web.runs.queue()
    # What the page shows of each unfinished run: a change of these reloads it.
    shown = {
        run_id: "running" for t in queue["targets"] for j in t["jobs"] for run_id in j["run_ids"]
    }
    shown.update({run["id"]: "queued" for run in queue["queued"]})
    return page(request, "queue.html.j2", queue=queue, shown=shown)


async def kill(request: Request) -> Response:
    """Cancel a run (``run``) and stop its job."""
    form = await read_form(request)
    run_id = form.one("run") or ""
    done = await call(request, lambda: request.app.state.api.kill(run_id))
    return done if answered(done) else see_other("/queue")


async def kill_sweep(request: Request) -> Response:
    """Cancel every unfinished run of a sweep (``sweep``)."""
    form = await read_form(request)
    sweep_id = form.one("sweep") or ""
    done = await call(request, lambda: request.app.state.api.kill_sweep(sweep_id))
    return done if answered(done) else see_other("/queue")
