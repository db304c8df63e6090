"""Shared fixtures: a throwaway copy of the project and ways to run its CLIs.

`Project.cosmos` and `Project.batch` run a command in this process
(tests/inprocess.py: real Hydra, real SQLite database, real
simulated-model processes, the exit code a process would have). Where the
process itself is under test (signals, Ctrl-C, a closed pipe, a terminal,
the installed entry points) `Project.cosmos_process`, `Project.batch_process`
and `Project.start_batch` start a real one.

Shared expensive state is made once per test session (per xdist worker)
and copied: `made_once(*ARGS)` is a project on which `cosmos-batch ARGS`
ran, `ran_once(*ARGS)` a test's own copy of it; `demo_template` is the
demo's, `demo_done` (per module) and `demo_project` (per test) its copies.
"""

from __future__ import annotations

import contextlib
import itertools
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

import inprocess
import pytest

REPO = Path(__file__).resolve().parents[1]
# The `cosmos ui` fixtures (ui_server) live in tests/ui_server.py.
pytest_plugins = ["ui_server"]


@dataclass
class Project:
    """A copy of the project's conf/, manifests/ and inputs/ in a temp folder."""

    root: Path
    env: dict[str, str]
    # A template (made_once) and its copies: what the `cosmos-batch` that made it printed.
    first_run: subprocess.CompletedProcess | None = None

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

    def batch(
        self, *args: str, env: dict | None = None, input_text: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run `cosmos-batch ARGS` in this process."""
        return inprocess.run_batch(self.root, {**self.env, **(env or {})}, args, input_text)

    def cosmos(
        self, *args: str, env: dict | None = None, input_text: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run `cosmos ARGS` in this process."""
        return inprocess.run_cosmos(self.root, {**self.env, **(env or {})}, args, input_text)

    def _process(
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

    def batch_process(
        self, *args: str, env: dict | None = None, input_text: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run `cosmos-batch ARGS` as a process of its own (where the process is under test)."""
        return self._process("cosmos_workflow.cli.batch", args, input_text, env)

    def cosmos_process(
        self, *args: str, env: dict | None = None, input_text: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run `cosmos ARGS` as a process of its own (where the process is under test)."""
        return self._process("cosmos_workflow.cli.main", args, input_text, env)

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
    return Project(root=root, env=project_env(root))


def project_env(root: Path) -> dict[str, str]:
    """The environment of commands in the project at ``root``.

    No COSMOS_ or HYDRA_ variable of the caller, a user config folder of its
    own, a simulated model without delays that writes the project's ledger.
    """
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
    return env


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
def slurm_host(host: Any, slot: Any) -> Iterator[Any]:
    """A private one-node Slurm cluster (4 fake GPUs) whose login node is ``host``'s sshd.

    One per test process (tests/slurm.py): munged, slurmctld and slurmd in the
    test host's namespace; over SSH the Slurm clients reach it. Fault
    injection: ``slurm_host.set_node("down")``, ``slurm_host.expire(job_id)``.
    """
    import slurm

    cluster = slurm.on_host(host, slot.number)
    yield cluster
    slurm.down(cluster.root)


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


@pytest.fixture(scope="session")
def made_once(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Project]:
    """``made_once(*ARGS)``: a project on which `cosmos-batch ARGS` ran (once per session).

    A template: never change it, copy it (copy_project, ran_once).
    """
    made: dict[tuple[str, ...], Project] = {}

    def template(*args: str) -> Project:
        if args not in made:
            proj = make_project(tmp_path_factory.mktemp("template") / "proj")
            done = proj.batch(*args)
            assert done.returncode == 0, done.stdout + done.stderr
            proj.first_run = done
            made[args] = proj
        return made[args]

    return template


@pytest.fixture
def ran_once(made_once: Callable[..., Project], tmp_path: Path) -> Callable[..., Project]:
    """``ran_once(*ARGS)``: a project of the test's own on which `cosmos-batch ARGS` ran."""

    copies = itertools.count()

    def copy(*args: str) -> Project:
        return copy_project(made_once(*args), tmp_path / f"ran{next(copies)}" / "proj")

    return copy


@pytest.fixture(scope="session")
def demo_template(made_once: Callable[..., Project]) -> Project:
    """A project on which `cosmos-batch +experiment=demo` ran once; never changed: copy it."""
    return made_once("+experiment=demo")


@pytest.fixture(scope="module")
def demo_done(demo_template: Project, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project on which the demo ran once, shared by the tests of a module."""
    return copy_project(demo_template, tmp_path_factory.mktemp("demo") / "proj")


@pytest.fixture
def demo_project(demo_template: Project, tmp_path: Path) -> Project:
    """A project of its own on which the demo ran once (the test may change it)."""
    return copy_project(demo_template, tmp_path / "proj")


def copy_project(template: Project, root: Path) -> Project:
    """A copy of ``template`` at ``root``, as if its commands had run there.

    The database, the run folders and the ledger hold absolute paths of the
    project (input videos, run and sweep folders, the command lines): they
    are rewritten to ``root``. Model outputs are copied byte for byte (their
    checksums are recorded); the paths inside them are those of the
    temporary job folders, which were gone already.
    """
    shutil.copytree(template.root, root, symlinks=True)
    old, new = str(template.root), str(root)
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and not _recorded(path):
            _rewrite_file(path, old, new)
    if (root / "outputs" / "cosmos.db").is_file():
        _rewrite_database(root / "outputs" / "cosmos.db", old, new)
    first_run = None
    if template.first_run is not None:
        made = template.first_run
        first_run = subprocess.CompletedProcess(
            made.args, made.returncode, made.stdout.replace(old, new), made.stderr.replace(old, new)
        )
    return Project(root=root, env=project_env(root), first_run=first_run)


def _recorded(path: Path) -> bool:
    """True for a model output (listed in its run's outputs.sha256) or a binary file."""
    if path.suffix.lower() in (".mp4", ".png", ".jpg", ".jpeg", ".webp", ".db"):
        return True
    if path.name.endswith(("-wal", "-shm")):
        return True
    listed = path.parent / "outputs.sha256"
    return listed.is_file() and f"  {path.name}\n" in listed.read_text()


def _rewrite_file(path: Path, old: str, new: str) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return
    if old in text:
        stat = path.stat()
        path.write_text(text.replace(old, new), encoding="utf-8")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _rewrite_database(database: Path, old: str, new: str) -> None:
    import sqlite3

    stat = database.stat()
    with contextlib.closing(sqlite3.connect(database)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]:
                db.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                    f'WHERE typeof("{column}") = \'text\' AND instr("{column}", ?) > 0',
                    (old, new, old),
                )
        db.commit()
    os.utime(database, ns=(stat.st_atime_ns, stat.st_mtime_ns))


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
