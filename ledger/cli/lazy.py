"""A click group that imports a command's module only when the command is needed.

``runledger --help`` lists every command with its short help, and must start fast: the modules
that define the commands import the SDK, eventsourcing and rich, which printing help does not
need. A :class:`LazyGroup` is given a table ``{name: (import path, short help)}``; it lists the
names and their short help from the table, and imports ``module:attribute`` only when the
command itself is invoked or its own help is shown (click's "lazily loading subcommands").
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import click

logger = logging.getLogger("runledger.cli")

#: One lazy command: ``("package.module:attribute", "short help")``.
LazyEntry = tuple[str, str]


class LazyGroup(click.Group):
    """A group whose commands are listed from a table and imported when used.

    Args:
        lazy_commands: ``{name: ("module:attribute", short help)}``; the attribute is a
            ``click.Command`` (a group is one). The short help is what the group's help lists
            for the command; a test checks that it is the first sentence of the command's own
            help, so the two cannot drift.
        *args, **kwargs: as for ``click.Group``; commands added with ``add_command`` (eager)
            are listed too.
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, LazyEntry] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, LazyEntry] = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The names of the eager and the lazy commands, sorted."""
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command of this name, importing its module the first time (``None``: unknown)."""
        if cmd_name in self.commands or cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        command = self.load(cmd_name)
        self.add_command(command, cmd_name)
        return command

    def load(self, cmd_name: str) -> click.Command:
        """Import the lazy command ``cmd_name`` (not registering it).

        Raises:
            TypeError: the table's import path does not name a ``click.Command``.
        """
        import_path = self.lazy_commands[cmd_name][0]
        module_name, _, attribute = import_path.partition(":")
        logger.debug("loading command %r from %s", cmd_name, import_path)
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{import_path} is not a click command (lazy entry {cmd_name!r})")
        # click caches a command's help option the first time a context asks for it: set the
        # names on the command itself, so it answers -h however it is first invoked.
        command.context_settings.setdefault("help_option_names", ["-h", "--help"])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands with their short help, from the table for those not yet loaded."""
        listed: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or self.placeholder(name)
            if not command.hidden:
                listed.append((name, command))
        if listed:
            limit = formatter.width - 6 - max(len(name) for name, _ in listed)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit))
                                    for name, command in listed])

    def placeholder(self, cmd_name: str) -> click.Command:
        """A command standing for the lazy ``cmd_name`` in help listings: its help is the
        table's short help, shortened by click's own rule."""
        return click.Command(cmd_name, help=self.lazy_commands[cmd_name][1])


def walk_commands(command: click.Command,
                  path: str = "runledger") -> Iterator[tuple[str, click.Command]]:
    """Yield every command of the tree under ``command`` (itself first), with its path
    (``"runledger run list"``), loading lazy commands; subcommands in name order."""
    yield path, command
    if isinstance(command, click.Group):
        with click.Context(command, info_name=path) as ctx:
            names = command.list_commands(ctx)
            subcommands = [(name, command.get_command(ctx, name)) for name in names]
        for name, sub in subcommands:
            if sub is not None:
                yield from walk_commands(sub, f"{path} {name}")
