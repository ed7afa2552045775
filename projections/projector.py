"""The projector: applies the log to the read models exactly once, a page per transaction.

How exactly-once holds (see ../shared/notes/eventsourcing-9.5-facts.md):

- Each projection's position is its row in eventsourcing's tracking table, under its own name.
- A page is read from the log (``app.read_log``: ``select_notifications`` after the lowest
  position), decoded outside any transaction, then applied in one transaction of the ledger's own
  datastore which (1) first locks the projections' tracking rows (a no-op ``UPDATE``: on SQLite the
  first statement of the transaction takes the database's write lock, so what it reads next is
  current; on PostgreSQL it locks the rows until commit), (2) re-reads the positions and gives up
  if another projector moved them since the page was read, (3) applies the page to each projection
  still behind its end, (4) records each new position with the tracking recorder's
  ``_insert_tracking``, which also refuses a position that does not move forward
  (``IntegrityError``). The read-model writes and the positions commit together or not at all, so
  a crash never applies an event twice or skips one; a projector that loses a race rolls back,
  re-reads the positions and goes on from there.
- eventsourcing's ``ProjectionRunner`` is not used: it needs subscriptions, which its SQLite
  recorders do not implement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import IntegrityError, OperationalError, Tracking

from ledger.domain.errors import StoreError
from ledger.persistence.retry import RETRY, is_transient
from projections.dialect import DbCursor, Dialect
from projections.projection import LoggedEvent, Projection

if TYPE_CHECKING:
    from ledger.application import LedgerApplication

# Statements on eventsourcing's tracking table (application_name, notification_id). Reading and
# locking several rows in one statement keeps a catch-up with nothing new at two small queries;
# eventsourcing has no call for resetting a position backwards, which a rebuild needs.
_SELECT_POSITIONS = ("SELECT application_name, notification_id FROM {tracking} "
                     "WHERE application_name IN ({marks})")
_LOCK_POSITIONS = ("UPDATE {tracking} SET notification_id = notification_id "
                   "WHERE application_name IN ({marks})")
_RESET_POSITION = "UPDATE {tracking} SET notification_id = 0 WHERE application_name = ?"

# A page read from the log: how many notifications, the last id, the decoded events of interest,
# and every notification undecoded as (id, topic, notification) when a raw projection reads it.
_Page = tuple[int, int, list[LoggedEvent], list[LoggedEvent]]


class StalePositionError(Exception):
    """Another projector moved a position after this one read its page (internal)."""


def is_conflict(error: BaseException) -> bool:
    """Return whether an error means "another process got there first, try again".

    Args:
        error: what a transaction raised.

    Returns:
        True for a lost race (a stale position, or what ``ledger.persistence.retry``
        classifies as transient: a refused tracking position, a lock or serialisation
        failure); False for anything else (a real error, raised as it is).
    """
    return isinstance(error, StalePositionError) or is_transient(error)


def _retrying(action: Callable[[], Any], what: str) -> Any:
    """Run ``action``, again after a pause (``RETRY``) when it loses a race with another
    process.

    Raises:
        StoreError: it kept losing.
    """
    try:
        return RETRY.call(action, retry_if=is_conflict)
    except (IntegrityError, OperationalError, StalePositionError) as error:
        if not is_conflict(error):
            raise
        raise StoreError(f"{what} kept conflicting with other processes: {error}") from error


class Projector:
    """Keeps a set of projections up to date with a ledger's log.

    Not thread-safe by itself: :class:`projections.index.RunIndex` serialises its calls.

    Args:
        app: the ledger.
        projections: the projection classes to keep up to date.
        page_size: events per page (and per transaction) when catching up.
        before_commit: a hook called inside each page's transaction after the page and its
            positions are written and before the commit, with the page's first and last
            notification ids (tests use it to crash a projector at the worst moment).

    Raises:
        StoreError: the store failed or kept conflicting.
    """

    def __init__(self, app: LedgerApplication, projections: Sequence[type[Projection]], *,
                 page_size: int = 500,
                 before_commit: Callable[[int, int], None] | None = None) -> None:
        if not projections:
            raise ValueError("A projector needs at least one projection")
        names = [p.name for p in projections]
        if len(set(names)) != len(names):
            raise ValueError(f"Projection names must be unique: {names}")
        self.app = app
        factory: Any = app.factory
        self.datastore: Any = factory.datastore
        # PostgreSQL: runledger's factory serialises DDL across processes with an advisory lock
        # (ledger.persistence.postgres); SQLite's single writer lock needs nothing more.
        self._ddl_lock: Callable[[], AbstractContextManager[Any]] = getattr(
            factory, "ddl_lock", nullcontext)
        self.tracking: Any = _retrying(factory.tracking_recorder, "Creating the tracking table")
        kind = app.store.kind
        if kind == "postgresql":
            self.dialect = Dialect.for_store(kind, tracking_table=self.tracking.tracking_table_name,
                                             schema=self.datastore.schema)
        else:
            self.dialect = Dialect.for_store(kind)
        self.projections = [cls(app, self.dialect) for cls in projections]
        self.names = names
        self.page_size = page_size
        self.before_commit = before_commit
        # The lowest position this projector has seen stored. Only a rebuild by another process
        # can move the stored one back behind it.
        self.position = 0
        self._topics = frozenset().union(*(p.topics for p in self.projections if not p.raw))
        self._raw = any(p.raw for p in self.projections)

    # ------------------------------------------------------------------ positions
    def _select_positions(self, cursor: DbCursor) -> dict[str, int]:
        cursor.execute(self.dialect.sql(_SELECT_POSITIONS.replace(
            "{marks}", ", ".join("?" * len(self.names)))), self.names)
        return {name: int(position or 0) for name, position in cursor.fetchall()}

    def _lock_positions(self, cursor: DbCursor) -> None:
        cursor.execute(self.dialect.sql(_LOCK_POSITIONS.replace(
            "{marks}", ", ".join("?" * len(self.names)))), self.names)

    def positions(self) -> dict[str, int]:
        """Return each projection's stored position (0 for one never projected).

        Returns:
            Tracking name -> notification id.

        Raises:
            StoreError: the store failed.
        """
        with self.dialect.transaction(self.datastore, commit=False) as (_wrapped, cursor):
            stored = self._select_positions(cursor)
        return {name: stored.get(name, 0) for name in self.names}

    # ------------------------------------------------------------------ schema
    def ensure_schema(self) -> None:
        """Create what is missing: a projection with no tracking row or a missing table gets
        fresh tables and position 0 (it back-fills on the next catch-up); missing indexes are
        created. Costs one read when everything exists.

        Raises:
            StoreError: the store failed or kept conflicting.
        """
        with self.dialect.transaction(self.datastore, commit=False) as (_wrapped, cursor):
            if not self._schema_changes(self.dialect.schema_names(cursor),
                                        self._select_positions(cursor)):
                return
        _retrying(self._ensure_schema_once, "Creating the read-model tables")

    def _schema_changes(self, names: set[str],
                        positions: dict[str, int]) -> list[tuple[Projection, bool, list[str]]]:
        """Return (projection, needs fresh tables, missing index names) for what is missing."""
        changes = []
        for projection in self.projections:
            fresh = projection.name not in positions or any(
                table not in names for table in projection.tables)
            missing = [name for name in projection.indexes if fresh or name not in names]
            if fresh or missing:
                changes.append((projection, fresh, missing))
        return changes

    def _ensure_schema_once(self) -> None:
        with self._ddl_lock(), \
                self.dialect.transaction(self.datastore, commit=True) as (wrapped, cursor):
            self._lock_positions(cursor)
            positions = self._select_positions(cursor)
            names = self.dialect.schema_names(cursor)
            for projection, fresh, missing in self._schema_changes(names, positions):
                if fresh:
                    self._recreate_tables(wrapped, cursor, projection, positions)
                for index in missing:
                    cursor.execute(self.dialect.sql(projection.indexes[index]))

    def _recreate_tables(self, wrapped: Any, cursor: DbCursor, projection: Projection,
                         positions: dict[str, int]) -> None:
        for table in projection.tables:
            cursor.execute(self.dialect.drop_table(table))
        for ddl in projection.tables.values():
            cursor.execute(self.dialect.sql(ddl))
        if projection.name in positions:
            cursor.execute(self.dialect.sql(_RESET_POSITION), (projection.name,))
        else:
            self.tracking._insert_tracking(wrapped, Tracking(projection.name, 0))

    def reset(self) -> None:
        """Drop every projection's tables, create them again without their secondary indexes
        (loading is faster without them; :meth:`ensure_schema` adds them) and set every
        position to 0, in one transaction.

        Raises:
            StoreError: the store failed or kept conflicting.
        """
        def once() -> None:
            with self._ddl_lock(), \
                    self.dialect.transaction(self.datastore, commit=True) as (wrapped, cursor):
                self._lock_positions(cursor)
                positions = self._select_positions(cursor)
                for projection in self.projections:
                    self._recreate_tables(wrapped, cursor, projection, positions)

        _retrying(once, "Resetting the read models")
        self.position = 0

    # ------------------------------------------------------------------ catching up
    def catch_up(self, until: int | None = None, *, page_size: int | None = None,
                 progress: Callable[[int], None] | None = None) -> tuple[int, int]:
        """Apply every event after the projections' positions, a page per transaction.

        Reads pages until the log has no more (a short page), so on return every event committed
        before the call is applied.

        Args:
            until: if given and every position is already at or past it, return at once (no
                query at all when this projector has seen that position itself).
            page_size: events per page (default: the projector's).
            progress: called with the new position after each page.

        Returns:
            The lowest position of the projections, and how many events were applied.

        Raises:
            StoreError: the store failed or kept conflicting with other projectors.
        """
        if until is not None and self.position >= until:
            return self.position, 0
        size = page_size or self.page_size
        positions = self.positions()
        applied = 0
        retries = RETRY.attempts()
        next(retries)
        while True:
            start = min(positions.values())
            self.position = start
            count, end, events, raw = self._read_page(start, size)
            if count == 0:
                break
            behind = [p for p in self.projections if positions[p.name] < end]
            try:
                self._apply_page(behind, events, raw, positions, start, end)
            except (StalePositionError, IntegrityError, OperationalError) as error:
                if not is_conflict(error):
                    raise
                if next(retries, None) is None:  # pauses before the next attempt
                    raise StoreError(
                        "Catching up the read models kept conflicting with other "
                        f"processes: {error}") from error
                positions = self.positions()
                continue
            applied += len(events)
            retries = RETRY.attempts()  # a page went through: the next conflict starts afresh
            next(retries)
            for projection in behind:
                positions[projection.name] = end
            self.position = min(positions.values())
            if progress is not None:
                progress(self.position)
            if count < size:
                break
        return self.position, applied

    def _read_page(self, start: int, size: int) -> _Page:
        """Read and decode the page after ``start``: (notifications read, last id, events
        with a topic some projection reads)."""
        page = self.app.read_log(start, size)
        if not page:
            return 0, start, [], []
        topics = self._topics
        decode = self.app.decode
        raw = [(n.id, n.topic, n) for n in page] if self._raw else []
        return len(page), page[-1].id, [(n.id, n.topic, decode(n)) for n in page
                                        if n.topic in topics], raw

    def _apply_page(self, behind: list[Projection], events: list[LoggedEvent],
                    raw: list[LoggedEvent], positions: dict[str, int], start: int,
                    end: int) -> None:
        with self.dialect.transaction(self.datastore, commit=True) as (wrapped, cursor):
            self._lock_positions(cursor)
            stored = self._select_positions(cursor)
            for name, position in positions.items():
                if stored.get(name) != position:
                    raise StalePositionError(
                        f"{name} is at {stored.get(name)}, expected {position}")
            for projection in behind:
                after = positions[projection.name]
                topics = projection.topics
                if projection.raw:
                    mine = raw if after == start else [e for e in raw if e[0] > after]
                elif after == start:
                    mine = [e for e in events if e[1] in topics]
                else:
                    mine = [e for e in events if e[0] > after and e[1] in topics]
                if mine:
                    projection.apply(cursor, mine)
                self.tracking._insert_tracking(wrapped, Tracking(projection.name, end))
            if self.before_commit is not None:
                self.before_commit(start, end)

    @property
    def topics(self) -> frozenset[str]:
        """Every topic some projection reads."""
        return self._topics
