"""A throwaway PostgreSQL cluster for the test session.

The cluster lives in a folder of its own (data, log and unix socket; the
test process's slot gives it, and its port, see tests/slots.py), listens on
loopback, trusts every local connection (a password
in a URL is accepted and ignored) and runs with fsync off. The server runs
in the foreground as a child of the test process and is stopped by its own
PID. initdb refuses to run as root, so as root the server programs run as
the ``postgres`` user that the Debian package creates.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"


def find_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder; fail with what to do if none."""
    found = sorted(
        (path.parent for path in PG_ROOT.glob("*/bin/initdb")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "run scripts/install-system-deps (make test does it)"
        )
    return found[-1]


def _server_user() -> str | None:
    """The user that runs the server: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError as exc:
        raise RuntimeError(
            "running as root needs the 'postgres' user to run PostgreSQL: "
            "run scripts/install-system-deps (make test does it)"
        ) from exc
    return SUPERUSER


@dataclass
class Cluster:
    """A running cluster and how to reach it."""

    root: Path
    port: int
    process: subprocess.Popen
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str, password: str | None = None) -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for ``database`` over TCP."""
        auth = SUPERUSER if password is None else f"{SUPERUSER}:{password}"
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def create_database(self) -> str:
        """Create a fresh, empty database; return its name."""
        name = f"test_{next(self.numbers)}"
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection still open to it."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of our own server process; remove its folder."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _run_as(user: str | None, args: list[str], log: Path) -> None:
    with log.open("a") as out:
        done = subprocess.run(args, user=user, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}): {log.read_text()[-2000:]}")


def _wait_ready(cluster: Cluster, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(cluster.conninfo(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if cluster.process.poll() is not None or time.monotonic() > deadline:
                cluster.stop()
                raise RuntimeError("PostgreSQL did not start: " + log.read_text()[-2000:]) from None
            time.sleep(0.02)


def start_cluster(root: Path, port: int) -> Cluster:
    """initdb a new cluster in ``root`` (emptied first) and start its server on ``port``.

    ``root`` must be a folder the server's user may enter (not pytest's
    tmp_path, which only root may enter) and short, as unix socket paths are
    limited.
    """
    bin_dir = find_bin_dir()
    user = _server_user()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    if user is not None:
        shutil.chown(root, user)
    log = root / "server.log"
    log.touch()
    if user is not None:
        shutil.chown(log, user)
    data = root / "data"
    _run_as(
        user,
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        log,
    )
    with log.open("a") as out:
        process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                # Not UTC (+12:45/+13:45), so that a time read back in the
                # server's zone instead of UTC shows.
                "-c",
                "TimeZone=Pacific/Chatham",
            ],
            user=user,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    cluster = Cluster(root=root, port=port, process=process)
    _wait_ready(cluster, log)
    return cluster
