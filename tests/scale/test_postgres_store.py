"""The PostgreSQL store: selected by URL or ``RUNLEDGER_STORE``, eventsourcing's own recorder,
projections in the same database, a small connection pool, typed errors when the server is
unreachable. (Many processes creating the schema at once: ``test_concurrency.py``.)"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest
from eventsourcing.postgres import PostgresApplicationRecorder

from ledger import Experiment, StoreError, Workspace
from ledger.persistence.postgres import LedgerPostgresFactory
from ledger.persistence.store import parse_store_url

pytestmark = pytest.mark.postgres

@pytest.fixture
def pg_url(store_factory: Callable[[str], str]) -> str:
    """A fresh schema (not yet created) of the test database."""
    return store_factory("postgresql")


def _tables(url: str) -> set[str]:
    schema = parse_store_url(url).env["POSTGRES_SCHEMA"]
    with psycopg.connect(url.split("?")[0]) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s",
                            (schema,)).fetchall()
    return {r[0] for r in rows}


def test_url_and_environment_select_eventsourcing_postgres_recorder(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(store=pg_url)
    app = ws.ledger.application
    assert isinstance(app.factory, LedgerPostgresFactory)
    assert isinstance(app.recorder, PostgresApplicationRecorder)
    with Experiment(ws, "e").start_logging() as run:
        run.tag("k", "v")
    monkeypatch.setenv("RUNLEDGER_STORE", pg_url)
    other = Workspace()
    assert other._store.kind == "postgresql"
    assert [r.id for r in Experiment(other, "e").get_runs(tags={"k": "v"})] == [run.id]
    assert {"runledger_events", "runledger_tracking", "rl_runs"} <= _tables(pg_url)


def test_pool_stays_small_per_process(pg_url: str) -> None:
    """eventsourcing's defaults (5 connections, up to 15) would exhaust PostgreSQL's 100 with a
    few dozen processes; runledger keeps one (and a second when two threads need one)."""
    app = Workspace(store=pg_url).ledger.application
    pool = app.factory.datastore.pool  # type: ignore[attr-defined]
    assert (pool.min_size, pool.max_size) == (1, 2)
    wide = Workspace(store=pg_url + "&pool_size=2&max_overflow=3").ledger.application
    pool = wide.factory.datastore.pool  # type: ignore[attr-defined]
    assert (pool.min_size, pool.max_size) == (2, 5)


def test_an_unreachable_server_is_a_store_error() -> None:
    started = time.monotonic()
    with pytest.raises(StoreError, match="Cannot open the store"):
        Workspace(store="postgresql://postgres@127.0.0.1:1/test?connect_timeout=1")
    assert time.monotonic() - started < 30
