"""Helpers of the SDK contract suite: read a ledger back as another process would.

Every reader here is a *new* ``LedgerApplication`` on the same store, never the SDK's cached
session, so what they see is what was stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from ledger import Run, Workspace
from ledger.application import LedgerApplication
from ledger.domain.ids import run_stream_id
from ledger.persistence.store import parse_store_url
from ledger.sdk.metrics import shape_metrics


def open_reader(ws: Workspace) -> LedgerApplication:
    """Open a second, independent application on the store of ``ws``.

    An SQLite (or PostgreSQL) store is reopened from its URL, as another process would; an
    in-memory store can only be reached through its shared-cache name, so its parsed config is
    reused (a new connection all the same).
    """
    store = ws._store
    if store.kind == "memory":
        return LedgerApplication(store)
    return LedgerApplication(parse_store_url(store.url))


def stored_state(app: LedgerApplication, run_id: str) -> dict[str, Any]:
    """The state of one run as stored, rebuilt from its events by ``app``."""
    agg = app.get_run(run_id)
    return {
        "status": agg.status.value,
        "properties": dict(agg.properties),
        "tags": dict(agg.tags),
        "display_name": agg.display_name,
        "description": agg.description,
        "parent": agg.parent_run_id,
        "error": dict(agg.error) if agg.error else None,
        "metrics": shape_metrics(e.series for e in app.metric_events(run_id)),
    }


def live_state(run: Run) -> dict[str, Any]:
    """The state of one run as the SDK shows it live."""
    details = run.get_details()
    return {
        "status": run.get_status(),
        "properties": run.get_properties(),
        "tags": run.get_tags(),
        "display_name": run.display_name,
        "description": run.description,
        "parent": details.get("parentRunId"),
        "error": (details.get("error") or {}).get("error"),  # the seed's error response
        "metrics": run.get_metrics(),
    }


def event_count(ws: Workspace) -> int:
    """Flush everything buffered in this process, then return the ledger's newest position."""
    ws.flush()
    return ws.ledger.application.max_position()


def run_event_kinds(ws: Workspace, run_id: str) -> list[str]:
    """The kinds of the events stored in a run's own stream (after a flush)."""
    ws.flush()
    return [type(e).__name__ for e in ws.ledger.application.stream_events(run_stream_id(run_id))]


# Wide matrices of cases run case by case on the in-memory store, and all in one test on each
# store that costs a file or a schema per test (SQLite, PostgreSQL).
CASE_BY_CASE = pytest.mark.parametrize("backend", ["memory"])
SWEEP_BACKENDS = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
# Tests whose subject is this process (threads, buffers), not the store.
LOCAL_BACKENDS = pytest.mark.parametrize("backend", ["memory", "sqlite"])


def sweep(cases: Iterable[str], check: Callable[[str], object]) -> None:
    """Run ``check`` on every case and fail once, listing every case that failed."""
    failures = []
    for case in cases:
        try:
            check(case)
        except Exception as error:  # collect them all: one report for the whole matrix
            failures.append(f"{case}: {type(error).__name__}: {error}")
    assert not failures, "\n".join(failures)
