"""The Sweeps page (``/``) and a sweep's page (``/sweeps/{id}``): its grid, live.

The sweep page's view is all in its query string: ``rows`` and ``cols``
(axes, as `cosmos report --rows/--cols`), ``status`` and ``rating``
(repeatable; a rating is 1-5 or ``none``) and ``v.AXIS`` (repeatable: the
values of that axis to show).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cosmos_workflow.api.views import UNRATED, GridFilter
from cosmos_workflow.database.states import RunStatus
from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.ui.render import page

if TYPE_CHECKING:
    from starlette.datastructures import QueryParams
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from cosmos_workflow.api import CosmosAPI

VALUE_PREFIX = "v."
STATUSES = tuple(status.value for status in RunStatus)
RATINGS = ("5", "4", "3", "2", "1", UNRATED)


def routes() -> list[BaseRoute]:
    """``/`` (every sweep) and ``/sweeps/{sweep_id}`` (one sweep's grid)."""
    from starlette.routing import Route

    return [Route("/", sweeps), Route("/sweeps/{sweep_id}", sweep)]


def sweeps(request: Request) -> Response:
    """Every sweep, newest first: counts by status, stage and ETA (live)."""
    api: CosmosAPI = request.app.state.api
    return page(request, "sweeps.html.j2", sweeps=api.views.sweep_summaries())


def grid_filter(query: QueryParams) -> GridFilter:
    """The filter a sweep page's query string asks for.

    Raises:
        ValidationFailure: an unknown status or rating.
    """
    statuses = tuple(query.getlist("status"))
    ratings = tuple(query.getlist("rating"))
    for name, given, known in (("status", statuses, STATUSES), ("rating", ratings, RATINGS)):
        wrong = [value for value in given if value not in known]
        if wrong:
            raise ValidationFailure(
                f"{name}: unknown value {wrong[0]!r}; one of: {', '.join(known)}"
            )
    values = {
        key[len(VALUE_PREFIX) :]: tuple(query.getlist(key))
        for key in query
        if key.startswith(VALUE_PREFIX)
    }
    return GridFilter(statuses, ratings, values)


def sweep(request: Request) -> Response:
    """A sweep's grid: two axes, sections for the others, filters; cells update live."""
    api: CosmosAPI = request.app.state.api
    sweep_id = api.resolve_id(request.path_params["sweep_id"], "sw")
    query = request.query_params
    only = grid_filter(query)
    grid = api.views.sweep_grid(
        sweep_id, query.get("rows") or None, query.get("cols") or None, only
    )
    return page(
        request,
        "sweep.html.j2",
        grid=grid,
        only=only,
        statuses=STATUSES,
        ratings=RATINGS,
        value_prefix=VALUE_PREFIX,
    )
