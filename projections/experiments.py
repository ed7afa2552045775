"""The experiment read model: each declared experiment's tags and when it was archived.

Tables (keyed by the experiment's stream UUID bytes, since its later events carry no name):

- ``rl_experiment_state``: ``(stream_id, name, archived_at)``; ``archived_at`` is ``NULL`` for an
  active experiment.
- ``rl_experiment_tags``: ``(stream_id, key, value)``; ``value`` is ``NULL`` for a tag without a
  value.

Run counts and creation times stay in ``rl_experiments`` (``projections.runs``); the run index
joins the two by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.domain.experiment import ExperimentAggregate
from projections.dialect import DbCursor
from projections.projection import LoggedEvent, Projection, to_micros

EXPERIMENT = ExperimentAggregate
CREATED = EXPERIMENT.Created.TOPIC
TAGS_SET = EXPERIMENT.TagsSet.TOPIC
TAGS_REMOVED = EXPERIMENT.TagsRemoved.TOPIC
ARCHIVED = EXPERIMENT.Archived.TOPIC
REACTIVATED = EXPERIMENT.Reactivated.TOPIC

_DELETED = object()

_INSERT_STATE = ("INSERT INTO {p}rl_experiment_state (stream_id, name, archived_at) "
                 "VALUES (?, ?, NULL) ON CONFLICT (stream_id) DO NOTHING")
_UPDATE_ARCHIVED = "UPDATE {p}rl_experiment_state SET archived_at = ? WHERE stream_id = ?"
_UPSERT_TAG = ("INSERT INTO {p}rl_experiment_tags (stream_id, key, value) VALUES (?, ?, ?) "
               "ON CONFLICT (stream_id, key) DO UPDATE SET value = excluded.value")
_DELETE_TAG = "DELETE FROM {p}rl_experiment_tags WHERE stream_id = ? AND key = ?"


class ExperimentProjection(Projection):
    """Projects experiment tag and archive events into the experiment tables."""

    name = "runledger.experiments.v1"
    topics = frozenset({CREATED, TAGS_SET, TAGS_REMOVED, ARCHIVED, REACTIVATED})
    tables = {
        "rl_experiment_state": (
            "CREATE TABLE IF NOT EXISTS {p}rl_experiment_state ("
            "stream_id {blob} PRIMARY KEY, name {text} NOT NULL, archived_at {bigint})"
        ),
        "rl_experiment_tags": (
            "CREATE TABLE IF NOT EXISTS {p}rl_experiment_tags ("
            "stream_id {blob} NOT NULL, key {text} NOT NULL, value {text}, "
            "PRIMARY KEY (stream_id, key)){without_rowid}"
        ),
    }

    def apply(self, cursor: DbCursor, events: Sequence[LoggedEvent]) -> None:
        """Fold a page of experiment events into the tables, one ``executemany`` per kind.

        Args:
            cursor: a tuple-row cursor in the projector's transaction.
            events: the page's events, in log order.
        """
        sql = self.dialect.sql
        created: list[tuple[bytes, str]] = []
        archived: dict[bytes, Any] = {}  # stream -> archived_at micros or None
        tags: dict[tuple[bytes, str], Any] = {}
        for _position, topic, event in events:
            stream = event.originator_id.bytes
            if topic == CREATED:
                created.append((stream, event.name))
            elif topic == ARCHIVED:
                archived[stream] = to_micros(event.timestamp)
            elif topic == REACTIVATED:
                archived[stream] = None
            elif topic == TAGS_SET:
                for key, value in event.tags.items():
                    tags[stream, key] = value
            elif topic == TAGS_REMOVED:
                for key in event.keys:
                    tags[stream, key] = _DELETED
        if created:
            cursor.executemany(sql(_INSERT_STATE), created)
        if archived:
            cursor.executemany(sql(_UPDATE_ARCHIVED),
                               [(when, stream) for stream, when in archived.items()])
        deleted = [key for key, value in tags.items() if value is _DELETED]
        if deleted:
            cursor.executemany(sql(_DELETE_TAG), deleted)
        upserts = [(stream, key, value) for (stream, key), value in tags.items()
                   if value is not _DELETED]
        if upserts:
            cursor.executemany(sql(_UPSERT_TAG), upserts)
