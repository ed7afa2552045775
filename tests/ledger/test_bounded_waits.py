"""Nothing waits forever (issue 15, item 5).

A query whose projection catch-up met a held SQLite write lock waited about 50 times the configured
lock timeout (``?timeout=1`` -> 51 s): every wait is now bounded by the configured timeout in total
and ends in a clear ``StoreError``. On PostgreSQL every statement carries a ``statement_timeout``
and a ``lock_timeout``, and a metric batch of several megabytes is written (it hung before: the
pure-Python psycopg's pipeline mode deadlocked with the server on a big send).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from ledger import Experiment, Run, StoreError, Workspace


def test_a_query_meeting_a_held_sqlite_lock_fails_within_the_timeout(tmp_path: Path) -> None:
    ws = Workspace(store=f"sqlite:///{tmp_path / 'ledger.db'}?timeout=1")
    exp = Experiment(ws, "locked")
    first = exp.start_logging()
    assert list(Run.list(exp)) == [first]  # the index exists and is caught up
    second = exp.start_logging()
    second.flush()  # written, not yet projected
    holder = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match="timeout"):
            list(Run.list(exp))
        waited = time.monotonic() - started
        with pytest.raises(StoreError):
            third = exp.start_logging()
            third.flush()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert waited < 5, f"waited {waited:.1f} s for a lock with ?timeout=1"
    assert {r.id for r in Run.list(exp)} >= {first.id, second.id}  # fine once released


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgres_statements_have_timeouts(store_url: str) -> None:
    ws = Workspace(store=store_url + "&statement_timeout=7&lock_timeout=3")
    datastore = ws._session.app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn:
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[name]
                    for name in ("statement_timeout", "lock_timeout")}
    assert settings == {"statement_timeout": "7s", "lock_timeout": "3s"}
    default = Workspace(store=store_url)
    with default._session.app.recorder.datastore.get_connection() as conn:  # type: ignore
        assert conn.execute("SHOW statement_timeout").fetchone()["statement_timeout"] == "5min"
    ws._session.close()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_metric_batch_of_megabytes_is_written_to_postgres(exp: Experiment) -> None:
    run = exp.start_logging()
    run.flush()
    values = [f"{i:08d}" + "x" * 7_990 for i in range(1_000)]  # 8 MB in one batch
    for _ in range(2):
        run.log_list("text", values)
        run.flush()
    run.complete()
    stored = run.get_metrics()["text"]
    assert len(stored) == 2_000 and stored[:1_000] == values
