"""Metric events. A run's metrics live in a stream of their own, many values to an event.

Why a stream of its own: a run's own stream stays short (so loading a run stays cheap however much
it logged), and appending metrics never conflicts with tags or status changes made by other
processes. Each event holds a batch of series, one per metric name and kind, in log order.
"""

from __future__ import annotations

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
