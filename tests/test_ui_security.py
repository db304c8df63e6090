"""`cosmos ui`'s security as a client meets it: the token, CSRF, same origin, files, escaping.

Every test talks HTTP to a real server (uvicorn in a thread, tests/ui_server.py).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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
@pytest.mark.parametrize("path", ["/", "/static/ui.css", "/events", "/files/outputs/cosmos.db"])
def test_off_loopback_a_request_without_the_token_is_refused(guarded: Any, path: str) -> None:
    server, _ = guarded
    assert server.get(path).status == 401
    assert server.get(path, cookie="cosmos_ui_token=wrong").status == 401
    assert server.get(f"{path}?token=wrong").status == 401


def test_the_token_once_in_the_url_then_the_cookie_opens_every_page(guarded: Any) -> None:
    server, _ = guarded
    first = server.get(f"/?token={TOKEN}")
    assert first.status == 200
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"cosmos_ui_token={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    later = server.get("/static/ui.css", cookie=f"cosmos_ui_token={TOKEN}")
    assert later.status == 200 and "set-cookie" not in later.headers


def test_every_answer_forbids_inline_scripts_framing_and_sniffing(ui_server: UiServer) -> None:
    for path in ("/", "/static/ui.js", "/files/outputs/nothing", "/sweeps/sw_nothing"):
        headers = ui_server.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"


def test_on_loopback_no_token_is_needed_but_the_host_must_be_this_machine(
    ui_server: UiServer,
) -> None:
    assert ui_server.get("/").status == 200
    assert ui_server.get("/", host="localhost:1234").status == 200
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
