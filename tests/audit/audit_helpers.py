"""Helpers of the tamper-evidence tests: populating a ledger, and direct SQL access to its stored
events and sealing tables, as an attacker with database access has.

The raw tables: on SQLite (and ``memory://``) eventsourcing's ``stored_events``, whose notification
id is the ``rowid``; on PostgreSQL ``<schema>.runledger_events`` with a ``notification_id``
column and a UUID ``originator_id``. Statements run through the ledger's own datastore, so the
in-memory ledger can be tampered with too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ledger import Experiment, Workspace
from projections.dialect import DbCursor

# notification id, stream (canonical UUID text), version, topic, state
Row = tuple[int, str, int, str, bytes]


class RawLog:
    """Direct SQL on a ledger's event table and sealing tables."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.app = ws._session.app
        index = ws._session.index
        self.dialect = index._dialect
        self.datastore = index._datastore
        if self.dialect.kind == "sqlite":
            self.table, self.id_column, self.cast = "stored_events", "rowid", ""
        else:
            schema = self.datastore.schema
            self.table = f'"{schema}"."{self.app.recorder.events_table_name}"'
            self.id_column, self.cast = "notification_id", "::uuid"

    @contextmanager
    def cursor(self) -> Iterator[DbCursor]:
        with self.dialect.transaction(self.datastore, commit=True) as (_wrapped, cursor):
            yield cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.cursor() as cursor:
            cursor.execute(self.dialect.sql(sql), params)
            try:
                return list(cursor.fetchall())
            except Exception:  # a statement without rows (psycopg raises, sqlite3 returns [])
                return []

    def rows(self) -> list[Row]:
        """Every stored event, in log order."""
        rows = self.execute(f"SELECT {self.id_column}, originator_id, originator_version, topic, "
                            f"state FROM {self.table} ORDER BY {self.id_column}")
        return [(int(n), str(uuid.UUID(str(o))), int(v), str(t), bytes(s))
                for n, o, v, t, s in rows]

    def _stream(self, value: str) -> str:
        """A stream id as the table holds it (SQLite: 32 hex digits; PostgreSQL: a UUID)."""
        parsed = uuid.UUID(value)
        return parsed.hex if self.dialect.kind == "sqlite" else str(parsed)

    def ids(self) -> list[int]:
        return [row[0] for row in self.rows()]

    def update(self, notification_id: int, **columns: Any) -> None:
        if "originator_id" in columns:
            columns["originator_id"] = self._stream(columns["originator_id"])
        sets = ", ".join(f"{name} = ?" + (self.cast if name == "originator_id" else "")
                         for name in columns)
        self.execute(f"UPDATE {self.table} SET {sets} WHERE {self.id_column} = ?",
                     [*columns.values(), notification_id])

    def delete(self, notification_id: int) -> None:
        self.execute(f"DELETE FROM {self.table} WHERE {self.id_column} = ?", [notification_id])

    def delete_from(self, notification_id: int) -> None:
        self.execute(f"DELETE FROM {self.table} WHERE {self.id_column} >= ?", [notification_id])

    def insert(self, row: Row) -> None:
        row = (row[0], self._stream(row[1]), *row[2:])  # type: ignore[assignment]
        self.execute(f"INSERT INTO {self.table} ({self.id_column}, originator_id, "
                     f"originator_version, topic, state) VALUES (?, ?{self.cast}, ?, ?, ?)",
                     list(row))

    def shift_from(self, notification_id: int, by: int) -> None:
        """Renumber every event from ``notification_id`` on by ``by`` (two steps: ids unique)."""
        big = 1 << 40
        self.execute(f"UPDATE {self.table} SET {self.id_column} = {self.id_column} + ? "
                     f"WHERE {self.id_column} >= ?", [big, notification_id])
        self.execute(f"UPDATE {self.table} SET {self.id_column} = {self.id_column} - ? "
                     f"WHERE {self.id_column} >= ?", [big - by, big])

    def restore(self, rows: Sequence[Row]) -> None:
        """Put the log back as ``rows`` (undoing any tampering of the events)."""
        self.execute(f"DELETE FROM {self.table}")
        for row in rows:
            self.insert(row)


def populate(ws: Workspace, runs: int = 6, *, name: str = "audit") -> list[str]:
    """Write ``runs`` runs with properties, tags, metrics and a child each other run."""
    exp = Experiment(ws, name)
    ids = []
    for i in range(runs):
        run = exp.start_logging()
        run.add_properties({"lr": str(0.1 * (i + 1))})
        run.tag("i", str(i))
        run.log("loss", 1.0 / (i + 1))
        run.log("loss", 0.5 / (i + 1))
        if i % 2:
            child = run.child_run()
            child.complete()
        run.complete()
        ids.append(run.id)
    ws.flush()
    return ids


def forged_row(notification_id: int, like: Row) -> Row:
    """A well-formed event of a new stream, with the topic and state of a real one."""
    return (notification_id, str(uuid.uuid4()), 1, like[3], like[4])
