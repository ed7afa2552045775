"""Model-based test: for random histories of runs (the projections' generator,
``tests.projections.model_commands``: tags set and removed, properties, corrections, every status
transition, archive and restore, names, descriptions, metrics, batches, experiment changes, index
catch-ups mid-way), a run as of a random position or time, and every list query as of it, equal a
brute-force cut and fold of the whole log (``timeline_oracle``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from timeline_oracle import cut_log, expected_run, ledger_holding, whole_log

from ledger.audit.timeline import find_runs_as_of, run_as_of
from ledger.domain.errors import RunNotFoundError
from ledger.domain.run import RunAggregate
from projections.index import RunIndex
from tests.projections import model_commands
from tests.projections.model_commands import EXPERIMENTS, EXTRA, drop_schema, fresh_store
from tests.projections.projection_oracle import Driver

EXAMPLES = {"memory": 25, "sqlite": 10, "postgresql": 4}

scenario = st.tuples(
    model_commands.scenario,
    # Where to look: fractions of the log's length (positions), and events whose time to use.
    st.lists(st.floats(0, 1.1), min_size=2, max_size=4),
    st.lists(st.tuples(st.floats(0, 1), st.sampled_from([-1, 0, 1])), min_size=1, max_size=2),
)


def list_queries(runs: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [{}, {"include_archived": True}]
    for experiment in EXPERIMENTS:
        base = {"experiment_name": experiment}
        found += [base, {**base, "include_children": True},
                  {**base, "include_archived": True, "include_children": True},
                  {**base, "limit": 1}, {**base, "status": "Running", "include_children": True},
                  {**base, "tags": "a", "include_archived": True},
                  {**base, "tags": {"a": None}, "include_children": True},
                  {**base, "properties": {"p": "2"}, "include_children": True},
                  {**base, "properties": "q", "tags": {"b": "x"}},
                  {**base, "run_type": "sweep", "include_children": True}]
    for run_id in runs[:3]:
        found += [{"parent_run_id": run_id}, {"parent_run_id": run_id, "recursive": True,
                                              "include_archived": True}]
    return found


def row_key(row: Any, with_number: bool) -> tuple[Any, ...]:
    return (row.run_id, row.status, row.tags, row.properties, row.archived,
            row.number if with_number else None)


def view_key(view: Any, with_number: bool) -> tuple[Any, ...]:
    return (view.id, view.get_status(), view.get_tags(), view.get_properties(), view.archived,
            view.number if with_number else None)


def check_moment(driver: Driver, index: RunIndex, log: list[Any], runs: list[str],
                 when: Any) -> None:
    for run_id in runs:
        expected = expected_run(log, run_id, when)
        if expected is None:
            with pytest.raises(RunNotFoundError):
                run_as_of(driver.app, run_id, when)
            continue
        view = run_as_of(driver.app, run_id, when)
        got = {"status": view.get_status(), "properties": view.get_properties(),
               "tags": view.get_tags(), "archived": view.archived,
               "display_name": view.get_details().get("displayName"),
               "description": view.get_details().get("description"),
               "metrics": view.get_metrics()}
        assert got == expected, (run_id, when)
    with_number = isinstance(when, int)
    with ledger_holding(cut_log(log, when)) as (_copy, copy_index):
        for query in list_queries(runs):
            want = [row_key(r, with_number) for r in copy_index.find_runs(**query)]
            got_views = [view_key(v, with_number)
                         for v in find_runs_as_of(driver.app, index, when, **query)]
            assert got_views == want, (query, when)


def test_as_of_equals_a_fold_of_the_log(backend: str, store_url: str, tmp_path: Path) -> None:
    @settings(max_examples=EXTRA or EXAMPLES[backend], deadline=None, derandomize=not EXTRA,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(example=scenario)
    def check(example: tuple[list[tuple[Any, ...]], list[float],
                             list[tuple[float, int]]]) -> None:
        commands, fractions, times = example
        url, schema = fresh_store(backend, tmp_path, store_url)
        driver = Driver(url)
        try:
            for name in EXPERIMENTS:
                driver.experiment(name)
            # Small pages, caught up mid-way too: the candidates of list queries come from it.
            index = RunIndex(driver.app, page_size=3)
            runs: list[str] = []
            for cmd in commands:
                if cmd[0] == "catch_up":
                    index.catch_up(driver.last_position)
                else:
                    model_commands.run_command(driver, runs, cmd)
            index.catch_up()
            log = whole_log(driver.app)
            last = log[-1][0].id
            moments: list[Any] = [0, last, *(int(f * last) for f in fractions)]
            for fraction, shift in times:
                moment = log[min(int(fraction * len(log)), len(log) - 1)][1].timestamp
                moments.append(moment + shift * timedelta(microseconds=1))
            # And at the exact time of run events spread over the log: "as of T" includes an
            # event recorded at T (the boundary a cut by time must get right).
            changes = [event.timestamp for n, event in log
                       if n.originator_version > 1 and isinstance(event, RunAggregate.Event)]
            moments += [changes[len(changes) * k // 4] for k in (1, 2, 3) if changes]
            for when in moments:
                check_moment(driver, index, log, runs, when)
        finally:
            driver.app.close()
            if schema is not None:
                drop_schema(store_url, schema)

    check()
