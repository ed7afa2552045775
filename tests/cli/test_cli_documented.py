"""Every command of ``runledger`` has help text, and so has every option."""

from __future__ import annotations

from collections.abc import Iterator

import click

from ledger.cli.lazy import walk_commands
from ledger.cli.main import cli


def walk(command: click.Command) -> Iterator[tuple[str, click.Command]]:
    """Yield every command of the tree under ``command`` (itself included, lazy commands
    loaded), with its path."""
    return walk_commands(command)


def test_tree_has_the_azure_cli_commands() -> None:
    paths = {path for path, _ in walk(cli)}
    assert {f"runledger run {name}" for name in (
        "list", "show", "cancel", "update", "history", "metrics", "wait", "submit-script",
        "monitor-logs")} <= paths
    assert {"runledger experiment list", "runledger projections rebuild",
            "runledger folder attach", "runledger export", "runledger import"} <= paths


def test_every_command_has_help() -> None:
    missing = [path for path, command in walk(cli) if not (command.help or "").strip()]
    assert missing == []


def test_every_option_has_help() -> None:
    missing = []
    for path, command in walk(cli):
        with click.Context(command, info_name=path, help_option_names=["-h", "--help"]) as ctx:
            params = command.get_params(ctx)  # the declared ones and --help
        for param in params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{path} {param.opts[0]}")
    assert missing == []


def test_every_command_renders_its_help_page() -> None:
    from click.testing import CliRunner

    runner = CliRunner()
    for path, _command in walk(cli):
        result = runner.invoke(cli, [*path.split()[1:], "--help"])
        assert result.exit_code == 0, path
        assert "Usage: runledger" in result.output
