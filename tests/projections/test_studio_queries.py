"""The Studio's runs-table queries (projections/studio_queries.py) against the brute-force oracle:
every filter, every sort column in both directions, walked page by page with the keyset cursor,
on every backend."""

from __future__ import annotations

import random
from typing import Any

import pytest
from projection_oracle import Driver, Oracle

from ledger.domain.errors import ValidationError
from projections import studio_queries
from projections.index import RunIndex
from projections.projection import to_micros
from projections.read_models import RunRow
from projections.studio_queries import (
    MetricCondition,
    PairFilter,
    RunsQuery,
    SortKey,
    StudioQueries,
    decode_cursor,
)

NOW = 4_000_000_000.0  # seconds: after every run's start, so durations of running runs are finite


@pytest.fixture
def ledger(driver: Driver, index: RunIndex) -> tuple[Driver, StudioQueries]:
    rng = random.Random(12)
    driver.experiment("e")
    driver.experiment("other")
    logged: list[str] = []
    for i in range(30):
        run_id = driver.create("e", display_name=rng.choice([None, f"Run {i}", "same"]),
                               description=rng.choice([None, "a 50%_discount", "plain"]))
        if rng.random() < 0.8:
            driver.start(run_id)
            choice = rng.random()
            if choice < 0.4:
                driver.complete(run_id)
            elif choice < 0.6:
                driver.fail(run_id)
        if rng.random() < 0.7:
            driver.tag(run_id, {"lr": rng.choice(["0.1", "0.01", None]), "x": str(i % 4)})
        if rng.random() < 0.5:
            driver.props(run_id, {"algo": rng.choice(["sgd", "adam"])})
        if rng.random() < 0.7:
            values = [rng.choice([rng.uniform(-1, 1), rng.randint(0, 5)]) for _ in range(3)]
            if rng.random() < 0.15:
                values.append("nan-ish")  # a string last value: no numeric last
            driver.log(run_id, "loss", values)
        if i % 7 == 0:
            for _ in range(2):
                driver.create("e", parent=run_id)
        logged.append(run_id)
    # Later batches, pages after the first ones (the index reads 7 events a page): the stored
    # last, minimum and maximum are merged with the new values, which widen them or not.
    for run_id in rng.sample(logged, 12):
        driver.log(run_id, "loss", [rng.choice([rng.uniform(-2, 2), "text", 3])
                                    for _ in range(rng.randint(1, 3))])
    driver.create("other")
    index.catch_up()
    return driver, StudioQueries(index)


def walk(queries: StudioQueries, query: RunsQuery) -> list[str]:
    ids: list[str] = []
    after = None
    for _ in range(100):
        page = queries.runs_page(RunsQuery(**{**_fields(query), "after": after}), now=NOW)
        assert len(page.rows) <= query.limit
        ids += [row.run_id for row in page.rows]
        if page.next_cursor is None:
            return ids
        after = page.next_cursor
    raise AssertionError("pages never ended")


def _fields(query: RunsQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in (
        "experiment", "statuses", "tags", "properties", "metrics", "text", "sort", "limit")}


def metric_value(oracle: Oracle, run_id: str, name: str, field: str) -> float | None:
    summary = oracle.metrics.get((run_id, name))
    if summary is None:
        return None
    if field == "min":
        return summary.minimum
    if field == "max":
        return summary.maximum
    last = summary.last
    return float(last) if isinstance(last, (int, float)) and not isinstance(last, bool) else None


def sort_value(oracle: Oracle, row: RunRow, column: str) -> Any:
    seq = oracle.order[row.run_id]
    if column == "number":
        return seq
    if column == "status":
        return row.status
    if column == "name":
        return row.display_name if row.display_name is not None else row.name
    if column == "start":
        return (row.started_at or row.created_at).timestamp()
    if column == "duration":
        if row.started_at is None:
            return None
        # In whole microseconds, as the index stores times: float seconds would order two
        # runs of equal stored duration by rounding noise.
        end = to_micros(row.ended_at) if row.ended_at else int(NOW * 1_000_000)
        return end - to_micros(row.started_at)
    if column == "submitted":
        return row.created_by
    kind, _sep, key = column.partition(":")
    if kind == "tag":
        return row.tags.get(key)
    if kind == "prop":
        return row.properties.get(key)
    name, _dot, field = key.rpartition(".")
    return metric_value(oracle, row.run_id, name, field)


OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
       ">=": lambda a, b: a >= b, "=": lambda a, b: a == b, "!=": lambda a, b: a != b}


def expected(oracle: Oracle, query: RunsQuery) -> list[str]:
    rows = [r for r in oracle.runs.values()
            if r.experiment_name == query.experiment and r.parent_run_id is None]
    if query.statuses:
        rows = [r for r in rows if r.status in query.statuses]
    for attr, filters in (("tags", query.tags), ("properties", query.properties)):
        for f in filters:
            rows = [r for r in rows if f.key in getattr(r, attr) and (
                not f.has_value or getattr(r, attr)[f.key] == f.value)]
    for c in query.metrics:
        rows = [r for r in rows if (v := metric_value(oracle, r.run_id, c.name, c.field))
                is not None and OPS[c.op](v, c.value)]
    if query.text:
        needle = query.text.lower()
        rows = [r for r in rows if any(needle in (t or "").lower()
                                       for t in (r.name, r.display_name, r.description))]
    column = query.sort.column

    def key(row: RunRow) -> tuple[Any, ...]:
        value = sort_value(oracle, row, column)
        return (value is None, value if value is not None else 0, oracle.order[row.run_id])

    present = sorted((r for r in rows if sort_value(oracle, r, column) is not None), key=key,
                     reverse=query.sort.descending)
    absent = sorted((r for r in rows if sort_value(oracle, r, column) is None), key=key,
                    reverse=query.sort.descending)
    return [r.run_id for r in present + absent]


SORTS = ["number", "status", "name", "start", "duration", "submitted", "tag:lr", "prop:algo",
         "metric:loss.last", "metric:loss.min", "metric:loss.max"]


def test_every_sort_walked_page_by_page_matches_the_oracle(
        ledger: tuple[Driver, StudioQueries]) -> None:
    driver, queries = ledger
    oracle = Oracle(driver.app)
    for column in SORTS:
        for descending in (False, True):
            query = RunsQuery(experiment="e", sort=SortKey(column, descending), limit=4)
            assert walk(queries, query) == expected(oracle, query), (column, descending)


FILTERS = [
    {"statuses": ("Completed",)},
    {"statuses": ("Running", "Failed")},
    {"tags": (PairFilter.parse("lr"),)},
    {"tags": (PairFilter.parse("lr=0.1"), PairFilter.parse("x=2"))},
    {"properties": (PairFilter.parse("algo=adam"),)},
    {"metrics": (MetricCondition.parse("loss < 0.2"),)},
    {"metrics": (MetricCondition.parse("loss.max >= 1"), MetricCondition.parse("loss.min<0"))},
    {"metrics": (MetricCondition.parse("loss != 0"),)},
    {"text": "run 1"},
    {"text": "50%_"},  # LIKE's wildcards are matched literally
    {"text": "%"},
    {"statuses": ("Completed",), "tags": (PairFilter.parse("x"),), "text": "same",
     "sort": SortKey("metric:loss.last", False)},
]


@pytest.mark.parametrize("few_runs", [0, 2000], ids=["checked-per-run", "from-the-index"])
def test_every_filter_matches_the_oracle(ledger: tuple[Driver, StudioQueries], few_runs: int,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # A metric filter is read either way, by how many runs it keeps: both give the same runs.
    monkeypatch.setattr(studio_queries, "FEW_RUNS", few_runs)
    driver, queries = ledger
    oracle = Oracle(driver.app)
    for filters in FILTERS:
        query = RunsQuery(experiment="e", limit=3, **filters)
        found = walk(queries, query)
        assert found == expected(oracle, query), filters
    # The filters are not vacuous: each keeps some runs and drops others.
    everything = len(walk(queries, RunsQuery(experiment="e", limit=50)))
    assert any(0 < len(walk(queries, RunsQuery(experiment="e", **f))) < everything
               for f in FILTERS)


def test_children_are_counted_not_listed(ledger: tuple[Driver, StudioQueries]) -> None:
    driver, queries = ledger
    oracle = Oracle(driver.app)
    parents = {r.parent_run_id for r in oracle.runs.values() if r.parent_run_id}
    listed = walk(queries, RunsQuery(experiment="e", limit=50))
    assert parents <= set(listed)
    assert queries.child_counts(listed) == {p: 2 for p in parents}


def test_experiment_summaries_count_by_status(ledger: tuple[Driver, StudioQueries]) -> None:
    driver, queries = ledger
    oracle = Oracle(driver.app)
    summaries = {s.name: s for s in queries.experiment_summaries()}
    for name in ("e", "other"):
        runs = [r for r in oracle.runs.values() if r.experiment_name == name]
        counts: dict[str, int] = {}
        for r in runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        assert summaries[name].by_status == counts
        assert summaries[name].active == sum(
            n for s, n in counts.items() if s not in ("Completed", "Failed", "Canceled"))
        assert summaries[name].run_count == len(runs)


def test_bad_arguments_are_typed_errors() -> None:
    with pytest.raises(ValidationError):
        MetricCondition.parse("loss <")
    with pytest.raises(ValidationError):
        SortKey.parse("nonsense")
    with pytest.raises(ValidationError):
        PairFilter.parse("=x")
    with pytest.raises(ValidationError):
        decode_cursor("not-a-cursor")
    assert MetricCondition.parse("acc.max>=0.9") == MetricCondition("acc", "max", ">=", 0.9)
    assert MetricCondition.parse("val.loss < 1e-3").name == "val.loss"
