"""The run index: runs, their properties and tags, and experiments with their run counts.

One projection, because a run's number comes from its experiment's count and every tag and
property row carries its run's creation position and experiment (so that a tag query is one index
range in creation order). Tables:

- ``rl_runs``: one row per run, keyed by ``seq``, the notification id of the run's ``Created``
  event (so ``ORDER BY seq DESC`` is newest first); ``archived`` is 1 while the run is archived.
  ``stream_id`` (the UUID bytes of the run's event stream) finds a run from its later events and
  from its id.
- ``rl_tags``, ``rl_properties``: ``(seq, key, value, experiment)``; ``value`` is ``NULL`` for a
  tag without a value. They are what filters use.
- ``rl_runs.packed``: the whole run as a query returns it (``RunRow``'s fields in order, times as
  microseconds, with its properties and tags), msgpack, written with the row's other columns in
  the same transaction: a query reads two values per run instead of twenty and two more queries
  per page for the pairs, and decodes a run's fields only when they are read.
- ``rl_experiments``: name, creation, run count (top-level runs and children).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgpack

from ledger.domain.experiment import ExperimentAggregate
from ledger.domain.run import RunAggregate
from ledger.domain.status import RunStatus
from projections.dialect import DbCursor
from projections.projection import LoggedEvent, Projection, to_micros

RUN = RunAggregate
CREATED = RUN.Created.TOPIC
STATUS_CHANGED = RUN.StatusChanged.TOPIC
COMPLETED = RUN.Completed.TOPIC
FAILED = RUN.Failed.TOPIC
CANCEL_REQUESTED = RUN.CancelRequested.TOPIC
CANCELED = RUN.Canceled.TOPIC
PROPERTIES_ADDED = RUN.PropertiesAdded.TOPIC
TAGS_SET = RUN.TagsSet.TOPIC
TAGS_REMOVED = RUN.TagsRemoved.TOPIC
DISPLAY_NAME_CHANGED = RUN.DisplayNameChanged.TOPIC
DESCRIPTION_CHANGED = RUN.DescriptionChanged.TOPIC
PROPERTY_CORRECTED = RUN.PropertyCorrected.TOPIC
ARCHIVED = RUN.Archived.TOPIC
RESTORED = RUN.Restored.TOPIC
IMPORTED = RUN.Imported.TOPIC
EXPERIMENT_CREATED = ExperimentAggregate.Created.TOPIC

# The columns of rl_runs, in the order rows are held in memory while a page is folded.
RUN_COLUMNS = (
    "seq", "stream_id", "run_id", "experiment", "parent_run_id", "root_run_id", "status",
    "run_type", "target", "name", "display_name", "description", "number", "created_at",
    "started_at", "ended_at", "created_by", "error_code", "error_message", "archived", "packed",
)
(SEQ, STREAM, RUN_ID, EXPERIMENT, PARENT, ROOT, STATUS, TYPE, TARGET, NAME, DISPLAY_NAME,
 DESCRIPTION, NUMBER, CREATED_AT, STARTED_AT, ENDED_AT, CREATED_BY, ERROR_CODE,
 ERROR_MESSAGE, ARCHIVED_FLAG, PACKED) = range(len(RUN_COLUMNS))
# The columns an event after Created may change.
MUTABLE = (STATUS, DISPLAY_NAME, DESCRIPTION, STARTED_AT, ENDED_AT, ERROR_CODE, ERROR_MESSAGE,
           ARCHIVED_FLAG, CREATED_AT, CREATED_BY,  # these two: by an import
           PACKED)

# How many parameters go into one IN (...) list.
CHUNK = 500

_DELETED = object()

_pack = msgpack.Packer(use_bin_type=True).pack


def pack_run(row: Sequence[Any], properties: dict[str, str | None],
             tags: dict[str, str | None]) -> bytes:
    """Return the ``rl_runs.packed`` blob of a run's row (``RUN_COLUMNS`` order).

    Args:
        row: the run's columns.
        properties: its properties.
        tags: its tags (``None`` for a tag without a value).

    Returns:
        msgpack of ``RunRow``'s fields in order (times as microseconds since the epoch).
    """
    packed: bytes = _pack([
        row[RUN_ID], row[EXPERIMENT], row[PARENT], row[ROOT], row[STATUS], row[TYPE],
        row[TARGET], row[NAME], row[DISPLAY_NAME], row[DESCRIPTION], row[NUMBER],
        row[CREATED_AT], row[STARTED_AT], row[ENDED_AT], row[CREATED_BY], row[ERROR_CODE],
        row[ERROR_MESSAGE], properties, tags, row[ARCHIVED_FLAG]])
    return packed


def unpack_run(blob: bytes | memoryview) -> list[Any]:
    """Return the fields of an ``rl_runs.packed`` blob (see :func:`pack_run`).

    Args:
        blob: the column's value.

    Returns:
        ``RunRow``'s field values in order, times as microseconds.
    """
    fields: list[Any] = msgpack.unpackb(blob, raw=False)
    return fields


# Where the properties and tags are in a packed run.
PACKED_PROPERTIES, PACKED_TAGS = 17, 18

_COLS = ", ".join(RUN_COLUMNS)
_SELECT_BY_STREAM = "SELECT " + _COLS + " FROM {p}rl_runs WHERE stream_id IN ({marks})"
_INSERT_RUN = ("INSERT INTO {p}rl_runs (" + _COLS + ") VALUES ("
               + ", ".join("?" * len(RUN_COLUMNS)) + ")")
_UPDATE_RUN = ("UPDATE {p}rl_runs SET "
               + ", ".join(f"{RUN_COLUMNS[i]} = ?" for i in MUTABLE) + " WHERE seq = ?")
_UPSERT_PAIR = ("INSERT INTO {p}rl_{kind} (seq, key, value, experiment) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (seq, key) DO UPDATE SET value = excluded.value")
_DELETE_PAIR = "DELETE FROM {p}rl_{kind} WHERE seq = ? AND key = ?"
_SELECT_EXPERIMENT = ("SELECT created_at, created_by, run_count, position "
                      "FROM {p}rl_experiments WHERE name = ?")
_UPSERT_EXPERIMENT = (
    "INSERT INTO {p}rl_experiments (name, created_at, created_by, run_count, position) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET created_at = excluded.created_at, "
    "created_by = excluded.created_by, run_count = excluded.run_count, "
    "position = excluded.position"
)


def actor_user(actor: Any) -> str:
    """Return the user name of an event's actor dict (``""`` when absent).

    Args:
        actor: the ``actor`` field of an event.

    Returns:
        The user name.
    """
    if isinstance(actor, dict):
        return str(actor.get("user", ""))
    return ""


# The status texts, looked up once (an enum member's ``.value`` is a Python-level property).
NOT_STARTED = RunStatus.NOT_STARTED.value
RUNNING = RunStatus.RUNNING.value
STATUS_COMPLETED = RunStatus.COMPLETED.value
STATUS_FAILED = RunStatus.FAILED.value
STATUS_CANCEL_REQUESTED = RunStatus.CANCEL_REQUESTED.value
STATUS_CANCELED = RunStatus.CANCELED.value


def _apply_run_event(row: list[Any], topic: str, event: Any,
                     pairs: dict[str, dict[tuple[int, str], Any]]) -> bool:
    """Apply an event after ``Created`` to a run's row (and its tag and property changes to
    ``pairs``).

    Returns:
        Whether a column of the run's own row changed (its packed pairs included).
    """
    # row[PACKED] is held as [properties, tags] while a page is folded (packed when written).
    if topic == TAGS_SET:
        tags = pairs["tags"]
        packed = row[PACKED][1]
        for key, value in event.tags.items():
            tags[row[SEQ], key] = (value, row[EXPERIMENT])
            packed[key] = value
    elif topic == PROPERTIES_ADDED:
        properties = pairs["properties"]
        packed = row[PACKED][0]
        for key, value in event.properties.items():
            properties[row[SEQ], key] = (value, row[EXPERIMENT])
            packed[key] = value
    elif topic == PROPERTY_CORRECTED:
        pairs["properties"][row[SEQ], event.key] = (event.new, row[EXPERIMENT])
        row[PACKED][0][event.key] = event.new
    elif topic == TAGS_REMOVED:
        tags = pairs["tags"]
        packed = row[PACKED][1]
        for key in event.keys:
            tags[row[SEQ], key] = _DELETED
            packed.pop(key, None)
    elif topic == STATUS_CHANGED:
        row[STATUS] = event.status
        if event.status == RUNNING and row[STARTED_AT] is None:
            row[STARTED_AT] = to_micros(event.timestamp)
    elif topic == COMPLETED:
        row[STATUS] = STATUS_COMPLETED
        row[ENDED_AT] = to_micros(event.timestamp)
    elif topic == FAILED:
        row[STATUS] = STATUS_FAILED
        row[ENDED_AT] = to_micros(event.timestamp)
        row[ERROR_CODE] = event.error_code
        row[ERROR_MESSAGE] = event.message
    elif topic == CANCEL_REQUESTED:
        row[STATUS] = STATUS_CANCEL_REQUESTED
    elif topic == CANCELED:
        row[STATUS] = STATUS_CANCELED
        row[ENDED_AT] = to_micros(event.timestamp)
    elif topic == DISPLAY_NAME_CHANGED:
        row[DISPLAY_NAME] = event.display_name
    elif topic == DESCRIPTION_CHANGED:
        row[DESCRIPTION] = event.description
    elif topic == ARCHIVED:
        row[ARCHIVED_FLAG] = 1
    elif topic == RESTORED:
        row[ARCHIVED_FLAG] = 0
    elif topic == IMPORTED:  # the source's business facts replace the recorded ones
        if event.created_at is not None:
            row[CREATED_AT] = to_micros(event.created_at)
        if event.started_at is not None:
            row[STARTED_AT] = to_micros(event.started_at)
        if event.ended_at is not None:
            row[ENDED_AT] = to_micros(event.ended_at)
        if event.submitted_by:
            row[CREATED_BY] = event.submitted_by
    else:
        return False
    return True


def _pair_table(kind: str) -> str:
    return (
        "CREATE TABLE IF NOT EXISTS {p}rl_" + kind + " ("
        "seq {bigint} NOT NULL, key {text} NOT NULL, value {text}, experiment {text} NOT NULL, "
        "PRIMARY KEY (seq, key)){without_rowid}"
    )


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class RunProjection(Projection):
    """Projects run, property, tag and experiment events into the run index tables."""

    # v2: rl_runs.archived, and property corrections; v3: rl_runs.packed (an index of an earlier
    # version back-fills into the new tables).
    name = "runledger.runs.v3"
    topics = frozenset({
        CREATED, STATUS_CHANGED, COMPLETED, FAILED, CANCEL_REQUESTED, CANCELED,
        PROPERTIES_ADDED, TAGS_SET, TAGS_REMOVED, DISPLAY_NAME_CHANGED, DESCRIPTION_CHANGED,
        PROPERTY_CORRECTED, ARCHIVED, RESTORED, IMPORTED, EXPERIMENT_CREATED,
    })
    tables = {
        "rl_runs": (
            "CREATE TABLE IF NOT EXISTS {p}rl_runs ("
            "seq {int_pk}, stream_id {blob} NOT NULL UNIQUE, run_id {text} NOT NULL, "
            "experiment {text} NOT NULL, parent_run_id {text}, root_run_id {text} NOT NULL, "
            "status {text} NOT NULL, run_type {text} NOT NULL, target {text} NOT NULL, "
            "name {text} NOT NULL, display_name {text}, description {text}, "
            "number {bigint} NOT NULL, created_at {bigint} NOT NULL, started_at {bigint}, "
            "ended_at {bigint}, created_by {text} NOT NULL, error_code {text}, "
            "error_message {text}, archived {bigint} NOT NULL, packed {blob} NOT NULL)"
        ),
        "rl_tags": _pair_table("tags"),
        "rl_properties": _pair_table("properties"),
        "rl_experiments": (
            "CREATE TABLE IF NOT EXISTS {p}rl_experiments ("
            "name {text} PRIMARY KEY, created_at {bigint} NOT NULL, created_by {text} NOT NULL, "
            "run_count {bigint} NOT NULL, position {bigint} NOT NULL)"
        ),
    }
    indexes = {
        "rl_runs_experiment": "CREATE INDEX IF NOT EXISTS rl_runs_experiment "
                              "ON {p}rl_runs (experiment, seq)",
        "rl_runs_top": "CREATE INDEX IF NOT EXISTS rl_runs_top ON {p}rl_runs (experiment, seq) "
                       "WHERE parent_run_id IS NULL",
        "rl_runs_parent": "CREATE INDEX IF NOT EXISTS rl_runs_parent "
                          "ON {p}rl_runs (parent_run_id, seq) WHERE parent_run_id IS NOT NULL",
        "rl_runs_status": "CREATE INDEX IF NOT EXISTS rl_runs_status "
                          "ON {p}rl_runs (experiment, status, seq)",
        "rl_runs_type": "CREATE INDEX IF NOT EXISTS rl_runs_type "
                        "ON {p}rl_runs (experiment, run_type, seq)",
        "rl_tags_value": "CREATE INDEX IF NOT EXISTS rl_tags_value "
                         "ON {p}rl_tags (experiment, key, value, seq)",
        "rl_tags_key": "CREATE INDEX IF NOT EXISTS rl_tags_key "
                       "ON {p}rl_tags (experiment, key, seq)",
        "rl_properties_value": "CREATE INDEX IF NOT EXISTS rl_properties_value "
                               "ON {p}rl_properties (experiment, key, value, seq)",
        "rl_properties_key": "CREATE INDEX IF NOT EXISTS rl_properties_key "
                             "ON {p}rl_properties (experiment, key, seq)",
    }

    def apply(self, cursor: DbCursor, events: Sequence[LoggedEvent]) -> None:
        """Fold a page of run and experiment events into the tables.

        The page is folded in memory in one pass; the rows of runs it changes but did not create
        are read afterwards in one query per 500 runs and their events applied then (events of
        different runs commute); everything is written back with one ``executemany`` per table.

        Args:
            cursor: a tuple-row cursor in the projector's transaction.
            events: the page's events, in log order.
        """
        sql = self.dialect.sql
        runs: dict[int, list[Any]] = {}  # by the run's stream UUID as an int
        created: list[list[Any]] = []
        updated: dict[int, list[Any]] = {}
        pairs: dict[str, dict[tuple[int, str], Any]] = {"tags": {}, "properties": {}}
        experiments: dict[str, list[Any]] = {}
        deferred: list[LoggedEvent] = []

        for logged in events:
            position, topic, event = logged
            if topic == CREATED:
                name = event.experiment_name
                timestamp = to_micros(event.timestamp)
                user = actor_user(event.actor)
                experiment = experiments.get(name) or self._experiment(cursor, name,
                                                                       experiments)
                if experiment is None:  # runs of an experiment never declared: count them too
                    experiment = experiments[name] = [timestamp, user, 0, position]
                experiment[2] += 1
                stream = event.originator_id
                row = [
                    position, stream.bytes, event.run_id, name, event.parent_run_id,
                    event.root_run_id, NOT_STARTED, event.run_type, event.target, event.name,
                    event.display_name, event.description, experiment[2], timestamp, None, None,
                    user, None, None, 0, [{}, {}],
                ]
                runs[stream.int] = row
                created.append(row)
            elif topic == EXPERIMENT_CREATED:
                name = event.name
                timestamp = to_micros(event.timestamp)
                user = actor_user(event.actor)
                declared = experiments.get(name) or self._experiment(cursor, name, experiments)
                if declared is None:
                    experiments[name] = [timestamp, user, 0, position]
                else:
                    declared[0], declared[1], declared[3] = timestamp, user, position
            else:
                found = runs.get(event.originator_id.int)
                if found is None:
                    deferred.append(logged)
                else:
                    _apply_run_event(found, topic, event, pairs)

        if deferred:
            loaded = self._load_runs(cursor, deferred)
            for _position, topic, event in deferred:
                key = event.originator_id.int
                found = loaded.get(key)
                if found is None:  # an event of a run the index never saw created: ignore it
                    continue
                if _apply_run_event(found, topic, event, pairs):
                    updated[key] = found

        for row in created:
            row[PACKED] = pack_run(row, *row[PACKED])
        for row in updated.values():
            row[PACKED] = pack_run(row, *row[PACKED])
        if created:
            cursor.executemany(sql(_INSERT_RUN), created)
        if updated:
            cursor.executemany(sql(_UPDATE_RUN), [
                [row[i] for i in MUTABLE] + [row[SEQ]] for row in updated.values()])
        for kind, changed in pairs.items():
            self._write_pairs(cursor, kind, changed)
        if experiments:
            cursor.executemany(sql(_UPSERT_EXPERIMENT),
                               [[name, *values] for name, values in experiments.items()])

    def _experiment(self, cursor: DbCursor, name: str,
                    experiments: dict[str, list[Any]]) -> list[Any] | None:
        """Read an experiment's row into ``experiments`` (``None`` if it has none yet)."""
        cursor.execute(self.dialect.sql(_SELECT_EXPERIMENT), (name,))
        found = cursor.fetchone()
        if found is None:
            return None
        experiment = experiments[name] = list(found)
        return experiment

    def _load_runs(self, cursor: DbCursor, events: Sequence[LoggedEvent]) -> dict[int, list[Any]]:
        """Read the rows of the runs of ``events``, by stream UUID as an int."""
        wanted = list({event.originator_id.bytes for _p, _t, event in events})
        runs: dict[int, list[Any]] = {}
        for chunk in _chunks(wanted):
            cursor.execute(self.dialect.sql(_SELECT_BY_STREAM.replace(
                "{marks}", ", ".join("?" * len(chunk)))), chunk)
            for row in cursor.fetchall():
                loaded = list(row)
                packed = unpack_run(loaded[PACKED])
                loaded[PACKED] = [packed[PACKED_PROPERTIES], packed[PACKED_TAGS]]
                runs[int.from_bytes(bytes(row[STREAM]), "big")] = loaded
        return runs

    def _write_pairs(self, cursor: DbCursor, kind: str,
                     pairs: dict[tuple[int, str], Any]) -> None:
        """Write the final state of the tag or property pairs the page changed."""
        if not pairs:
            return
        deleted = [key for key, value in pairs.items() if value is _DELETED]
        if deleted:
            cursor.executemany(self.dialect.sql(_DELETE_PAIR.replace("{kind}", kind)), deleted)
        upserts = [(seq, key, value[0], value[1]) for (seq, key), value in pairs.items()
                   if value is not _DELETED]
        if upserts:
            cursor.executemany(self.dialect.sql(_UPSERT_PAIR.replace("{kind}", kind)), upserts)
