"""Shell completion of `cosmos`: the script to source, and completion of ids.

Command and option names complete through click itself. An id argument
completes by asking the database for ids that start with what was typed:
give it ``shell_complete=complete_run_ids`` (or ``complete_prompt_ids``,
``complete_sweep_ids``, ``complete_any_id``).

Completing never prints an error and never creates a database: outside a
project, with a bad config or without a database there is simply nothing
to offer. A Tab press is a new process each time, so it loads little: the
config of a plain conf/ is read without Hydra (config/plain.py) and a SQLite
database with the standard library (database/peek.py); only another
database is asked through the API.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import click
from click.shell_completion import CompletionItem, get_completion_class

from cosmos_workflow.cli.common import database_errors
from cosmos_workflow.errors import CosmosError, ValidationFailure

SHELLS = ("bash", "zsh", "fish")
# At most this many ids are offered at once.
MAX_CANDIDATES = 100


def completion_script(command: click.Command, shell: str, prog_name: str) -> str:
    """The script that makes ``shell`` complete ``prog_name`` (to source or eval).

    Raises:
        ValidationFailure: a shell this does not support.
    """
    cls = get_completion_class(shell) if shell in SHELLS else None
    if cls is None:
        raise ValidationFailure(f"no completion for shell {shell!r} (one of: {', '.join(SHELLS)})")
    complete_var = f"_{prog_name.replace('-', '_').upper()}_COMPLETE"
    return cls(command, {}, prog_name, complete_var).source()


def _candidates(incomplete: str, kinds: tuple[str, ...]) -> list[CompletionItem]:
    """Ids of ``kinds`` starting with ``incomplete``, labelled; none on any failure."""
    # Nothing may reach the terminal while the shell completes (a migration's
    # log line, a warning): the shell would print it in the middle of the line.
    logging.disable(logging.CRITICAL)
    try:
        found = _ids_with_prefix(incomplete, kinds)
    except (CosmosError, OSError, sqlite3.Error, *database_errors()):
        return []
    finally:
        logging.disable(logging.NOTSET)
    return [CompletionItem(object_id, help=label) for object_id, label in found]


def _ids_with_prefix(incomplete: str, kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """(id, label) of the ids of ``kinds`` that start with ``incomplete``.

    Raises:
        CosmosError: no project, or a bad config. OSError, sqlite3.Error, or
            SQLAlchemy's errors: the database cannot be read.
    """
    from cosmos_workflow.config.compose import compose_config
    from cosmos_workflow.config.manager import ConfigManager
    from cosmos_workflow.config.project import find_project
    from cosmos_workflow.database.peek import sqlite_ids_with_prefix

    project = find_project(Path.cwd(), os.environ)
    settings = ConfigManager(project, os.environ).settings(compose_config(project, []))
    found = sqlite_ids_with_prefix(settings.database_url, incomplete, kinds, MAX_CANDIDATES)
    if found is not None:
        return found
    from cosmos_workflow.api import CosmosAPI

    with CosmosAPI(settings) as api:
        return api.ids_with_prefix(incomplete, kinds, MAX_CANDIDATES)


def complete_prompt_ids(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Prompt ids (ps_) starting with what was typed."""
    return _candidates(incomplete, ("ps",))


def complete_run_ids(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Run ids (rs_) starting with what was typed."""
    return _candidates(incomplete, ("rs",))


def complete_sweep_ids(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Sweep ids (sw_) starting with what was typed."""
    return _candidates(incomplete, ("sw",))


def complete_any_id(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Prompt, run and sweep ids starting with what was typed."""
    return _candidates(incomplete, ("ps", "rs", "sw"))


def complete_ids_of_kind(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Ids of the kind an earlier argument or flag names.

    ``kind`` ("prompt", "run", "sweep") or a ``sweep`` flag set before the id
    (``cosmos delete run ID``, ``cosmos kill --sweep ID``); run ids otherwise.
    """
    kinds = {"prompt": "ps", "run": "rs", "sweep": "sw"}
    kind = ctx.params.get("kind")
    if ctx.params.get("sweep"):
        kind = "sweep"
    return _candidates(incomplete, (kinds.get(str(kind), "rs"),))


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the script that makes SHELL complete cosmos commands and ids.

    \b
    bash: eval "$(cosmos completion bash)"     (in ~/.bashrc)
    zsh:  eval "$(cosmos completion zsh)"      (in ~/.zshrc)
    fish: cosmos completion fish | source      (in ~/.config/fish/config.fish)
    """
    click.echo(completion_script(ctx.find_root().command, shell, "cosmos"))
