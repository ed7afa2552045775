"""Tables runledger keeps beside eventsourcing's, in the same database (SQLite or PostgreSQL).

They hold what is not an event: file contents (``ledger.persistence.blobs``, append-only) and
supervisor heartbeats (``ledger.persistence.heartbeats``, one row per run, overwritten). Each
statement is written once with ``?`` placeholders and ``{p}`` (the PostgreSQL schema prefix),
``{blob}`` and ``{bigint}`` type fields.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ledger.persistence.errors import store_errors

_TYPES = {
    "sqlite": {"blob": "BLOB", "bigint": "INTEGER"},
    "postgresql": {"blob": "BYTEA", "bigint": "BIGINT"},
}


class SideTables:
    """Statements on tables of the ledger's own database, created on first use.

    Args:
        datastore: eventsourcing's datastore of the ledger (``app.factory.datastore``).
        kind: ``"sqlite"``, ``"memory"`` or ``"postgresql"``.
        ddl_lock: a context manager factory serialising DDL across processes (PostgreSQL:
            ``LedgerPostgresFactory.ddl_lock``), or ``None``.
        what: the store's display URL, for error messages.

    Raises:
        StoreError: the tables cannot be created.
    """

    #: ``CREATE TABLE IF NOT EXISTS`` statements of the subclass's tables.
    TABLES: Sequence[str] = ()
    #: Their names (checked before any DDL is run).
    TABLE_NAMES: Sequence[str] = ()

    def __init__(self, datastore: Any, kind: str, *,
                 ddl_lock: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
                 what: str = "the store") -> None:
        self.datastore = datastore
        self.kind = "postgresql" if kind == "postgresql" else "sqlite"
        self.what = what
        prefix = ""
        if self.kind == "postgresql":
            schema = str(getattr(datastore, "schema", "") or "public")
            prefix = '"{}".'.format(schema.replace('"', '""'))
        self._fields = dict(_TYPES[self.kind], p=prefix)
        self._ddl_lock = ddl_lock or contextlib.nullcontext
        self.ensure_schema()

    def _sql(self, template: str, marks: int = 0) -> str:
        """Return a statement template in this store's spelling (``{marks}``: ``marks``
        placeholders)."""
        text = template.replace("{marks}", ", ".join("?" * marks)) if marks else template
        text = text.format(**self._fields)
        return text.replace("?", "%s") if self.kind == "postgresql" else text

    @contextlib.contextmanager
    def _cursor(self, commit: bool) -> Iterator[Any]:
        """A tuple-row DB-API cursor in a transaction of the ledger's datastore."""
        with store_errors(f"Reading or writing {self.what}"), \
                self.datastore.transaction(commit=commit) as wrapped:
            if self.kind == "sqlite":
                cursor = wrapped.sqlite_cursor
                cursor.row_factory = None
            else:
                from psycopg.rows import tuple_row

                wrapped.row_factory = tuple_row
                cursor = wrapped
            yield cursor

    def ensure_schema(self) -> None:
        """Create the tables if they are missing (idempotent, safe from many processes).

        Raises:
            StoreError: the store failed.
        """
        with self._cursor(commit=False) as cursor:
            if self._tables_exist(cursor):
                return
        with store_errors(f"Creating tables in {self.what}"), self._ddl_lock(), \
                self._cursor(commit=True) as cursor:
            for ddl in self.TABLES:
                cursor.execute(self._sql(ddl))

    def _tables_exist(self, cursor: Any) -> bool:
        names = list(self.TABLE_NAMES)
        if self.kind == "sqlite":
            cursor.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                           f"({', '.join('?' * len(names))})", names)
        else:
            schema = self._fields["p"][:-1]
            cursor.execute("SELECT " + " + ".join(
                ["(to_regclass(%s) IS NOT NULL)::int"] * len(names)),
                           [f"{schema}.{name}" for name in names])
        row = cursor.fetchone()
        return bool(row and int(row[0]) == len(names))
