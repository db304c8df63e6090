"""Live updates of `cosmos ui`: one poller per app, server-sent events to every open page.

The :class:`Broadcaster` polls the database through the API (one query
every ``poll_s`` seconds: the runs unfinished or finished lately) while at
least one page listens, and pushes only what changed: each changed run's
status, rating and sweeps, and the summaries of the sweeps they belong to.
Twenty open pages cost what one does: one poll, twenty small writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cosmos_workflow.errors import CosmosError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from cosmos_workflow.api import CosmosAPI

logger = logging.getLogger(__name__)

# Runs that finished this long before the last poll are looked at again (clock skew
# between the runner's machine and this one; a change is pushed once all the same).
MARGIN = timedelta(seconds=60)
# A comment line this often keeps an idle stream open through proxies.
KEEPALIVE_S = 15.0
# Events a slow page may fall behind by before it misses some (it reloads then).
QUEUE_SIZE = 100


class Broadcaster:
    """Polls the runs' states while pages listen and hands each change to all of them.

    Args:
        api: The project's API.
        poll_s: Seconds between polls.
    """

    def __init__(self, api: CosmosAPI, poll_s: float) -> None:
        self._api = api
        self._poll_s = poll_s
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._known: dict[str, tuple[str, int | None]] = {}
        self._since: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self.polls = 0

    @property
    def listeners(self) -> int:
        """How many pages listen now."""
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of the changes from now on (None: the app stops); starts the poller."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        if self._closing:
            queue.put_nowait(None)
            return queue
        self._queues.add(queue)
        self._loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Stop handing changes to ``queue`` (the poller stops with the last one)."""
        self._queues.discard(queue)

    async def stop(self) -> None:
        """End every stream and the poller."""
        self._closing = True
        for queue in list(self._queues):
            _offer(queue, None)
        if self._task is not None:
            self._task.cancel()

    def close(self) -> None:
        """End every stream and the poller, from any thread (the server is stopping)."""
        self._closing = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(self.stop()))

    async def _run(self) -> None:
        from anyio import to_thread

        while self._queues:
            try:
                event = await to_thread.run_sync(self.poll)
            except CosmosError as exc:
                logger.warning("live updates: %s", exc)
                event = None
            if event is not None:
                for queue in list(self._queues):
                    _offer(queue, event)
            await asyncio.sleep(self._poll_s)
        self._known.clear()
        self._since = None

    def poll(self) -> dict[str, Any] | None:
        """One poll: the runs whose status or rating changed since the last, or None."""
        views = self._api.views
        now = views.now()
        states = views.run_states((self._since or now) - MARGIN)
        self.polls += 1
        self._since = now
        changed = [
            {"id": run_id, **state}
            for run_id, state in states.items()
            if self._known.get(run_id) != (state["status"], state["rating"])
        ]
        self._known = {run_id: (s["status"], s["rating"]) for run_id, s in states.items()}
        if not changed:
            return None
        sweeps = sorted({sweep for run in changed for sweep in run["sweeps"]})
        return {"runs": changed, "sweeps": views.sweep_summaries(sweeps) if sweeps else []}


def _offer(queue: asyncio.Queue[dict[str, Any] | None], event: dict[str, Any] | None) -> None:
    """Put ``event`` on ``queue``; a full queue (a stalled page) is told to reload."""
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait({"reload": True})


def routes() -> list[BaseRoute]:
    """/events: the stream of changes (text/event-stream)."""
    from starlette.routing import Route

    return [Route("/events", events)]


async def events(request: Request) -> Response:
    """Server-sent events: ``change`` with the changed runs and their sweeps' summaries."""
    from starlette.responses import StreamingResponse

    return StreamingResponse(
        _stream(request.app.state.broadcaster),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(broadcaster: Broadcaster) -> AsyncIterator[str]:
    # Subscribed here, not in the endpoint: a stream that never starts leaves no listener.
    queue = broadcaster.subscribe()
    try:
        yield "retry: 2000\n: connected\n\n"
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if event is None:
                return
            yield f"event: change\ndata: {json.dumps(event, default=str)}\n\n"
    finally:
        broadcaster.unsubscribe(queue)
