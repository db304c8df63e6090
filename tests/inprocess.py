"""Run `cosmos` and `cosmos-batch` inside the test process, as a subprocess would.

A command's behaviour (what it prints, stores, exits with) does not need a
process of its own: starting one costs about a second of imports. Here
`cosmos` runs through click's CliRunner isolation over the real ``cli``
group and `cosmos-batch` through its Hydra app called from Python, on the
real project folder, config, database and simulated-model processes.

What a process would have had to itself is set up for the call and put
back after it: the current directory, the environment (exactly the
project's, so the simulated model processes inherit it), stdin, stdout and
stderr (not terminals, like a captured subprocess), sys.argv, logging
(handlers, levels), signal handlers, Hydra's global state and the database
engines the command opened. Threads the command started must have ended.
An exception that would have ended the process with a traceback is raised
in the test, with its traceback.

Calls are serialized (one process-wide lock): they share the process.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from click.testing import CliRunner

_LOCK = threading.Lock()
# Signals whose handlers a command might install (restored after each call).
_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGPIPE,
    signal.SIGCHLD,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
# How long the threads a command started may take to end after it returned.
THREAD_GRACE_S = 20.0


def run_cosmos(
    root: Path, env: Mapping[str, str], args: tuple[str, ...], input_text: str | None
) -> subprocess.CompletedProcess:
    """`cosmos ARGS` in ``root`` with exactly the environment ``env``."""
    from cosmos_workflow.cli.main import cli

    def call() -> None:
        cli.main(args=list(args), prog_name="cosmos")

    return _run(["cosmos", *args], root, env, input_text, call)


def run_batch(
    root: Path, env: Mapping[str, str], args: tuple[str, ...], input_text: str | None
) -> subprocess.CompletedProcess:
    """`cosmos-batch ARGS` in ``root`` with exactly the environment ``env``."""
    from cosmos_workflow.cli import batch

    def call() -> None:
        # As `python -m cosmos_workflow.cli.batch ARGS` sees it.
        sys.argv = [str(Path(batch.__file__)), *args]
        batch.main()

    return _run(["cosmos-batch", *args], root, env, input_text, call)


def _run(
    argv: list[str],
    root: Path,
    env: Mapping[str, str],
    input_text: str | None,
    call: Callable[[], None],
) -> subprocess.CompletedProcess:
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "in-process commands share the process: run them from the main thread, one at "
            "a time (a test of concurrent commands starts processes: Project.cosmos_process)"
        )
    with _LOCK, _process_state(root, env) as engines:
        before = set(threading.enumerate())
        try:
            with CliRunner().isolation(input=input_text) as (out, err, _):
                _as_a_process_prompts()
                try:
                    code = _exit_code(call)
                    _wait_for_threads(before, argv)
                except BaseException as exc:
                    # What the process would have printed before its traceback.
                    sys.stdout.flush()
                    sys.stderr.flush()
                    command = " ".join(argv)
                    exc.add_note(f"`{command}` printed on stdout:\n{out.getvalue().decode()}")
                    exc.add_note(f"and on stderr:\n{err.getvalue().decode()}")
                    raise
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                stdout = out.getvalue().decode("utf-8", "replace")
                stderr = err.getvalue().decode("utf-8", "replace")
        finally:
            _dispose(engines)
    return subprocess.CompletedProcess(argv, code, _universal(stdout), _universal(stderr))


def _as_a_process_prompts() -> None:
    """Prompts read stdin like a process's input(): the answer is not echoed to stdout.

    CliRunner echoes it (as a terminal would show it); a process whose stdin
    is a pipe does not. Click's isolation restores its own function after.
    """
    from click import termui

    termui.visible_prompt_func = input


def _exit_code(call: Callable[[], None]) -> int:
    """The exit code of ``call`` as a process's (SystemExit as the interpreter reads it)."""
    try:
        call()
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        sys.stderr.write(f"{exc.code}\n")
        return 1
    return 0


def _universal(text: str) -> str:
    """Newlines as subprocess.run(text=True) gives them."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


@contextmanager
def _process_state(root: Path, env: Mapping[str, str]) -> Iterator[weakref.WeakSet]:
    """cwd, environment, argv, logging, signals and Hydra as a fresh process has them.

    Yields the set that collects every database engine connected meanwhile.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton

    saved_cwd = Path.cwd()
    saved_env = dict(os.environ)
    saved_argv = list(sys.argv)
    saved_logging = _logging_state()
    saved_signals = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    saved_hydra = Singleton.get_state()
    GlobalHydra.instance().clear()
    engines: weakref.WeakSet = weakref.WeakSet()
    stop_tracking = _track_engines(engines)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(root)
    try:
        with _fresh_warnings():
            yield engines
    finally:
        stop_tracking()
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        _restore_logging(saved_logging)
        for sig, handler in saved_signals.items():
            if signal.getsignal(sig) is not handler and handler is not None:
                signal.signal(sig, handler)
        GlobalHydra.instance().clear()
        Singleton.set_state(saved_hydra)


@contextmanager
def _fresh_warnings() -> Iterator[None]:
    """Warnings as a fresh process shows them: Python's default filters, printed on stderr.

    pytest records warnings per test; a real process would print them on the
    command's stderr, where a test can see them.
    """

    def show(message: Any, category: Any, filename: str, lineno: int, *_: Any) -> None:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno))

    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning):
            warnings.filterwarnings("ignore", category=category)
        warnings.filterwarnings("ignore", category=ResourceWarning)
        warnings.showwarning = show
        yield


def _track_engines(engines: weakref.WeakSet) -> Callable[[], None]:
    """Collect every SQLAlchemy engine that connects until the returned function is called."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def remember(connection: Any) -> None:
        engines.add(connection.engine)

    event.listen(Engine, "engine_connect", remember)
    return lambda: event.remove(Engine, "engine_connect", remember)


def _dispose(engines: weakref.WeakSet) -> None:
    """Close the pooled connections a process would have closed on exit."""
    for engine in list(engines):
        engine.dispose()


def _wait_for_threads(before: set[threading.Thread], argv: list[str]) -> None:
    """Fail if threads that the command started are still running after a grace time."""
    deadline = time.monotonic() + THREAD_GRACE_S
    left = [t for t in threading.enumerate() if t not in before]
    for thread in left:
        thread.join(max(0.0, deadline - time.monotonic()))
    running = [t.name for t in left if t.is_alive()]
    if running:
        raise AssertionError(f"`{' '.join(argv)}` left threads running: {running}")


def _logging_state() -> dict[str, tuple[Any, ...]]:
    manager = logging.Logger.manager
    state = {"": _logger_state(logging.getLogger())}
    for name, item in list(manager.loggerDict.items()):
        if isinstance(item, logging.Logger):
            state[name] = _logger_state(item)
    return state


def _logger_state(logger: logging.Logger) -> tuple[Any, ...]:
    return (logger.level, list(logger.handlers), logger.disabled, logger.propagate)


def _restore_logging(state: dict[str, tuple[Any, ...]]) -> None:
    """Loggers as they were; loggers made during the call get no level or handlers."""
    manager = logging.Logger.manager
    loggers = {"": logging.getLogger()}
    for name, item in list(manager.loggerDict.items()):
        if isinstance(item, logging.Logger):
            loggers[name] = item
    for name, logger in loggers.items():
        level, handlers, disabled, propagate = state.get(name, (logging.NOTSET, [], False, True))
        logger.setLevel(level)
        logger.handlers = list(handlers)
        logger.disabled = disabled
        logger.propagate = propagate
