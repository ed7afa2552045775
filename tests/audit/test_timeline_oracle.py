"""Model-based test: for random histories of runs (tags set and removed, properties, corrections,
status changes, archive and restore, metrics), a run as of a random position or time, and every
list query as of it, equal a brute-force cut and fold of the whole log (``timeline_oracle``)."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from timeline_oracle import Driver, cut_log, expected_run, ledger_holding, whole_log

from ledger.audit.timeline import find_runs_as_of, run_as_of
from ledger.domain.errors import LedgerError, RunNotFoundError
from projections.index import RunIndex

EXPERIMENTS = ["exp-a", "exp-b"]
TAG_KEYS = ["a", "b"]
TAG_VALUES: list[Any] = ["x", "y", None]
PROPERTY_KEYS = ["p", "q"]
PROPERTY_VALUES: list[Any] = ["1", "2", None]
STATUS = ["start", "complete", "fail", "request_cancel", "cancel", "queue"]
EXAMPLES = {"memory": 25, "sqlite": 10, "postgresql": 4}
EXTRA = int(os.environ.get("RUNLEDGER_MODEL_EXAMPLES", "0"))

run_choice = st.integers(0, 30)
command = st.one_of(
    st.tuples(st.just("create"), st.integers(0, 1), st.integers(0, 40)),
    st.tuples(st.just("status"), run_choice, st.sampled_from(STATUS)),
    st.tuples(st.just("tags"), run_choice,
              st.dictionaries(st.sampled_from(TAG_KEYS), st.sampled_from(TAG_VALUES),
                              min_size=1, max_size=2)),
    st.tuples(st.just("untag"), run_choice, st.lists(st.sampled_from(TAG_KEYS), min_size=1,
                                                      max_size=2)),
    st.tuples(st.just("props"), run_choice,
              st.dictionaries(st.sampled_from(PROPERTY_KEYS), st.sampled_from(PROPERTY_VALUES),
                              min_size=1, max_size=2)),
    st.tuples(st.just("correct"), run_choice, st.sampled_from(PROPERTY_KEYS),
              st.sampled_from(PROPERTY_VALUES)),
    st.tuples(st.just("archive"), run_choice),
    st.tuples(st.just("restore"), run_choice),
    st.tuples(st.just("display"), run_choice, st.sampled_from(["shown", None])),
    st.tuples(st.just("metrics"), run_choice, st.sampled_from(["m1", "m2"]),
              st.lists(st.integers(-3, 3), min_size=1, max_size=3)),
)
scenario = st.tuples(
    st.lists(st.tuples(st.just("create"), st.integers(0, 1), st.integers(0, 40)),
             min_size=2, max_size=5),
    st.lists(command, min_size=4, max_size=30),
    # Where to look: fractions of the log's length (positions), and events whose time to use.
    st.lists(st.floats(0, 1.1), min_size=2, max_size=4),
    st.lists(st.tuples(st.floats(0, 1), st.sampled_from([-1, 0, 1])), min_size=1, max_size=2),
).map(lambda t: (t[0] + t[1], t[2], t[3]))


def apply(driver: Driver, runs: list[str], cmd: tuple[Any, ...]) -> None:
    kind, actor = cmd[0], driver.actor
    if kind == "create":
        parent = runs[cmd[2] % len(runs)] if runs and cmd[2] < 15 else None
        runs.append(driver.create(EXPERIMENTS[cmd[1]], parent))
        return
    run_id = runs[cmd[1] % len(runs)]
    actions: dict[str, Any] = {
        "start": lambda r: r.start(actor), "complete": lambda r: r.complete(actor),
        "fail": lambda r: r.fail("Code", "message", None, actor),
        "request_cancel": lambda r: r.request_cancel(actor),
        "cancel": lambda r: r.cancel(actor), "queue": lambda r: r.set_status("Queued", actor),
    }
    try:
        if kind == "status":
            driver.do(run_id, actions[cmd[2]])
        elif kind == "tags":
            driver.do(run_id, lambda r: r.set_tags(cmd[2], actor))
        elif kind == "untag":
            driver.do(run_id, lambda r: r.remove_tags(cmd[2], actor))
        elif kind == "props":
            driver.do(run_id, lambda r: r.add_properties(cmd[2], actor))
        elif kind == "correct":
            driver.do(run_id, lambda r: r.correct_property(cmd[2], cmd[3], "fix", actor))
        elif kind == "archive":
            driver.do(run_id, lambda r: r.archive("hide it", actor))
        elif kind == "restore":
            driver.do(run_id, lambda r: r.restore(actor))
        elif kind == "display":
            driver.do(run_id, lambda r: r.set_display_name(cmd[2], actor))
        elif kind == "metrics":
            driver.log(run_id, cmd[2], cmd[3])
    except LedgerError:  # refused (an invalid transition, no such property): nothing written
        pass


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
                  {**base, "properties": "q", "tags": {"b": "x"}}]
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
               "metrics": view.get_metrics()}
        assert got == expected, (run_id, when)
    with_number = isinstance(when, int)
    with ledger_holding(cut_log(log, when)) as (_copy, copy_index):
        for query in list_queries(runs):
            want = [row_key(r, with_number) for r in copy_index.find_runs(**query)]
            got_views = [view_key(v, with_number)
                         for v in find_runs_as_of(driver.app, index, when, **query)]
            assert got_views == want, (query, when)


def fresh_store(backend: str, tmp_path: Path, fixture_url: str) -> tuple[str, str | None]:
    if backend == "memory":
        return "memory://", None
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / uuid.uuid4().hex / 'ledger.db'}", None
    parts = urlsplit(fixture_url)
    schema = "t_" + uuid.uuid4().hex[:16]
    query = parse_qs(parts.query)
    query["schema"] = [schema]
    url = parts._replace(query="&".join(f"{k}={v[-1]}" for k, v in query.items())).geturl()
    return url, schema


def drop_schema(fixture_url: str, schema: str) -> None:
    import psycopg

    base = urlsplit(fixture_url)._replace(query="").geturl()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


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
                driver.app.ensure_experiment(name, driver.actor)
            runs: list[str] = []
            for cmd in commands:
                apply(driver, runs, cmd)
            index = RunIndex(driver.app)
            index.catch_up()
            log = whole_log(driver.app)
            last = log[-1][0].id
            moments: list[Any] = [0, last, *(int(f * last) for f in fractions)]
            for fraction, shift in times:
                moment = log[min(int(fraction * len(log)), len(log) - 1)][1].timestamp
                moments.append(moment + shift * timedelta(microseconds=1))
            for when in moments:
                check_moment(driver, index, log, runs, when)
        finally:
            driver.app.close()
            if schema is not None:
                drop_schema(store_url, schema)

    check()
