"""`cosmos ui` speed: a 500-run sweep's page, live updates, and what open pages cost a sweep.

    .venv/bin/python benchmarks/ui.py [--runs-per-trial 40] [--trials 3]

Prints:
- the sweep page of a 500-run sweep (25 prompts x 20 seeds, run with the
  simulated model): server time (median of 20 requests over loopback) and
  HTML size, thumbnails lazy (targets: <= 300 ms, <= 300 KB);
- the run page of one of its runs (<= 150 ms);
- the time from a run finishing (its finished_at in the database, written
  by the runner) to its server-sent event reaching an open page (<= 1 s),
  over every run of the sweeps below;
- a sweep's makespan with 20 open live pages (20 /events streams) against
  none, trials alternating (within 5%).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from sweep_project import make_project, run_sweep

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cosmos_workflow.api import CosmosAPI
from cosmos_workflow.ui.app import UiOptions, build_app, make_server, stop

PAGES = 20


def serve(root: Path) -> tuple[str, CosmosAPI, object, threading.Thread]:
    """`cosmos ui` on the project at ``root`` in a thread: its URL, API, server, thread."""
    api = CosmosAPI.from_project(root, environ=_env(root))
    server = make_server(build_app(api, UiOptions()), "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", api, server, thread


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSMOS_")}
    env["XDG_CONFIG_HOME"] = str(root / ".config")
    return env


def timed_get(url: str, times: int = 20) -> tuple[float, int]:
    """Median seconds of ``times`` GETs of ``url`` (after one warm-up), and the body's size."""
    with urllib.request.urlopen(url) as answer:  # warm-up: templates, thumbnails dir
        size = len(answer.read())
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        with urllib.request.urlopen(url) as answer:
            answer.read()
        spent.append(time.perf_counter() - started)
    return statistics.median(spent), size


class Listener(threading.Thread):
    """An open page's event stream: when each run id was first seen in an event."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        host, port = base.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=600)
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        self.connection.request("GET", "/events")
        stream = self.connection.getresponse()
        self.ready.set()
        while True:
            try:
                line = stream.readline()
            except (OSError, AttributeError, http.client.HTTPException):
                return  # closed by close()
            if not line:
                return
            if line.startswith(b"data: "):
                now = time.time()
                for run in json.loads(line[6:]).get("runs", []):
                    if run["status"] == "succeeded":
                        self.seen.setdefault(run["id"], now)

    def close(self) -> None:
        """End the stream (shut down, not close: the reading thread holds the file's lock)."""
        if self.connection.sock is not None:
            self.connection.sock.shutdown(socket.SHUT_RDWR)
        self.join(10)
        self.connection.close()


def sweep(root: Path, steps: int) -> float:
    """Run a sweep of new runs (``model.num_steps=steps`` makes them new); its wall time."""
    command = [
        sys.executable,
        "-m",
        "cosmos_workflow.cli.batch",
        "+experiment=bench",
        f"model.num_steps={steps}",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=_env(root), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the sweep failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def makespan(api: CosmosAPI, count: int) -> tuple[float, list[dict]]:
    """First start to last finish of the newest ``count`` runs, and those runs."""
    runs = api.list_runs(limit=count)
    starts = [datetime.fromisoformat(r["started_at"]) for r in runs]
    ends = [datetime.fromisoformat(r["finished_at"]) for r in runs]
    return (max(ends) - min(starts)).total_seconds(), runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-per-trial", type=int, default=40)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cosmos-ui-bench-") as folder:
        big = Path(folder) / "big"
        big.mkdir()
        make_project(big, 25, _experiment(20))
        print("running a 500-run sweep with the simulated model ...", flush=True)
        _, wall = run_sweep(big)
        print(f"  (made in {wall:.0f} s)")
        base, api, server, thread = serve(big)
        (listed,) = api.list_sweeps()
        seconds, size = timed_get(f"{base}/sweeps/{listed['id']}")
        print(
            f"sweep page, {listed['runs']} runs: {seconds * 1000:.0f} ms server time "
            f"(target <= 300), {size / 1024:.0f} KB HTML (target <= 300), thumbnails lazy"
        )
        (run,) = api.list_runs(limit=1)
        seconds, size = timed_get(f"{base}/runs/{run['id']}")
        print(f"run page: {seconds * 1000:.0f} ms (target <= 150), {size / 1024:.0f} KB")
        stop(server)
        thread.join(10)
        api.close()

        small = Path(folder) / "small"
        small.mkdir()
        make_project(small, 2, _experiment(args.runs_per_trial // 2))
        sweep(small, 10)  # the database and the input cache, made once
        base, api, server, thread = serve(small)
        quiet, busy, delays, cpu = [], [], [], []
        for trial in range(args.trials):
            for with_pages in (False, True):
                listeners = [Listener(base) for _ in range(PAGES if with_pages else 0)]
                for listener in listeners:
                    listener.start()
                    listener.ready.wait(10)
                used = time.process_time()
                sweep(small, 11 + trial * 2 + with_pages)
                span, runs = makespan(api, args.runs_per_trial)
                (busy if with_pages else quiet).append(span)
                print(
                    f"  trial {trial + 1}, {len(listeners)} pages: makespan {span:.2f} s",
                    flush=True,
                )
                if with_pages:
                    cpu.append((time.process_time() - used, span))
                time.sleep(1.5)  # the last events arrive
                for listener in listeners:
                    for run in runs:
                        finished = datetime.fromisoformat(run["finished_at"]).timestamp()
                        if run["id"] in listener.seen:
                            delays.append(listener.seen[run["id"]] - finished)
                    listener.close()
        stop(server)
        thread.join(10)
        api.close()
    expected = args.trials * args.runs_per_trial * PAGES
    print(
        f"run finished -> event on an open page: median {statistics.median(delays):.2f} s, "
        f"max {max(delays):.2f} s over {len(delays)} of {expected} (target <= 1 s)"
    )
    # Trials alternate (none, 20 pages) so each pair meets the same load of the machine.
    ratios = sorted(b / q for q, b in zip(quiet, busy, strict=True))
    change = (statistics.median(ratios) - 1) * 100
    print(
        f"makespan of a {args.runs_per_trial}-run sweep with {PAGES} live pages against none: "
        f"{change:+.1f}% (median of {len(ratios)} paired trials; target within 5%)"
    )
    rounded = [[round(x, 2) for x in spans] for spans in (quiet, busy)]
    print(f"  trials (s): none {rounded[0]}, {PAGES} pages {rounded[1]}")
    spent = sum(c for c, _ in cpu) / sum(s for _, s in cpu)
    print(
        f"  CPU of the app and its {PAGES} listeners while a sweep ran: "
        f"{spent * 100:.1f}% of one core"
    )
    print(f"  at {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores")


def _experiment(seeds: int) -> dict:
    return {
        "name": "bench",
        "defaults": [{"/prompts": "bench"}],
        "vars": {"style": "warm"},
        "model": {"weights": {"depth": 0.5}},
        "sweep": {"grid": {"model.seed": list(range(1, seeds + 1))}},
    }


if __name__ == "__main__":
    main()
