"""`cosmos ui` as a process: it prints its URL (a token off loopback), serves, stops on Ctrl-C."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from conftest import Project


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(project: Project, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cosmos_workflow.cli.main", "ui", *args],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def get(url: str, opener: urllib.request.OpenerDirector | None = None) -> int:
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_serving(url: str, process: subprocess.Popen) -> None:
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing served at {url} in 20 s")


def stop(process: subprocess.Popen) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode in (0, 130), err
    return out, err


def test_on_loopback_it_prints_its_url_and_serves_an_empty_project(project: Project) -> None:
    port = free_port()
    process = start(project, "--port", str(port))
    try:
        first = process.stdout.readline()
        assert first.startswith(f"cosmos ui: http://127.0.0.1:{port}/ "), first
        wait_serving(f"http://127.0.0.1:{port}/", process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
            assert "No sweeps yet" in answer.read().decode()
    finally:
        stop(process)
    assert not (project.outputs / "cosmos.db").exists()  # looking creates no database


@pytest.mark.parametrize("host", ["0.0.0.0"])
def test_off_loopback_it_prints_a_token_that_opens_it(project: Project, host: str) -> None:
    port = free_port()
    process = start(project, "--host", host, "--port", str(port))
    try:
        token_line = process.stdout.readline()
        url_line = process.stdout.readline()
        token = re.fullmatch(r"access token: (\S{20,})\n", token_line).group(1)
        assert f"http://127.0.0.1:{port}/?token={token}" in url_line
        wait_serving(f"http://127.0.0.1:{port}/", process)
        assert get(f"http://127.0.0.1:{port}/") == 401
        # As a browser: the cookie is kept and the redirect to the URL without the token followed.
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        assert get(f"http://127.0.0.1:{port}/?token={token}", browser) == 200
        assert get(f"http://127.0.0.1:{port}/queue", browser) == 200
    finally:
        stop(process)


def test_port_0_is_refused_as_bad_input(project: Project) -> None:
    """Port 0 (any free port) would print an address nobody can open."""
    process = start(project, "--port", "0")
    try:
        out, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        stop(process)
        raise AssertionError("cosmos ui --port 0 started a server") from None
    assert process.returncode == 2, out + err
    assert "--port" in err
