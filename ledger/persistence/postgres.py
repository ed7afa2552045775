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

Writers are unchanged: each insert transaction takes eventsourcing's ``LOCK TABLE ... IN EXCLUSIVE
MODE``, so notification ids commit in order and projections never skip an event.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
from eventsourcing.persistence import (
    ApplicationRecorder,
    OperationalError,
    PersistenceError,
    ProgrammingError,
)
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresFactory,
    PostgresRecorder,
    PostgresTrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType

R = TypeVar("R")

#: The advisory lock key every runledger process takes while it creates tables (per database).
DDL_LOCK_KEY = zlib.crc32(b"runledger:ddl")

#: Connections per process: eventsourcing keeps 5 open and grows to 15, so 32 processes would
#: need 480 (PostgreSQL's default ``max_connections`` is 100). runledger keeps one, and opens a
#: second while two threads of the process (say, a script and the background flusher) need one at
#: once. ``?pool_size=N&max_overflow=M`` in the store URL overrides these.
POOL_DEFAULTS = {"POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "1"}

_OBJECTS_EXIST = (
    "SELECT to_regclass(%(table)s) IS NOT NULL AND to_regclass(%(index)s) IS NOT NULL "
    "AND to_regtype(%(type)s) IS NOT NULL AND EXISTS ("
    "  SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
    "  WHERE n.nspname = %(schema)s AND p.proname = %(function)s) AS ok"
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


class LedgerPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL factory, creating the schema once and safely.

    Args:
        env: the eventsourcing environment (``POSTGRES_*``, ``CREATE_TABLE``...).

    Raises:
        OSError: an environment value is invalid (as eventsourcing raises it).
    """

    def __init__(self, env: Environment | EnvType | None) -> None:
        env = env if isinstance(env, Environment) else Environment(env=env)
        for key, value in POOL_DEFAULTS.items():
            if env.get(key) is None:
                env[key] = value
        super().__init__(env)
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
            }
        else:
            return False
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(query, params)
            row = cursor.fetchone()
        return bool(row and row["ok"])
