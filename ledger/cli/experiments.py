"""``runledger experiment list``."""

from __future__ import annotations

import click

from ledger.cli import access
from ledger.cli.options import common_options
from ledger.cli.runs import show_result


@click.command("list")
@common_options
def list_experiments() -> None:
    """List the experiments, by name, with their ids, creation and run counts."""
    show_result(access.experiment_rows(access.open_workspace()))
