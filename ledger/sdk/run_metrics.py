"""Logging metrics on a run: ``log``, ``log_list``, ``log_row``, ``log_table``, ``flush`` and
``get_metrics``.

Values are buffered in the run's ``MetricBuffer`` and appended as one ``MetricsLogged`` event at a
flush point, or as soon as ``LedgerSettings.metric_batch`` values are buffered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ledger.domain.metrics import SCALAR
from ledger.domain.status import RunStatus
from ledger.domain.values import check_metric_name
from ledger.sdk.metrics import (
    MAX_INT,
    MetricBuffer,
    check_step,
    coerce_scalar,
    metric_history,
    shape_metrics,
)

if TYPE_CHECKING:
    from ledger.config import LedgerSettings
    from ledger.domain.run import RunAggregate
    from ledger.domain.values import Actor
    from ledger.sdk.session import LedgerSession

_RUNNING = RunStatus.RUNNING
_now = time.time


class MetricsMixin:
    """The metric methods of ``Run``."""

    if TYPE_CHECKING:
        _run_id: str
        _session: LedgerSession
        _agg: RunAggregate | None
        _lock: threading.RLock
        _metrics: MetricBuffer
        _published: bool
        _settings: LedgerSettings

        def _aggregate(self) -> RunAggregate: ...

        def _actor(self) -> Actor: ...

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log one value of a metric. Buffered: durable after ``flush()`` or the run's end.

        Args:
            name: the metric's name.
            value: an int, float (NaN and infinities too), bool, string or numpy scalar.
            description: what the metric is.
            step: the value's step (a non-negative int), if any.

        Raises:
            ValidationError: a list or other non-scalar value, a bad name or step, or a string
                that cannot be stored.
            RunFinishedError: the run has ended.
        """
        if type(value) is not float and (type(value) is not int
                                         or not -MAX_INT <= value < MAX_INT):
            value = coerce_scalar(value, name, self._run_id)
        if step is not None and (type(step) is not int or step < 0 or step >= MAX_INT):
            step = check_step(step, name, self._run_id)
        with self._lock:
            agg = self._agg
            if agg is None or agg.status is not _RUNNING:
                self._aggregate().check_active("log metrics")
            buffer = self._metrics
            if type(name) is not str:  # before the dict lookup: a list is not hashable
                check_metric_name(name, self._run_id)
            series = buffer.scalars.get(name) or buffer.scalar_series(name, description)
            series.values.append(value)
            series.steps.append(step)
            series.times.append(_now())
            buffer.count += 1
            count = buffer.count
        if count == 1:
            self._session.add_unflushed_metrics(self)
        if count >= self._settings.metric_batch:
            self._flush_metrics()

    def log_list(self, name: str, value: Iterable[Any], description: str = "") -> None:
        """Log a list of values of a metric.

        Raises:
            ValidationError: not a list of scalars.
            RunFinishedError: the run has ended.
        """
        self._buffer(lambda: self._metrics.add_list(name, value, description))

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Log one row of a table metric: ``run.log_row("accuracy", x=1, y=0.9)``.

        Raises:
            ValidationError: no columns, or a non-scalar value.
            RunFinishedError: the run has ended.
        """
        self._buffer(lambda: self._metrics.add_row(name, kwargs, description))

    def log_table(self, name: str, value: Mapping[str, Iterable[Any]],
                  description: str = "") -> None:
        """Log a table metric as a dict of equally long columns.

        Raises:
            ValidationError: not a dict of equally long lists of scalars.
            RunFinishedError: the run has ended.
        """
        self._buffer(lambda: self._metrics.add_table(name, value, description))

    def _buffer(self, add: Any) -> None:
        with self._lock:
            self._aggregate().check_active("log metrics")
            add()
            count = self._metrics.count
        self._session.add_unflushed_metrics(self)
        if count >= self._settings.metric_batch:
            self._flush_metrics()

    def _flush_metrics(self) -> int:
        """Append the buffered metric values as one event. Returns the write's position."""
        if not self._published:
            self._session.publish()
        with self._lock:
            if not self._metrics.count:
                return 0
            series = self._metrics.series
            stored = self._metrics.take()
            try:
                return self._session.app.append_metrics(self._run_id, stored, self._actor())
            except BaseException:
                self._metrics.series = series  # keep the values for the next flush
                self._metrics.scalars = {k[0]: v for k, v in series.items() if k[1] == SCALAR}
                self._metrics.count = sum(len(s.values) for s in series.values())
                self._session.add_unflushed_metrics(self)
                raise

    def flush(self) -> None:
        """Append everything buffered for this run; returns once it is durable.

        Raises:
            StoreError: the store failed (the values stay buffered).
        """
        if not self._published:
            self._session.publish()
        self._flush_metrics()

    def get_metric_history(self, name: str) -> list[dict[str, Any]]:
        """Return every value of the metric ``name`` in log order, with its step and time
        (runledger's own: the seed has no such call; see ``ledger.sdk.metrics.metric_history``).

        Returns:
            ``[{"value", "step", "time"}]`` (empty when the metric was never logged).
        """
        self.flush()
        return metric_history((e.series for e in self._session.app.metric_events(
            self._run_id)), name)

    def get_metrics(self, name: str | None = None, recursive: bool = False,
                    run_type: str | None = None, populate: bool = False) -> dict[str, Any]:
        """Return the run's metrics in the seed SDK's shapes.

        Args:
            name: only this metric (``{name: value}``, or ``{}`` if never logged).
            recursive: ``{run_id: metrics}`` for this run and every descendant that has metrics.

        Returns:
            A scalar logged once is its value, several times a list; ``log_row`` once gives
            ``{col: value}``, several ``{col: [...]}``; ``log_table`` gives ``{col: [...]}``.
        """
        if recursive:
            index = self._session.before_query()
            result: dict[str, Any] = {}
            for run_id in [self._run_id, *index.descendant_ids(self._run_id)]:
                metrics = shape_metrics((e.series for e in self._session.app.metric_events(
                    run_id)), name)
                if metrics:
                    result[run_id] = metrics
            return result
        self.flush()
        return shape_metrics((e.series for e in self._session.app.metric_events(self._run_id)),
                             name)
