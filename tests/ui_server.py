"""Fixtures of the `cosmos ui` tests: a real server on a copy of the demo, and pages in Chromium.

The fixture is registered by conftest.py (``pytest_plugins``). `ui_server`
is uvicorn serving ``build_app`` in a thread, on a free port of 127.0.0.1,
over the module's own copy of the demo project (made once per module;
``ui_server.project`` is that copy, ``ui_server.api`` its API).
`start_ui(project, ...)` starts another (a token, a shorter poll).
`open_page(browser, url)` opens a page in the session's Chromium and collects
its script errors; `screenshot(page, name)` writes .work/ui-screens/NAME.png.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Project, copy_project

SCREENS = REPO / ".work" / "ui-screens"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Answer:
    """An HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class UiServer:
    """A running `cosmos ui` app: its project, API, base URL and token."""

    project: Project
    api: Any
    app: Any
    url: str
    token: str | None = None
    server: Any = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Answer:
        """One request to the app (redirects followed, no cookies kept)."""
        request = urllib.request.Request(
            self.origin + path, data=data, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return Answer(answer.status, _lower(answer.headers), answer.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, _lower(error.headers), error.read())

    def get(self, path: str, **headers: str) -> Answer:
        return self.request(path, headers={k.replace("_", "-"): v for k, v in headers.items()})


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@contextlib.contextmanager
def start_ui(project: Project, **options: Any) -> Iterator[UiServer]:
    """`cosmos ui` on ``project`` in a thread (UiOptions fields as keywords); stopped after."""
    from cosmos_workflow.api import CosmosAPI
    from cosmos_workflow.ui.app import UiOptions, build_app, make_server, stop

    # As `cosmos ui` makes it: every target of the project, configured or not.
    api = CosmosAPI.from_project(project.root, environ=project.env, all_targets=True)
    ui_options = UiOptions(**{"poll_s": 0.2, **options})
    app = build_app(api, ui_options)
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, name="cosmos-ui", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the ui server stopped while starting"
        assert time.monotonic() < deadline, "the ui server did not start in 20 s"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield UiServer(project, api, app, f"http://127.0.0.1:{port}/", ui_options.token, server)
    finally:
        stop(server)
        thread.join(timeout=15)
        api.close()


@pytest.fixture(scope="module")
def ui_server(
    demo_template: Project, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UiServer]:
    """`cosmos ui` on 127.0.0.1 (no token) over the module's own copy of the demo project."""
    project = copy_project(demo_template, tmp_path_factory.mktemp("ui") / "proj")
    with start_ui(project) as server:
        yield server


def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    """A new Chromium page at ``url``, and the list its script errors are collected in."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return page, errors


def wait_js(page: Any, expression: str, timeout: float = 10.0) -> Any:
    """Wait until ``expression`` is truthy in the page; its value.

    Polled with page.evaluate: the app's Content-Security-Policy forbids the
    eval that Playwright's wait_for_function uses.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        assert time.monotonic() < deadline, f"not true in {timeout} s: {expression}"
        time.sleep(0.05)


def screenshot(page: Any, name: str, also: Path | None = None) -> Path:
    """A full-page PNG of ``page`` as .work/ui-screens/NAME.png (and at ``also``)."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    if also is not None:
        also.parent.mkdir(parents=True, exist_ok=True)
        also.write_bytes(data)
    return path
