"""Shared fixtures: a throwaway copy of the project and ways to run its CLIs.

The CLIs run as real subprocesses (real exit codes, real Hydra, real
SQLite database, real simulated-model processes).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Project:
    """A copy of the project's conf/, manifests/ and inputs/ in a temp folder."""

    root: Path
    env: dict[str, str]

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.jsonl"

    def ledger_lines(self) -> list[dict[str, Any]]:
        if not self.ledger.is_file():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines()]

    def _run(
        self, module: str, args: tuple[str, ...], input_text: str | None, env: dict | None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            input=input_text,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def batch(
        self, *args: str, env: dict | None = None, input_text: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run `cosmos-batch ARGS`."""
        return self._run("cosmos_workflow.cli.batch", args, input_text, env)

    def cosmos(
        self, *args: str, env: dict | None = None, input_text: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run `cosmos ARGS`."""
        return self._run("cosmos_workflow.cli.main", args, input_text, env)

    def start_batch(
        self, *args: str, env: dict | None = None, capture: bool = False
    ) -> subprocess.Popen:
        """Start `cosmos-batch ARGS` in the background, as a terminal user would.

        SIGINT is restored to its default (a background job of a
        non-interactive shell inherits it ignored) and the process gets its
        own session, so a test can signal it and its model processes.
        """
        output = subprocess.PIPE if capture else subprocess.DEVNULL
        return subprocess.Popen(
            [sys.executable, "-m", "cosmos_workflow.cli.batch", *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            stdout=output,
            stderr=output,
            text=True,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )

    def wait_for_ledger(self, count: int, ledger: Path | None = None, timeout: float = 60) -> int:
        """Wait until the simulated model has produced ``count`` videos; return how many."""
        path = ledger or self.ledger
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = len(path.read_text().splitlines()) if path.is_file() else 0
            if lines >= count:
                return lines
            time.sleep(0.05)
        raise AssertionError(f"the model produced fewer than {count} videos in {timeout}s")

    def cosmos_json(self, *args: str) -> Any:
        """Run `cosmos ARGS --json` and parse its output."""
        done = self.cosmos(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_project(root: Path) -> Project:
    """Copy conf/, manifests/ and inputs/ of the repository into ``root``."""
    for folder in ("conf", "manifests", "inputs"):
        shutil.copytree(REPO / folder, root / folder)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COSMOS_") and not key.startswith("HYDRA_")
    }
    env.update(
        {
            "XDG_CONFIG_HOME": str(root / ".config"),
            "COSMOS_SIMULATOR__MODEL_LOAD_S": "0",
            "COSMOS_SIMULATOR__PER_VIDEO_S": "0",
            "COSMOS_SIMULATOR__LEDGER": str(root / "ledger.jsonl"),
        }
    )
    return Project(root=root, env=env)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A fresh project with the demo manifests and inputs, no outputs yet."""
    return make_project(tmp_path / "proj")


@pytest.fixture(scope="session")
def slot() -> Iterator[Any]:
    """This test process's slot (tests/slots.py), held for the session.

    Its number gives the test host's namespace, link and address and the
    PostgreSQL port and folder: one of each per xdist worker, never shared
    with another test session on this machine.
    """
    import slots

    taken = slots.acquire()
    yield taken
    taken.release()


@pytest.fixture(scope="session")
def host(slot: Any) -> Iterator[Any]:
    """The disposable remote host of scripts/test-host, in its own network namespace.

    One per test process (xdist worker): a network namespace with sshd and a
    private dockerd.
    """
    import testhost

    started = testhost.up(slot.dir / "host", slot)
    yield started
    testhost.down(started.state_dir)


@pytest.fixture(scope="session")
def pg_cluster(slot: Any) -> Iterator[Any]:
    """A throwaway PostgreSQL cluster for the test process (tests/postgres.py).

    Fails (never skips) when PostgreSQL is not installed.
    """
    import postgres

    cluster = postgres.start_cluster(slot.dir / "pg", slot.pg_port)
    yield cluster
    cluster.stop()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium (a Playwright BrowserContext) with a fresh profile, one per process.

    Debian's /usr/bin/chromium, never Playwright's own download; fails, never
    skips, without it.
    """
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), "chromium is missing: run scripts/install-system-deps (as root)"
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


@pytest.fixture
def pg_database(pg_cluster: Any) -> str:
    """The name of a new, empty database on the session's cluster (dropped afterwards)."""
    name = pg_cluster.create_database()
    yield name
    pg_cluster.drop_database(name)


@pytest.fixture
def pg_url(pg_cluster: Any, pg_database: str) -> str:
    """The SQLAlchemy URL (psycopg 3) of a new, empty database on the session's cluster."""
    return pg_cluster.url(pg_database)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database of a repository test: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cosmos.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="module")
def demo_done(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project on which `cosmos-batch +experiment=demo` already ran once."""
    proj = make_project(tmp_path_factory.mktemp("demo") / "proj")
    done = proj.batch("+experiment=demo")
    assert done.returncode == 0, done.stderr
    return proj


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime (to prove nothing changed)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


RunCli = Callable[..., subprocess.CompletedProcess]
