"""eventsourcing's own persistence contract suites, run on runledger's PostgreSQL factory.

``ledger.persistence.postgres.LedgerPostgresFactory`` overrides eventsourcing's
``PostgresFactory``: it shrinks the connection pool, turns eventsourcing's own table creation off
(``env_create_table``) while it builds application and tracking recorders, then creates what is
missing under an advisory lock, creating the ``?schema=`` first. These suites (shipped in the
installed package as ``eventsourcing.tests.persistence``, subclassed the way eventsourcing's own
``tests/persistence_tests/test_postgres.py`` does) run on recorders built by that factory from the
very environment a ``postgresql://`` store URL gives the application (``parse_store_url``).

Every test works in a schema of its own (``es_<hex>`` in the database ``test`` at 127.0.0.1:5432,
or ``RUNLEDGER_TEST_POSTGRES``), dropped when it ends, so engineers running the suites at once do
not collide. When the server is down every case skips saying why; under ``CI=true`` it fails.
"""

from __future__ import annotations

import os
import threading
import uuid
from unittest import TestCase, mock

import psycopg
import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    ProcessRecorder,
    StoredEvent,
    TrackingRecorder,
)
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresProcessRecorder,
    PostgresTrackingRecorder,
)
from eventsourcing.tests import persistence as suites
from eventsourcing.utils import Environment

from ledger.persistence.postgres import LedgerPostgresApplicationRecorder, LedgerPostgresFactory
from ledger.persistence.store import parse_store_url
from tests.conftest import drop_postgres_schema, postgres_base_url, require_postgres

pytestmark = pytest.mark.postgres


class _LedgerPostgresStore(TestCase):
    """Builds recorders with runledger's factory in a fresh schema named in ``setUp``.

    ``create_schema`` says whether ``setUp`` creates the schema: eventsourcing's factory never
    creates schemas, runledger's creates it only for the application and tracking recorders, so
    the aggregate and process recorder suites (and the factory suite, which builds those) need it
    made for them. Every connection opened carries the application name ``rl_<schema>``; at the
    end the test's threads are joined, its factories closed, connections it left open ended and
    its schema dropped.
    """

    create_schema = False

    def setUp(self) -> None:
        self.prepare_store()
        super().setUp()

    def prepare_store(self) -> None:
        """Name (and, with ``create_schema``, create) this test's schema; set ``store_env``."""
        require_postgres()
        self.threads_before = set(threading.enumerate())
        self.schema = "es_" + uuid.uuid4().hex[:16]
        app_name = "rl_" + self.schema
        environ = mock.patch.dict(os.environ, {"PGAPPNAME": app_name})
        environ.start()
        self.addCleanup(environ.stop)
        self.addCleanup(drop_postgres_schema, self.schema, app_name)
        if self.create_schema:
            with psycopg.connect(postgres_base_url(), autocommit=True) as conn:
                conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(
                    psycopg.sql.Identifier(self.schema)))
        self.store_env = dict(parse_store_url(f"{postgres_base_url()}?schema={self.schema}").env)

    def join_test_threads(self) -> None:
        """Wait for the threads the test started (``test_concurrent_no_conflicts`` returns
        without joining its readers), so none is mid-query when the pool closes."""
        for thread in set(threading.enumerate()) - self.threads_before:
            if not thread.daemon:  # daemon threads are the pools' own, ended by close()
                thread.join(timeout=30)

    def ledger_factory(self) -> LedgerPostgresFactory:
        """A factory on this test's schema, as ``InfrastructureFactory.construct`` selects it
        from the store URL's ``PERSISTENCE_MODULE`` topic; closed when the test ends."""
        factory = InfrastructureFactory.construct(
            Environment("LedgerApplication", env=self.store_env))
        assert isinstance(factory, LedgerPostgresFactory)
        self.addCleanup(factory.close)
        self.addCleanup(self.join_test_threads)  # cleanups run last first: this one before close
        return factory


# ---------------------------------------------------------------------------- aggregate recorder
class TestAggregateRecorder(_LedgerPostgresStore, suites.AggregateRecorderTestCase):
    create_schema = True

    def create_recorder(self) -> AggregateRecorder:
        return self.ledger_factory().aggregate_recorder()


# -------------------------------------------------------------------------- application recorder
class TestApplicationRecorder(_LedgerPostgresStore,
                              suites.ApplicationRecorderTestCase[PostgresApplicationRecorder]):
    def create_recorder(self) -> PostgresApplicationRecorder:
        recorder = self.ledger_factory().application_recorder()
        assert isinstance(recorder, PostgresApplicationRecorder)
        return recorder

    def test_insert_subscribe(self) -> None:
        """PostgreSQL recorders can be subscribed to (LISTEN/NOTIFY): the suite leaves this case
        optional, eventsourcing runs it for PostgreSQL, and so does runledger, on its pool of one
        connection plus one overflow."""
        self.optional_test_insert_subscribe()

    def test_schema_is_created_once_and_a_second_factory_skips_ddl(self) -> None:
        """The first factory creates the schema and every object of the application recorder; a
        second process's factory finds them all and creates nothing (the catalogue query), yet
        its recorder writes (it registered the stored-event type itself) and the first reads."""
        first = self.create_recorder()
        factory = self.ledger_factory()
        with mock.patch.object(PostgresApplicationRecorder, "create_table") as create_table:
            second = factory.application_recorder()
        create_table.assert_not_called()
        event = StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic="t",
                            state=b"s")
        self.assertEqual(second.insert_events([event]), [1])
        self.assert_events_eq(first.select_events(event.originator_id), [event])


    def test_a_refused_write_leaves_nothing_and_the_next_one_goes_through(self) -> None:
        """A small write is sent as one message, BEGIN to COMMIT; when its INSERT is refused
        (a version another writer took) the server skips the COMMIT: nothing of the write is
        stored, IntegrityError is raised, and the connection (the pool's only one) and the
        table lock are free for the next write, which gets the next id."""
        recorder = self.create_recorder()
        stream = uuid.uuid4()
        first = StoredEvent(originator_id=stream, originator_version=1, topic="t", state=b"1")
        self.assertEqual(recorder.insert_events([first]), [1])
        other = StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic="t",
                            state=b"o")
        clash = StoredEvent(originator_id=stream, originator_version=1, topic="t", state=b"c")
        with self.assertRaises(IntegrityError):
            recorder.insert_events([other, clash])
        self.assertEqual(recorder.select_events(other.originator_id), [])
        self.assert_events_eq(recorder.select_events(stream), [first])
        after = StoredEvent(originator_id=stream, originator_version=2, topic="t",
                            state=b"\x00\xff quoted ' bytes")
        ids = recorder.insert_events([after])
        assert ids is not None and len(ids) == 1 and ids[0] > 1
        self.assert_events_eq(recorder.select_events(stream), [first, after])


# ----------------------------------------------------------------------------- tracking recorder
class TestTrackingRecorder(_LedgerPostgresStore, suites.TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        recorder = self.ledger_factory().tracking_recorder()
        assert isinstance(recorder, PostgresTrackingRecorder)
        return recorder


# ------------------------------------------------------------------------------ process recorder
class TestProcessRecorder(_LedgerPostgresStore, suites.ProcessRecorderTestCase):
    create_schema = True

    def create_recorder(self) -> ProcessRecorder:
        return self.ledger_factory().process_recorder()


# ------------------------------------------------------------------------------------- factory
class _TrackingRecorderSubclass(PostgresTrackingRecorder):
    """A tracking recorder class chosen by argument or topic (the suite checks both)."""


class TestInfrastructureFactory(_LedgerPostgresStore,
                                suites.InfrastructureFactoryTestCase[LedgerPostgresFactory]):
    create_schema = True

    def setUp(self) -> None:
        self.prepare_store()
        self.env = Environment("TestCase", env=self.store_env)
        suites.InfrastructureFactoryTestCase.setUp(self)

    def expected_factory_class(self) -> type[LedgerPostgresFactory]:
        return LedgerPostgresFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return PostgresAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        # Ours: eventsourcing's, plus the server-side writer record and the large-write path.
        return LedgerPostgresApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return PostgresTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return _TrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return PostgresProcessRecorder
