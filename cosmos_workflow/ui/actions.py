"""What the pages' state-changing requests share: reading a form, calling the API, answering.

A form arrives urlencoded (an HTML form, its CSRF token in the field
``csrf``) or as JSON (``cosmos.send`` of ui.js, the token in a header); the
security middleware has checked the token already. The API's work runs in
the thread pool; a refusal (a CosmosError) is shown as a page that says
why, with the status that fits it, never as a server error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs

from cosmos_workflow.errors import (
    CosmosError,
    NotFoundFailure,
    StateError,
    ValidationFailure,
)

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

T = TypeVar("T")

# The largest form read (prompt text and a few fields are far smaller).
FORM_MAX_BYTES = 1 << 20


class Form:
    """The fields of a submitted form: each name's values, in order."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def one(self, name: str, default: str | None = None) -> str | None:
        """The field's last value, stripped (``default`` when missing or blank)."""
        values = self.fields.get(name) or []
        value = values[-1].strip() if values else ""
        return value or default

    def all(self, name: str) -> list[str]:
        """Every non-blank value of the field."""
        return [v.strip() for v in self.fields.get(name, []) if v.strip()]

    def flag(self, name: str) -> bool:
        """True for a ticked checkbox (any value but "", "0", "false", "off")."""
        return (self.one(name) or "").lower() not in ("", "0", "false", "off", "no")


async def read_form(request: Request) -> Form:
    """The request's form (urlencoded or a JSON object of strings, numbers or lists).

    Raises:
        ValidationFailure: too large, or not a form.
    """
    body = await request.body()
    if len(body) > FORM_MAX_BYTES:
        raise ValidationFailure("the form is too large")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise ValidationFailure(f"not a JSON form: {exc}") from exc
        if not isinstance(data, dict):
            raise ValidationFailure("the JSON form must be an object")
        return Form({str(k): [str(x) for x in _listed(v)] for k, v in data.items()})
    return Form(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


async def call(request: Request, work: Callable[[], T]) -> T | Response:
    """``work()`` in the thread pool; a CosmosError becomes an error page.

    Returns:
        What ``work`` returned, or the error page (a Response).
    """
    from starlette.concurrency import run_in_threadpool

    try:
        return await run_in_threadpool(work)
    except CosmosError as exc:
        return refused(request, exc)


def answered(value: object) -> bool:
    """True if :func:`call` answered already (an error page) instead of returning a value."""
    from starlette.responses import Response

    return isinstance(value, Response)


def refused(request: Request, exc: CosmosError) -> Response:
    """An error page saying why the API refused (404, 400, 409 or 502)."""
    from cosmos_workflow.ui.render import page

    status = 502
    if isinstance(exc, NotFoundFailure):
        status = 404
    elif isinstance(exc, ValidationFailure):
        status = 400
    elif isinstance(exc, StateError):
        status = 409
    title = "Refused" if status < 500 else "Failed"
    return page(request, "error.html.j2", status_code=status, title=title, message=str(exc))


def see_other(url: str) -> Response:
    """Go to ``url`` (after a POST: 303, the browser GETs it)."""
    from starlette.responses import RedirectResponse

    return RedirectResponse(url, status_code=303)


def wants_json(request: Request) -> bool:
    """True for a request of a script (JSON body), which gets JSON rather than a redirect."""
    return request.headers.get("content-type", "").startswith("application/json")
