"""What every `cosmos` command family shares: the lazy API, exit codes, --json, --set.

This module is imported to list and complete commands, so it imports only
click and the standard library; the API and the terminal helpers are
imported when a command runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from cosmos_workflow.errors import ValidationFailure

if TYPE_CHECKING:
    from cosmos_workflow.api import CosmosAPI

# What a shell reports for a command stopped by Ctrl-C (128 + SIGINT).
INTERRUPTED_EXIT = 130
TARGET_SET_HELP = "Config override, e.g. the target overrides that cosmos-batch was given."


class CliContext:
    """Builds the API lazily, with the config overrides a command needs."""

    def __init__(self) -> None:
        self._api: CosmosAPI | None = None
        self.composed: dict[str, Any] = {}

    def api(self, overrides: list[str] | None = None, all_targets: bool = False) -> CosmosAPI:
        """The API for this command.

        Args:
            overrides: Hydra overrides (``--set``) applied to conf/.
            all_targets: Also compose every target in conf/target/ (status, logs, kill).
        """
        if self._api is None:
            from cosmos_workflow.api import CosmosAPI
            from cosmos_workflow.cli.console import configure_logging

            self._api = CosmosAPI.from_project(overrides=overrides or [], all_targets=all_targets)
            self.composed = self._api.composed
            level = self._api.settings.log_level
            # Management commands print their own results: routine INFO lines
            # (a migration, a run finishing) would clutter them.
            configure_logging(level if level != "INFO" else "WARNING")
            click.get_current_context().call_on_close(self._api.close)
        return self._api


class GuardedGroup(click.Group):
    """Turns expected failures into a one-line message and their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; exit with the code of an expected failure (130 on Ctrl-C)."""
        from cosmos_workflow.cli.console import guarded

        result: list[Any] = []

        def action() -> int:
            result.append(super(GuardedGroup, self).invoke(ctx))
            return 0

        try:
            code = guarded(action, debug=bool(ctx.params.get("debug")))
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            code = INTERRUPTED_EXIT
        if code:
            sys.exit(code)
        return result[0] if result else None


def database_errors() -> tuple[type[Exception], ...]:
    """SQLAlchemy's error base class, if SQLAlchemy was loaded; else nothing.

    For ``except (..., *database_errors())``: the clause is evaluated only
    when an exception arrives, and a database error can only arrive once
    SQLAlchemy is loaded, so commands that never touch the database never
    import it.
    """
    exc_module = sys.modules.get("sqlalchemy.exc")
    return (exc_module.SQLAlchemyError,) if exc_module is not None else ()


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON, or with ``render``."""
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        render(data)


def set_overrides(sets: tuple[str, ...]) -> list[str]:
    """The ``--set KEY=VALUE`` overrides as a list.

    Raises:
        ValidationFailure: one of them has no ``=``.
    """
    for item in sets:
        if "=" not in item:
            raise ValidationFailure(f"--set takes KEY=VALUE, got {item!r}")
    return list(sets)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
"""The ``--json`` flag of a command that prints a result."""

set_option = click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any config override."
)
"""``--set KEY=VALUE`` (repeatable): a config override."""

target_set_option = click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help=TARGET_SET_HELP
)
"""``--set KEY=VALUE`` of a command that reaches targets (status, logs, kill, upscale)."""
