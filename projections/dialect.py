"""The one place where SQLite and PostgreSQL differ for the read models.

Every statement in this package is written once, with ``?`` placeholders and ``{type}`` fields for
column types; :meth:`Dialect.sql` turns it into the store's own spelling. Upserts
(``INSERT ... ON CONFLICT (...) DO UPDATE SET c = excluded.c``), partial indexes and recursive CTEs
have the same syntax in both, so they need no translation.

Cursors: eventsourcing's SQLite transactions yield a wrapper whose rows are ``sqlite3.Row`` and its
PostgreSQL transactions yield psycopg cursors returning dicts; :meth:`Dialect.cursor` gives a
DB-API cursor returning plain tuples on both, which is what the projections and queries read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast

import attrs

# The column types of the read models, per store. Timestamps are stored as whole microseconds
# since the Unix epoch (UTC), so both stores hold the same integers and no time zone setting of a
# connection can change what is read back.
_SQLITE_TYPES = {
    "int_pk": "INTEGER PRIMARY KEY",  # an alias of SQLite's rowid: the fastest key there is
    "bigint": "INTEGER",
    "text": "TEXT",
    "blob": "BLOB",
    "double": "REAL",
    "without_rowid": " WITHOUT ROWID",
    "p": "",  # the schema prefix of table names
}
_POSTGRES_TYPES = {
    "int_pk": "BIGINT PRIMARY KEY",
    "bigint": "BIGINT",
    "text": "TEXT",
    "blob": "BYTEA",
    "double": "DOUBLE PRECISION",
    "without_rowid": "",
}

# Statements that probe tables or indexes by name; the results are compared with the names the
# projections declare.
_SQLITE_SCHEMA = "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')"
_POSTGRES_SCHEMA = (
    "SELECT tablename FROM pg_tables WHERE schemaname = ? "
    "UNION ALL SELECT indexname FROM pg_indexes WHERE schemaname = ?"
)

_FIELD = re.compile(r"\{(\w+)\}")


class DbCursor(Protocol):
    """The DB-API cursor the read models are written and read through (rows are tuples)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any:
        """Execute one statement."""

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Any:
        """Execute one statement for each parameter sequence."""

    def fetchall(self) -> list[Any]:
        """Return the remaining rows."""

    def fetchone(self) -> Any:
        """Return the next row, or ``None``."""


class _Datastore(Protocol):
    def transaction(self, *, commit: bool) -> Any: ...


@attrs.frozen
class Dialect:
    """SQL spelling, column types and cursor handling of one kind of store.

    Attributes:
        kind: ``"sqlite"`` (also for ``memory://`` stores) or ``"postgresql"``.
        placeholder: the parameter placeholder (``?`` or ``%s``).
        types: the values of the ``{...}`` fields in statement templates.
        tracking_table: the qualified name of eventsourcing's tracking table.
        schema: the PostgreSQL schema holding the tables (empty on SQLite).
    """

    kind: str
    placeholder: str
    types: dict[str, str]
    tracking_table: str
    schema: str = ""
    _cache: dict[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def for_store(cls, kind: str, *, tracking_table: str = "tracking",
                  schema: str = "public") -> Dialect:
        """Return the dialect of a store kind.

        Args:
            kind: ``LedgerApplication.store.kind`` (``memory``, ``sqlite`` or ``postgresql``).
            tracking_table: the name of eventsourcing's tracking table (PostgreSQL prefixes it
                with the application name).
            schema: the PostgreSQL schema.

        Returns:
            The dialect.

        Raises:
            ValueError: the store kind is unknown.
        """
        if kind in ("sqlite", "memory"):
            return cls(kind="sqlite", placeholder="?", types=dict(_SQLITE_TYPES),
                       tracking_table="tracking")
        if kind == "postgresql":
            qualified = f'"{schema}"."{tracking_table}"'
            return cls(kind="postgresql", placeholder="%s",
                       types=dict(_POSTGRES_TYPES, p=f'"{schema}".'),
                       tracking_table=qualified, schema=schema)
        raise ValueError(f"No SQL dialect for store kind {kind!r}")

    def sql(self, template: str) -> str:
        """Return ``template`` in this dialect: ``{type}`` fields filled, ``?`` placeholders
        replaced (the templates hold no ``?`` or ``%`` inside string literals).

        Args:
            template: a statement with ``?`` placeholders and ``{field}`` type fields; the field
                ``{tracking}`` is the tracking table, ``{p}`` the schema prefix to write before
                every table name.

        Returns:
            The statement to execute.
        """
        cached = self._cache.get(template)
        if cached is not None:
            return cached
        values = dict(self.types, tracking=self.tracking_table)
        text = _FIELD.sub(lambda m: values[m.group(1)], template)
        if self.placeholder != "?":
            text = text.replace("?", self.placeholder)
        self._cache[template] = text
        return text

    def marks(self, count: int) -> str:
        """Return ``count`` comma-separated placeholders (for ``IN (...)`` lists).

        Args:
            count: how many (at least 1).

        Returns:
            For example ``?, ?, ?``.
        """
        return ", ".join([self.placeholder] * count)

    def cursor(self, wrapped: Any) -> DbCursor:
        """Return a tuple-row DB-API cursor for the cursor an eventsourcing transaction yields.

        Args:
            wrapped: what ``datastore.transaction(...)`` yielded.

        Returns:
            A cursor in the same transaction whose rows are tuples.
        """
        if self.kind == "sqlite":
            raw = wrapped.sqlite_cursor
            raw.row_factory = None
            return cast(DbCursor, raw)
        from psycopg.rows import tuple_row

        wrapped.row_factory = tuple_row
        return cast(DbCursor, wrapped)

    @contextmanager
    def transaction(self, datastore: _Datastore, *, commit: bool) -> Iterator[tuple[Any, DbCursor]]:
        """Open a transaction of the app's datastore.

        Args:
            datastore: ``app.factory.datastore``.
            commit: commit at the end (else roll back: a read-only transaction).

        Yields:
            The cursor eventsourcing yields (for its recorders' ``_insert_tracking``) and the
            tuple-row cursor over the same transaction.
        """
        with datastore.transaction(commit=commit) as wrapped:
            yield wrapped, self.cursor(wrapped)

    def schema_names(self, cursor: DbCursor) -> set[str]:
        """Return the names of the tables and indexes that exist.

        Args:
            cursor: a cursor in any transaction.

        Returns:
            Table and index names.
        """
        if self.kind == "sqlite":
            cursor.execute(_SQLITE_SCHEMA)
        else:
            cursor.execute(self.sql(_POSTGRES_SCHEMA), (self.schema, self.schema))
        return {row[0] for row in cursor.fetchall()}

    def drop_table(self, table: str) -> str:
        """Return the statement that drops a table if it exists (with its indexes).

        Args:
            table: the table name (unqualified).

        Returns:
            The statement.
        """
        return f"DROP TABLE IF EXISTS {self.types['p']}{table}"
