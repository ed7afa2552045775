"""Metric summaries: per run and metric name, how many values, the last, min, max and last step.

Table ``rl_metrics`` keyed by ``(run_id, name)``. ``last`` holds the last value logged, encoded with
the ledger's transcoder (it may be a number, a string, or a dict for rows and tables); ``minimum``
and ``maximum`` consider numeric scalar values only (not booleans, not NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.domain.metrics import MetricsLogged
from projections.dialect import DbCursor
from projections.projection import LoggedEvent, Projection
from projections.runs import CHUNK

METRICS_LOGGED = MetricsLogged.TOPIC

_SELECT = ("SELECT run_id, name, kind, count, last, minimum, maximum, last_step "
           "FROM {p}rl_metrics WHERE run_id IN ({marks})")
_UPSERT = (
    "INSERT INTO {p}rl_metrics (run_id, name, kind, count, last, minimum, maximum, last_step) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, name) DO UPDATE SET "
    "kind = excluded.kind, count = excluded.count, last = excluded.last, "
    "minimum = excluded.minimum, maximum = excluded.maximum, last_step = excluded.last_step"
)

# Indexes into a summary held in memory: [kind, count, last, minimum, maximum, last_step].
KIND, COUNT, LAST, MINIMUM, MAXIMUM, LAST_STEP = range(6)


def numeric_range(values: Sequence[Any]) -> tuple[float, float] | None:
    """Return the minimum and maximum of the numeric scalars among ``values``.

    Booleans, NaN, strings, dicts and integers too large for a float are left out.

    Args:
        values: logged values.

    Returns:
        ``(minimum, maximum)``, or ``None`` when no value is a number.
    """
    numbers: list[float] = []
    for value in values:
        kind = type(value)
        if kind is float:
            if value == value:  # not NaN
                numbers.append(value)
        elif kind is int:
            try:
                numbers.append(float(value))
            except OverflowError:
                continue
    if not numbers:
        return None
    return min(numbers), max(numbers)


def last_step(steps: Sequence[Any]) -> int | None:
    """Return the last step that is not ``None``, if any.

    Args:
        steps: a step or ``None`` per value.

    Returns:
        The step, or ``None``.
    """
    for step in reversed(steps):
        if step is not None:
            return int(step)
    return None


class MetricProjection(Projection):
    """Projects ``MetricsLogged`` batches into one summary row per run and metric name."""

    name = "runledger.metrics.v1"
    topics = frozenset({METRICS_LOGGED})
    tables = {
        "rl_metrics": (
            "CREATE TABLE IF NOT EXISTS {p}rl_metrics ("
            "run_id {text} NOT NULL, name {text} NOT NULL, kind {text} NOT NULL, "
            "count {bigint} NOT NULL, last {blob}, minimum {double}, maximum {double}, "
            "last_step {bigint}, PRIMARY KEY (run_id, name)){without_rowid}"
        ),
    }

    def apply(self, cursor: DbCursor, events: Sequence[LoggedEvent]) -> None:
        """Fold a page of metric batches into the summaries (one read and one write query per
        500 runs).

        Args:
            cursor: a tuple-row cursor in the projector's transaction.
            events: the page's ``MetricsLogged`` events, in log order.
        """
        transcoder = self.app.mapper.transcoder
        summaries: dict[tuple[str, str], list[Any]] = {}
        run_ids = sorted({event.run_id for _p, _t, event in events})
        for start in range(0, len(run_ids), CHUNK):
            chunk = run_ids[start:start + CHUNK]
            cursor.execute(self.dialect.sql(_SELECT.replace(
                "{marks}", ", ".join("?" * len(chunk)))), chunk)
            for run_id, name, kind, count, last, minimum, maximum, step in cursor.fetchall():
                summaries[run_id, name] = [kind, count, _Encoded(last), minimum, maximum, step]
        changed: set[tuple[str, str]] = set()
        for _position, _topic, event in events:
            for name, kind, _description, values, steps, _times in event.series:
                key = (event.run_id, name)
                summary = summaries.get(key)
                if summary is None:
                    summary = summaries[key] = [kind, 0, None, None, None, None]
                summary[KIND] = kind
                if values:
                    summary[COUNT] += len(values)
                    summary[LAST] = values[-1]
                    bounds = numeric_range(values)
                    if bounds is not None:
                        low, high = bounds
                        if summary[MINIMUM] is None or low < summary[MINIMUM]:
                            summary[MINIMUM] = low
                        if summary[MAXIMUM] is None or high > summary[MAXIMUM]:
                            summary[MAXIMUM] = high
                step = last_step(steps) if steps else None
                if step is not None:
                    summary[LAST_STEP] = step
                changed.add(key)
        rows = []
        for key in changed:
            kind, count, last, minimum, maximum, step = summaries[key]
            encoded = last.data if isinstance(last, _Encoded) else transcoder.encode(last)
            rows.append((key[0], key[1], kind, count, encoded, minimum, maximum, step))
        if rows:
            cursor.executemany(self.dialect.sql(_UPSERT), rows)


class _Encoded:
    """A stored ``last`` value not decoded (it is written back as it is unless replaced)."""

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = bytes(data) if data is not None else None


def decode_last(app_transcoder: Any, data: Any) -> Any:
    """Decode a stored ``last`` value.

    Args:
        app_transcoder: the ledger's transcoder (``app.mapper.transcoder``).
        data: the stored bytes (or ``None``).

    Returns:
        The value.
    """
    if data is None:
        return None
    return app_transcoder.decode(bytes(data))


__all__ = ["METRICS_LOGGED", "MetricProjection", "decode_last", "last_step", "numeric_range"]
