"""``runledger studio``: the local web viewer of the ledger."""

from __future__ import annotations

import click

from ledger.cli.access import open_workspace
from ledger.cli.options import workspace_options


@click.command("studio")
@workspace_options
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. The default answers this machine only; another address "
                   "makes the Studio reachable from the network.")
@click.option("--read-only", is_flag=True, help="Write nothing at all (no saved views).")
@click.option("--digest", "digests", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="A digest (`runledger audit digest`) to verify the ledger against; the run "
                   "pages show the result. Repeatable.")
def studio_command(port: int, host: str, read_only: bool, digests: tuple[str, ...]) -> None:
    """Browse the ledger in a web browser: experiments, runs, charts, compare, audit timeline.

    Prints the URL and serves until Ctrl-C; needs no network. Requires the studio extra
    (pip install 'runledger-ml[studio]').
    """
    try:
        from ledger.studio.server import serve
    except ImportError as error:
        raise click.ClickException(
            f"The Studio needs the studio extra: pip install 'runledger-ml[studio]' ({error})"
        ) from None
    from ledger.domain.digest import read_digest

    kept = [read_digest(path) for path in digests]
    workspace = open_workspace()
    try:
        serve(workspace, host=host, port=port, read_only=read_only, digests=kept,
              announce=lambda line: click.echo(line))
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: a normal stop
        pass
    finally:
        workspace.ledger.close()
