"""Commands that start at once: what `cosmos` loads, and the fast paths behave as the slow ones.

Help, the version and completing a command name load no heavy library (a
fresh process is what is under test there, so those checks run one). The
fast paths (conf/ composed without Hydra, schema revisions read from the
migration files, ids read from SQLite with sqlite3) are compared with what
Hydra, alembic and the API answer.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path
from typing import get_args

import click
import pytest
from click.testing import CliRunner, Result
from conftest import Project, make_project

import cosmos_workflow
from cosmos_workflow.cli.main import COMMANDS, cli
from cosmos_workflow.config.compose import _with_hydra
from cosmos_workflow.config.plain import compose_plain, plain_option
from cosmos_workflow.config.project import ProjectPaths
from cosmos_workflow.database import peek
from cosmos_workflow.database.revisions import head_revision, known_revisions

REPO = Path(__file__).resolve().parents[1]
HEAVY = (
    "sqlalchemy",
    "alembic",
    "paramiko",
    "av",
    "jinja2",
    "hydra",
    "starlette",
    "uvicorn",
    "omegaconf",
    "pydantic",
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="cosmos")


# ---------------------------------------------------------------- --version and --help


def test_version_prints_the_installed_version() -> None:
    done = invoke("--version")
    assert done.exit_code == 0, done.output
    assert done.output == f"cosmos {version('cosmos-workflow')}\n"
    assert cosmos_workflow.__version__ == version("cosmos-workflow")


def test_version_is_read_from_the_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    cosmos_workflow._installed_version.cache_clear()
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.8.7")
    try:
        done = invoke("--version")
        assert done.exit_code == 0, done.output
        assert done.output == "cosmos 9.8.7\n"
    finally:
        cosmos_workflow._installed_version.cache_clear()


# Today's commands, written out: the table is not compared with itself.
EXPECTED_COMMANDS = {
    "create",
    "prepare",
    "inference",
    "enhance",
    "upscale",
    "list",
    "show",
    "search",
    "rate",
    "delete",
    "verify",
    "status",
    "logs",
    "kill",
    "report",
    "gc",
    "ui",
    "completion",
}


def test_help_lists_exactly_the_expected_commands() -> None:
    done = invoke("--help")
    assert done.exit_code == 0, done.output
    listed = done.output.split("Commands:\n", 1)[1]
    names = [line.split()[0] for line in listed.splitlines() if line.strip()]
    assert len(names) == len(set(names)), names
    assert set(names) == EXPECTED_COMMANDS


def test_help_lists_every_command_with_its_own_short_help() -> None:
    done = invoke("--help")
    assert done.exit_code == 0, done.output
    listed = done.output.split("Commands:\n", 1)[1]
    names = [line.split()[0] for line in listed.splitlines() if line.strip()]
    assert names == sorted(COMMANDS)
    assert "--version" in done.output and "141" in done.output
    ctx = click.Context(cli)
    for name, where in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None, name
        assert command.get_short_help_str(10**6) == where.short_help, name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_of_each_command(name: str) -> None:
    done = invoke(name, "--help")
    assert done.exit_code == 0, done.output
    assert done.output.startswith(f"Usage: cosmos {name} ")
    assert COMMANDS[name].short_help.split()[0] in done.output


def test_commands_complete_from_the_table_with_their_help() -> None:
    ctx = click.Context(cli, resilient_parsing=True)
    assert [item.value for item in cli.shell_complete(ctx, "l")] == ["list", "logs"]
    items = cli.shell_complete(ctx, "")
    loaded = click.Context(cli)
    assert [(item.value, item.help) for item in items] == [
        (name, cli.get_command(loaded, name).get_short_help_str()) for name in sorted(COMMANDS)
    ]
    assert [item.value for item in cli.shell_complete(ctx, "--v")] == ["--version"]


LOADED = """
import sys
from cosmos_workflow.cli.main import cli
try:
    cli({args!r}, prog_name="cosmos")
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
heavy = [name for name in {heavy!r} if name in sys.modules]
assert not heavy, heavy
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["list", "--help"], ["status", "--help"], ["completion", "bash"]],
)
def test_help_and_version_load_no_heavy_library(args: list[str]) -> None:
    script = LOADED.format(args=args, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_completing_a_command_or_an_id_loads_no_heavy_library(demo_done: Project) -> None:
    # Ids need the settings, validated by pydantic; nothing heavier.
    script = textwrap.dedent(
        f"""
        import os, sys
        from cosmos_workflow.cli.main import cli
        for words in ("cosmos l", "cosmos show rs_", "cosmos list --"):
            os.environ.update(
                _COSMOS_COMPLETE="bash_complete",
                COMP_WORDS=words,
                COMP_CWORD=str(len(words.split(" ")) - 1),
            )
            try:
                cli(prog_name="cosmos")
            except SystemExit as exc:
                assert exc.code in (0, None), exc.code
        heavy = [name for name in {HEAVY[:-1]!r} if name in sys.modules]
        assert not heavy, heavy
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=demo_done.root,
        env=demo_done.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("plain,rs_") == 12, done.stdout


DATABASE_COMMAND = """
import sys
from cosmos_workflow.cli.main import cli
try:
    code = cli.main({args!r}, prog_name="cosmos", standalone_mode=False)
except SystemExit as exc:
    code = exc.code
assert code in (0, None), code
heavy = [name for name in {heavy!r} if name in sys.modules]
assert not heavy, heavy
"""
# SQLAlchemy and pydantic are what the database commands need; nothing heavier.
NOT_FOR_THE_DATABASE = ("alembic", "paramiko", "cryptography", "av", "jinja2", "hydra", "omegaconf")


@pytest.mark.parametrize("args", [["list", "runs"], ["status"], ["show", "RUN"]], ids=str)
def test_database_commands_load_no_migration_or_heavy_library(
    demo_done: Project, args: list[str]
) -> None:
    if "RUN" in args:
        run = demo_done.cosmos_json("list", "runs")[0]["id"]
        args = [run if arg == "RUN" else arg for arg in args]
    script = DATABASE_COMMAND.format(args=args, heavy=NOT_FOR_THE_DATABASE)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=demo_done.root,
        env=demo_done.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "the command printed something"


# ---------------------------------------------------------------- conf/ without Hydra


def hydra_composed(project: ProjectPaths, overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    return _with_hydra(
        project, overrides, False, lambda cfg: OmegaConf.to_container(cfg, resolve=True)
    )


def hydra_choices(project: ProjectPaths, overrides: list[str]) -> dict[str, str]:
    from omegaconf import OmegaConf

    return _with_hydra(
        project, overrides, True, lambda cfg: OmegaConf.to_container(cfg.hydra.runtime.choices)
    )


def option_overrides() -> list[list[str]]:
    targets = [f"target={p.stem}" for p in sorted((REPO / "conf" / "target").glob("*.yaml"))]
    models = [f"model={p.stem}" for p in sorted((REPO / "conf" / "model").glob("*.yaml"))]
    return [[], *([o] for o in targets + models), [models[-1], targets[-1]]]


@pytest.mark.parametrize("overrides", option_overrides(), ids=str)
def test_the_projects_conf_composes_without_hydra_as_hydra_does(overrides: list[str]) -> None:
    project = ProjectPaths(REPO)
    composed = compose_plain(project, overrides)
    assert composed is not None, "the project's conf/ is plain"
    assert repr(composed) == repr(hydra_composed(project, overrides)), "values, types, key order"
    choices = hydra_choices(project, overrides)
    for group in ("target", "model"):
        assert plain_option(project, overrides, group) == (True, choices[group])
    assert plain_option(project, overrides, "hydra/launcher") == (False, None)


STILL_PLAIN = {
    "the config's own keys over a group's": "target:\n  name: other\n  gpus: ???\n",
    "a missing value alone": "more:\n  ledger: ???\n",
    "YAML 1.2 floats and no dates": "extra:\n  rate: 1e-3\n  day: 2024-01-01\n  n: 0x10\n",
}


@pytest.mark.parametrize("case", sorted(STILL_PLAIN))
def test_other_plain_confs_compose_as_hydra_does(tmp_path: Path, case: str) -> None:
    root = make_project(tmp_path / "proj").root
    with (root / "conf" / "config.yaml").open("a") as handle:
        handle.write(STILL_PLAIN[case])
    project = ProjectPaths(root)
    composed = compose_plain(project, ["target=ssh"])
    assert composed is not None
    assert repr(composed) == repr(hydra_composed(project, ["target=ssh"]))


NOT_PLAIN = {
    "an interpolation": ("conf/config.yaml", "  outputs: null", "  outputs: ${oc.env:HOME}"),
    "a package line": ("conf/target/local.yaml", "name: local", "# @package _global_\nname: local"),
    "a group file's defaults": ("conf/model/simulated.yaml", "seed: 1", "defaults: []\nseed: 1"),
    "no _self_": ("conf/config.yaml", "  - _self_\n", ""),
    "a key twice": ("conf/config.yaml", "dry_run: false", "dry_run: false\ndry_run: true"),
    "an optional entry": ("conf/config.yaml", "  - target: local", "  - optional target: local"),
}


@pytest.mark.parametrize("case", sorted(NOT_PLAIN))
def test_any_other_conf_is_left_to_hydra(tmp_path: Path, case: str) -> None:
    root = make_project(tmp_path / "proj").root
    relative, old, new = NOT_PLAIN[case]
    path = root / relative
    text = path.read_text()
    assert old in text, (relative, old)
    path.write_text(text.replace(old, new, 1))
    assert compose_plain(ProjectPaths(root), []) is None
    assert plain_option(ProjectPaths(root), [], "target") == (False, None)


@pytest.mark.parametrize(
    "override", ["simulator.per_video_s=0", "+x=1", "target=nope", "~target", "model='x'"]
)
def test_overrides_other_than_picking_an_existing_option_are_left_to_hydra(override: str) -> None:
    assert compose_plain(ProjectPaths(REPO), [override]) is None


# ---------------------------------------------------------------- schema revisions without alembic


def test_revisions_read_from_the_files_are_alembics() -> None:
    from alembic.script import ScriptDirectory

    from cosmos_workflow.database.revisions import MIGRATIONS_DIR

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    assert known_revisions() == {
        revision.revision: revision.down_revision for revision in script.walk_revisions()
    }
    assert head_revision() == script.get_current_head()


def test_controls_are_spelled_the_same_in_specs_and_models() -> None:
    from cosmos_workflow.manifest.models import ControlKey
    from cosmos_workflow.manifest.specs import CONTROL_KEYS

    assert get_args(ControlKey) == CONTROL_KEYS


# ---------------------------------------------------------------- ids from SQLite, no SQLAlchemy


def test_only_plain_sqlite_file_urls_are_read_directly(tmp_path: Path) -> None:
    assert peek.sqlite_file(f"sqlite:///{tmp_path}/c.db") == tmp_path / "c.db"
    assert peek.sqlite_file("sqlite:///outputs/c.db") == Path("outputs/c.db")
    for url in (
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///a%20b.db",
        "sqlite:///c.db?mode=ro",
        "sqlite+pysqlite:///c.db",
        "postgresql://u@h/db",
    ):
        assert peek.sqlite_file(url) is None, url
    missing = tmp_path / "none" / "c.db"
    assert peek.sqlite_ids_with_prefix(f"sqlite:///{missing}", "", ["rs"], 10) == []
    assert not missing.parent.exists()


def test_ids_read_with_sqlite3_are_the_apis(demo_done: Project) -> None:
    import os

    from cosmos_workflow.api.cosmos_api import CosmosAPI

    environ = {**os.environ, **demo_done.env}
    api = CosmosAPI.from_project(demo_done.root, environ=environ)
    url = api.settings.database_url
    run = demo_done.cosmos_json("list", "runs")[3]["id"]
    kinds = ("ps", "rs", "sw")
    try:
        for prefix in ("", "rs_", "p", "s", "sw_", run[:6], run, "rs%", "rs_\\", "zz"):
            for limit in (100, 5):
                fast = peek.sqlite_ids_with_prefix(url, prefix, kinds, limit)
                assert fast == api.ids_with_prefix(prefix, kinds, limit), (prefix, limit)
        assert len(peek.sqlite_ids_with_prefix(url, "", kinds, 100) or []) > 12
        # Prefixes that pass the kind filter and reach LIKE: _ and % match themselves only.
        for prefix in (run[:4] + "_", run[:4] + "%", "rs_%", "rs__", "ps_%", run[:4] + "\\"):
            for limit in (100, 5):
                fast = peek.sqlite_ids_with_prefix(url, prefix, kinds, limit)
                assert fast == api.ids_with_prefix(prefix, kinds, limit), (prefix, limit)
                assert fast == [], (prefix, limit)
    finally:
        api.close()
