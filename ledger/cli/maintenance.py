"""Maintenance: ``runledger projections rebuild|status``, ``runledger export`` and ``import``."""

from __future__ import annotations

from collections.abc import Callable

import click
from rich.console import Console
from rich.progress import Progress

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


@click.command("status")
@workspace_options
def projections_status() -> None:
    """Catch the query index up, then show how complete it is: its position in the event log,
    how far behind the log's end it is, and the events it could not decode or project.

    Quarantined events are left out of query answers; `projections rebuild` tries them again.

    Exit status 1 when events are quarantined.
    """
    from ledger.cli.runs import show_result

    index = access.raw_index(access.open_workspace())
    index.catch_up()  # what is left behind is then what other writers add meanwhile
    status = index.status()
    show_result({
        "position": status.position,
        "lastPosition": status.last_position,
        "lag": status.lag,
        "complete": status.complete,
        "positions": status.positions,
        "quarantined": [{"position": q.position, "streamId": q.stream_id,
                         "version": q.version, "topic": q.topic, "stage": q.stage,
                         "reason": q.reason} for q in status.quarantined],
    })
    if status.quarantined:
        raise SystemExit(1)


def _progress_bar(label: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A rich progress bar on standard error (nothing when it is not a terminal)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        return (lambda done, total: None), (lambda: None)
    progress = Progress(console=console, transient=True)
    task = progress.add_task(label, total=None)
    progress.start()

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total or None)

    return update, progress.stop


@click.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@click.option("--sign", "sign", type=click.Path(exists=True, dir_okay=False), metavar="KEY",
              help="Sign the digest in the file's trailer with this Ed25519 private key.")
@workspace_options
def export_command(file: str, sign: str | None) -> None:
    """Write the whole event log to FILE (msgpack, streamed), for backup or another store.
    Its trailer carries the Merkle root of its events (`runledger audit verify FILE`).

        runledger export ledger.rlx
    """
    from ledger.domain.digest import load_private_key
    from ledger.transfer import export_ledger

    key = load_private_key(sign) if sign is not None else None
    update, stop = _progress_bar("Exporting")
    try:
        summary = export_ledger(access.open_workspace().ledger.application, file, progress=update,
                                sign_key=key)
    finally:
        stop()
    click.echo(f"Exported {summary.events} events (up to position {summary.last_position}) "
               f"from {summary.source} to {file}.")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--public-key", "public_key", type=click.Path(exists=True, dir_okay=False),
              metavar="FILE", help="Refuse the file unless its digest is signed by this key.")
@workspace_options
def import_command(file: str, public_key: str | None) -> None:
    """Append the events of an export FILE to this ledger; events it already holds are skipped,
    so importing twice adds nothing and a newer export adds only what is new.

    Exit status 1 if the file holds events that differ from this ledger's at the same place,
    or if its events do not hash to the digest in its trailer (then nothing is imported).

        runledger --store postgresql://postgres@127.0.0.1:5432/test import ledger.rlx
    """
    from ledger.domain.digest import load_public_key
    from ledger.transfer import import_ledger

    key = load_public_key(public_key) if public_key is not None else None
    workspace = access.open_workspace()
    update, stop = _progress_bar("Importing")
    try:
        summary = import_ledger(workspace.ledger.application, file, progress=update, public_key=key)
    finally:
        stop()
    click.echo(f"Imported from {summary.source}: {summary.events} events read, "
               f"{summary.added} added, {summary.skipped} already present, "
               f"{summary.conflicts} in conflict.")
    if summary.conflicts:
        raise click.ClickException(
            "the ledger diverges from the export in streams: "
            + ", ".join(summary.conflicting_streams))
