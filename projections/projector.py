"""The projector: applies the log to the read models exactly once, a page per transaction.

How exactly-once holds (see ../shared/notes/eventsourcing-9.5-facts.md):

- Each projection's position is its row in eventsourcing's tracking table, under its own name.
- A page is read from the log (``app.read_log_rows``: the stored rows after the lowest position,
  one plain ``SELECT`` on SQLite), decoded outside any transaction, then applied in one transaction
  of the ledger's own datastore which (1) first locks the projections' tracking rows (a no-op
  ``UPDATE``: on SQLite the first statement of the transaction takes the database's write lock, so
  what it reads next is current; on PostgreSQL it locks the rows until commit), (2) re-reads the
  positions and gives up if another projector moved them since the page was read, (3) applies the
  page to each projection still behind its end, (4) records each new position with the tracking
  recorder's ``_insert_tracking``, which also refuses a position that does not move forward
  (``IntegrityError``). The read-model writes and the positions commit together or not at all, so a
  crash never applies an event twice or skips one; a projector that loses a race rolls back,
  re-reads the positions and goes on from there.
- eventsourcing's ``ProjectionRunner`` is not used: it needs subscriptions, which its SQLite
  recorders do not implement.

One bad event never wedges the ledger. An event that cannot be decoded (a damaged byte, a crafted
import) or that a projection cannot apply (a missing field, a value the database refuses) is
recorded in the quarantine table ``rl_quarantine`` (position, stream, version, topic, reason), in
the same transaction that moves the positions past it, and the projector goes on. A page whose
apply fails is applied again one event at a time, to find the event; a failure of the store itself
(a lost connection, a lock) is never taken for a bad event: it is raised. A rebuild empties the
quarantine and finds the bad events again.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import attrs
from eventsourcing.persistence import IntegrityError, OperationalError, Tracking

from ledger.domain.errors import StoreError
from ledger.domain.text import safe_text
from ledger.persistence.retry import RETRY, RetryPolicy, is_transient
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
# PostgreSQL locks the rows an UPDATE touches in scan order, which two projectors can see
# differently (a deadlock): there the rows are locked in one order, by name.
_LOCK_POSITIONS_IN_ORDER = ("SELECT application_name FROM {tracking} "
                            "WHERE application_name IN ({marks}) "
                            "ORDER BY application_name FOR UPDATE")
_RESET_POSITION = "UPDATE {tracking} SET notification_id = 0 WHERE application_name = ?"

_QUARANTINE_TABLE = "rl_quarantine"
_CREATE_QUARANTINE = (
    "CREATE TABLE IF NOT EXISTS {p}rl_quarantine ("
    "notification_id {bigint} PRIMARY KEY, stream_id {text}, version {bigint}, topic {text}, "
    "stage {text} NOT NULL, reason {text} NOT NULL, recorded_at {bigint} NOT NULL)"
)
_INSERT_QUARANTINE = (
    "INSERT INTO {p}rl_quarantine (notification_id, stream_id, version, topic, stage, reason, "
    "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (notification_id) DO UPDATE SET "
    "stage = excluded.stage, reason = excluded.reason, recorded_at = excluded.recorded_at"
)
_CLEAR_QUARANTINE = "DELETE FROM {p}rl_quarantine"
_SELECT_QUARANTINE = ("SELECT notification_id, stream_id, version, topic, stage, reason, "
                      "recorded_at FROM {p}rl_quarantine ORDER BY notification_id")

logger = logging.getLogger("runledger")

# A quarantined event: (notification id, stream id, version, topic, stage, reason).
Quarantined = tuple[int, str, int, str, str, str]

# A page read from the log: how many notifications, the last id, the decoded events of interest,
# every notification undecoded as (id, topic, notification) when a raw projection (sealing) reads
# it, and the events that could not be decoded.
_Page = tuple[int, int, list[LoggedEvent], list[LoggedEvent], list[Quarantined]]


class _Unprojectable(Exception):
    """A projection could not apply a page (internal): the page holds a bad event."""

    def __init__(self, projection: str, error: BaseException) -> None:
        super().__init__(f"{projection}: {type(error).__name__}: {error}")
        self.projection = projection


def _is_store_failure(error: BaseException) -> bool:
    """Whether an error raised while applying events is the store failing (raised as it is),
    rather than an event the projection cannot apply (quarantined)."""
    if isinstance(error, (OperationalError, sqlite3.OperationalError)):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installs
        return False
    return isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError))


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


def is_lock_wait(error: BaseException) -> bool:
    """Whether an error ended a wait for another process's lock (SQLite busy or locked,
    PostgreSQL lock timeout): that wait already took the store's whole timeout."""
    if not isinstance(error, OperationalError):
        return False
    text = str(error).lower()
    if "deadlock" in text:
        # PostgreSQL broke a deadlock at once ("... blocked by process ..."): no wait was
        # spent, and the transaction is worth another try.
        return False
    return "locked" in text or "busy" in text or "lock timeout" in text


def retry_policy(timeout: float) -> RetryPolicy:
    """The projector's retry policy: ``RETRY`` with the store's lock timeout as its deadline, so
    the attempts of one transaction wait for other processes' locks that long in total."""
    return attrs.evolve(RETRY, deadline=timeout)


def _give_up(error: BaseException, what: str, timeout: float, started: float) -> StoreError:
    """The error ending a retried transaction: the lock wait took the store's timeout, or the
    transaction kept losing races."""
    waited = time.monotonic() - started
    if is_lock_wait(error) or waited >= timeout:
        return StoreError(
            f"{what}: another process held the store's lock for more than the configured "
            f"timeout ({timeout:g} s; waited {waited:.1f} s): {error}")
    return StoreError(f"{what} kept conflicting with other processes: {error}")


def _retrying(action: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Run ``action``, again after a pause (``retry_policy``) when it loses a race with another
    process, within the store's lock timeout in total; a wait that itself took the whole lock
    timeout is not tried again.

    Raises:
        StoreError: the timeout passed, or it kept losing.
    """
    started = time.monotonic()
    try:
        return retry_policy(timeout).call(
            action, retry_if=lambda error: is_conflict(error) and not is_lock_wait(error))
    except (IntegrityError, OperationalError, StalePositionError) as error:
        if not is_conflict(error):
            raise
        raise _give_up(error, what, timeout, started) from error


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
        self.lock_timeout = app.store.lock_timeout
        self.tracking: Any = _retrying(factory.tracking_recorder, "Creating the tracking table",
                                       self.lock_timeout)
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
        statement = (_LOCK_POSITIONS_IN_ORDER if self.dialect.kind == "postgresql"
                     else _LOCK_POSITIONS)
        cursor.execute(self.dialect.sql(statement.replace(
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
            names = self.dialect.schema_names(cursor)
            if _QUARANTINE_TABLE in names and not self._schema_changes(
                    names, self._select_positions(cursor)):
                return
        _retrying(self._ensure_schema_once, "Creating the read-model tables", self.lock_timeout)

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
            cursor.execute(self.dialect.sql(_CREATE_QUARANTINE))
            for projection, fresh, missing in self._schema_changes(names, positions):
                if fresh:
                    self._recreate_tables(wrapped, cursor, projection, positions)
                for index in missing:
                    cursor.execute(self.dialect.sql(projection.indexes[index]))

    def _recreate_tables(self, wrapped: Any, cursor: DbCursor, projection: Projection,
                         positions: dict[str, int]) -> None:
        with self._without_zeroing(cursor):
            for table in projection.tables:
                cursor.execute(self.dialect.drop_table(table))
        for ddl in projection.tables.values():
            cursor.execute(self.dialect.sql(ddl))
        if projection.name in positions:
            cursor.execute(self.dialect.sql(_RESET_POSITION), (projection.name,))
        else:
            self.tracking._insert_tracking(wrapped, Tracking(projection.name, 0))

    @contextmanager
    def _without_zeroing(self, cursor: DbCursor) -> Iterator[None]:
        """On SQLite built with ``SECURE_DELETE`` (Debian's, for one: ``PRAGMA secure_delete``
        is 1), run the block with ``secure_delete = FAST`` on the transaction's connection, and
        set it back after.

        With it on, dropping a table zeroes and writes every page the table held: resetting the
        read models of a 100,000-event ledger wrote 28 MB of zeros to the WAL (0.2 s; 9 ms
        with ``FAST``), which checkpoints then copied into the database. ``FAST`` still zeroes
        deleted content in the pages a write touches anyway; the freed pages keep their old
        bytes until reused (a rebuild reuses them at once), and what they held is read-model
        data, a copy of what the log keeps.
        """
        previous = None
        if self.dialect.kind == "sqlite":
            cursor.execute("PRAGMA secure_delete")
            found = cursor.fetchone()
            previous = int(found[0]) if found is not None else None
        if previous != 1:  # PostgreSQL, or already off or FAST
            yield
            return
        cursor.execute("PRAGMA secure_delete = FAST")
        try:
            yield
        finally:
            cursor.execute("PRAGMA secure_delete = 1")

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
                cursor.execute(self.dialect.sql(_CREATE_QUARANTINE))
                cursor.execute(self.dialect.sql(_CLEAR_QUARANTINE))  # found again as it goes

        _retrying(once, "Resetting the read models", self.lock_timeout)
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
        policy = retry_policy(self.lock_timeout)
        retries = policy.attempts()
        next(retries)
        waiting_since = time.monotonic()
        # Up to this position pages are read one event at a time (to find a bad event).
        careful_until = 0
        while True:
            start = min(positions.values())
            self.position = start
            this_size = 1 if start < careful_until else size
            count, end, events, raw, bad = self._read_page(start, this_size)
            if count == 0:
                break
            behind = [p for p in self.projections if positions[p.name] < end]
            try:
                try:
                    self._apply_page(behind, events, raw, positions, start, end, bad)
                except _Unprojectable as unprojectable:
                    if count > 1:
                        careful_until = end  # again, one event at a time
                        continue
                    stream, version, topic = self._identify(events, start, end)
                    bad = [*bad, (end, stream, version, topic, "apply", str(unprojectable))]
                    # The raw (sealing) projections still take the event: they read bytes.
                    self._apply_page(behind, [], raw, positions, start, end, bad)
            except (StalePositionError, IntegrityError, OperationalError) as error:
                if not is_conflict(error):
                    raise
                if is_lock_wait(error) or next(retries, None) is None:  # pauses before the next
                    raise _give_up(error, "Catching up the read models", self.lock_timeout,
                                   waiting_since) from error
                positions = self.positions()
                continue
            applied += len(events)
            # A page went through: the next conflict starts afresh, and so does the deadline.
            retries = policy.attempts()
            next(retries)
            waiting_since = time.monotonic()
            for projection in behind:
                positions[projection.name] = end
            self.position = min(positions.values())
            if progress is not None:
                progress(self.position)
            if count < this_size:
                break
        return self.position, applied

    def _read_page(self, start: int, size: int) -> _Page:
        """Read and decode the page after ``start``: (notifications read, last id, events
        with a topic some projection reads, the page's rows for the raw projections, events
        that cannot be decoded).

        The page is read as plain rows (``app.read_log_rows``), not eventsourcing's
        ``Notification`` objects (a sixth of a rebuild's time).
        """
        page = self.app.read_log_rows(start, size)
        if not page:
            return 0, start, [], [], []
        topics = self._topics
        wanted = [row for row in page if row[3] in topics]
        raw = [(row[0], row[3], row) for row in page] if self._raw else []
        try:
            # One msgpack unpacker for the page (decode_rows); an event that cannot be
            # decoded sends the page through the one-at-a-time path, which quarantines it.
            decoded = self.app.decode_rows(wanted)
        except Exception:  # sorted out event by event below
            pass
        else:
            return (len(page), page[-1][0],
                    [(row[0], row[3], e) for row, e in zip(wanted, decoded, strict=True)], raw,
                    [])
        decode = self.app.decode_rows
        events: list[LoggedEvent] = []
        bad: list[Quarantined] = []
        for row in wanted:
            try:
                events.append((row[0], row[3], decode([row])[0]))
            except Exception as error:  # a damaged or crafted event: quarantined, not fatal
                bad.append((row[0], str(row[1]), row[2], row[3], "decode",
                            f"{type(error).__name__}: {error}"))
        return len(page), page[-1][0], events, raw, bad

    def _identify(self, events: list[LoggedEvent], start: int,
                  end: int) -> tuple[str, int, str]:
        """The stream, version and topic of the one event at position ``end``."""
        for notification in self.app.read_log(start, 1):
            if notification.id == end:
                return (str(notification.originator_id), notification.originator_version,
                        notification.topic)
        topic = events[0][1] if events else ""
        return "", 0, topic

    def _quarantine(self, cursor: DbCursor, bad: Sequence[Quarantined]) -> None:
        now = int(time.time() * 1_000_000)
        cursor.executemany(self.dialect.sql(_INSERT_QUARANTINE), [
            (position, safe_text(stream, "name"), version, safe_text(topic, "name"),
             stage, safe_text(reason, "value"), now)
            for position, stream, version, topic, stage, reason in bad])
        for position, _stream, _version, topic, stage, reason in bad:
            logger.warning("runledger: event at position %s (%s) could not be %s and is "
                           "quarantined; the query index is incomplete (see `runledger "
                           "projections status`): %s", position, topic,
                           "decoded" if stage == "decode" else "projected", reason[:200])

    def quarantined(self) -> list[Quarantined]:
        """Return the quarantined events, by position: (position, stream, version, topic,
        stage, reason), stage being ``decode`` or ``apply``.

        Raises:
            StoreError: the store failed.
        """
        with self.dialect.transaction(self.datastore, commit=False) as (_wrapped, cursor):
            cursor.execute(self.dialect.sql(_SELECT_QUARANTINE))
            return [(int(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]), str(r[5]))
                    for r in cursor.fetchall()]

    def _apply_page(self, behind: list[Projection], events: list[LoggedEvent],
                    raw: list[LoggedEvent], positions: dict[str, int], start: int, end: int,
                    bad: Sequence[Quarantined] = ()) -> None:
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
                    try:
                        projection.apply(cursor, mine)
                    except Exception as error:
                        if _is_store_failure(error):
                            raise
                        raise _Unprojectable(projection.name, error) from error
                self.tracking._insert_tracking(wrapped, Tracking(projection.name, end))
            if bad:
                self._quarantine(cursor, bad)
            if self.before_commit is not None:
                self.before_commit(start, end)

    @property
    def topics(self) -> frozenset[str]:
        """Every topic some projection reads."""
        return self._topics
