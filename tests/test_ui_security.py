"""`cosmos ui`'s security as a client meets it: the token, CSRF, same origin, files, escaping.

Every test talks HTTP to a real server (uvicorn in a thread, tests/ui_server.py).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import yaml
from conftest import Project, copy_project, make_project
from ui_server import UiServer, start_ui

TOKEN = "t0ken-for-the-tests"
# User text that must come out as text: a script, attribute breaks, a javascript: URL.
XSS = (
    "<script>alert('x')</script>",
    '"\' onmouseover=alert(1) x="',
    "javascript:alert(2)",
    "<img src=y onerror=alert(3)>",
)


@pytest.fixture(scope="module")
def guarded(
    demo_template: Project, tmp_path_factory: pytest.TempPathFactory
) -> tuple[UiServer, Project]:
    """The app as bound to a non-loopback address: every request needs the token."""
    project = copy_project(demo_template, tmp_path_factory.mktemp("guarded") / "proj")
    with start_ui(project, host="0.0.0.0", token=TOKEN) as server:
        yield server, project


# ------------------------------------------------------------------ access token
def cookie_name(server: UiServer) -> str:
    """The token cookie's name of the app at ``server``: one per port."""
    return f"cosmos_ui_token_{urlsplit(server.url).port}"


@pytest.mark.parametrize("path", ["/", "/static/ui.css", "/events", "/files/outputs/cosmos.db"])
def test_off_loopback_a_request_without_the_token_is_refused(guarded: Any, path: str) -> None:
    server, _ = guarded
    assert server.get(path).status == 401
    assert server.get(path, cookie=f"{cookie_name(server)}=wrong").status == 401
    assert server.get(f"{path}?token=wrong").status == 401


def unfollowed_get(server: UiServer, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` without following a redirect: status, headers (lower-case), body."""
    import http.client

    connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=30)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (f"/?token={TOKEN}", "/"),
        (f"/prompts?q=forest&token={TOKEN}&runs=with", "/prompts?q=forest&runs=with"),
        (f"//evil.example/x?token={TOKEN}", "/evil.example/x"),
    ],
)
def test_the_token_once_in_the_url_then_the_cookie_opens_every_page(
    guarded: Any, path: str, where: str
) -> None:
    server, _ = guarded
    status, headers, body = unfollowed_get(server, path)
    # The cookie is set and the token leaves the address bar (history, bookmarks, Referer).
    assert status == 303 and headers["location"] == where
    assert TOKEN.encode() not in body
    cookie = headers["set-cookie"]
    # Named after the port: another cosmos ui of this host keeps its own cookie.
    assert cookie.startswith(f"{cookie_name(server)}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    later = server.get(where, cookie=f"{cookie_name(server)}={TOKEN}")
    # The app's own 404 for the path that only looked like another host.
    assert later.status == (404 if "evil" in where else 200)
    assert "set-cookie" not in later.headers
    assert TOKEN not in later.text
    assert server.get("/static/ui.css", cookie=f"{cookie_name(server)}={TOKEN}").status == 200
    assert server.get("/static/ui.css", cookie=f"cosmos_ui_token_1={TOKEN}").status == 401


def test_every_answer_forbids_inline_scripts_framing_and_sniffing(ui_server: UiServer) -> None:
    for path in ("/", "/static/ui.js", "/files/outputs/nothing", "/sweeps/sw_nothing"):
        headers = ui_server.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        # Another site's page cannot embed the videos or thumbnails (<img>, <video>).
        assert headers["cross-origin-resource-policy"] == "same-origin"


def test_on_loopback_no_token_is_needed_but_the_host_must_be_this_machine(
    ui_server: UiServer,
) -> None:
    assert ui_server.get("/").status == 200
    assert ui_server.get("/", host="localhost:1234").status == 200
    # Every loopback address is this machine (e.g. cosmos ui --host 127.0.0.2).
    assert ui_server.get("/", host="127.0.0.2:1234").status == 200
    assert ui_server.get("/", host="[::1]:1234").status == 200
    assert ui_server.get("/", host="10.0.0.1:8765").status == 400
    # A DNS-rebinding page: its own name resolved to 127.0.0.1.
    assert ui_server.get("/", host="attacker.example:8765").status == 400


# ------------------------------------------------------------------ CSRF and origin
def post(server: UiServer, headers: dict[str, str], body: bytes = b"") -> int:
    return server.request("/", method="POST", headers=headers, data=body).status


def test_a_state_change_needs_the_csrf_token_and_the_same_origin(ui_server: UiServer) -> None:
    csrf = ui_server.app.state.csrf
    origin = ui_server.origin
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # Past the checks, the route answers (405: "/" takes no POST).
    assert post(ui_server, {"Origin": origin, "X-CSRF-Token": csrf}) == 405
    assert post(ui_server, {**form, "Origin": origin}, f"csrf={csrf}&x=1".encode()) == 405
    assert post(ui_server, {"Referer": origin + "/sweeps", "X-CSRF-Token": csrf}) == 405
    # Refused: no token, a wrong one, in a body that is not a form, another origin, none.
    assert post(ui_server, {"Origin": origin}) == 403
    assert post(ui_server, {"Origin": origin, "X-CSRF-Token": csrf + "x"}) == 403
    assert post(ui_server, {**form, "Origin": origin}, b"csrf=nope") == 403
    json_body = {"Content-Type": "application/json", "Origin": origin}
    assert post(ui_server, json_body, f'{{"csrf": "{csrf}"}}'.encode()) == 403
    assert post(ui_server, {"Origin": "http://evil.example", "X-CSRF-Token": csrf}) == 403
    assert post(ui_server, {"Origin": "null", "X-CSRF-Token": csrf}) == 403
    assert post(ui_server, {"Referer": "http://evil.example/", "X-CSRF-Token": csrf}) == 403
    assert post(ui_server, {"X-CSRF-Token": csrf}) == 403
    for method in ("PUT", "DELETE", "PATCH"):
        assert ui_server.request("/", method=method, headers={"Origin": origin}).status == 403


def test_after_a_checked_form_the_app_still_hears_the_client_go() -> None:
    """The body read for the CSRF check is handed over again; then the client's own channel."""
    import asyncio

    from cosmos_workflow.ui.security import SecurityMiddleware

    heard: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        heard.append(await receive())
        heard.append(await receive())

    async def main() -> None:
        client: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await client.put({"type": "http.request", "body": b"csrf=C&x=1", "more_body": False})
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1:1"),
                (b"origin", b"http://127.0.0.1:1"),
                (b"content-type", b"application/x-www-form-urlencoded"),
            ],
        }
        guarded = SecurityMiddleware(app, token=None, csrf="C", loopback=True)
        task = asyncio.create_task(guarded(scope, client.get, lambda message: asyncio.sleep(0)))
        await asyncio.sleep(0.05)
        # The client is still there: the app waits rather than hearing a disconnect.
        assert len(heard) == 1 and not task.done()
        await client.put({"type": "http.disconnect"})
        await asyncio.wait_for(task, 5)

    # In a thread of its own: Playwright's sync API may hold this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result()
    assert heard == [
        {"type": "http.request", "body": b"csrf=C&x=1", "more_body": False},
        {"type": "http.disconnect"},
    ]


def state_changing_paths(server: UiServer) -> list[str]:
    """Every route of the app that takes POST, with a real run's and prompt's ids."""
    run = server.api.list_runs(status="succeeded", limit=1)[0]
    ids = {"run_id": run["id"], "prompt_id": run["prompt_id"]}
    paths = []
    for route in server.app.routes:
        if "POST" in (getattr(route, "methods", None) or ()):
            paths.append(route.path.format(**ids))
    return paths


def test_every_route_that_changes_something_refuses_a_request_without_the_csrf_token(
    ui_server: UiServer,
) -> None:
    csrf = ui_server.app.state.csrf
    origin = ui_server.origin
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": origin}
    paths = state_changing_paths(ui_server)
    assert len(paths) >= 8, paths
    before = ui_server.api.list_runs()
    for path in paths:
        for headers, body in (
            (form, b"rating=5&prompt=x"),
            (form, f"rating=5&csrf={csrf[:-1]}".encode()),
            ({**form, "X-CSRF-Token": csrf[:8]}, b"rating=5"),
            ({**form, "X-CSRF-Token": ""}, b"rating=5"),
            ({**form, "X-CSRF-Token": csrf.upper() if csrf != csrf.upper() else csrf.lower()}, b""),
            ({"Content-Type": "text/plain", "Origin": origin}, f"csrf={csrf}".encode()),
        ):
            answer = ui_server.request(path, method="POST", headers=headers, data=body)
            assert answer.status == 403, (path, headers, body)
    assert ui_server.api.list_runs() == before


# ------------------------------------------------------------------ files
def an_output_video(server: UiServer) -> Path:
    (run,) = server.api.list_runs(status="succeeded", limit=1)
    return Path(run["output_path"])


def test_an_output_video_is_served_with_ranges(ui_server: UiServer) -> None:
    video = an_output_video(ui_server)
    data = video.read_bytes()
    size = len(data)
    url = ui_server.app.state.files.url(video)
    assert url == f"/files/outputs/runs/{video.parent.name}/output.mp4"
    whole = ui_server.get(url)
    assert whole.status == 200 and whole.body == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    part = ui_server.get(url, range="bytes=100-199")
    assert part.status == 206 and part.body == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    tail = ui_server.get(url, range="bytes=-50")
    assert tail.status == 206 and tail.body == data[-50:]
    assert tail.headers["content-range"] == f"bytes {size - 50}-{size - 1}/{size}"
    rest = ui_server.get(url, range=f"bytes={size - 10}-")
    assert rest.status == 206 and rest.body == data[-10:]
    past = ui_server.get(url, range=f"bytes={size}-")
    assert past.status == 416 and past.headers["content-range"] == f"bytes */{size}"


def test_input_videos_are_served_where_the_prompts_name_them(ui_server: UiServer) -> None:
    color = ui_server.project.root / "inputs" / "demo" / "street" / "color.mp4"
    url = ui_server.app.state.files.url(color)
    assert url == "/files/inputs/demo/street/color.mp4"
    assert ui_server.get(url).body == color.read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/files/outputs/../conf/config.yaml",
        "/files/outputs/runs/../../conf/config.yaml",
        "/files/outputs/%2e%2e/conf/config.yaml",
        "/files/outputs/%2E%2E%2Fconf%2Fconfig.yaml",
        "/files/inputs/..%2fconf/config.yaml",
        "/files/outputs//etc/passwd",
        "/files/outputs/%2Fetc%2Fpasswd",
        "/files/known/etc/passwd",
        "/files/etc/passwd",
        "/files/outputs/no-such-file.mp4",
        "/files/outputs/runs",
        "/files/outputs/escape-link",
        "/files/outputs/escape-dir/config.yaml",
        "/thumbs/sw_x/../../cosmos.db.jpg",
    ],
)
def test_nothing_outside_the_outputs_and_inputs_is_served(ui_server: UiServer, path: str) -> None:
    outputs = ui_server.project.outputs
    conf = ui_server.project.root / "conf"
    for name, target in (("escape-link", conf / "config.yaml"), ("escape-dir", conf)):
        if not (outputs / name).is_symlink():
            (outputs / name).symlink_to(target)
    answer = ui_server.request(path)
    assert answer.status == 404, (path, answer.status)
    assert ui_server.app.state.files.url(outputs / "escape-link") is None


@pytest.mark.parametrize(
    ("where", "relative", "url"),
    [
        ("outputs", "cosmos.db", "/files/outputs/cosmos.db"),
        ("outputs", ".reserve", "/files/outputs/.reserve"),
        ("outputs", ".staging/job/output.mp4", "/files/outputs/.staging/job/output.mp4"),
        ("outputs", "notes.txt", "/files/outputs/notes.txt"),
        ("inputs", "page.html", "/files/inputs/page.html"),
        ("inputs", "page.js", "/files/inputs/page.js"),
        ("outputs", None, "/files/outputs/output%00.mp4"),
        ("known", None, "/files/known/etc%00/passwd"),
    ],
)
def test_only_videos_outside_hidden_folders_are_served(
    ui_server: UiServer, where: str, relative: str | None, url: str
) -> None:
    """The database, the runner's own files and pages or scripts in inputs/ are never served."""
    root = {"outputs": ui_server.project.outputs, "inputs": ui_server.project.root / "inputs"}
    if relative is not None:
        path = root[where] / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"<script>alert(1)</script>")
        assert path.stat().st_size > 0
        assert ui_server.app.state.files.url(path) is None
    answer = ui_server.request(url)
    assert answer.status == 404, (url, answer.status)


def test_a_symlink_that_stays_inside_is_served(ui_server: UiServer) -> None:
    video = an_output_video(ui_server)
    link = ui_server.project.outputs / "inside-link.mp4"
    if not link.is_symlink():
        link.symlink_to(video)
    answer = ui_server.get("/files/outputs/inside-link.mp4")
    assert answer.status == 200 and answer.body == video.read_bytes()


# ------------------------------------------------------------------ escaping
class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.text.extend(value for _, value in attrs if value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def shown_text(page: str) -> str:
    """What a browser shows of a page: its text and attribute values, unescaped."""
    parser = Tags()
    parser.feed(page)
    return "\n".join(parser.text)


def assert_inert(page: str, where: str) -> None:
    """No script but the app's own files, no event handler, no javascript: link."""
    parser = Tags()
    parser.feed(page)
    for tag, attrs in parser.tags:
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/static/"), (where, attrs)
        for name, value in attrs.items():
            assert not name.startswith("on"), (where, tag, name)
            if name in ("href", "src", "action", "formaction"):
                assert not (value or "").strip().lower().startswith("javascript:"), (where, value)
    for text in XSS:
        assert text not in page or not re.search(r"[<>\"']", text), (where, text)


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> tuple[UiServer, Project]:
    """A sweep whose prompt names, texts, description and swept values are attacks."""
    project = make_project(tmp_path_factory.mktemp("evil") / "proj")
    prompts = {
        f"p{index}{text}": {
            "text": f"{text} a street {{{{ style }}}}",
            "inputs": {"video": "inputs/demo/street/color.mp4"},
        }
        for index, text in enumerate(XSS[:2])
    }
    manifest = {
        "name": "evil",
        "description": " ".join(XSS),
        "prompts": prompts,
        "vars": {"style": "x"},
        "model": {"weights": {"edge": 0.5}},
        "sweep": {"grid": {"vars.style": list(XSS)}},
    }
    project.write(
        "manifests/experiment/evil.yaml", "# @package _global_\n" + yaml.safe_dump(manifest)
    )
    done = project.batch("+experiment=evil")
    assert done.returncode == 0, done.stdout + done.stderr
    with start_ui(project) as server:
        yield server, project


def test_user_text_renders_as_text_on_every_page(evil: Any) -> None:
    server, _ = evil
    (sweep,) = server.api.list_sweeps()
    runs = [run["id"] for run in server.api.list_runs()]
    grid = f"/sweeps/{sweep['id']}?"
    pages = {
        "sweeps": server.get("/"),
        "sweep": server.get(grid),
        "filtered": server.get(grid + urlencode({"v.vars.style": XSS[1]})),
        "compare": server.get(f"/compare?runs={runs[0]},{runs[1]}"),
        "bad axis": server.get(grid + urlencode({"rows": XSS[0]})),
        "bad status": server.get(grid + urlencode({"status": XSS[1]})),
        "unknown run": server.get("/compare?" + urlencode({"runs": f"{XSS[0]},{XSS[2]}"})),
    }
    for where, answer in pages.items():
        assert answer.status in (200, 400, 404), (where, answer.status)
        assert_inert(answer.text, where)
    for where in ("sweep", "filtered"):
        shown = shown_text(pages[where].text)
        for text in XSS:
            assert text in shown, (where, text)
    assert XSS[0] in shown_text(pages["compare"].text)
    assert XSS[0] in shown_text(pages["bad axis"].text)


def test_user_text_renders_as_text_on_the_run_prompt_queue_and_inputs_pages(evil: Any) -> None:
    server, _ = evil
    runs = [run["id"] for run in server.api.list_runs()]
    pages = {f"run {run_id}": server.get(f"/runs/{run_id}") for run_id in runs}
    pages["prompts"] = server.get("/prompts")
    pages["prompts search"] = server.get("/prompts?" + urlencode({"q": XSS[1]}))
    pages["queue"] = server.get("/queue")
    pages["inputs"] = server.get("/inputs")
    for where, answer in pages.items():
        assert answer.status == 200, (where, answer.status)
        assert_inert(answer.text, where)
    shown = {where: shown_text(answer.text) for where, answer in pages.items()}
    for text in XSS:
        # The swept style is in the prompt's text: each value on its run's page.
        assert any(text in shown[f"run {run_id}"] for run_id in runs), text
        assert text in shown["prompts"], text
    assert XSS[0] in shown["prompts search"] or XSS[1] in shown["prompts search"]


# ------------------------------------------------------------------ secrets
def test_no_database_password_is_rendered(
    pg_cluster: Any, pg_database: str, tmp_path: Path
) -> None:
    password = "s3cret-Pa55word"
    url = pg_cluster.url(pg_database, password=password)
    project = make_project(tmp_path / "proj")
    project.env["COSMOS_DATABASE__URL"] = url
    done = project.batch("+experiment=demo")
    assert done.returncode == 0, done.stdout + done.stderr
    with start_ui(project) as server:
        (sweep,) = server.api.list_sweeps()
        runs = [run["id"] for run in server.api.list_runs(limit=2)]
        for path in ("/", f"/sweeps/{sweep['id']}", f"/compare?runs={runs[0]},{runs[1]}"):
            answer = server.get(path)
            assert answer.status == 200, path
            assert password not in answer.text, path
