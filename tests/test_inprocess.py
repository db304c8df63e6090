"""The in-process runner of the CLIs (tests/inprocess.py) leaves the test process as it was."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import inprocess
import pytest
from conftest import Project


def test_a_command_leaves_cwd_environment_and_logging_as_they_were(project: Project) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    cwd, environ = Path.cwd(), dict(os.environ)

    planned = project.batch("+experiment=demo", "dry_run=true", "log_level=DEBUG")
    assert planned.returncode == 0, planned.stderr
    assert "probed video" in planned.stderr, "the command's own log lines are its stderr"
    listed = project.cosmos("list", "prompts", env={"COSMOS_LOG_LEVEL": "DEBUG"})
    assert listed.returncode == 0, listed.stderr
    assert "probed video" not in listed.stderr, "a log line of the previous command leaked"

    assert (list(root.handlers), root.level) == (handlers, level)
    assert Path.cwd() == cwd and dict(os.environ) == environ


def test_the_command_sees_exactly_the_projects_environment(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSMOS_DATABASE__URL", "not a url")  # the caller's, not the project's
    done = project.cosmos("list", "prompts", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_unexpected_exception_is_raised_with_what_was_printed(project: Project) -> None:
    def broken() -> None:
        print("half a result")
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug") as raised:
        inprocess._run(["cosmos", "broken"], project.root, project.env, None, broken)
    assert "half a result" in "".join(raised.value.__notes__)
    assert Path.cwd() != project.root


def test_commands_run_on_the_main_thread_only(project: Project) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(project.cosmos, "list", "prompts")
    with pytest.raises(RuntimeError, match="main thread"):
        future.result()


def test_the_command_runs_in_the_project_with_only_its_environment(tmp_path: Path) -> None:
    """What the command sees while it runs, and that all of it is put back after."""
    root = tmp_path / "proj"
    root.mkdir()
    seen: dict = {}

    def record() -> None:
        seen["cwd"] = Path.cwd()
        seen["env"] = dict(os.environ)
        seen["argv"] = list(sys.argv)
        sys.argv = ["changed"]
        os.environ["LEFT_BEHIND"] = "1"
        print("out")
        print("err", file=sys.stderr)

    cwd, environ, argv = Path.cwd(), dict(os.environ), list(sys.argv)
    done = inprocess._run(["cmd"], root, {"ONLY": "1"}, None, record)
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")
    assert seen["cwd"] == root.resolve()
    assert seen["env"] == {"ONLY": "1"}
    assert (Path.cwd(), dict(os.environ), sys.argv) == (cwd, environ, argv)


@pytest.mark.parametrize(("code", "returncode", "stderr"), [("boom", 1, "boom\n"), (3, 3, "")])
def test_sys_exit_gives_the_exit_code_a_process_would(
    tmp_path: Path, code: object, returncode: int, stderr: str
) -> None:
    def leave() -> None:
        sys.exit(code)

    done = inprocess._run(["cmd"], tmp_path, {}, None, leave)
    assert (done.returncode, done.stderr) == (returncode, stderr)


def test_a_demo_copy_is_private_and_holds_no_template_path(
    demo_template: Project, demo_project: Project
) -> None:
    """A copy behaves as if the demo had run in it: no path of the template is left in
    its database or its text files, and deleting in the copy leaves the template alone."""
    import sqlite3

    from conftest import tree_snapshot

    template_root = str(demo_template.root)
    assert demo_project.root != demo_template.root
    connection = sqlite3.connect(demo_project.outputs / "cosmos.db")
    try:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        cells = [
            value
            for table in tables
            for row in connection.execute(f'SELECT * FROM "{table}"')
            for value in row
            if isinstance(value, str)
        ]
    finally:
        connection.close()
    assert cells and not [cell for cell in cells if template_root in cell]
    texts = [
        path
        for path in demo_project.root.rglob("*")
        if path.is_file() and path.suffix in {".json", ".jsonl", ".yaml", ".txt", ".log", ".sha256"}
    ]
    assert texts and not [p for p in texts if template_root in p.read_text(errors="replace")]

    before = tree_snapshot(demo_template.root)
    run_id = json.loads(demo_project.cosmos("list", "runs", "--json").stdout)[0]["id"]
    deleted = demo_project.cosmos("delete", "run", run_id, "--yes", "--delete-outputs")
    assert deleted.returncode == 0, deleted.stderr
    assert tree_snapshot(demo_template.root) == before
