"""Metric logging: the in-process buffer ``log()`` appends to, and the shapes ``get_metrics()``
returns.

``log()`` only validates and appends to a buffer; values travel to the store many to an event
(one ``MetricsLogged`` per run per flush), so logging costs about a microsecond a value.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from ledger.domain.errors import ValidationError
from ledger.domain.metrics import LIST, ROW, SCALAR, TABLE
from ledger.domain.metrics import shape_metrics as shape_metrics  # moved to the domain: pure
from ledger.domain.text import check_text, quote
from ledger.domain.values import check_key

_SCALAR_TYPES = (int, float, str, bool)
MAX_INT = 2**63  # the stores keep 64-bit integers


def coerce_scalar(value: Any, name: str, run_id: str, call: str = "log") -> Any:
    """Return ``value`` as a storable scalar: int, float (NaN and infinities too), bool or str.

    numpy scalars (and 0-d arrays) become the Python number they hold. Strings are checked by
    the ledger's one text validator (``ledger.domain.text``: at most 8,000 characters, no NUL,
    nothing that cannot be encoded).

    Raises:
        ValidationError: a list, range, generator, dict, ``None`` or other non-scalar value, or a
            string that cannot be stored.
    """
    if isinstance(value, _SCALAR_TYPES):
        if isinstance(value, str):
            return check_text(value, f"{call}(): string value of metric {quote(name)}", run_id,
                              kind="metric string")
        if type(value) is int and not -MAX_INT <= value < MAX_INT:
            raise ValidationError(
                f"{call}(): metric {quote(name)} of run {run_id!r}: integer {value} does not "
                "fit in 64 bits (log it as a float)")
        return value
    module = type(value).__module__
    if module == "numpy" and getattr(value, "ndim", None) == 0:
        return coerce_scalar(value.item(), name, run_id, call)
    if isinstance(value, (list, tuple, range, set)) or hasattr(value, "__next__") or (
            module == "numpy"):
        hint = " (use log_list() for a list of values)" if call == "log" else ""
        raise ValidationError(
            f"{call}(): metric {quote(name)} of run {run_id!r} takes one scalar value, not "
            f"{type(value).__name__}{hint}")
    if isinstance(value, Mapping):
        hint = " (use log_row() or log_table() for columns)" if call == "log" else ""
        raise ValidationError(
            f"{call}(): metric {quote(name)} of run {run_id!r} takes one scalar value, "
            f"not a dict{hint}")
    raise ValidationError(
        f"{call}(): metric {quote(name)} of run {run_id!r} must be a number, bool or string, "
        f"not {type(value).__name__}: {quote(value)}")


def check_step(step: Any, name: str, run_id: str) -> int | None:
    """Return ``step`` if it is ``None`` or a non-negative integer.

    Raises:
        ValidationError: any other value.
    """
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, int):
        if type(step).__module__ == "numpy" and getattr(step, "ndim", None) == 0:
            step = step.item()  # type: ignore[union-attr]
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValidationError(
                f"step of metric {quote(name)} of run {run_id!r} must be an int, not "
                f"{type(step).__name__}: {quote(step)}")
    if step < 0 or step >= MAX_INT:
        raise ValidationError(
            f"step of metric {quote(name)} of run {run_id!r} must be in 0..2**63-1: {step}")
    return step


class Series:
    """The buffered values of one metric (one name and kind) since the last flush."""

    __slots__ = ("description", "kind", "name", "steps", "times", "values")

    def __init__(self, name: str, kind: str, description: str) -> None:
        self.name = name
        self.kind = kind
        self.description = description
        self.values: list[Any] = []
        self.steps: list[int | None] = []
        self.times: list[float] = []

    def as_stored(self) -> list[Any]:
        """Return the series as ``MetricsLogged.series`` stores it."""
        return [self.name, self.kind, self.description, self.values, self.steps, self.times]


class MetricBuffer:
    """The metrics a run has logged and not yet flushed. Not thread-safe: the run locks.

    Args:
        run_id: for error messages.
    """

    __slots__ = ("_known", "count", "run_id", "scalars", "series")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.series: dict[tuple[str, str], Series] = {}
        # The scalar series by name alone: the key log()'s hot path looks up.
        self.scalars: dict[str, Series] = {}
        self.count = 0
        self._known: set[tuple[str, str]] = set()

    def _series(self, name: str, kind: str, description: str | None) -> Series:
        if type(name) is not str:  # before the dict lookup: a list is not hashable
            check_key(name, "metric", self.run_id)
        key = (name, kind)
        try:
            series = self.series.get(key)
        except TypeError:  # an unhashable name: refuse it as any other bad name
            check_key(name, "metric", self.run_id)
            raise
        if series is None:
            if key not in self._known:
                check_key(name, "metric", self.run_id)
                self._known.add(key)
            if description:
                description = check_text(description, f"description of metric {quote(name)}",
                                         self.run_id, kind="description")
            series = self.series[key] = Series(name, kind, description or "")
        return series

    def scalar_series(self, name: str, description: str) -> Series:
        """Return the buffered series ``log(name, ...)`` appends to, creating it if needed.

        Raises:
            ValidationError: the name or description is invalid.
        """
        try:
            series = self.scalars.get(name)
        except TypeError:  # an unhashable name
            check_key(name, "metric", self.run_id)
            raise
        if series is None:
            series = self.scalars[name] = self._series(name, SCALAR, description)
        return series

    def add_list(self, name: str, values: Iterable[Any], description: str) -> None:
        """Buffer the values of ``log_list()``.

        Raises:
            ValidationError: not an iterable of scalars (nothing is buffered then).
        """
        check_key(name, "metric", self.run_id)
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
            raise ValidationError(
                f"log_list(): metric {quote(name)} of run {self.run_id!r} takes a list of values, "
                f"not {type(values).__name__}")
        checked = [coerce_scalar(v, name, self.run_id, "log_list") for v in values]
        series = self._series(name, LIST, description)
        now = time.time()
        series.values.extend(checked)
        series.steps.extend([None] * len(checked))
        series.times.extend([now] * len(checked))
        self.count += len(checked)

    def add_row(self, name: str, row: Mapping[str, Any], description: str | None) -> None:
        """Buffer one row of ``log_row()``.

        Raises:
            ValidationError: a column name or value is invalid (nothing is buffered then).
        """
        check_key(name, "metric", self.run_id)
        if not row:
            raise ValidationError(
                f"log_row(): metric {quote(name)} of run {self.run_id!r} needs at least one column")
        checked = {check_key(k, "column", self.run_id):
                   coerce_scalar(v, f"{name}.{k}", self.run_id, "log_row") for k, v in row.items()}
        series = self._series(name, ROW, description)
        series.values.append(checked)
        series.steps.append(None)
        series.times.append(time.time())
        self.count += 1

    def add_table(self, name: str, table: Any, description: str) -> None:
        """Buffer the columns of ``log_table()``.

        Raises:
            ValidationError: not a dict of equally long lists of scalars.
        """
        check_key(name, "metric", self.run_id)
        if not isinstance(table, Mapping) or not table:
            raise ValidationError(
                f"log_table(): metric {quote(name)} of run {self.run_id!r} takes a non-empty dict "
                f"of columns, not {type(table).__name__}")
        columns: dict[str, list[Any]] = {}
        for key, column in table.items():
            check_key(key, "column", self.run_id)
            if isinstance(column, (str, bytes, Mapping)) or not isinstance(column, Iterable):
                raise ValidationError(
                    f"log_table(): column {quote(key)} of metric {quote(name)} of run "
                    f"{self.run_id!r} must be a list of values")
            columns[key] = [coerce_scalar(v, f"{name}.{key}", self.run_id, "log_table")
                            for v in column]
        lengths = {len(c) for c in columns.values()}
        if len(lengths) > 1:
            raise ValidationError(
                f"log_table(): the columns of metric {quote(name)} of run {self.run_id!r} have "
                f"different lengths: { {k: len(c) for k, c in columns.items()} }")
        series = self._series(name, TABLE, description)
        series.values.append(columns)
        series.steps.append(None)
        series.times.append(time.time())
        self.count += max(lengths.pop(), 1)

    def take(self) -> list[list[Any]]:
        """Return the buffered series in stored form and empty the buffer."""
        stored = [s.as_stored() for s in self.series.values() if s.values]
        self.series = {}
        self.scalars = {}
        self.count = 0
        return stored


def metric_history(batches: Iterable[list[list[Any]]], name: str) -> list[dict[str, Any]]:
    """Every value of one metric in log order, with its step and time.

    Args:
        batches: the ``series`` of each ``MetricsLogged`` event, in log order.
        name: the metric.

    Returns:
        ``[{"value", "step", "time"}]``: ``step`` is ``None`` when none was given, ``time`` an
        ISO-8601 UTC string ending in ``Z``; a ``log_row`` value is ``{col: value}``, a
        ``log_table`` value ``{col: [values]}``.
    """
    history: list[dict[str, Any]] = []
    for series_list in batches:
        for metric_name, _kind, _description, values, steps, times in series_list:
            if metric_name != name:
                continue
            for value, step, moment in zip(values, steps, times, strict=True):
                when = datetime.fromtimestamp(moment, timezone.utc).isoformat()
                history.append({"value": value, "step": step,
                                "time": when.replace("+00:00", "Z")})
    return history
