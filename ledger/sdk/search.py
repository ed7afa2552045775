"""What notebooks hand-code over ``get_runs()``: the best run by a metric, and runs as a pandas
DataFrame. Both read the read models (an ordered query, the metric summaries), never every
run's metric values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ledger.domain.errors import ValidationError
from ledger.domain.search import FIELDS, METRIC, Key

if TYPE_CHECKING:
    from ledger.sdk.experiment import Experiment
    from ledger.sdk.run import Run

_MODES = ("min", "max")


def best_run(experiment: Experiment, metric: str, mode: str = "min", *, field: str = "last",
             filter: str | None = None, include_children: bool = False) -> Run | None:
    """Return the run of an experiment with the lowest (``mode="min"``) or highest (``"max"``)
    value of a metric, ties going to the newest run.

    Args:
        experiment: the experiment.
        metric: the metric's name.
        mode: ``"min"`` or ``"max"``.
        field: which value of the metric is compared: its ``"last"`` value (the default, as in
            filters), or its ``"min"`` or ``"max"`` over every value logged.
        filter: only among the runs this filter selects (``get_runs(filter=...)``).
        include_children: child runs compete too.

    Returns:
        The run, or ``None`` when no run (that the filter selects) has a numeric value of
        the metric.

    Raises:
        ValidationError: a bad mode, field, metric name or filter.
    """
    from ledger.sdk.run import Run

    if mode not in _MODES:
        raise ValidationError(f"best_run: mode must be 'min' or 'max', not {mode!r}")
    if field not in FIELDS:
        raise ValidationError(f"best_run: field must be one of {', '.join(FIELDS)}, "
                              f"not {field!r}")
    if not isinstance(metric, str) or not metric:
        raise ValidationError(f"best_run: the metric name must be a non-empty string, "
                              f"not {metric!r}")
    key = str(Key(METRIC, metric, field))
    # A comparison every number satisfies (-1e309 is -inf) leaves out the runs without a value
    # and lets the ordered query skip reading them.
    parts = [f"{key} >= -1e309"]
    if filter is not None and filter.strip():
        parts.insert(0, filter)
    runs = Run.list(experiment, include_children=include_children,
                    filter=" and ".join(parts),
                    order_by=[f"{key} {'ASC' if mode == 'min' else 'DESC'}"], max_results=1)
    return next(iter(runs), None)


def to_dataframe(runs: Iterable[Run]) -> Any:
    """Return runs as a pandas DataFrame, one row per run in the order given.

    Columns: ``run_id``, ``experiment``, ``number``, ``display_name``, ``status``,
    ``start_time``, ``end_time`` (pandas timestamps, UTC), then ``properties.KEY`` and
    ``tags.KEY`` for every key any run has, and per metric ``metrics.NAME`` (its last value),
    ``metrics.min.NAME`` and ``metrics.max.NAME`` (over its numeric values): the names the
    search grammar uses. A run without a key has ``None`` there (``NaN`` for metrics).

    Args:
        runs: runs (what ``get_runs()`` yields).

    Returns:
        A ``pandas.DataFrame``.

    Raises:
        ImportError: pandas is not installed (``pip install pandas``).
    """
    try:
        import pandas
    except ImportError as error:
        raise ImportError("ledger.to_dataframe needs pandas: pip install pandas") from error
    records: list[dict[str, Any]] = []
    for run in runs:
        details = run.get_details()
        record: dict[str, Any] = {
            "run_id": run.id, "experiment": run.experiment.name, "number": run.number,
            "display_name": run.display_name, "status": details.get("status"),
            "start_time": details.get("startTimeUtc"), "end_time": details.get("endTimeUtc"),
        }
        for key, value in sorted(run.get_properties().items()):
            record[f"properties.{key}"] = value
        for key, value in sorted(run.get_tags().items()):
            record[f"tags.{key}"] = value
        index = run.experiment.workspace.ledger.index
        for summary in index.metric_summaries(run.id):
            record[f"metrics.{summary.name}"] = summary.last
            record[f"metrics.min.{summary.name}"] = summary.minimum
            record[f"metrics.max.{summary.name}"] = summary.maximum
        records.append(record)
    frame = pandas.DataFrame.from_records(records, columns=_columns(records))
    for column in ("start_time", "end_time"):
        frame[column] = pandas.to_datetime(frame[column], utc=True)
    return frame


def _columns(records: list[dict[str, Any]]) -> list[str]:
    """The run columns first, then properties, tags and metrics, each by name."""
    fixed = ["run_id", "experiment", "number", "display_name", "status", "start_time",
             "end_time"]
    names = {name for record in records for name in record} - set(fixed)

    def group(prefix: str) -> list[str]:
        return sorted(name for name in names if name.startswith(prefix))

    metrics = sorted((name for name in names if name.startswith("metrics.")),
                     key=_metric_order)
    return [*fixed, *group("properties."), *group("tags."), *metrics]


def _metric_order(column: str) -> tuple[str, int]:
    # metrics.NAME, metrics.min.NAME, metrics.max.NAME side by side.
    rest = column[len("metrics."):]
    for number, field in enumerate(("min.", "max."), start=1):
        if rest.startswith(field):
            return rest[len(field):], number
    return rest, 0


__all__ = ["best_run", "to_dataframe"]
