"""eventsourcing's SQLite recorders, with the durability setting runledger documents.

eventsourcing opens file databases in WAL mode with SQLite's default ``synchronous=FULL`` and has no
setting for it. runledger's default is ``NORMAL``: in WAL mode every committed transaction survives
a crash of any process (``kill -9``); only a power loss or OS crash may lose the last commits.
``FULL`` (``?synchronous=FULL`` in the store URL, or ``RUNLEDGER_SQLITE_SYNCHRONOUS=FULL``) also
survives power loss, at the cost of one fsync per commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteDatastore,
    SQLiteFactory,
)

SYNCHRONOUS_ENV = "SQLITE_SYNCHRONOUS"
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


class LedgerSQLiteConnectionPool(SQLiteConnectionPool):
    """A connection pool that sets ``PRAGMA synchronous`` on every new connection."""

    def __init__(self, *, synchronous: str = "NORMAL", **kwargs: Any) -> None:
        self.synchronous = synchronous
        super().__init__(**kwargs)

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        if not self.is_sqlite_memory_mode:
            connection._sqlite_conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return connection


class LedgerSQLiteDatastore(SQLiteDatastore):
    """An eventsourcing SQLite datastore whose pool applies the durability setting."""

    def __init__(self, db_name: str, *, synchronous: str = "NORMAL", **kwargs: Any) -> None:
        pool_keys = ("lock_timeout", "pool_size", "max_overflow", "pool_timeout", "max_age",
                     "pre_ping")
        pool_kwargs = {k: kwargs.pop(k) for k in pool_keys if k in kwargs}
        super().__init__(db_name, **kwargs, **pool_kwargs)
        self.pool.close()
        self.pool = LedgerSQLiteConnectionPool(db_name=db_name, synchronous=synchronous,
                                               **pool_kwargs)


class LedgerSQLiteFactory(SQLiteFactory):
    """eventsourcing's SQLite factory, building a :class:`LedgerSQLiteDatastore`."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        synchronous = (self.env.get(SYNCHRONOUS_ENV) or "NORMAL").upper()
        if synchronous not in SYNCHRONOUS_MODES:
            raise OSError(f"{SYNCHRONOUS_ENV} must be one of {', '.join(SYNCHRONOUS_MODES)}, "
                          f"not {synchronous!r}")
        old = self.datastore
        self.datastore = LedgerSQLiteDatastore(
            old.pool.db_name,
            synchronous=synchronous,
            lock_timeout=old.pool.lock_timeout,
            single_row_tracking=old.single_row_tracking,
            originator_id_type=old.originator_id_type,
        )
        old.close()


def is_plain_sqlite_recorder(recorder: Any) -> TypeGuard[SQLiteApplicationRecorder]:
    """Whether ``recorder`` is eventsourcing's SQLite application recorder with its own insert
    (what :func:`insert_sqlite_rows` does in its place): not a subclass's, nor one replaced on
    the object (a test's slow store)."""
    return (isinstance(recorder, SQLiteApplicationRecorder)
            and getattr(recorder.insert_events, "__func__", None)
            is SQLiteAggregateRecorder.insert_events
            and type(recorder)._insert_events is SQLiteApplicationRecorder._insert_events
            and "_insert_events" not in vars(recorder))


def insert_sqlite_rows(recorder: SQLiteApplicationRecorder,
                       rows: Sequence[tuple[str, int, str, bytes]]) -> list[int]:
    """Insert stored events given as the rows eventsourcing's SQLite recorder inserts for them
    (``(originator_id text, version, topic, state)``), as its ``insert_events`` does: one
    write transaction of the recorder's datastore (its pool, writer lock, ``BEGIN``, commit or
    rollback and error translation), one ``INSERT`` per row. It skips building a
    ``StoredEvent`` per event and the cursor wrapper's calls.

    Returns:
        The notification id of each row, in order.

    Raises:
        eventsourcing.persistence.IntegrityError: a row's ``(originator_id, version)`` is
            stored already (another writer appended first); nothing of the call is stored.
        eventsourcing.persistence.PersistenceError: the store failed; nothing is stored.
    """
    statement = recorder.insert_events_statement
    ids: list[Any] = []  # each an int: the rowid an INSERT gave
    with recorder.datastore.transaction(commit=True) as wrapped:
        cursor = wrapped.sqlite_cursor
        execute = cursor.execute
        for row in rows:
            execute(statement, row)
            ids.append(cursor.lastrowid)
    return ids
