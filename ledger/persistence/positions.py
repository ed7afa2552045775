"""The events of chosen streams *with their log positions*, which eventsourcing's recorders do
not give (``select_events`` returns stored events without their notification ids).

A view of a run as of a moment needs, for each of its events, the position of that event in the
whole log (its notification id): "as of position P" means "what the ledger held after the event
at position P". Both stores keep it beside the stream key: SQLite's ``stored_events`` is a rowid
table whose rowid *is* the notification id, PostgreSQL's has a ``notification_id`` column. The
query below reads one stream (or a few) through the ``(originator_id, originator_version)``
primary key, so it costs O(the streams' events), never O(the log).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder

from ledger.persistence.transcoder import uuid_from_text

# Streams per query (one IN (...) list).
CHUNK = 500
# Up to this many streams (a run's two), SQLite is asked one stream at a time.
FEW = 2

#: One stored event with its position: ``(notification id, stream UUID, version, topic,
#: state bytes)``. Plain tuples: a view of a run of 1,000 events builds 1,000 of them, and a
#: dataclass per row cost more than the query.
StreamRow = tuple[int, UUID, int, str, bytes]


def select_log(recorder: ApplicationRecorder, after: int, limit: int) -> list[StreamRow]:
    """Return up to ``limit`` stored events after position ``after``, in log order, as plain
    rows: what ``select_notifications`` returns, without its ``Notification`` objects.

    For readers of the whole log (a rebuild, a catch-up): building a ``Notification`` and a
    ``UUID`` per event was a sixth of a rebuild. On SQLite this is one plain ``SELECT`` on the
    recorder's table (as ``ledger.audit``'s verify reads it), each stream's ``UUID`` made once per
    page (a run's events are mostly neighbours); other recorders go through
    ``select_notifications``.

    Args:
        recorder: the ledger's application recorder.
        after: a notification id (0: from the start).
        limit: at most this many rows.

    Returns:
        ``(position, stream, version, topic, state)`` rows; ``stream`` is what the recorder
        gives (a ``UUID``, or the text of a stream id that is not one).

    Raises:
        eventsourcing.persistence.PersistenceError: the store failed.
    """
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    if not isinstance(recorder, SQLiteApplicationRecorder):
        # (A stream id that is not a UUID comes as its text, as eventsourcing gives it.)
        return [(n.id, cast(UUID, n.originator_id), n.originator_version, n.topic, n.state)
                for n in recorder.select_notifications(start=after, limit=limit,
                                                       inclusive_of_start=False)]
    rows = select_sqlite_log(recorder, after, limit)
    convert = (uuid_from_text if recorder.datastore.originator_id_type == "uuid"
               else cast(Callable[[str], UUID], recorder.convert_originator_id))
    streams: dict[str, UUID] = {}
    get = streams.get
    out: list[StreamRow] = []
    append = out.append
    for position, stream, version, topic, state in rows:
        converted = get(stream)
        if converted is None:
            converted = streams[stream] = convert(stream)
        append((position, converted, version, topic, state))
    return out


def select_sqlite_log(recorder: Any, after: int,
                      limit: int) -> list[tuple[int, str, int, str, bytes]]:
    """Return up to ``limit`` rows of a SQLite recorder's table after position ``after``, as
    stored: ``(rowid, originator_id text, version, topic, state)``, with one plain ``SELECT``.

    The one reader of the raw log on SQLite: :func:`select_log` makes the stream ids UUIDs,
    ``ledger.audit``'s verify makes them record bytes.

    Args:
        recorder: eventsourcing's ``SQLiteApplicationRecorder`` of the ledger.
        after: a notification id (0: from the start).
        limit: at most this many rows.

    Raises:
        eventsourcing.persistence.PersistenceError: the store failed.
    """
    statement = (f"SELECT rowid, originator_id, originator_version, topic, state FROM "
                 f"{recorder.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?")
    with recorder.datastore.transaction(commit=False) as wrapped:
        cursor = wrapped.sqlite_cursor
        cursor.row_factory = None  # tuples: a sqlite3.Row per event costs more than the row
        cursor.execute(statement, (after, limit))
        return cast(list[tuple[int, str, int, str, bytes]], cursor.fetchall())


def select_stream_notifications(recorder: ApplicationRecorder, streams: Sequence[UUID], *,
                                until: int | None = None) -> list[StreamRow]:
    """Return the stored events of ``streams`` with their log positions, in log order.

    Args:
        recorder: the ledger's application recorder (SQLite or PostgreSQL).
        streams: the stream UUIDs.
        until: only events at positions up to and including this one.

    Returns:
        ``(position, stream, version, topic, state)`` rows ordered by position (within a
        stream that is version order).

    Raises:
        TypeError: the recorder is neither eventsourcing's SQLite nor PostgreSQL recorder.
        eventsourcing.persistence.PersistenceError: the store failed.
    """
    found: list[StreamRow] = []
    for start in range(0, len(streams), CHUNK):
        found += _select(recorder, streams[start:start + CHUNK], until)
    if len(streams) > CHUNK:
        found.sort(key=lambda row: row[0])
    return found


def select_streams(recorder: ApplicationRecorder, streams: Sequence[UUID], *,
                   until: int | None = None) -> list[list[StreamRow]]:
    """Return the stored events of a few streams with their log positions, stream by stream.

    For a caller that handles each stream on its own (a run's stream and its metric stream):
    no merge into log order and no split back.

    Args:
        recorder: the ledger's application recorder (SQLite or PostgreSQL).
        streams: the stream UUIDs (a few: SQLite is asked one query per stream).
        until: only events at positions up to and including this one.

    Returns:
        One list of ``(position, stream, version, topic, state)`` rows per stream, in the
        order of ``streams``, each in version order.

    Raises:
        TypeError: the recorder is neither eventsourcing's SQLite nor PostgreSQL recorder.
        eventsourcing.persistence.PersistenceError: the store failed.
    """
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    if not streams:
        return []
    if isinstance(recorder, SQLiteApplicationRecorder):
        table = recorder.events_table_name
        # One query per stream, in the key's own order (version order is log order within a
        # stream): no sort, and no stream column to read and map back per row.
        statement = (f"SELECT rowid, originator_version, topic, state FROM {table} "
                     "WHERE originator_id = ?")
        if until is not None:
            statement += " AND rowid <= ?"
        statement += " ORDER BY originator_version"
        per_stream: list[list[StreamRow]] = []
        with recorder.datastore.transaction(commit=False) as cursor:
            for stream in streams:
                cursor.execute(statement, (stream.hex,) if until is None
                               else (stream.hex, until))
                per_stream.append([(row[0], stream, row[1], row[2], row[3])
                                   for row in cursor.fetchall()])
        return per_stream
    rows = _select_postgres(recorder, streams, until)
    # Compared by value: the rows' UUIDs are new objects, and UUID.__eq__ is a Python call per
    # row, so compare the ints once each.
    slots: dict[int, list[StreamRow]] = {stream.int: [] for stream in streams}
    for row in rows:
        slots[row[1].int].append(row)
    return [slots[stream.int] for stream in streams]


def _position(row: StreamRow) -> int:
    return row[0]


def _select(recorder: ApplicationRecorder, streams: Sequence[UUID],
            until: int | None) -> list[StreamRow]:
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    if not streams:
        return []
    if isinstance(recorder, SQLiteApplicationRecorder):
        if len(streams) <= FEW:
            per_stream = select_streams(recorder, streams, until=until)
            if len(per_stream) == 1:
                return per_stream[0]
            return list(heapq.merge(*per_stream, key=_position))
        table = recorder.events_table_name
        marks = ", ".join("?" * len(streams))
        statement = (f"SELECT rowid, originator_id, originator_version, topic, state FROM {table} "
                     f"WHERE originator_id IN ({marks})")
        params: list[Any] = [s.hex for s in streams]
        if until is not None:
            statement += " AND rowid <= ?"
            params.append(until)
        statement += " ORDER BY rowid"
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        ids = {stream.hex: stream for stream in streams}  # parsing 1,000 UUIDs costs
        return [(row[0], ids[row[1]], row[2], row[3], row[4]) for row in rows]
    return _select_postgres(recorder, streams, until)


def _select_postgres(recorder: ApplicationRecorder, streams: Sequence[UUID],
                     until: int | None) -> list[StreamRow]:
    from eventsourcing.postgres import PostgresApplicationRecorder
    from psycopg.sql import SQL, Identifier

    if not isinstance(recorder, PostgresApplicationRecorder):
        raise TypeError(f"No positioned stream query for {type(recorder).__name__}")
    statement = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state "
        "FROM {schema}.{table} WHERE originator_id = ANY(%s)").format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name))
    params: list[Any] = [list(streams)]
    if until is not None:
        statement += SQL(" AND notification_id <= %s")
        params.append(until)
    statement += SQL(" ORDER BY notification_id")
    with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
        cursor.execute(statement, params, prepare=True)
        rows = cursor.fetchall()
    return [(row["notification_id"], row["originator_id"], row["originator_version"],
             row["topic"], bytes(row["state"])) for row in rows]
