"""eventsourcing's PostgreSQL recorders, with schema creation that is safe from many processes.

eventsourcing creates its tables, composite type, index and insert function each time an
application opens with ``CREATE_TABLE`` on. When many processes open the same database at once
those statements race in PostgreSQL's catalogue (``tuple concurrently updated``, duplicate
``pg_type`` rows...). :class:`LedgerPostgresFactory` serialises them: every creation runs while the
opening process holds a PostgreSQL advisory lock (taken on a connection of its own, so the
datastore's pool stays free for the statements themselves), the schema named by ``?schema=`` is
created first if missing, and an application whose tables, type, index and function all exist
already skips creation altogether (one catalogue query instead of DDL that would wait for the
writers' table locks).

Each insert transaction takes eventsourcing's ``LOCK TABLE ... IN EXCLUSIVE MODE``, as
eventsourcing's own does, so notification ids commit in order and projections never skip an
event; but a small write is sent as one message, ``BEGIN`` to ``COMMIT``, so the server never holds
that lock waiting for its client (with many writers the lock's holding time is the store's
commit ceiling). Two more additions:

- Nothing waits forever: every connection carries a ``statement_timeout`` and a ``lock_timeout``
  (``?statement_timeout=SECONDS&lock_timeout=SECONDS`` in the store URL; defaults
  :data:`DEFAULT_STATEMENT_TIMEOUT` and :data:`DEFAULT_LOCK_TIMEOUT`), and a write whose events
  are large is sent without psycopg's pipeline mode, whose pure-Python implementation can deadlock
  with the server on a big send (psycopg issue 685: a 6 MB metric batch hung client and server).
- The audit "who" the server vouches for: a statement trigger on the events table records, for
  every event, the role the server authenticated (``session_user``), the backend's pid and the
  client's address in ``rl_event_writers``, filled by the server itself in the same transaction.
  The ``actor`` inside each event (user, host, pid) is what the client declares.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresFactory,
    PostgresRecorder,
    PostgresTrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType, retry
from psycopg.sql import SQL, Identifier, Literal

R = TypeVar("R")

#: The advisory lock key every runledger process takes while it creates tables (per database).
DDL_LOCK_KEY = zlib.crc32(b"runledger:ddl")

#: Connections per process: eventsourcing keeps 5 open and grows to 15, so 32 processes would
#: need 480 (PostgreSQL's default ``max_connections`` is 100). runledger keeps one, and opens a
#: second while two threads of the process (say, a script and the background flusher) need one at
#: once. ``?pool_size=N&max_overflow=M`` in the store URL overrides these.
POOL_DEFAULTS = {"POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "1"}

#: Seconds a statement may run, and may wait for a lock, before the server cancels it (0: no
#: limit). A statement cut off raises ``StoreError``.
DEFAULT_STATEMENT_TIMEOUT = 300
DEFAULT_LOCK_TIMEOUT = 60
STATEMENT_TIMEOUT_ENV = "POSTGRES_STATEMENT_TIMEOUT"
LOCK_TIMEOUT_ENV = "POSTGRES_LOCK_TIMEOUT"

#: Above this many bytes of event state, a write is sent without pipeline mode (see above).
PIPELINE_MAX_BYTES = 64 * 1024

#: The table where the server records who wrote each event, and its trigger.
WRITERS_TABLE = "rl_event_writers"
WRITERS_TRIGGER = "rl_event_writers_trigger"
WRITERS_FUNCTION = "rl_record_event_writers"

_OBJECTS_EXIST = (
    "SELECT to_regclass(%(table)s) IS NOT NULL AND to_regclass(%(index)s) IS NOT NULL "
    "AND to_regtype(%(type)s) IS NOT NULL AND EXISTS ("
    "  SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
    "  WHERE n.nspname = %(schema)s AND p.proname = %(function)s) "
    "AND to_regclass(%(writers)s) IS NOT NULL AND EXISTS ("
    "  SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%(table)s)"
    "  AND tgname = %(trigger)s) AS ok"
)


def _quoted(schema: str, name: str) -> str:
    """Return ``"schema"."name"`` (for ``to_regclass``/``to_regtype``)."""
    return '"{}"."{}"'.format(schema.replace('"', '""'), name.replace('"', '""'))


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Raise psycopg's errors as eventsourcing's, as eventsourcing's own datastore does."""
    try:
        yield
    except psycopg.OperationalError as error:
        raise OperationalError(f"{what}: {error}") from error
    except psycopg.ProgrammingError as error:
        raise ProgrammingError(f"{what}: {error}") from error
    except psycopg.Error as error:
        raise PersistenceError(f"{what}: {error}") from error


def _seconds(env: Environment, key: str, default: int) -> int:
    text = env.get(key)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise OSError(f"{key} must be a whole number of seconds, not {text!r}") from None
    if value < 0:
        raise OSError(f"{key} must not be negative: {value}")
    return value


class LedgerPostgresApplicationRecorder(PostgresApplicationRecorder):
    """eventsourcing's application recorder, with the server-side writer record and a write path
    that cannot deadlock on large events.

    Args:
        datastore: the datastore.
        events_table_name: the events table.
    """

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        writers = Identifier(WRITERS_TABLE)
        function = Identifier(WRITERS_FUNCTION)
        # The server fills every column itself (DEFAULT session_user...): what it vouches for.
        # SECURITY DEFINER: writers need no right on the table, so cannot forge its rows.
        self.sql_create_statements.extend([
            SQL("CREATE TABLE IF NOT EXISTS {schema}.{writers} ("
                "notification_id bigint PRIMARY KEY, "
                "server_role text NOT NULL DEFAULT session_user, "
                "backend_pid integer NOT NULL DEFAULT pg_backend_pid(), "
                "client_addr inet DEFAULT inet_client_addr(), "
                "recorded_at timestamptz NOT NULL DEFAULT now())").format(
                    schema=schema, writers=writers),
            SQL("CREATE OR REPLACE FUNCTION {schema}.{function}() RETURNS trigger "
                "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$ "
                "BEGIN INSERT INTO {schema}.{writers} (notification_id) "
                "SELECT notification_id FROM rl_new_events "
                # A row inserted again at a position (only by editing the table directly: a
                # deleted event re-inserted) records who wrote the row that is there now.
                "ON CONFLICT (notification_id) DO UPDATE SET server_role = EXCLUDED.server_role, "
                "backend_pid = EXCLUDED.backend_pid, client_addr = EXCLUDED.client_addr, "
                "recorded_at = EXCLUDED.recorded_at; RETURN NULL; END $fn$").format(
                    schema=schema, function=function, writers=writers),
            SQL("CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT ON {schema}.{table} "
                "REFERENCING NEW TABLE AS rl_new_events FOR EACH STATEMENT "
                "EXECUTE FUNCTION {schema}.{function}()").format(
                    trigger=Identifier(WRITERS_TRIGGER), schema=schema,
                    table=Identifier(self.events_table_name), function=function),
        ])

    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        """Insert events in one transaction, as eventsourcing does; large ones without pipeline
        mode.

        Returns:
            The notification ids of the events.

        Raises:
            IntegrityError: another writer appended first.
            PersistenceError: the database failed.
        """
        if not stored_events:
            return None
        if sum(len(e.state) for e in stored_events) < PIPELINE_MAX_BYTES:
            result: Sequence[int] | None = self._insert_in_one_round_trip(stored_events,
                                                                          **kwargs)
            return result
        with self.datastore.get_connection() as conn, conn.transaction(), \
                conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            self._insert_stored_events(curs, stored_events, **kwargs)
            ids: Sequence[int] | None = self._fetch_ids_after_insert_events(
                curs, stored_events, **kwargs)
            return ids

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_in_one_round_trip(self, stored_events: Sequence[StoredEvent],
                                  **kwargs: Any) -> Sequence[int] | None:
        """The whole transaction, ``BEGIN`` to ``COMMIT``, sent as one message.

        eventsourcing sends ``LOCK TABLE`` first and the ``INSERT`` and ``COMMIT`` after: the
        table lock is then held while the client builds and sends the rest, and for as long
        as the client process waits for a CPU. With 32 writers on 2 CPUs nearly all of them
        were found waiting for that lock, and the server holding it waiting for its client
        (``ClientRead``): its holding time is the store's commit ceiling. Here the server
        runs the statements one after the other without waiting for the client (the simple
        query protocol: values quoted by psycopg, no parameters). On an error the server
        skips the rest, ``COMMIT`` included, and the transaction is rolled back.
        """
        schema, table = Identifier(self.datastore.schema), Identifier(self.events_table_name)
        rows = SQL(",").join(
            SQL("({},{},{},{})").format(Literal(e.originator_id), Literal(e.originator_version),
                                        Literal(e.topic), Literal(e.state))
            for e in stored_events)
        batch = SQL(";").join([
            SQL("BEGIN"), *self.lock_table_statements,
            SQL("NOTIFY {}").format(Identifier(self.channel_name)),
            SQL("INSERT INTO {}.{} (originator_id, originator_version, topic, state) VALUES {} "
                "RETURNING notification_id").format(schema, table, rows),
            SQL("COMMIT")])
        with self.datastore.get_connection() as conn:
            try:
                with conn.cursor() as curs:
                    self._insert_events(curs, stored_events, **kwargs)
                    curs.execute(batch.as_string(conn))  # no parameters: one message
                    ids: list[int] = []
                    while True:  # a result per statement; the INSERT's holds the ids
                        if (curs.statusmessage or "").startswith("INSERT"):
                            ids = [row["notification_id"] for row in curs.fetchall()]
                        if not curs.nextset():
                            break
            except BaseException:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
                raise
            if len(ids) != len(stored_events):
                raise ProgrammingError(f"Couldn't get all notification IDs (got {len(ids)}, "
                                       f"expected {len(stored_events)})")
            return ids

    def server_roles(self, originator_id: Any) -> dict[int, str]:
        """Return, for each version of a stream, the role the server authenticated for the
        transaction that wrote it (versions written before the trigger existed are missing).

        Raises:
            PersistenceError: the database failed.
        """
        statement = SQL(
            "SELECT e.originator_version, w.server_role FROM {schema}.{table} e "
            "JOIN {schema}.{writers} w ON w.notification_id = e.notification_id "
            "WHERE e.originator_id = %s").format(
                schema=Identifier(self.datastore.schema),
                table=Identifier(self.events_table_name), writers=Identifier(WRITERS_TABLE))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (originator_id,))
            return {int(row["originator_version"]): str(row["server_role"])
                    for row in curs.fetchall()}


class LedgerPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL factory, creating the schema once and safely.

    Args:
        env: the eventsourcing environment (``POSTGRES_*``, ``CREATE_TABLE``...).

    Raises:
        OSError: an environment value is invalid (as eventsourcing raises it).
    """

    application_recorder_class = LedgerPostgresApplicationRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        env = env if isinstance(env, Environment) else Environment(env=env)
        for key, value in POOL_DEFAULTS.items():
            if env.get(key) is None:
                env[key] = value
        statement_timeout = _seconds(env, STATEMENT_TIMEOUT_ENV, DEFAULT_STATEMENT_TIMEOUT)
        lock_timeout = _seconds(env, LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT)
        # eventsourcing sets its own lock_timeout (seconds) inside each insert transaction.
        env[LOCK_TIMEOUT_ENV] = str(lock_timeout)
        super().__init__(env)
        # Session settings of every connection (the pool's and ddl_lock's own), so no statement
        # of any code path waits forever.
        kwargs = self.datastore.pool.kwargs
        if isinstance(kwargs, dict):
            kwargs["options"] = (f"-c statement_timeout={statement_timeout * 1000} "
                                 f"-c lock_timeout={lock_timeout * 1000}")
        self._creating = threading.RLock()
        self._defer_create = False
        self._schema_created = False

    # ------------------------------------------------------------------ recorders
    def env_create_table(self) -> bool:
        """Whether recorders create their tables (never inside eventsourcing's own calls:
        this factory creates them itself, under the advisory lock)."""
        if self._defer_create:
            return False
        return super().env_create_table()

    def application_recorder(self) -> ApplicationRecorder:
        """Return the application recorder, its tables created if missing.

        Raises:
            PersistenceError: the database failed (``OperationalError`` when unreachable).
        """
        recorder: ApplicationRecorder = self._with_tables(super().application_recorder)
        return recorder

    def tracking_recorder(self, tracking_recorder_class: Any = None) -> Any:
        """Return a tracking recorder, its table created if missing.

        Args:
            tracking_recorder_class: a ``PostgresTrackingRecorder`` subclass, or ``None``.

        Raises:
            PersistenceError: the database failed.
        """
        return self._with_tables(lambda: super(LedgerPostgresFactory, self).tracking_recorder(
            tracking_recorder_class))

    def _with_tables(self, build: Callable[[], R]) -> R:
        """Build a recorder with eventsourcing's creation deferred, then create what is missing
        of its tables under the advisory lock (nothing at all when everything exists)."""
        create = super().env_create_table()
        with self._creating:
            self._defer_create = True
            try:
                recorder = build()
            finally:
                self._defer_create = False
            if not create:
                return recorder
            if not isinstance(recorder, PostgresRecorder):
                raise TypeError(f"Not a PostgreSQL recorder: {recorder!r}")
            if not self._exists(recorder):
                with self.ddl_lock():
                    # Idempotent, and now never concurrent with another process's DDL.
                    recorder.create_table()
            elif isinstance(recorder, PostgresTrackingRecorder):
                recorder.create_table()  # the table exists: a no-op that sets its state
            else:
                recorder.datastore.register_type_adapters()
        return recorder

    # ------------------------------------------------------------------ the lock
    @contextlib.contextmanager
    def ddl_lock(self) -> Iterator[psycopg.Connection[Any]]:
        """Hold runledger's DDL advisory lock on a connection of its own (closed on exit: the
        pool's connections stay free for the DDL itself), with the schema created.

        Other code creating tables in the ledger's database (the projections' read models) may
        take it too, to keep its DDL from racing other processes'.

        Yields:
            The (autocommit) connection holding the lock.

        Raises:
            OperationalError: the server cannot be reached.
            PersistenceError: another database error.
        """
        kwargs = self.datastore.pool.kwargs
        pool_kwargs: dict[str, Any] = dict(kwargs() if callable(kwargs) else kwargs or {})
        get_password = getattr(self.datastore.pool, "get_password_func", None)
        if get_password is not None:
            pool_kwargs["password"] = get_password()
        pool_kwargs.pop("row_factory", None)
        timeout = max(1, int(self.datastore.pool.timeout))
        with _translated("Cannot create runledger's tables in PostgreSQL"):
            conn = psycopg.connect(autocommit=True, connect_timeout=timeout, **pool_kwargs)
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (DDL_LOCK_KEY,))
                try:
                    if not self._schema_created:
                        schema = self.datastore.schema
                        conn.execute(psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            psycopg.sql.Identifier(schema)))
                        self._schema_created = True
                    yield conn
                finally:
                    if not conn.closed:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (DDL_LOCK_KEY,))
            finally:
                conn.close()

    def _exists(self, recorder: PostgresRecorder) -> bool:
        """Whether everything the recorder creates exists already (one catalogue query on a
        connection of the datastore's pool)."""
        schema = self.datastore.schema
        if isinstance(recorder, PostgresTrackingRecorder):
            query, params = "SELECT to_regclass(%(table)s) IS NOT NULL AS ok", {
                "table": _quoted(schema, recorder.tracking_table_name)}
        elif isinstance(recorder, PostgresApplicationRecorder):
            query, params = _OBJECTS_EXIST, {
                "table": _quoted(schema, recorder.events_table_name),
                "index": _quoted(schema, recorder.notification_id_index_name),
                "type": _quoted(schema, recorder.stored_event_type_name),
                "schema": schema,
                "function": recorder.pg_function_name_insert_events,
                "writers": _quoted(schema, WRITERS_TABLE),
                "trigger": WRITERS_TRIGGER,
            }
        else:
            return False
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(query, params)
            row = cursor.fetchone()
        return bool(row and row["ok"])
