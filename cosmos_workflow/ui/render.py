"""Pages of `cosmos ui`: Jinja2 templates (autoescaped) rendered into HTML responses.

Every page extends ``base.html.j2`` (the nav: Sweeps | Prompts | Inputs |
Queue, and ``{% block content %}``) and gets in its context: ``request``,
``csrf`` (the token every state-changing request carries; in forms, the
macro ``csrf_field()`` of base.html.j2), ``file_url(path)`` (a /files/ URL
for a file the app may serve, else None) and ``fmt`` (a parameter value as
a manifest spells it), and the filters ``duration`` (seconds for people)
and ``eta`` (of a sweep summary).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Environment
    from starlette.requests import Request
    from starlette.responses import HTMLResponse

NAV = (("Sweeps", "/"), ("Prompts", "/prompts"), ("Inputs", "/inputs"), ("Queue", "/queue"))


def make_environment() -> Environment:
    """The templates of cosmos_workflow/ui/templates/: autoescaped, strict about names."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    from cosmos_workflow.outputs.axes import format_value

    env = Environment(
        loader=PackageLoader("cosmos_workflow.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(nav=NAV, fmt=format_value)
    env.filters["duration"] = duration
    env.filters["eta"] = eta
    return env


def eta(summary: dict[str, Any]) -> str:
    """A sweep summary's ETA for people: "done" when nothing is left, else its duration."""
    counts = summary["counts"]
    if not any(counts.get(status) for status in ("pending", "queued", "running")):
        return "done"
    return duration(summary["eta_s"])


def duration(seconds: float | None) -> str:
    """Seconds for people, as the CLI writes them (engine/eta.py); "-" when unknown."""
    from cosmos_workflow.engine.eta import format_duration

    return "-" if seconds is None else format_duration(seconds)


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered with ``context`` (and request, csrf, file_url) as a response."""
    from starlette.responses import HTMLResponse

    from cosmos_workflow.ui.files import file_url

    env: Environment = request.app.state.jinja
    html = env.get_template(template).render(
        request=request,
        csrf=request.app.state.csrf,
        file_url=lambda path: file_url(request, path),
        **context,
    )
    return HTMLResponse(html, status_code=status_code)
