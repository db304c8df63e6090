"""Live updates of `cosmos ui`: one poller for every open page, stopped when none listens."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time

from conftest import Project
from ui_server import UiServer, start_ui


def listen(server: UiServer) -> http.client.HTTPConnection:
    """An open /events stream (as a page's EventSource holds one)."""
    host, port = server.origin.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/events")
    answer = connection.getresponse()
    assert answer.status == 200
    assert answer.getheader("content-type").startswith("text/event-stream")
    assert answer.readline() == b"retry: 2000\n"
    return connection


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)


def test_many_open_pages_share_one_poller_that_stops_with_the_last(ui_server: UiServer) -> None:
    broadcaster = ui_server.app.state.broadcaster
    poll_s = ui_server.app.state.options.poll_s
    wait_for(lambda: broadcaster.listeners == 0)
    streams = [listen(ui_server) for _ in range(10)]
    wait_for(lambda: broadcaster.listeners == 10)
    before, started = broadcaster.polls, time.monotonic()
    time.sleep(2.0)
    polls = broadcaster.polls - before
    # One poll per interval, whatever the number of pages (not ten).
    assert 1 <= polls <= (time.monotonic() - started) / poll_s + 2, polls
    for stream in streams:
        stream.close()
    wait_for(lambda: broadcaster.listeners == 0)
    time.sleep(2 * poll_s)
    stopped = broadcaster.polls
    time.sleep(4 * poll_s)
    assert broadcaster.polls == stopped  # nobody listens: no polling


def test_live_updates_go_on_after_the_database_could_not_be_read(demo_project) -> None:
    """A poll that fails (here: a table gone for a moment) is logged; the next ones go on."""
    import sqlite3

    from ui_server import start_ui

    def rename(old: str, new: str) -> None:
        with contextlib.closing(sqlite3.connect(demo_project.outputs / "cosmos.db")) as db:
            db.execute(f"ALTER TABLE {old} RENAME TO {new}")
            db.commit()

    with start_ui(demo_project) as server:
        broadcaster = server.app.state.broadcaster
        stream = listen(server)
        try:
            wait_for(lambda: broadcaster.polls >= 1)
            rename("sweep_runs", "sweep_runs_away")
            time.sleep(4 * server.app.state.options.poll_s)
            failed = broadcaster.polls
            rename("sweep_runs_away", "sweep_runs")
            # The poller still runs: polls are counted again once the table is back.
            wait_for(lambda: broadcaster.polls > failed)
        finally:
            stream.close()


def test_each_change_of_a_run_is_pushed_once(demo_project: Project) -> None:
    with start_ui(demo_project) as server:
        server.api.web.launch.environ = demo_project.env
        poll_s = server.app.state.options.poll_s
        host, port = server.origin.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", "/events")
        answer = connection.getresponse()
        lines: list[bytes] = []

        def read() -> None:
            with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
                while line := answer.readline():
                    lines.append(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        wait_for(lambda: server.app.state.broadcaster.listeners == 1)
        model = {"seed": 4242, "weights": {"depth": 1}}
        launched = server.api.web.launch.inference(["street"], model)
        (run_id,) = launched.run_ids
        wait_for(lambda: server.api.show(run_id)["status"] == "succeeded", timeout=25)
        time.sleep(6 * poll_s)  # polls after the last change push nothing
        connection.sock.shutdown(socket.SHUT_RDWR)  # the reader sees the stream end
        reader.join(timeout=5)
        connection.close()
    pushed = [
        run["status"]
        for line in lines
        if line.startswith(b"data: ")
        for run in json.loads(line.removeprefix(b"data: ")).get("runs", [])
        if run["id"] == run_id
    ]
    assert pushed and pushed[-1] == "succeeded", pushed
    assert len(pushed) == len(set(pushed)), f"a change was pushed again: {pushed}"
