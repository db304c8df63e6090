"""The run, prompts, inputs and queue pages of `cosmos ui`, in headless Chromium and over HTTP.

Each page loads on the demo's data without script errors (a screenshot of
each is written to .work/ui-screens/); pressing 5 on a run page stores the
rating; the inference form starts a sweep that finishes and shows in its
grid; the queue page cancels a running run; deleting a run asks about what
was made from it; hostile text renders as text; no secret is rendered.
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, make_project
from ui_server import UiServer, open_page, screenshot, start_ui, wait_js


@pytest.fixture(scope="module")
def ui(ui_server: UiServer) -> UiServer:
    """The module's server; what it launches gets the project's environment."""
    ui_server.api.web.launch.environ = ui_server.project.env
    return ui_server


def _wait(predicate: Callable[[], Any], timeout: float = 25.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _csrf(ui: UiServer, path: str = "/prompts") -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', ui.get(path).text)
    assert found
    return found.group(1)


def _post(ui: UiServer, path: str, fields: dict[str, Any]) -> Any:
    data = urllib.parse.urlencode({"csrf": _csrf(ui), **fields}, doseq=True).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": ui.origin}
    return ui.request(path, "POST", headers, data)


def _first_run(ui: UiServer, prompt: str = "forest") -> dict[str, Any]:
    return ui.api.list_runs(prompt=prompt)[0]


# -- every page ----------------------------------------------------------------------------
def test_a_run_page_shows_its_videos_prompts_parameters_and_log(ui: UiServer, browser) -> None:
    run = _first_run(ui)
    page, errors = open_page(browser, f"{ui.url}runs/{run['id']}")
    try:
        assert page.locator("video#output").get_attribute("src").startswith("/files/")
        assert page.locator("figcaption", has_text="control depth (computed").count() == 1
        assert page.locator("figcaption", has_text="input").count() >= 1
        differs = page.locator("table.params tr.differs th").all_inner_texts()
        assert sorted(differs) == ["model.seed", "model.weights.depth", "prompt"]
        assert "[simulated]" in page.locator("pre#log").inner_text()
        assert page.locator('a[href^="/sweeps/"]').count() >= 1
        page.evaluate("document.getElementById('output').currentTime = 0.5")
        wait_js(page, "[...document.querySelectorAll('video')].every(v => v.readyState >= 2)")
        screenshot(page, "run")
        assert errors == []
    finally:
        page.close()


@pytest.mark.parametrize(
    ("path", "name", "expect"),
    [
        ("/prompts", "prompts", "tr[data-prompt]"),
        ("/prompts?q=forest&runs=with&enhanced=no", "prompts-filtered", "tr[data-prompt]"),
        ("/inputs", "inputs", "section.folder"),
        ("/queue", "queue", "section.target"),
    ],
)
def test_each_page_loads_on_the_demo(ui: UiServer, browser, path, name, expect) -> None:
    page, errors = open_page(browser, ui.url + path.lstrip("/"))
    try:
        assert page.locator(expect).count() >= 1
        if name == "prompts-filtered":
            assert page.locator(expect).count() == 1
        if name == "inputs":
            assert page.locator("section.folder").count() == 2
            wait_js(
                page,
                "[...document.querySelectorAll('figure.input img')]"
                ".every(i => i.complete && i.naturalWidth > 0)",
            )
        screenshot(page, name)
        assert errors == []
    finally:
        page.close()


# -- rating ----------------------------------------------------------------------------------
def test_pressing_5_on_a_run_page_stores_the_rating(ui: UiServer, browser) -> None:
    run = _first_run(ui, "street")
    page, errors = open_page(browser, f"{ui.url}runs/{run['id']}")
    try:
        page.keyboard.press("5")
        page.wait_for_selector("#rated:has-text('rated 5')")
        assert page.locator(".rating .star.on").count() == 5
        screenshot(page, "run-rated")
        assert errors == []
    finally:
        page.close()
    rated = ui.project.cosmos_json("list", "runs", "--rating", "5")
    assert run["id"] in [r["id"] for r in rated]


def test_a_rating_without_the_csrf_token_is_refused(ui: UiServer) -> None:
    run = _first_run(ui)
    answer = ui.request(
        f"/runs/{run['id']}/rate",
        "POST",
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": ui.origin},
        b"rating=2",
    )
    assert answer.status == 403
    assert ui.api.show(run["id"])["rating"] != 2


# -- launching -------------------------------------------------------------------------------
def test_the_inference_form_starts_a_sweep_that_finishes_in_its_grid(ui: UiServer, browser) -> None:
    page, errors = open_page(browser, f"{ui.url}prompts")
    try:
        page.check("#pick-all")
        page.fill("input[name=seed]", "4242")
        page.check("input[name='use.depth']")
        page.fill("input[name='weight.depth']", "0.35")
        with page.expect_navigation(url=re.compile(r"/sweeps/sw_"), timeout=60_000):
            page.click("#launch-button")
        sweep_id = page.url.rsplit("/", 1)[1].split("?")[0]
        wait_js(
            page,
            "document.querySelectorAll('.cell').length == 2 && [...document"
            ".querySelectorAll('.cell')].every(c => c.classList.contains('st-succeeded'))",
            timeout=25,
        )
        screenshot(page, "launched-sweep")
        assert errors == []
    finally:
        page.close()
    runs = ui.api.show(sweep_id)["runs"]
    assert len(runs) == 2 and {r["status"] for r in runs} == {"succeeded"}
    seeds = {ui.api.web.runs.run(r["id"])["texts"]["run"].count("seed: 4242") for r in runs}
    assert seeds == {1}


def test_a_finished_runs_log_stream_sends_its_lines_then_ends(ui: UiServer) -> None:
    run_id = _first_run(ui)["id"]
    answer = ui.get(f"/runs/{run_id}/log")
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = [block.split("\n") for block in answer.text.strip().split("\n\n")]
    kinds = [lines[0] for lines in events]
    assert kinds[-1] == "event: end" and events[-1][1] == 'data: "succeeded"'
    assert set(kinds[:-1]) == {"event: line"} and len(kinds) > 3
    assert ui.get("/runs/rs_0000000000000000/log").status == 404


def test_a_runs_again_form_holds_its_parameters(ui: UiServer) -> None:
    run = ui.api.web.runs.run(_first_run(ui)["id"])
    seed = next(p["value"] for p in run["params"] if p["key"] == "model.seed")
    html = ui.get(f"/runs/{run['id']}").text
    form = html.split('action="/prompts/launch"', 1)[1].split("</form>", 1)[0]
    assert f'name="prompt" value="{run["prompt_id"]}"' in form
    assert f'name="seed" value="{seed}"' in form
    assert re.search(r'name="use.depth" value="1" checked', form)
    assert not re.search(r'name="use.edge" value="1" checked', form)


def test_create_upscale_and_enhance_from_the_pages(own_ui: UiServer) -> None:
    folder = own_ui.project.root / "inputs" / "demo" / "street"
    answer = _post(
        own_ui,
        "/prompts/create",
        {"folder": str(folder), "text": "a street at noon", "name": "noon"},
    )
    assert answer.status == 200 and "a street at noon" in answer.text
    (noon,) = [p for p in own_ui.api.list_prompts() if p["name"] == "noon"]
    parent = _first_run(own_ui)["id"]
    answer = _post(own_ui, f"/runs/{parent}/upscale", {"weight": "0.6"})
    assert answer.status == 200 and "simulated_upscaler" in answer.text
    answer = _post(own_ui, f"/prompts/{noon['id']}/enhance", {})
    assert answer.status == 200, answer.text[-400:]
    upsampler = re.search(r'data-run="(rs_[0-9a-f]+)"', answer.text).group(1)
    _wait(
        lambda: (
            own_ui.api.show(upsampler)["status"] == "succeeded"
            and own_ui.api.web.runs.run(parent)["children"][0]["status"] == "succeeded"
        ),
        what="the upscale and the enhancement",
    )
    _wait(lambda: own_ui.api.show(noon["id"])["children"], what="the enhanced prompt")
    page = own_ui.get("/prompts?q=noon&enhanced=yes").text
    assert page.count("<tr data-prompt=") == 1


def test_a_bad_launch_says_why_and_starts_nothing(ui: UiServer) -> None:
    answer = _post(ui, "/prompts/launch", {"prompt": "forest", "seed": "-3"})
    assert answer.status == 400
    assert "seed" in answer.text


@pytest.fixture
def own_ui(demo_project: Project) -> Iterator[UiServer]:
    """A server of the test's own (it changes the project)."""
    with start_ui(demo_project) as server:
        server.api.web.launch.environ = demo_project.env
        yield server


def test_a_prompt_named_like_an_option_is_launched_as_a_prompt(own_ui: UiServer) -> None:
    """A prompt's name never becomes an option of the command started (e.g. --set)."""
    folder = own_ui.project.root / "inputs" / "demo" / "street"
    name = "--set=model.seed=5"
    fields = {"folder": str(folder), "text": "a street at dusk", "name": name}
    assert _post(own_ui, "/prompts/create", fields).status == 200
    answer = _post(own_ui, "/prompts/launch", {"prompt": name, "seed": "41"})
    assert answer.status == 200, answer.text[-600:]
    (run,) = own_ui.api.list_runs(prompt=name)
    spec = own_ui.api.show(run["id"])["spec"]
    assert spec["prompt"]["name"] == name and spec["model"]["seed"] == 41


def test_a_running_runs_log_is_live_and_kill_from_the_queue_cancels_it(
    own_ui: UiServer, browser
) -> None:
    slow = {**own_ui.project.env, "COSMOS_SIMULATOR__PER_VIDEO_S": "30"}
    own_ui.api.web.launch.environ = slow
    launched = own_ui.api.web.launch.inference(["forest"], {"seed": 31337, "weights": {"depth": 1}})
    run_id = launched.run_ids[0]
    _wait(lambda: own_ui.api.show(run_id)["status"] == "running", what="the run to start")
    page, errors = open_page(browser, f"{own_ui.url}runs/{run_id}")
    try:
        wait_js(page, "document.getElementById('log').textContent.includes('model loaded')")
        assert page.locator("#status").inner_text() == "running"
        screenshot(page, "run-live-log")
        page.goto(f"{own_ui.url}queue")
        page.on("dialog", lambda dialog: dialog.accept())
        button = page.locator("button.kill-run")
        assert button.count() == 1
        row = page.locator("table.jobs tbody tr").first.inner_text()
        assert run_id in row and "unknown" not in row.split(run_id)[1].split()[0]
        screenshot(page, "queue-running")
        with page.expect_navigation():
            button.click()
        assert errors == []
    finally:
        page.close()
    _wait(lambda: own_ui.api.show(run_id)["status"] == "cancelled", what="the run cancelled")


def test_the_queue_page_reloads_when_a_run_starts_and_not_for_old_news(
    own_ui: UiServer, browser
) -> None:
    # A run that finished just now: the live poll's first answer reports it.
    done = own_ui.api.web.launch.inference(["street"], {"seed": 5150, "weights": {"depth": 1}})
    _wait(lambda: own_ui.api.show(done.run_ids[0])["status"] == "succeeded", what="a quiet queue")
    page, errors = open_page(browser, f"{own_ui.url}queue")
    try:
        loads = []
        page.on("load", lambda _: loads.append(1))
        page.wait_for_timeout(2500)
        assert loads == [], "the queue page reloaded for runs it does not show"
        slow = {**own_ui.project.env, "COSMOS_SIMULATOR__PER_VIDEO_S": "30"}
        own_ui.api.web.launch.environ = slow
        launched = own_ui.api.web.launch.inference(["forest"], {"seed": 6, "weights": {"depth": 1}})
        page.wait_for_selector("button.kill-run", timeout=20_000)
        assert launched.run_ids[0] in page.inner_text("table.jobs")
        assert errors == []
    finally:
        page.close()
    own_ui.api.kill(launched.run_ids[0])


def test_a_launch_outlives_the_server(demo_project: Project) -> None:
    slow = {**demo_project.env, "COSMOS_SIMULATOR__PER_VIDEO_S": "1"}
    with start_ui(demo_project) as server:
        server.api.web.launch.environ = slow
        answer = _post(
            server,
            "/prompts/launch",
            {
                "prompt": ["forest", "street"],
                "seed": "777",
                "use.depth": "1",
                "weight.depth": "0.4",
            },
        )
        # Redirected to the sweep's page.
        assert answer.status == 200
        sweep_id = re.search(r'data-sweep="(sw_[0-9a-f]+)"', answer.text).group(1)
    # The server is stopped; the sweep goes on and finishes.
    done = _wait(
        lambda: demo_project.cosmos_json("show", sweep_id)["counts"]["succeeded"] == 2,
        what="the sweep to finish after the server stopped",
    )
    assert done


# -- delete ------------------------------------------------------------------------------------
def test_delete_asks_about_children_and_deletes_them_if_told(own_ui: UiServer, browser) -> None:
    parent = _first_run(own_ui)["id"]
    assert own_ui.project.cosmos("upscale", parent).returncode == 0
    child = own_ui.api.web.runs.run(parent)["children"][0]["id"]
    page, errors = open_page(browser, f"{own_ui.url}runs/{parent}")
    try:
        with page.expect_navigation():
            page.click("a.button.danger")
        assert "2 object(s) were made from it" in page.inner_text("form.confirm")
        assert page.locator(f'a[href="/runs/{child}"]').count() == 1
        screenshot(page, "delete-question")
        page.check("input[name=children][value='1']")
        with page.expect_navigation():
            page.click("form.confirm button.danger")
        assert page.locator("h1").inner_text() == "Deleted"
        assert errors == []
    finally:
        page.close()
    left = {r["id"] for r in own_ui.project.cosmos_json("list", "runs")}
    assert parent not in left and child not in left


# -- hostile text and secrets ------------------------------------------------------------------
HOSTILE = [
    "<script>window.__pwned=1</script>",
    '"><img src=x onerror="window.__pwned=1">',
    "javascript:window.__pwned=1",
    "' onmouseover='window.__pwned=1",
]


def test_hostile_prompt_text_names_and_folders_render_as_text(own_ui: UiServer, browser) -> None:
    project = own_ui.project
    folder = project.root / "inputs" / 'evil"><script>window.__pwned=1</script>'
    shutil.copytree(project.root / "inputs" / "demo" / "forest", folder)
    created = own_ui.api.create_prompt(
        " ".join(HOSTILE), folder, name=HOSTILE[1][:40], negative=HOSTILE[2]
    )
    launched = own_ui.api.web.launch.inference([created.id], {"weights": {"depth": 0.5}})
    run_id = launched.run_ids[0]
    _wait(lambda: own_ui.api.show(run_id)["status"] == "succeeded", what="the hostile run")
    pages = [f"runs/{run_id}", "prompts", f"prompts?q={urllib.parse.quote(HOSTILE[0])}", "inputs"]
    for path in pages:
        html = own_ui.get("/" + path).text
        for payload in HOSTILE[:2]:
            assert payload not in html, (path, payload)
        assert 'href="javascript:' not in html.lower()
        page, errors = open_page(browser, own_ui.url + path)
        try:
            page.mouse.move(10, 10)
            assert page.evaluate("window.__pwned") is None, path
            assert page.locator("img[src=x]").count() == 0
            if path == "prompts":
                assert HOSTILE[0] in page.inner_text("table.prompts")
                screenshot(page, "prompts-hostile")
            assert errors == []
        finally:
            page.close()


def _asgi_get(app: Any, path: str) -> tuple[int, str]:
    """GET ``path`` from the ASGI app in this thread (no server): status and body."""
    import asyncio

    async def call() -> tuple[int, str]:
        sent: list[dict[str, Any]] = []
        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "scheme": "http",
            "http_version": "1.1",
            "root_path": "",
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return status, body.decode()

    # Playwright's loop runs in this thread: the app gets a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, call()).result()


def test_no_secret_is_rendered(demo_project: Project) -> None:
    from cosmos_workflow.api import CosmosAPI
    from cosmos_workflow.ui.app import UiOptions, build_app

    key = demo_project.root / "secret_key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET-KEY-MATERIAL\n")
    key.chmod(0o600)
    overrides = [
        "target=ssh",
        "target.host=127.0.0.1",
        "target.port=1",
        "target.user=someone",
        f"target.key_file={key}",
        "target.work_dir=/tmp/x",
        "target.image=none",
        "target.connect_timeout=2",
    ]
    api = CosmosAPI.from_project(
        demo_project.root, overrides, environ=demo_project.env, all_targets=True
    )
    with api:
        app = build_app(api, UiOptions())
        run_id = api.list_runs(limit=1)[0]["id"]
        for path in ("/queue", "/prompts", "/inputs", f"/runs/{run_id}"):
            status, html = _asgi_get(app, path)
            assert status == 200, (path, html[-500:])
            assert "SECRET-KEY-MATERIAL" not in html and "PRIVATE KEY" not in html, path
        status, html = _asgi_get(app, "/queue")
        assert "ssh" in html and "unreachable" in html


def test_the_queue_page_names_a_target_that_is_not_configured(demo_project: Project) -> None:
    from cosmos_workflow.api import CosmosAPI
    from cosmos_workflow.ui.app import UiOptions, build_app

    # The project's conf/target/ssh.yaml leaves host, user, work_dir and image unset.
    api = CosmosAPI.from_project(demo_project.root, environ=demo_project.env, all_targets=True)
    with api:
        status, html = _asgi_get(build_app(api, UiOptions()), "/queue")
    assert status == 200, html[-800:]
    ssh = re.search(r"<h2>ssh (.*?)</h2>", html)
    assert ssh is not None and "not configured" in ssh.group(1)
    assert "unreachable" not in html


def test_no_database_password_is_rendered_on_these_pages(
    pg_cluster: Any, pg_database: str, tmp_path: Path
) -> None:
    password = "s3cret-Pa55word-pages"
    project = make_project(tmp_path / "proj")
    project.env["COSMOS_DATABASE__URL"] = pg_cluster.url(pg_database, password=password)
    done = project.batch("+experiment=demo")
    assert done.returncode == 0, done.stdout + done.stderr
    with start_ui(project) as server:
        run_id = server.api.list_runs(limit=1)[0]["id"]
        paths = ["/queue", "/prompts", "/inputs", f"/runs/{run_id}", f"/runs/{run_id}/delete"]
        for path in paths:
            answer = server.get(path)
            assert answer.status == 200, path
            assert password not in answer.text, path
        assert password not in server.get("/runs/rs_0000000000000000").text
