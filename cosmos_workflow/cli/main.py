"""`cosmos`: manage prompts, runs and sweeps (over CosmosAPI only).

The commands live in families (inputs, run, catalogue, operate, complete),
each a module that is imported only when one of its commands runs, shows
its help or completes its arguments. `cosmos --help`, `cosmos --version`
and completing a command name read the table below and import nothing else.

Exit codes: 0 ok, 1 runs failed, 2 bad input (or nothing to kill),
3 connection or auth (`status`: a configured target could not be reached),
130 interrupted, 141 output pipe closed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import click

from cosmos_workflow.cli.common import CliContext, GuardedGroup

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem


class LazyCommand(NamedTuple):
    """Where a command is defined, and its one-line help for `cosmos --help`."""

    module: str
    attribute: str
    short_help: str


_FAMILY = "cosmos_workflow.cli."
# Command name -> where it lives. short_help is the first sentence of the
# command's docstring (a test keeps the two the same).
COMMANDS: dict[str, LazyCommand] = {
    "create": LazyCommand(f"{_FAMILY}inputs", "create", "Create prompts."),
    "prepare": LazyCommand(
        f"{_FAMILY}inputs",
        "prepare",
        "Turn the PNG sequences in FOLDER into one mp4 per modality (color.mp4, depth.mp4...).",
    ),
    "inference": LazyCommand(
        f"{_FAMILY}run",
        "inference",
        "Run PROMPTs on the configured target; several run as one sweep, batched.",
    ),
    "enhance": LazyCommand(
        f"{_FAMILY}run",
        "enhance",
        "Rewrite PROMPT_ID with the prompt upsampler; print the NEW prompt's id.",
    ),
    "upscale": LazyCommand(
        f"{_FAMILY}run",
        "upscale",
        "4K-upscale RUN_ID's output video: a new run (rs_...) linked to RUN_ID.",
    ),
    "list": LazyCommand(
        f"{_FAMILY}catalogue", "list_", "List prompts, runs or sweeps, newest first."
    ),
    "show": LazyCommand(
        f"{_FAMILY}catalogue",
        "show",
        "Show a prompt (ps_), run (rs_) or sweep (sw_); a unique prefix is enough.",
    ),
    "search": LazyCommand(
        f"{_FAMILY}catalogue",
        "search",
        "Find prompts whose text, name or negative prompt contains TEXT, and their runs.",
    ),
    "rate": LazyCommand(
        f"{_FAMILY}catalogue",
        "rate",
        "Rate a succeeded run's output from 1 (bad) to 5 (good); --clear removes it.",
    ),
    "delete": LazyCommand(
        f"{_FAMILY}catalogue",
        "delete",
        "Delete a prompt (and its runs) or a run, or every one (--all).",
    ),
    "verify": LazyCommand(
        f"{_FAMILY}catalogue",
        "verify",
        "Check the database against the run folders: missing, changed or orphaned outputs.",
    ),
    "status": LazyCommand(
        f"{_FAMILY}operate",
        "status",
        "Run counts, what runs where, sweeps under way (ETA, jobs), targets' GPUs and containers.",
    ),
    "logs": LazyCommand(
        f"{_FAMILY}operate",
        "logs",
        "Print a run's log: live while it runs, else the copy in its run folder.",
    ),
    "kill": LazyCommand(
        f"{_FAMILY}operate",
        "kill",
        "Stop run ID (or with --sweep, sweep ID) and mark it cancelled.",
    ),
    "report": LazyCommand(
        f"{_FAMILY}operate",
        "report",
        "Write the sweep's report.html (a grid of its outputs) and print its path.",
    ),
    "gc": LazyCommand(
        f"{_FAMILY}operate",
        "gc",
        "Remove containers and job folders of ours that no live runner owns.",
    ),
    "ui": LazyCommand(
        f"{_FAMILY}ui",
        "ui",
        "Browse, compare and rate runs and sweeps in a web browser (local web app).",
    ),
    "completion": LazyCommand(
        f"{_FAMILY}complete",
        "completion",
        "Print the script that makes SHELL complete cosmos commands and ids.",
    ),
}


class LazyGroup(GuardedGroup):
    """A group whose commands are imported from their family module when first needed.

    Args:
        lazy_commands: Command name -> where it lives and its short help.
        **kwargs: Passed to :class:`click.Group`.
    """

    def __init__(self, *args: object, lazy_commands: Mapping[str, LazyCommand], **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, sorted (as click lists them)."""
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, its family module imported on first use; None if unknown."""
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            where = self.lazy_commands[cmd_name]
            command = getattr(importlib.import_module(where.module), where.attribute)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def _summary(self, cmd_name: str) -> click.Command:
        """The loaded command, or a stand-in that carries only its short help."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        return click.Command(cmd_name, help=self.lazy_commands[cmd_name].short_help)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The "Commands:" section, from the table (no family is imported)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, self._summary(name).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Command names (with their short help) from the table, then the group's options."""
        from click.shell_completion import CompletionItem

        results = [
            CompletionItem(name, help=self._summary(name).get_short_help_str())
            for name in self.list_commands(ctx)
            if name.startswith(incomplete)
        ]
        results.extend(click.Command.shell_complete(self, ctx, incomplete))
        return results


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: print "cosmos <version>" and stop."""
    if not value or ctx.resilient_parsing:
        return
    from cosmos_workflow import __version__

    click.echo(f"cosmos {__version__}")
    ctx.exit()


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
@click.option("--debug", is_flag=True, help="On an error, print its traceback too.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Manage Cosmos prompts, runs and sweeps. Sweeps run with `cosmos-batch`.

    Every list, show and status command takes --json. Ids complete on Tab
    once the shell knows the script: eval "$(cosmos completion bash)".

    \b
    Exit codes:
      0    ok
      1    runs failed or were cancelled, or the output tree is busy
      2    bad input: an unknown id, option or value (nothing is changed)
      3    a target could not be reached, or SSH refused the login or host key
      130  interrupted (Ctrl-C)
      141  the output pipe was closed (| head)
    """
    ctx.obj = CliContext()


def main() -> None:
    """Console entry point of `cosmos`."""
    cli(prog_name="cosmos")


if __name__ == "__main__":
    main()
