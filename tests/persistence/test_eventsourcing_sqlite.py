"""eventsourcing's own persistence contract suites, run on runledger's SQLite factory and datastore.

``ledger.persistence.sqlite`` subclasses eventsourcing's ``SQLiteFactory``, rebuilds its datastore
as a ``LedgerSQLiteDatastore`` and swaps in a connection pool of its own (``PRAGMA synchronous``):
that reaches into eventsourcing's private pool constructor and ``_create_connection``. These suites
(shipped in the installed package as ``eventsourcing.tests.persistence``, subclassed the way
eventsourcing's own ``tests/persistence_tests/test_sqlite.py`` does) make an eventsourcing upgrade
a test run. Every recorder is built by ``LedgerSQLiteFactory`` from the very environment a store URL
gives the application (``parse_store_url``), once for ``memory://`` (a shared-cache in-memory
database) and once for ``sqlite:///file.db`` (WAL, ``synchronous=NORMAL``).

The msgpack transcoder is not run through eventsourcing's ``TranscoderTestCase``: that suite
asserts JSON bytes (``b'"a"'``) and registered ``Transcoding`` classes, neither of which a msgpack
transcoder has; its round trips are covered by ``tests/ledger/test_transcoder.py``.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any
from unittest import TestCase

import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteApplicationRecorder,
    SQLiteProcessRecorder,
    SQLiteTrackingRecorder,
)
from eventsourcing.tests import persistence as suites
from eventsourcing.utils import Environment

from ledger.persistence.sqlite import (
    LedgerSQLiteConnectionPool,
    LedgerSQLiteDatastore,
    LedgerSQLiteFactory,
)
from ledger.persistence.store import parse_store_url


class _LedgerSQLiteStore(TestCase):
    """Builds recorders with runledger's factory on a fresh store made in ``setUp``.

    ``store`` is ``"memory"`` (``memory://``) or ``"file"`` (``sqlite:///<tmp>/ledger.db``).
    Every factory made is closed when the test ends, and the temporary folder removed.
    """

    store = "memory"

    def setUp(self) -> None:
        self.threads_before = set(threading.enumerate())
        self.store_env = self.fresh_store_env()
        super().setUp()

    def join_test_threads(self) -> None:
        """Wait for the threads the test started. ``test_concurrent_no_conflicts`` tells its
        reader threads to stop but returns without joining them: closing the pool under a
        reader still inside ``sqlite3`` crashes the interpreter (a segfault, seen here)."""
        for thread in set(threading.enumerate()) - self.threads_before:
            if not thread.daemon:  # daemon threads are the pools' own, ended by close()
                thread.join(timeout=30)

    def fresh_store_env(self) -> dict[str, str]:
        """The eventsourcing environment of a fresh store URL of this class's kind."""
        if self.store == "memory":
            return dict(parse_store_url("memory://").env)
        folder = tempfile.TemporaryDirectory(prefix="rl-es-sqlite-")
        self.addCleanup(folder.cleanup)
        return dict(parse_store_url(f"sqlite:///{Path(folder.name) / 'ledger.db'}").env)

    def ledger_factory(self) -> LedgerSQLiteFactory:
        """A factory on this test's store, as ``InfrastructureFactory.construct`` selects it
        from the store URL's ``PERSISTENCE_MODULE`` topic; closed when the test ends."""
        factory = InfrastructureFactory.construct(Environment(env=self.store_env))
        assert isinstance(factory, LedgerSQLiteFactory)
        assert isinstance(factory.datastore, LedgerSQLiteDatastore)
        self.addCleanup(factory.close)
        self.addCleanup(self.join_test_threads)  # cleanups run last first: this one before close
        return factory


# ---------------------------------------------------------------------------- aggregate recorder
class _AggregateRecorder(_LedgerSQLiteStore, suites.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.ledger_factory().aggregate_recorder()


class TestAggregateRecorderInMemory(_AggregateRecorder):
    store = "memory"


class TestAggregateRecorderFile(_AggregateRecorder):
    store = "file"


# -------------------------------------------------------------------------- application recorder
class _ApplicationRecorder(_LedgerSQLiteStore,
                           suites.ApplicationRecorderTestCase[SQLiteApplicationRecorder]):
    def create_recorder(self) -> SQLiteApplicationRecorder:
        recorder = self.ledger_factory().application_recorder()
        assert isinstance(recorder, SQLiteApplicationRecorder)
        return recorder


class TestApplicationRecorderInMemory(_ApplicationRecorder):
    store = "memory"


class TestApplicationRecorderFile(_ApplicationRecorder):
    store = "file"


# ----------------------------------------------------------------------------- tracking recorder
class _TrackingRecorder(_LedgerSQLiteStore, suites.TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return self.ledger_factory().tracking_recorder()


class TestTrackingRecorderInMemory(_TrackingRecorder):
    store = "memory"


class TestTrackingRecorderFile(_TrackingRecorder):
    store = "file"


# ------------------------------------------------------------------------------ process recorder
class _ProcessRecorder(_LedgerSQLiteStore, suites.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return self.ledger_factory().process_recorder()


class TestProcessRecorderInMemory(_ProcessRecorder):
    store = "memory"


class TestProcessRecorderFile(_ProcessRecorder):
    store = "file"


# ------------------------------------------------------------------------------------- factory
class _TrackingRecorderSubclass(SQLiteTrackingRecorder):
    """A tracking recorder class chosen by argument or topic (the suite checks both)."""


class _InfrastructureFactory(_LedgerSQLiteStore,
                             suites.InfrastructureFactoryTestCase[LedgerSQLiteFactory]):
    def setUp(self) -> None:
        self.threads_before = set(threading.enumerate())
        self.env = Environment("TestCase", env=self.fresh_store_env())
        self.store_env = dict(self.env)
        suites.InfrastructureFactoryTestCase.setUp(self)

    def expected_factory_class(self) -> type[LedgerSQLiteFactory]:
        return LedgerSQLiteFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return SQLiteAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return SQLiteApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return SQLiteTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return _TrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return SQLiteProcessRecorder


class TestInfrastructureFactoryInMemory(_InfrastructureFactory):
    store = "memory"


class TestInfrastructureFactoryFile(_InfrastructureFactory):
    store = "file"


# ----------------------------------------------------- what runledger's subclasses add or rebuild
def _factory(tmp_path: Path, **env: str) -> LedgerSQLiteFactory:
    store_env = dict(parse_store_url(f"sqlite:///{tmp_path / 'ledger.db'}").env)
    store_env.update(env)
    factory = InfrastructureFactory.construct(Environment(env=store_env))
    assert isinstance(factory, LedgerSQLiteFactory)
    return factory


def _pragma(factory: LedgerSQLiteFactory, name: str) -> Any:
    with factory.datastore.transaction(commit=False) as cursor:
        cursor.execute(f"PRAGMA {name}")
        return cursor.fetchone()[0]


def test_rebuilt_datastore_keeps_the_settings_eventsourcing_reads(tmp_path: Path) -> None:
    """The datastore runledger rebuilds keeps what eventsourcing's factory read from the
    environment: lock timeout, single-row tracking, originator id type (and the database)."""
    factory = _factory(tmp_path, SQLITE_LOCK_TIMEOUT="7", SINGLE_ROW_TRACKING="f",
                       ORIGINATOR_ID_TYPE="text")
    try:
        datastore = factory.datastore
        assert isinstance(datastore.pool, LedgerSQLiteConnectionPool)
        assert datastore.pool.db_name == str((tmp_path / "ledger.db").resolve())
        assert datastore.pool.lock_timeout == 7
        assert datastore.single_row_tracking is False
        assert datastore.originator_id_type == "text"
    finally:
        factory.close()


@pytest.mark.parametrize(("mode", "level"), [("NORMAL", 1), ("FULL", 2)])
def test_file_connections_use_wal_and_the_chosen_synchronous_mode(
        tmp_path: Path, mode: str, level: int) -> None:
    """Every pooled connection of a file store runs in WAL mode with ``synchronous`` as the
    store URL chose (SQLite reports NORMAL as 1, FULL as 2)."""
    factory = _factory(tmp_path, SQLITE_SYNCHRONOUS=mode)
    try:
        factory.application_recorder()
        assert str(_pragma(factory, "journal_mode")).lower() == "wal"
        assert _pragma(factory, "synchronous") == level
    finally:
        factory.close()


def test_an_unknown_synchronous_mode_is_refused(tmp_path: Path) -> None:
    """``SQLITE_SYNCHRONOUS`` outside OFF/NORMAL/FULL/EXTRA is an environment error, as
    eventsourcing raises for its own invalid settings."""
    with pytest.raises(OSError, match="SQLITE_SYNCHRONOUS must be one of"):
        _factory(tmp_path, SQLITE_SYNCHRONOUS="FAST")


# The shared bases are unittest classes too: without this pytest would also collect them (on the
# default store kind), running every case a third time.
del _AggregateRecorder, _ApplicationRecorder, _TrackingRecorder, _ProcessRecorder
del _InfrastructureFactory
