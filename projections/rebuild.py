"""Rebuilding the read models with a progress bar (``runledger projections rebuild``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from projections.index import RunIndex


def rebuild_with_progress(index: RunIndex, console_file: TextIO | None = None) -> int:
    """Drop and rebuild every read model of ``index``, showing a progress bar on a terminal.

    Nothing else is printed (off a terminal, nothing at all): the caller reports the result.

    Args:
        index: the run index to rebuild.
        console_file: where the bar is drawn (default: standard error).

    Returns:
        How many events were applied.

    Raises:
        StoreError: the store failed.
    """
    from rich.console import Console  # imported here: rich is slow to import, only this needs it

    console = Console(file=console_file or sys.stderr)
    if not console.is_terminal:
        return index.rebuild()

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("[bold]Rebuilding read models"), BarColumn(), MofNCompleteColumn(),
               TextColumn("log positions"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("rebuild", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=max(total, 1))

        return index.rebuild(report)
