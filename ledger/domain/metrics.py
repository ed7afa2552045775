"""Metric events. A run's metrics live in a stream of their own, many values to an event.

Why a stream of its own: a run's own stream stays short (so loading a run stays cheap however much
it logged), and appending metrics never conflicts with tags or status changes made by other
processes. Each event holds a batch of series, one per metric name and kind, in log order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eventsourcing.domain import DomainEvent
from eventsourcing.utils import register_topic

# Kinds of series, with the seed SDK's call that logs them.
SCALAR = "scalar"  # log()
LIST = "list"  # log_list()
ROW = "row"  # log_row()
TABLE = "table"  # log_table()
KINDS = (SCALAR, LIST, ROW, TABLE)


class MetricsLogged(DomainEvent):
    """A batch of metric values of one run.

    ``series`` is a list of ``[name, kind, description, values, steps, times]``: ``values`` holds
    scalars (``scalar``, ``list``) or dicts of columns (``row``, ``table``); ``steps`` a step or
    ``None`` per value; ``times`` a Unix time per value.
    """

    TOPIC = "runledger:MetricsLogged"
    run_id: str
    series: list[list[Any]]
    actor: dict[str, Any]


register_topic(MetricsLogged.TOPIC, MetricsLogged)


def shape_metrics(batches: Iterable[list[list[Any]]], name: str | None = None) -> dict[str, Any]:
    """Fold stored metric series into the seed SDK's ``get_metrics()`` shapes.

    A scalar logged once is the value, several times a list in log order; ``log_list`` gives a
    list; ``log_row`` once gives ``{col: value}``, several times ``{col: [values]}``;
    ``log_table`` gives ``{col: [values]}`` (several tables are concatenated).

    Args:
        batches: the ``series`` of each ``MetricsLogged`` event, in log order.
        name: only this metric.
    """
    scalars: dict[str, list[Any]] = {}
    kinds: dict[str, str] = {}
    rows: dict[str, list[Mapping[str, Any]]] = {}
    for series_list in batches:
        for metric_name, kind, _description, values, _steps, _times in series_list:
            if name is not None and metric_name != name:
                continue
            kinds.setdefault(metric_name, kind)
            if kind in (SCALAR, LIST):
                scalars.setdefault(metric_name, []).extend(values)
            else:
                rows.setdefault(metric_name, []).extend(values)
    result: dict[str, Any] = {}
    for metric_name, kind in kinds.items():
        if kind == SCALAR and metric_name in scalars:
            values = scalars[metric_name]
            result[metric_name] = values[0] if len(values) == 1 else values
        elif kind == LIST:
            result[metric_name] = scalars.get(metric_name, [])
        else:
            entries = rows.get(metric_name, [])
            if kind == ROW and len(entries) == 1:
                result[metric_name] = dict(entries[0])
                continue
            columns: dict[str, list[Any]] = {}
            for entry in entries:
                for column, value in entry.items():
                    if kind == TABLE:
                        columns.setdefault(column, []).extend(value)
                    else:
                        columns.setdefault(column, []).append(value)
            result[metric_name] = columns
    return result

