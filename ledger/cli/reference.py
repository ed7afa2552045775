"""The CLI reference (``docs/cli.md``): the ``--help`` of every command, generated.

``docs/cli.md`` holds a cog block (https://nedbatchelder.com/code/cog/) that calls
:func:`reference`; regenerate it with::

    cog -r docs/cli.md

``tests/cli/test_cli_reference.py`` fails when the file is out of date. The help is rendered at a
fixed width, so the text does not depend on the terminal.
"""

from __future__ import annotations

import click

from ledger.cli.boundary import EXIT_CODES
from ledger.cli.lazy import walk_commands

# What click renders in a terminal of 100 columns or more (max_content_width 100, minus 2).
WIDTH = 98
REGENERATE = "cog -r docs/cli.md"


def help_text(path: str, command: click.Command) -> str:
    """The ``--help`` page of the command at ``path`` (``"runledger run list"``)."""
    names = path.split()
    ctx: click.Context | None = None
    for name in names[:-1]:  # the parents, so the usage line reads "runledger run list ..."
        ctx = click.Context(click.Group(name), info_name=name, parent=ctx)
    leaf = click.Context(command, info_name=names[-1], parent=ctx, terminal_width=WIDTH,
                         help_option_names=["-h", "--help"])
    return command.get_help(leaf)


def reference() -> str:
    """The generated part of ``docs/cli.md``: the exit codes, then every command's help."""
    from ledger.cli.main import cli

    lines = ["## Exit codes", "", "| Exit code | Meaning |", "| --- | --- |"]
    lines += [f"| {code} | {meaning} |" for code, meaning in sorted(EXIT_CODES.items())]
    for path, command in walk_commands(cli):
        lines += ["", f"## {path}", "", "```text", help_text(path, command), "```"]
    return "\n".join(lines) + "\n"
