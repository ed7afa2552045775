"""Test helpers for the timeline: a brute-force oracle of "the ledger as of a moment" (the random
histories are written by ``tests.projections.model_commands``, the projections' generator).

The oracle reads the WHOLE log (``read_log`` pages, no stream query, no run index), cuts it at
the moment (a position: the prefix of the log; a time: each stream up to its first event recorded
after it), and folds every stream with the domain's own events. For list queries it goes further:
it writes that cut into a fresh in-memory ledger with raw recorder inserts and asks the copy's
own run index (the current-state query path, nothing of the timeline code), so "the list as it
would have been answered then" is compared with what a ledger holding exactly those events
answers now.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent

from ledger.application import LedgerApplication
from ledger.domain.ids import metric_stream_id, run_stream_id
from ledger.domain.metrics import MetricsLogged, shape_metrics
from ledger.persistence.store import parse_store_url
from projections.index import RunIndex


def whole_log(app: LedgerApplication) -> list[tuple[Notification, Any]]:
    """Every event of the ledger, in log order, decoded."""
    found: list[tuple[Notification, Any]] = []
    position = 0
    while True:
        page = app.read_log(position, 1000)
        if not page:
            return found
        found += [(n, app.decode(n)) for n in page]
        position = page[-1].id


def cut_log(log: list[tuple[Notification, Any]], when: datetime | int) -> list[
        tuple[Notification, Any]]:
    """The log as of a moment, by brute force over the whole log."""
    if isinstance(when, int):
        return [pair for pair in log if pair[0].id <= when]
    stopped: set[UUID | str] = set()
    kept = []
    for notification, event in log:
        stream = notification.originator_id
        if stream in stopped:
            continue
        if event.timestamp > when:
            stopped.add(stream)
            continue
        kept.append((notification, event))
    return kept


def expected_run(log: list[tuple[Notification, Any]], run_id: str,
                 when: datetime | int) -> dict[str, Any] | None:
    """A run's status, properties, tags, archived, names and metrics as of a moment (``None``: it
    did not exist)."""
    cut = cut_log(log, when)
    run: Any = None
    for notification, event in cut:
        if notification.originator_id == run_stream_id(run_id):
            run = event.mutate(run)
    if run is None:
        return None
    batches = [e.series for n, e in cut
               if n.originator_id == metric_stream_id(run_id) and isinstance(e, MetricsLogged)]
    return {"status": run.status.value, "properties": dict(run.properties),
            "tags": dict(run.tags), "archived": run.archived,
            "display_name": run.display_name, "description": run.description,
            "metrics": shape_metrics(batches)}


@contextmanager
def ledger_holding(log: list[tuple[Notification, Any]]) -> Iterator[tuple[LedgerApplication,
                                                                          RunIndex]]:
    """A fresh in-memory ledger holding exactly these events (raw inserts), and its caught-up
    run index."""
    copy = LedgerApplication(parse_store_url("memory://"))
    try:
        if log:
            copy.recorder.insert_events([
                StoredEvent(originator_id=n.originator_id,
                            originator_version=n.originator_version, topic=n.topic,
                            state=n.state) for n, _e in log])
        index = RunIndex(copy)
        index.catch_up()
        yield copy, index
    finally:
        copy.close()
