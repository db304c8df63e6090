"""The prompts page (``/prompts``): search, filters, create, enhance, launch inference.

Its view is in the query string: ``q`` (text in the id, name, prompt or
negative prompt), ``enhanced`` (``yes``/``no``) and ``runs``
(``with``/``without``). Launching posts the inference form (ui/launch_form.py)
with one or many ticked prompts: `cosmos inference` starts detached
(api/launch.py) and the page of its sweep (several prompts) or run (one)
opens.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cosmos_workflow.ui.actions import answered, call, read_form, see_other
from cosmos_workflow.ui.launch_form import form_defaults, launch_options
from cosmos_workflow.ui.render import page

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from cosmos_workflow.api import CosmosAPI

CHOICES = {"yes": True, "no": False, "with": True, "without": False}


def routes() -> list[BaseRoute]:
    """The page, and its launch, create and enhance actions."""
    from starlette.routing import Route

    return [
        Route("/prompts", prompts_page),
        Route("/prompts/launch", launch, methods=["POST"]),
        Route("/prompts/create", create, methods=["POST"]),
        Route("/prompts/{prompt_id}/enhance", enhance, methods=["POST"]),
    ]


def _api(request: Request) -> CosmosAPI:
    return request.app.state.api


def prompts_page(request: Request) -> Response:
    """The prompts the filters select, the launch form and the create form."""
    api = _api(request)
    query = request.query_params
    text = query.get("q", "").strip()
    view = {
        "q": text,
        "enhanced": query.get("enhanced", ""),
        "runs": query.get("runs", ""),
        "folder": query.get("folder", ""),
    }
    prompts = api.web.runs.prompts(
        text or None, CHOICES.get(view["enhanced"]), CHOICES.get(view["runs"])
    )
    folders = api.web.inputs.folders()
    return page(
        request,
        "prompts.html.j2",
        prompts=prompts,
        view=view,
        form=form_defaults(api),
        folders=folders,
        picked=set(query.getlist("pick")),
    )


async def launch(request: Request) -> Response:
    """`cosmos inference` on the ticked prompts (``prompt``, repeatable), detached."""
    form = await read_form(request)
    prompts = form.all("prompt")
    options = launch_options(form)
    launched = await call(request, lambda: _api(request).web.launch.inference(prompts, options))
    if answered(launched):
        return launched
    if launched.sweep_id:
        return see_other(f"/sweeps/{launched.sweep_id}")
    return see_other(f"/runs/{launched.run_ids[0]}")


async def create(request: Request) -> Response:
    """A new prompt from an input folder (``folder``, ``text``, ``name``, ``negative``)."""
    form = await read_form(request)
    folder = form.one("folder") or ""
    text = form.fields.get("text", [""])[-1]
    api = _api(request)
    created = await call(
        request,
        lambda: api.create_prompt(text, Path(folder), form.one("name"), form.one("negative")),
    )
    if answered(created):
        return created
    return see_other(f"/prompts?q={created.id}")


async def enhance(request: Request) -> Response:
    """Enhance a prompt: the upsampler's run starts; its page shows the new text."""
    prompt_id = request.path_params["prompt_id"]
    launched = await call(request, lambda: _api(request).web.launch.enhance(prompt_id))
    if answered(launched):
        return launched
    return see_other(f"/runs/{launched.run_ids[0]}")
