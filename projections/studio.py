"""Read models the Studio needs beside the run index: saved views, and the numbers of each
metric the runs table filters and sorts by, with the run's experiment and position (so that a
page sorted by a metric walks an index of that experiment's values instead of every run).

- ``rl_saved_views``: one row per saved view (id, experiment, name, query string, creation and
  update times, creator), from the ``SavedView`` events.
- ``rl_metric_last``: ``(run_id, name, value, minimum, maximum, experiment, seq)``: ``value`` is
  the last value of a metric when it is a finite number (``NULL`` when the last value is a
  string, a row, a table, a boolean or NaN; the summaries in ``rl_metrics`` keep it encoded,
  since it may be any value); ``minimum`` and ``maximum`` are those of ``rl_metrics`` (numeric
  scalars only, ``projections.metrics.numeric_range``), here beside the experiment and ``seq``
  their indexes need.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ledger.domain.ids import run_stream_id
from ledger.domain.metrics import MetricsLogged
from ledger.domain.saved_view import SavedViewAggregate
from projections.dialect import DbCursor
from projections.metrics import numeric_range
from projections.projection import LoggedEvent, Projection, to_micros
from projections.runs import CHUNK, actor_user

VIEW_CREATED = SavedViewAggregate.Created.TOPIC
VIEW_UPDATED = SavedViewAggregate.Updated.TOPIC

_UPSERT_VIEW = (
    "INSERT INTO {p}rl_saved_views (view_id, experiment, name, query, created_at, updated_at, "
    "created_by) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (view_id) DO UPDATE SET "
    "name = excluded.name, query = excluded.query, updated_at = excluded.updated_at"
)
_UPDATE_VIEW = "UPDATE {p}rl_saved_views SET name = ?, query = ?, updated_at = ? WHERE view_id = ?"
# A page's minimum and maximum are merged with the stored ones (NULL: no number yet).
_UPSERT_LAST = (
    "INSERT INTO {p}rl_metric_last AS m (run_id, name, value, minimum, maximum, experiment, seq) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, name) DO UPDATE SET "
    "value = excluded.value, "
    "minimum = CASE WHEN excluded.minimum IS NULL THEN m.minimum "
    "WHEN m.minimum IS NULL OR excluded.minimum < m.minimum "
    "THEN excluded.minimum ELSE m.minimum END, "
    "maximum = CASE WHEN excluded.maximum IS NULL THEN m.maximum "
    "WHEN m.maximum IS NULL OR excluded.maximum > m.maximum "
    "THEN excluded.maximum ELSE m.maximum END, "
    "experiment = excluded.experiment, seq = excluded.seq"
)


def numeric_value(value: Any) -> float | None:
    """Return a logged value as a float when it is a finite number (not a boolean).

    Args:
        value: a logged value.

    Returns:
        The float, or ``None``.
    """
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            return None
    return None


class SavedViewProjection(Projection):
    """Projects ``SavedView`` events into ``rl_saved_views``."""

    name = "runledger.saved_views.v1"
    topics = frozenset({VIEW_CREATED, VIEW_UPDATED})
    tables = {
        "rl_saved_views": (
            "CREATE TABLE IF NOT EXISTS {p}rl_saved_views ("
            "view_id {text} PRIMARY KEY, experiment {text} NOT NULL, name {text} NOT NULL, "
            "query {text} NOT NULL, created_at {bigint} NOT NULL, updated_at {bigint} NOT NULL, "
            "created_by {text} NOT NULL)"
        ),
    }
    # With the views, the indexes the runs table's sorts need on rl_runs (top-level runs of an
    # experiment in the order of a column): declared here so that the run index's own module
    # stays as it is; ensure_schema creates them on existing ledgers and after a rebuild. The
    # duration has two: ended runs by their (fixed) duration, running ones by their start (a
    # running run's duration is now - started_at, in the order of -started_at). Their status
    # and archived flag are in the index too: SQLite checks a status filter there, without
    # reading the row, as it walks (status=Running on the ended runs' index reads none).
    indexes = {
        "rl_saved_views_experiment": "CREATE INDEX IF NOT EXISTS rl_saved_views_experiment "
                                     "ON {p}rl_saved_views (experiment, name)",
        "rl_runs_studio_name": "CREATE INDEX IF NOT EXISTS rl_runs_studio_name ON {p}rl_runs "
                               "(experiment, COALESCE(display_name, name), seq) "
                               "WHERE parent_run_id IS NULL",
        "rl_runs_studio_start": "CREATE INDEX IF NOT EXISTS rl_runs_studio_start ON {p}rl_runs "
                                "(experiment, COALESCE(started_at, created_at), seq) "
                                "WHERE parent_run_id IS NULL",
        "rl_runs_studio_status": "CREATE INDEX IF NOT EXISTS rl_runs_studio_status "
                                 "ON {p}rl_runs (experiment, status, seq) "
                                 "WHERE parent_run_id IS NULL",
        "rl_runs_studio_user": "CREATE INDEX IF NOT EXISTS rl_runs_studio_user ON {p}rl_runs "
                               "(experiment, created_by, seq) WHERE parent_run_id IS NULL",
        "rl_runs_studio_ended": "CREATE INDEX IF NOT EXISTS rl_runs_studio_ended ON {p}rl_runs "
                                "(experiment, (ended_at - started_at), seq, status, archived) "
                                "WHERE parent_run_id IS NULL AND ended_at IS NOT NULL "
                                "AND started_at IS NOT NULL",
        "rl_runs_studio_running": "CREATE INDEX IF NOT EXISTS rl_runs_studio_running "
                                  "ON {p}rl_runs (experiment, (-started_at), seq, status, "
                                  "archived) "
                                  "WHERE parent_run_id IS NULL AND ended_at IS NULL "
                                  "AND started_at IS NOT NULL",
    }

    def apply(self, cursor: DbCursor, events: Sequence[LoggedEvent]) -> None:
        """Apply view creations and updates, in log order.

        Args:
            cursor: a tuple-row cursor in the projector's transaction.
            events: the page's ``SavedView`` events.
        """
        sql = self.dialect.sql
        for _position, topic, event in events:
            when = to_micros(event.timestamp)
            view_id = str(event.originator_id)
            if topic == VIEW_CREATED:
                cursor.execute(sql(_UPSERT_VIEW), (
                    view_id, event.experiment_name, event.name, event.query, when, when,
                    actor_user(event.actor)))
            else:
                cursor.execute(sql(_UPDATE_VIEW), (event.name, event.query, when, view_id))


class MetricLastProjection(Projection):
    """Projects ``MetricsLogged`` batches into each metric's numeric last value, minimum and
    maximum.

    Each row also carries its run's experiment and creation position (``seq``, from ``rl_runs``:
    a run's ``Created`` is always in the log before its metrics), so that sorting an
    experiment's runs by a metric walks the index ``(experiment, name, value, seq)`` (or its
    minimum's, or its maximum's). A run the run index does not know (yet) gets ``NULL`` there:
    it sorts with the runs without a value.
    """

    name = "runledger.metric_last.v3"
    topics = frozenset({MetricsLogged.TOPIC})
    tables = {
        "rl_metric_last": (
            "CREATE TABLE IF NOT EXISTS {p}rl_metric_last ("
            "run_id {text} NOT NULL, name {text} NOT NULL, value {double}, minimum {double}, "
            "maximum {double}, experiment {text}, seq {bigint}, PRIMARY KEY (run_id, name))"
            "{without_rowid}"
        ),
    }
    indexes = {
        "rl_metric_last_value": "CREATE INDEX IF NOT EXISTS rl_metric_last_value "
                                "ON {p}rl_metric_last (experiment, name, value, seq)",
        # get_runs(order_by=["metrics.NAME ASC"]) reads values ascending, ties newest first
        # (projections.search): this order, which the index above gives only backwards
        # (descending values). Without it PostgreSQL sorted every match to return 100.
        "rl_metric_last_search": "CREATE INDEX IF NOT EXISTS rl_metric_last_search "
                                 "ON {p}rl_metric_last (experiment, name, value, seq DESC)",
        "rl_metric_last_minimum": "CREATE INDEX IF NOT EXISTS rl_metric_last_minimum "
                                  "ON {p}rl_metric_last (experiment, name, minimum, seq)",
        "rl_metric_last_maximum": "CREATE INDEX IF NOT EXISTS rl_metric_last_maximum "
                                  "ON {p}rl_metric_last (experiment, name, maximum, seq)",
    }

    def apply(self, cursor: DbCursor, events: Sequence[LoggedEvent]) -> None:
        """Record the last value, minimum and maximum of every series of the page's batches.

        Args:
            cursor: a tuple-row cursor in the projector's transaction.
            events: the page's ``MetricsLogged`` events, in log order.
        """
        # (run, name) -> [last, minimum, maximum] of the page
        last: dict[tuple[str, str], list[float | None]] = {}
        for _position, _topic, event in events:
            for name, _kind, _description, values, _steps, _times in event.series:
                if not values:
                    continue
                found = last.get((event.run_id, name))
                if found is None:
                    found = last[event.run_id, name] = [None, None, None]
                found[0] = numeric_value(values[-1])
                bounds = numeric_range(values)
                if bounds is not None:
                    low, high = bounds
                    if found[1] is None or low < found[1]:
                        found[1] = low
                    if found[2] is None or high > found[2]:
                        found[2] = high
        if not last:
            return
        runs: dict[str, tuple[Any, Any]] = {}
        run_ids = sorted({run_id for run_id, _name in last})
        for start in range(0, len(run_ids), CHUNK):
            chunk = run_ids[start:start + CHUNK]
            streams = {run_stream_id(run_id).bytes: run_id for run_id in chunk}
            cursor.execute(self.dialect.sql(
                "SELECT stream_id, experiment, seq FROM {p}rl_runs WHERE stream_id IN ("
                + ", ".join("?" * len(streams)) + ")"), list(streams))
            for stream, experiment, seq in cursor.fetchall():
                run_id = streams.get(bytes(stream))
                if run_id is not None:
                    runs[run_id] = (experiment, seq)
        cursor.executemany(self.dialect.sql(_UPSERT_LAST), [
            (run_id, name, *numbers, *runs.get(run_id, (None, None)))
            for (run_id, name), numbers in last.items()])
