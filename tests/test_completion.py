"""Shell completion of `cosmos`: commands, and ids from the database.

Completion runs the real CLI (in-process) the way a shell's completion
script does (the ``_COSMOS_COMPLETE`` / ``COMP_WORDS`` / ``COMP_CWORD``
protocol of click), and, for bash, through the script that `cosmos
completion bash` prints, sourced into a real bash that runs the installed
`cosmos` entry point.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import sqlalchemy
from alembic import command
from alembic.config import Config
from conftest import Project, make_project

from cosmos_workflow.cli.main import cli
from cosmos_workflow.database.engine import MIGRATIONS_DIR, create_db_engine, current_revision


def complete(
    project: Project, line: str, shell: str = "bash", cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Ask `cosmos` for the completions of the last word of ``line`` ("" starts a new word)."""
    words = shlex.split(line)
    if line.endswith(" "):
        words.append("")
    env = {
        "_COSMOS_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": " ".join(shlex.quote(w) for w in words if w),
        "COMP_CWORD": words[-1] if shell == "fish" else str(len(words) - 1),
    }
    return Project(root=cwd or project.root, env=project.env).cosmos(env=env)


def bash_values(done: subprocess.CompletedProcess) -> list[str]:
    """Values of bash_complete output ("type,value" lines)."""
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return [line.split(",", 1)[1] for line in done.stdout.splitlines() if line]


def zsh_items(done: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(value, help) of zsh_complete output (type, value, help: three lines each)."""
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip("\n").split("\n") if done.stdout.strip() else []
    assert len(lines) % 3 == 0, lines
    return [(lines[i + 1], lines[i + 2]) for i in range(0, len(lines), 3)]


@pytest.fixture(scope="module")
def ids(demo_done: Project) -> dict[str, Any]:
    runs = demo_done.cosmos_json("list", "runs")
    prompts = demo_done.cosmos_json("list", "prompts")
    sweeps = demo_done.cosmos_json("list", "sweeps")
    return {
        "runs": sorted(r["id"] for r in runs),
        "prompts": sorted(p["id"] for p in prompts),
        "sweeps": sorted(s["id"] for s in sweeps),
        "prompt_names": {p["id"]: p["name"] for p in prompts},
    }


def test_every_registered_command_completes(demo_done: Project) -> None:
    assert set(bash_values(complete(demo_done, "cosmos "))) == set(
        cli.list_commands(click.Context(cli))
    )
    assert bash_values(complete(demo_done, "cosmos sh")) == ["show"]
    assert bash_values(complete(demo_done, "cosmos create ")) == ["prompt"]
    assert set(bash_values(complete(demo_done, "cosmos list "))) == {"prompts", "runs", "sweeps"}


def test_ids_complete_by_kind_and_prefix(demo_done: Project, ids: dict[str, Any]) -> None:
    runs, prompts, sweeps = ids["runs"], ids["prompts"], ids["sweeps"]
    some_run = runs[5]
    expected = {
        "cosmos show ": prompts + runs + sweeps,
        "cosmos show rs_": runs,
        "cosmos show p": prompts,
        f"cosmos show {some_run[:6]}": [r for r in runs if r.startswith(some_run[:6])],
        f"cosmos show {some_run}": [some_run],
        "cosmos show rs_zz": [],
        "cosmos show rs%": [],
        "cosmos inference ": prompts,
        "cosmos logs ": runs,
        "cosmos rate ": runs,
        "cosmos rate ps_": [],
        "cosmos kill ": runs,
        "cosmos kill --sweep ": sweeps,
        "cosmos delete prompt ": prompts,
        "cosmos delete run rs_": runs,
        "cosmos report ": sweeps,
        "cosmos report sw_": sweeps,
        "cosmos report rs_": [],
        "cosmos enhance ": prompts,
        "cosmos upscale ": runs,
    }
    for line, values in expected.items():
        assert bash_values(complete(demo_done, line)) == values, line


def test_zsh_and_fish_get_ids_with_a_label(demo_done: Project, ids: dict[str, Any]) -> None:
    zsh_runs = zsh_items(complete(demo_done, "cosmos logs rs_", shell="zsh"))
    assert zsh_runs == [(run_id, "succeeded") for run_id in ids["runs"]]
    zsh_prompts = zsh_items(complete(demo_done, "cosmos inference ", shell="zsh"))
    assert zsh_prompts == [(p, ids["prompt_names"][p]) for p in ids["prompts"]]

    fish = complete(demo_done, "cosmos show sw_", shell="fish")
    assert fish.returncode == 0, fish.stderr
    assert fish.stdout.splitlines() == [f"plain,{s}\tdemo" for s in ids["sweeps"]]


def test_no_database_no_project_or_a_broken_config_offers_nothing_and_creates_nothing(
    project: Project, tmp_path: Path
) -> None:
    assert bash_values(complete(project, "cosmos show ")) == []
    assert not project.outputs.exists()

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert bash_values(complete(project, "cosmos show rs_", cwd=outside)) == []
    assert list(outside.iterdir()) == []

    broken = make_project(tmp_path / "broken")
    (broken.root / "conf" / "config.yaml").write_text("defaults: [nope\n")
    assert bash_values(complete(broken, "cosmos logs ")) == []
    # Commands still complete without a usable config.
    assert bash_values(complete(broken, "cosmos lo")) == ["logs"]


def test_the_printed_bash_script_completes_ids_in_a_real_bash(
    demo_done: Project, ids: dict[str, Any]
) -> None:
    script = demo_done.cosmos("completion", "bash")
    assert script.returncode == 0, script.stderr
    assert "_COSMOS_COMPLETE=bash_complete" in script.stdout
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "cosmos").is_file(), "the cosmos entry point is not installed"
    test = (
        'source /dev/stdin <<< "$SCRIPT"\n'
        'COMP_WORDS=(cosmos kill --sweep "")\n'
        "COMP_CWORD=3\n"
        "_cosmos_completion cosmos\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-c", test],
        cwd=demo_done.root,
        env={
            **demo_done.env,
            "SCRIPT": script.stdout,
            "PATH": f"{bin_dir}{os.pathsep}{demo_done.env.get('PATH', '')}",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ids["sweeps"]


@pytest.mark.parametrize(("shell", "marker"), [("zsh", "#compdef cosmos"), ("fish", "complete")])
def test_zsh_and_fish_scripts_and_an_unknown_shell(
    demo_done: Project, shell: str, marker: str
) -> None:
    done = demo_done.cosmos("completion", shell)
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout and f"_COSMOS_COMPLETE={shell}_complete" in done.stdout
    unknown = demo_done.cosmos("completion", "tcsh")
    assert unknown.returncode == 2 and "tcsh" in unknown.stderr


def test_completion_never_creates_or_migrates_a_postgresql_schema(
    project: Project, pg_url: str
) -> None:
    project.env["COSMOS_DATABASE__URL"] = pg_url
    assert bash_values(complete(project, "cosmos show ")) == []
    engine = sqlalchemy.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert sqlalchemy.inspect(conn).get_table_names() == []
        # Once a command made the schema, completion offers its ids.
        prompt = project.cosmos("create", "prompt", "a pier", "inputs/demo/street")
        assert prompt.returncode == 0, prompt.stderr
        assert bash_values(complete(project, "cosmos show ps_")) == [prompt.stdout.strip()]
    finally:
        engine.dispose()


def test_completion_offers_nothing_from_a_database_of_an_older_version(project: Project) -> None:
    made = project.cosmos("create", "prompt", "a pier", "inputs/demo/street")
    assert made.returncode == 0, made.stderr
    prompt_id = made.stdout.strip()
    assert bash_values(complete(project, "cosmos show ps_")) == [prompt_id]
    engine = create_db_engine(f"sqlite:///{project.outputs / 'cosmos.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    try:
        command.downgrade(config, "0003")
        assert bash_values(complete(project, "cosmos show ps_")) == []
        assert current_revision(engine) == "0003", "completion migrated the database"
    finally:
        engine.dispose()
    # Any other command migrates it; then completion offers its ids again.
    assert project.cosmos_json("list", "prompts")[0]["id"] == prompt_id
    assert bash_values(complete(project, "cosmos show ps_")) == [prompt_id]
