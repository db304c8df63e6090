"""A CLI that fits people's habits: --json everywhere, exit codes, search, ratings,
colour only on a terminal, progress with an ETA.

Commands run in-process on a throwaway project; where the process is under
test (a closed pipe, Ctrl-C, a terminal, the installed entry points) a real
`cosmos` / `cosmos-batch` process runs; "a terminal" is a real
pseudo-terminal (the pty module).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import click
import pytest
from conftest import Project, make_project
from rich.console import Console
from sshd import free_port, keygen
from test_cli import assert_bad_input, ok_json, run_all
from test_database import T0, FakeClock
from test_progress import shown, terminal

from cosmos_workflow.cli.main import cli
from cosmos_workflow.cli.step_display import (
    PlainStepProgress,
    RichStepProgress,
    make_step_progress,
)

SMALL = ("+experiment=demo", "model.weights.depth=0.5")
# Environment variables that decide about colour, removed so that each test
# sets what it means.
COLOUR_ENV = ("NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS", "LINES", "TTY_COMPATIBLE")
# An SGR escape sequence (colours, bold, reset).
SGR = re.compile(r"\x1b\[([0-9;]*)m")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Documented JSON keys (docs/user-guide.md, "JSON output"); more may be added.
PROMPT_KEYS = {"id", "kind", "name", "text", "negative_prompt", "inputs", "created_at"}
RUN_KEYS = {
    "id",
    "kind",
    "prompt_id",
    "adapter",
    "status",
    "rating",
    "created_at",
    "started_at",
    "finished_at",
    "attempts",
    "exit_code",
    "error_class",
    "error_message",
    "target",
    "gpus",
    "job_id",
    "output_dir",
    "output_path",
}
SWEEP_KEYS = {"id", "kind", "name", "created_at", "output_dir", "overrides", "runs", "counts"}
FAIL_SEED = "13"


# ---------------------------------------------------------------- helpers


def clean_env(project: Project, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in project.env.items() if k not in COLOUR_ENV}
    return {**env, **extra}


def on_pty(project: Project, argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``python ARGV`` with stdin, stdout and stderr on a new 120x40 terminal.

    Returns:
        (exit code, everything the terminal received, decoded).
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [sys.executable, *argv],
        cwd=project.root,
        env=env if env is not None else clean_env(project, TERM="xterm-256color"),
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every end of the terminal is closed
                break
            if not data:
                break
            chunks.append(data)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def cosmos_on_pty(
    project: Project, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """`cosmos ARGS` on a terminal."""
    return on_pty(project, ["-m", "cosmos_workflow.cli.main", *args], env)


def colour_codes(text: str) -> list[str]:
    """The SGR sequences in ``text`` that set a colour (foreground or background)."""
    found = []
    for match in SGR.finditer(text):
        params = [int(p) for p in match.group(1).split(";") if p]
        if any(30 <= p <= 38 or 40 <= p <= 48 or 90 <= p <= 97 or 100 <= p <= 107 for p in params):
            found.append(match.group())
    return found


def styled_before(text: str, word: str) -> set[int]:
    """SGR parameters in effect right before the first ``word`` on screen."""
    index = text.index(word)
    last = [m for m in SGR.finditer(text[:index])]
    assert last, f"no style before {word!r}"
    return {int(p) for p in last[-1].group(1).split(";") if p}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project with one prompt, a succeeded run (seed 1) and a failed one (seed 13).

    The failed inference is this module's real case of exit code 1.
    """
    proj = make_project(tmp_path_factory.mktemp("scratch") / "proj")
    created = proj.cosmos(
        "create", "prompt", "A 100% real_test of the harbor", "inputs/demo/forest", "--json"
    )
    prompt = ok_json(created)
    assert prompt["created"] is True
    good = proj.cosmos("inference", prompt["id"], "--seed", "1", "--weight", "depth=0.5", "--json")
    bad = proj.cosmos(
        "inference",
        prompt["id"],
        "--seed",
        FAIL_SEED,
        "--weight",
        "depth=0.5",
        "--set",
        f"simulator.fail_on_seed={FAIL_SEED}",
        "--json",
    )
    return {
        "project": proj,
        "prompt": prompt["id"],
        "good": ok_json(good),
        "bad": bad,
        "bad_id": json.loads(bad.stdout)["id"],
    }


# ---------------------------------------------------------------- --json everywhere

# Commands that print no listing, show or status: a script to source, a web server.
NOT_A_LISTING = {"completion", "ui"}


def leaf_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            found.update(leaf_commands(command, f"{prefix}{name} "))
        else:
            found[f"{prefix}{name}"] = command
    return found


def test_every_command_that_prints_results_takes_json() -> None:
    commands = leaf_commands(cli)
    assert {"list", "show", "status", "search", "rate", "logs"} <= set(commands)
    lacking = [
        name
        for name, command in commands.items()
        if name not in NOT_A_LISTING and not any("--json" in param.opts for param in command.params)
    ]
    assert lacking == [], f"commands without --json: {lacking}"


def test_json_of_every_listing_show_and_status_parses_with_the_documented_keys(
    demo_done: Project,
) -> None:
    runs = demo_done.cosmos_json("list", "runs")
    sweep = demo_done.cosmos_json("list", "sweeps")[0]["id"]
    results = run_all(
        demo_done,
        {
            "prompts": ("list", "prompts", "--json"),
            "show_prompt": ("show", runs[0]["prompt_id"], "--json"),
            "show_run": ("show", runs[0]["id"][:9], "--json"),
            "show_sweep": ("show", sweep, "--json"),
            "status": ("status", "--json"),
            "search": ("search", "forest", "--json"),
            "logs": ("logs", runs[0]["id"], "--json"),
        },
    )
    data = {key: ok_json(done) for key, done in results.items()}
    assert len(runs) == 12 and all(RUN_KEYS <= set(run) for run in runs)
    assert all(run["rating"] is None for run in runs)
    assert all(PROMPT_KEYS <= set(p) for p in data["prompts"]) and len(data["prompts"]) == 2
    assert PROMPT_KEYS | {"runs"} <= set(data["show_prompt"])
    assert RUN_KEYS | {"spec", "sweeps"} <= set(data["show_run"])
    assert data["show_run"]["id"] == runs[0]["id"]
    assert SWEEP_KEYS <= set(data["show_sweep"]) and len(data["show_sweep"]["runs"]) == 12
    assert {"database", "counts", "running", "active_sweeps", "targets"} <= set(data["status"])

    search = data["search"]
    assert set(search) >= {"query", "prompts", "runs", "prompts_total", "runs_total"}
    assert search["query"] == "forest"
    [prompt] = search["prompts"]
    assert PROMPT_KEYS | {"matched"} <= set(prompt) and "name" in prompt["matched"]
    assert {r["id"] for r in search["runs"]} == {
        r["id"] for r in runs if r["prompt_id"] == prompt["id"]
    }
    assert (search["prompts_total"], search["runs_total"]) == (1, 6)

    log_file = demo_done.outputs / "runs" / runs[0]["id"] / "logs" / "run.log"
    assert data["logs"] == {
        "id": runs[0]["id"],
        "status": "succeeded",
        "source": "run folder",
        "lines": log_file.read_text().splitlines(),
    }


def test_create_and_delete_print_json(project: Project) -> None:
    created = ok_json(
        project.cosmos("create", "prompt", "a quiet bay", "inputs/demo/street", "--json")
    )
    assert set(created) == {"id", "created", "notes"} and created["created"] is True
    assert created["notes"] == []
    deleted = ok_json(project.cosmos("delete", "prompt", created["id"], "--yes", "--json"))
    assert deleted == {
        "id": created["id"],
        "ids": [created["id"]],
        "deleted_runs": [],
        "deleted_prompts": [],
        "removed_outputs": [],
    }


# ---------------------------------------------------------------- search


def test_search_matches_percent_underscore_and_backslash_literally(scratch: dict) -> None:
    proj = scratch["project"]
    prompt = scratch["prompt"]
    results = run_all(
        proj,
        {
            "percent": ("search", "%", "--json"),
            "underscore": ("search", "_", "--json"),
            "both": ("search", "100% REAL_TEST", "--json"),
            "wild": ("search", "1_0%", "--json"),
            "backslash": ("search", "\\"),
            "none_text": ("search", "no such words"),
            "limited": ("search", "harbor", "--limit", "1"),
            "empty": ("search", ""),
            "limit0": ("search", "x", "--limit", "0"),
        },
    )
    run_ids = {scratch["good"]["id"], scratch["bad_id"]}
    for key in ("percent", "underscore", "both"):
        found = ok_json(results[key])
        assert [p["id"] for p in found["prompts"]] == [prompt], key
        assert {r["id"] for r in found["runs"]} == run_ids, key
    assert ok_json(results["percent"])["prompts"][0]["matched"] == ["text"]
    assert ok_json(results["wild"])["prompts"] == []
    for key in ("backslash", "none_text"):
        done = results[key]
        assert done.returncode == 0, done.stderr
        assert "no prompt or run contains" in done.stdout
    limited = results["limited"]
    assert limited.returncode == 0, limited.stderr
    assert "1 prompt(s)" in limited.stdout and prompt in limited.stdout
    assert "2 run(s) (the newest 1; --limit shows more)" in limited.stdout
    assert_bad_input(results["empty"], "empty")
    assert results["limit0"].returncode == 2


def test_search_says_which_field_matched_whatever_the_case(project: Project) -> None:
    done = project.cosmos("create", "prompt", "A quiet HARBOR at dawn", "inputs/demo/street")
    assert done.returncode == 0, done.stderr
    assert project.cosmos_json("search", "harbor")["prompts"][0]["matched"] == ["text"]
    assert project.cosmos_json("search", "STREET")["prompts"][0]["matched"] == ["name"]


def test_search_without_a_database_finds_nothing_and_creates_none(project: Project) -> None:
    done = project.cosmos("search", "harbor", "--json")
    assert ok_json(done) == {
        "query": "harbor",
        "prompts": [],
        "runs": [],
        "prompts_total": 0,
        "runs_total": 0,
    }
    assert not (project.outputs / "cosmos.db").exists()


# ---------------------------------------------------------------- ratings


def rating_of(proj: Project, run_id: str) -> int | None:
    with sqlite3.connect(proj.outputs / "cosmos.db") as db:
        return db.execute("SELECT rating FROM runs WHERE id = ?", (run_id,)).fetchone()[0]


def test_rate_a_run_by_prefix_list_by_rating_and_clear(scratch: dict) -> None:
    proj = scratch["project"]
    run_id = scratch["good"]["id"]

    first = proj.cosmos("rate", run_id[:8], "4")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"{run_id} rated 4/5"
    again = ok_json(proj.cosmos("rate", run_id, "5", "--json"))
    assert again == {"id": run_id, "rating": 5, "previous": 4}
    assert rating_of(proj, run_id) == 5

    results = run_all(
        proj,
        {
            "exact": ("list", "runs", "--rating", "5", "--json"),
            "other": ("list", "runs", "--rating", "4", "--json"),
            "min": ("list", "runs", "--min-rating", "3", "--json"),
            "text": ("list", "runs", "--min-rating", "5"),
            "show": ("show", run_id, "--json"),
            "show_text": ("show", run_id),
        },
    )
    assert [r["id"] for r in ok_json(results["exact"])] == [run_id]
    assert ok_json(results["exact"])[0]["rating"] == 5
    assert ok_json(results["other"]) == []
    assert [r["id"] for r in ok_json(results["min"])] == [run_id]
    assert re.search(rf"^{run_id}  succeeded  5/5 ", results["text"].stdout, re.M)
    assert ok_json(results["show"])["rating"] == 5
    assert "rating: 5" in results["show_text"].stdout

    cleared = ok_json(proj.cosmos("rate", run_id, "--clear", "--json"))
    assert cleared == {"id": run_id, "rating": None, "previous": 5}
    assert rating_of(proj, run_id) is None
    assert ok_json(proj.cosmos("list", "runs", "--min-rating", "1", "--json")) == []


def test_bad_ratings_exit_2_and_change_nothing(scratch: dict) -> None:
    proj = scratch["project"]
    good = scratch["good"]["id"]
    failed = scratch["bad_id"]
    assert ok_json(proj.cosmos("rate", good, "3", "--json"))["rating"] == 3
    results = run_all(
        proj,
        {
            "zero": ("rate", good, "0"),
            "six": ("rate", good, "6"),
            "negative": ("rate", good, "--", "-1"),
            "word": ("rate", good, "five"),
            "both": ("rate", good, "2", "--clear"),
            "neither": ("rate", good),
            "failed_run": ("rate", failed, "2"),
            "prompt": ("rate", scratch["prompt"], "2"),
            "unknown": ("rate", "rs_ffffffffffffffff", "2"),
            "list_prompts": ("list", "prompts", "--rating", "2"),
            "list_range": ("list", "runs", "--min-rating", "9"),
            "list_both": ("list", "runs", "--rating", "3", "--min-rating", "3"),
        },
    )
    assert_bad_input(results["zero"], "from 1 to 5", "got 0")
    assert_bad_input(results["six"], "from 1 to 5", "got 6")
    assert_bad_input(results["negative"], "got -1")
    assert results["word"].returncode == 2
    assert_bad_input(results["both"], "--clear")
    assert_bad_input(results["neither"], "--clear")
    assert_bad_input(results["failed_run"], failed, "failed", "succeeded")
    assert_bad_input(results["prompt"], "expected a rs_ id")
    assert_bad_input(results["unknown"], "rs_ffffffffffffffff")
    assert_bad_input(results["list_prompts"], "--rating filters runs only")
    assert_bad_input(results["list_range"], "--min-rating", "got 9")
    assert_bad_input(results["list_both"], "--rating or --min-rating, not both")
    assert rating_of(proj, good) == 3
    assert rating_of(proj, failed) is None


# ---------------------------------------------------------------- exit codes


def test_exit_code_1_when_the_run_failed(scratch: dict) -> None:
    bad = scratch["bad"]
    assert bad.returncode == 1, bad.stderr
    data = json.loads(bad.stdout)
    assert data["status"] == "failed"
    shown = scratch["project"].cosmos_json("show", data["id"])
    assert shown["status"] == "failed" and shown["exit_code"] == 17


def test_exit_codes_0_2_and_3(scratch: dict, tmp_path: Path) -> None:
    proj = scratch["project"]
    port = free_port()  # nothing listens there
    key = keygen(tmp_path / "key")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {key.with_suffix('.pub').read_text()}")
    unreachable = [
        "target=ssh",
        "target.host=127.0.0.1",
        f"target.port={port}",
        "target.user=nobody",
        f"target.key_file={key}",
        f"target.known_hosts={known_hosts}",
        "target.work_dir=/srv/cosmos",
        "target.image=cosmos:1",
        "target.connect_timeout=5",
    ]
    sets = [arg for item in unreachable for arg in ("--set", item)]
    before = proj.cosmos_json("list", "runs")
    results = run_all(
        proj,
        {
            "ok": ("list", "runs"),
            "bad_input": ("show", "rs_ffffffffffffffff"),
            "bad_option": ("list", "runs", "--no-such-option"),
            "network": ("inference", scratch["prompt"], "--weight", "depth=0.5", *sets),
        },
    )
    assert results["ok"].returncode == 0, results["ok"].stderr
    assert_bad_input(results["bad_input"], "rs_ffffffffffffffff")
    assert results["bad_option"].returncode == 2
    network = results["network"]
    assert network.returncode == 3, (network.stdout, network.stderr)
    assert "127.0.0.1" in network.stderr and "Traceback" not in network.stderr
    assert "error (network): cannot connect" in network.stderr
    assert proj.cosmos_json("list", "runs") == before


@pytest.mark.parametrize("args", [("list", "runs"), ("list", "prompts"), ("search", "a")])
def test_a_closed_output_pipe_exits_141_quietly(demo_done: Project, args: tuple[str, ...]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has already quit
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cosmos_workflow.cli.main", *args],
            cwd=demo_done.root,
            env=demo_done.env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, (args, done.stderr)
    assert done.stderr == "", (args, done.stderr)


def test_a_config_file_that_is_not_yaml_is_bad_input(project: Project) -> None:
    project.write("conf/config.yaml", "defaults: [target: local\n")
    done = project.cosmos("list", "runs")
    assert_bad_input(done, "conf/config.yaml, line 2", "YAML syntax error")
    assert not project.outputs.exists()


def test_exit_codes_are_in_the_help(project: Project) -> None:
    done = project.cosmos("--help")
    assert done.returncode == 0
    expected = {"0": "ok", "1": "failed", "2": "bad input", "3": "reached", "130": "interrupted"}
    for code, words in expected.items():
        assert re.search(rf"^\s+{code}\s+.*{words}", done.stdout, re.M), (code, done.stdout)


def test_the_installed_entry_points_run(project: Project) -> None:
    """`cosmos` and `cosmos-batch` as installed console scripts (the rest runs in-process)."""
    bin_dir = Path(sys.executable).parent
    env = {**project.env, "PATH": f"{bin_dir}{os.pathsep}{project.env.get('PATH', '')}"}
    listed = subprocess.run(
        ["cosmos", "list", "prompts", "--json"],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    planned = subprocess.run(
        ["cosmos-batch", *SMALL, "dry_run=true"],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert planned.returncode == 0, planned.stderr
    assert "4 runs, 0 cached, 4 to run" in planned.stdout
    assert "dry run: nothing was executed" in planned.stdout


def test_ctrl_c_stops_an_inference_with_exit_130_and_cancels_its_run(scratch: dict) -> None:
    proj = scratch["project"]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cosmos_workflow.cli.main",
            "inference",
            scratch["prompt"],
            "--seed",
            "3",
            "--weight",
            "depth=0.5",
        ],
        cwd=proj.root,
        env={**proj.env, "COSMOS_SIMULATOR__PER_VIDEO_S": "30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    running: list[tuple] = []
    while not running and time.monotonic() < deadline:
        time.sleep(0.1)
        with sqlite3.connect(proj.outputs / "cosmos.db", timeout=30) as db:
            running = db.execute("SELECT id FROM runs WHERE status = 'running'").fetchall()
    assert running, "the run never started"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert proj.cosmos_json("show", running[0][0])["status"] == "cancelled"


# ---------------------------------------------------------------- colour only on a terminal


def test_no_escape_codes_when_output_is_not_a_terminal(demo_done: Project) -> None:
    run_id = demo_done.cosmos_json("list", "runs")[0]["id"]
    env = clean_env(demo_done, TERM="xterm-256color")
    commands = {
        "list": ("list", "runs"),
        "show": ("show", run_id),
        "status": ("status",),
        "search": ("search", "forest"),
        "error": ("show", "rs_ffffffffffffffff"),
    }
    results = {key: demo_done.cosmos(*args, env=env) for key, args in commands.items()}
    results["batch"] = demo_done.batch(*SMALL, env=env)
    for key, done in results.items():
        assert done.returncode == (2 if key == "error" else 0), (key, done.stderr)
        assert "\x1b" not in done.stdout + done.stderr, key
    assert "succeeded" in results["list"].stdout
    assert results["error"].stderr.startswith("error (validation):")


def test_on_a_terminal_statuses_and_errors_are_coloured(demo_done: Project) -> None:
    code, listed = cosmos_on_pty(demo_done, "list", "runs")
    assert code == 0, listed
    assert 32 in styled_before(listed, "succeeded")  # green
    code, error = cosmos_on_pty(demo_done, "show", "rs_ffffffffffffffff")
    assert code == 2, error
    assert 31 in styled_before(error, "error (validation)")  # red
    assert colour_codes(listed) and colour_codes(error)


def test_on_a_terminal_no_color_turns_the_colours_off(demo_done: Project) -> None:
    no_color = clean_env(demo_done, TERM="xterm-256color", NO_COLOR="1")
    code, plain_list = cosmos_on_pty(demo_done, "list", "runs", env=no_color)
    assert code == 0 and "succeeded" in plain_list
    code, plain_error = cosmos_on_pty(demo_done, "show", "rs_ffffffffffffffff", env=no_color)
    assert code == 2 and "error (validation)" in plain_error
    assert colour_codes(plain_list + plain_error) == []


# ---------------------------------------------------------------- progress with an ETA


def test_cosmos_batch_on_a_terminal_shows_progress_with_an_eta(project: Project) -> None:
    env = clean_env(
        project,
        TERM="xterm-256color",
        COSMOS_SIMULATOR__PER_VIDEO_S="0.6",
        COSMOS_SIMULATOR__MODEL_LOAD_S="0",
    )
    code, shown = on_pty(project, ["-m", "cosmos_workflow.cli.batch", *SMALL], env)
    assert code == 0, shown
    text = ANSI.sub("", shown)
    etas = re.findall(r"(\d+)/4 eta (\d+m?\d*s|unknown)", text)
    assert ("0", "unknown") in etas, text
    assert any(done in ("1", "2", "3") and eta != "unknown" for done, eta in etas), etas
    assert ("4", "0s") in etas
    assert "done 4" in text


def test_cosmos_inference_on_a_terminal_shows_the_same_display(scratch: dict) -> None:
    proj = scratch["project"]
    env = clean_env(proj, TERM="xterm-256color", COSMOS_SIMULATOR__PER_VIDEO_S="0.5")
    code, shown = cosmos_on_pty(
        proj,
        "inference",
        scratch["prompt"],
        "--seed",
        "4",
        "--weight",
        "depth=0.5",
        env=env,
    )
    assert code == 0, shown
    text = ANSI.sub("", shown)
    assert "1 runs: 0 cached, 1 to run" in text
    assert re.search(r"0/1 eta unknown", text) and re.search(r"1/1 eta 0s", text), text
    assert "done 1" in text


STEP_SCRIPT = """
import time
from cosmos_workflow.cli.console import stderr_console
from cosmos_workflow.cli.step_display import make_step_progress
progress = make_step_progress(stderr_console())
progress.start("encoding frames", 6)
for _ in range(6):
    time.sleep(0.3)
    progress.advance()
progress.finish()
"""


def test_the_step_helper_shows_a_bar_with_an_eta_on_a_terminal_only(project: Project) -> None:
    env = clean_env(project, TERM="xterm-256color")
    piped = subprocess.run(
        [sys.executable, "-c", STEP_SCRIPT],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0, piped.stderr
    assert "\x1b" not in piped.stdout + piped.stderr

    code, shown = on_pty(project, ["-c", STEP_SCRIPT], env)
    assert code == 0, shown
    text = ANSI.sub("", shown)
    assert re.search(r"encoding frames .*0/6 elapsed \d+s eta unknown", text), text
    assert re.search(r"[1-5]/6 elapsed \d+s eta \d+s", text), text
    assert re.search(r"6/6 elapsed \d+s eta 0s", text), text


# ---------------------------------------------------------------- the step helper, on a fake clock


def test_step_display_counts_time_and_eta_on_a_terminal() -> None:
    clock = FakeClock(T0)
    console = terminal()
    progress = make_step_progress(console, clock)
    assert isinstance(progress, RichStepProgress)
    progress.start("encoding frames", 4)
    assert "encoding frames" in shown(console) and "0/4 elapsed 0s eta unknown" in shown(console)
    clock.advance(10)
    progress.advance()
    assert "1/4 elapsed 10s eta 30s" in shown(console)
    clock.advance(10)
    progress.advance(3)
    progress.finish()
    assert shown(console).rstrip().endswith("4/4 elapsed 20s eta 0s")

    unknown = terminal()
    steps = make_step_progress(unknown, clock)
    steps.start("uploading", None)
    clock.advance(5)
    steps.advance(3)
    steps.finish()
    assert "3/? elapsed 5s eta unknown" in shown(unknown)


def test_step_lines_off_a_terminal_come_at_most_every_interval() -> None:
    clock = FakeClock(T0)
    plain = Console(file=io.StringIO(), force_terminal=False, width=40)
    progress = make_step_progress(plain, clock)
    assert isinstance(progress, PlainStepProgress)
    progress.start("encoding frames", 10)
    for _ in range(4):
        clock.advance(2)
        progress.advance()
    progress.finish()
    # One line each (never wrapped), no escape codes: this is not a terminal.
    assert plain.file.getvalue().splitlines() == [
        "encoding frames: 10 step(s)",
        "encoding frames: 3/10 after 6s; eta 14s",
        "encoding frames: 4/10 after 8s; eta 12s",
    ]
