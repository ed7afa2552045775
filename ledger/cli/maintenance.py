"""``runledger projections rebuild``: maintenance of the query index."""

from __future__ import annotations

import click

from ledger.cli import access
from ledger.cli.options import workspace_options


@click.command("rebuild")
@workspace_options
def rebuild_projections() -> None:
    """Drop the query index (the read models) and rebuild it from the event log.

    A progress bar is drawn on standard error when it is a terminal.
    """
    from projections.rebuild import rebuild_with_progress

    applied = rebuild_with_progress(access.raw_index(access.open_workspace()))
    click.echo(f"Projections rebuilt: {applied} events applied.")
