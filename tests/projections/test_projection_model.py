"""Model-based test: for random sequences of commands, every query of the run index equals a
brute-force fold over the events read from the log (``projection_oracle.Oracle``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from projection_oracle import Driver, Oracle

from ledger.domain.errors import LedgerError
from projections.index import RunIndex

EXPERIMENTS = ["exp-a", "exp-b"]
TAG_KEYS = ["a", "b", "c"]
TAG_VALUES: list[Any] = ["x", "y", None, 1]
PROPERTY_KEYS = ["p", "q"]
PROPERTY_VALUES: list[Any] = ["1", "2", None]
STATUS_COMMANDS = ["start", "complete", "fail", "request_cancel", "cancel", "queue", "finalize"]
EXAMPLES = {"memory": 30, "sqlite": 12, "postgresql": 4}
# RUNLEDGER_MODEL_EXAMPLES=500 (say) explores further, with random rather than fixed examples.
EXTRA = int(os.environ.get("RUNLEDGER_MODEL_EXAMPLES", "0"))

run_choice = st.integers(0, 50)
metric_values = st.lists(st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.integers(-5, 5),
    st.booleans(), st.text(max_size=2)), max_size=4)
command = st.one_of(
    st.tuples(st.just("create"), st.integers(0, 1), st.integers(0, 60),
              st.sampled_from(["train", "sweep"])),
    st.tuples(st.just("batch"), st.integers(1, 4), st.integers(0, 60)),
    st.tuples(st.just("status"), run_choice, st.sampled_from(STATUS_COMMANDS)),
    st.tuples(st.just("tags"), run_choice,
              st.dictionaries(st.sampled_from(TAG_KEYS), st.sampled_from(TAG_VALUES),
                              max_size=2)),
    st.tuples(st.just("untag"), run_choice, st.lists(st.sampled_from(TAG_KEYS), max_size=2)),
    st.tuples(st.just("props"), run_choice,
              st.dictionaries(st.sampled_from(PROPERTY_KEYS), st.sampled_from(PROPERTY_VALUES),
                              max_size=2)),
    st.tuples(st.just("correct"), run_choice, st.sampled_from(PROPERTY_KEYS),
              st.sampled_from(PROPERTY_VALUES)),
    st.tuples(st.just("archive"), run_choice, st.booleans()),
    st.tuples(st.just("display"), run_choice, st.sampled_from(["shown", None])),
    st.tuples(st.just("describe"), run_choice, st.sampled_from(["text", None])),
    st.tuples(st.just("metrics"), run_choice, st.sampled_from(["m1", "m2"]),
              st.sampled_from(["scalar", "list"]), metric_values,
              st.lists(st.one_of(st.none(), st.integers(0, 9)), min_size=4, max_size=4)),
    st.tuples(st.just("catch_up")),
    st.tuples(st.just("experiment"), st.integers(0, 1),
              st.sampled_from(["archive", "reactivate", "tag", "untag"]),
              st.sampled_from(TAG_KEYS), st.sampled_from(TAG_VALUES)),
)
creation = st.one_of(
    st.tuples(st.just("create"), st.integers(0, 1), st.integers(0, 60),
              st.sampled_from(["train", "sweep"])),
    st.tuples(st.just("batch"), st.integers(1, 4), st.integers(0, 60)))
# Every example starts by creating runs, so that the commands after it have runs to act on.
scenario = st.tuples(st.lists(creation, min_size=2, max_size=6),
                     st.lists(command, min_size=5, max_size=40)).map(lambda t: t[0] + t[1])


def run_command(driver: Driver, runs: list[str], cmd: tuple[Any, ...]) -> None:
    kind = cmd[0]
    actor = driver.actor
    if kind == "create":
        parent = runs[cmd[2] % len(runs)] if runs and cmd[2] < 40 else None
        runs.append(driver.create(EXPERIMENTS[cmd[1]], parent, run_type=cmd[3]))
        return
    if kind == "batch":  # several new runs in one save (group commit), children too
        parent = runs[cmd[2] % len(runs)] if runs and cmd[2] < 30 else None
        new = [driver.new_run(EXPERIMENTS[i % 2], parent) for i in range(cmd[1])]
        for i, run in enumerate(new):
            run.set_tags({"a": str(i)}, actor)
        driver.save(*new)
        runs += [r.run_id for r in new]
        return
    if kind == "experiment":  # tags and archiving of an experiment (its own stream)
        name, action, key, value = EXPERIMENTS[cmd[1]], cmd[2], cmd[3], cmd[4]
        commands: dict[str, Any] = {
            "archive": lambda e: e.archive(actor),
            "reactivate": lambda e: e.reactivate(actor),
            "tag": lambda e: e.set_tags({key: value}, actor),
            "untag": lambda e: e.remove_tags([key], actor),
        }
        driver.experiment_do(name, commands[action])
        return
    if not runs:
        return
    run_id = runs[cmd[1] % len(runs)]
    actions: dict[str, Any] = {
        "start": lambda r: r.start(actor),
        "complete": lambda r: r.complete(actor),
        "fail": lambda r: r.fail("Code", "message", "ValueError", actor),
        "request_cancel": lambda r: r.request_cancel(actor),
        "cancel": lambda r: r.cancel(actor),
        "queue": lambda r: r.set_status("Queued", actor),
        "finalize": lambda r: r.set_status("Finalizing", actor),
    }
    try:
        if kind == "status":
            driver.do(run_id, actions[cmd[2]])
        elif kind == "tags":
            driver.tag(run_id, cmd[2])
        elif kind == "untag":
            driver.untag(run_id, cmd[2])
        elif kind == "props":
            driver.props(run_id, cmd[2])
        elif kind == "correct":
            driver.correct(run_id, cmd[2], cmd[3])
        elif kind == "archive":
            if cmd[2]:
                driver.archive(run_id)
            else:
                driver.restore(run_id)
        elif kind == "display":
            driver.do(run_id, lambda r: r.set_display_name(cmd[2], actor))
        elif kind == "describe":
            driver.do(run_id, lambda r: r.set_description(cmd[2], actor))
        elif kind == "metrics":
            values = cmd[4]
            driver.log(run_id, cmd[2], values, kind=cmd[3], steps=cmd[5][:len(values)])
    except LedgerError:  # an invalid transition, an immutable property: nothing was written
        pass


def queries(oracle: Oracle) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [{}, {"include_children": True}, {"include_archived": True}]
    for experiment in EXPERIMENTS:
        base = {"experiment_name": experiment}
        found += [base, {**base, "include_children": True}, {**base, "limit": 2},
                  {**base, "include_archived": True, "include_children": True},
                  {**base, "include_archived": True, "tags": "a"},
                  {**base, "run_type": "sweep", "include_children": True}]
        for status in sorted({r.status for r in oracle.runs.values()}):
            found.append({**base, "status": status, "include_children": True})
        for key in TAG_KEYS:
            found.append({**base, "tags": key, "include_children": True})
            for value in TAG_VALUES:
                found.append({**base, "tags": {key: value}, "include_children": True})
                found.append({**base, "tags": {key: value, "b": "x"}})
        for key in PROPERTY_KEYS:
            found.append({**base, "properties": key})
            for value in PROPERTY_VALUES:
                found.append({**base, "properties": {key: value}, "tags": "a",
                              "include_children": True})
    for run_id in oracle.runs:
        found += [{"parent_run_id": run_id}, {"parent_run_id": run_id, "recursive": True},
                  {"parent_run_id": run_id, "recursive": True, "tags": "a"},
                  {"parent_run_id": run_id, "recursive": True, "include_archived": True},
                  {"parent_run_id": run_id, "tags": {"a": "0"}, "status": "NotStarted"}]
    return found


def assert_index_equals_oracle(driver: Driver, index: RunIndex) -> None:
    oracle = Oracle(driver.app)
    for query in queries(oracle):
        assert list(index.find_runs(**query)) == oracle.find_runs(**query), query
    for run_id, row in oracle.runs.items():
        assert index.get(run_id) == row
        assert index.descendant_ids(run_id) == oracle.descendant_ids(run_id)
        assert index.metric_summaries(run_id) == oracle.metric_summaries(run_id)
    assert index.experiments() == oracle.experiments()
    for row in oracle.experiments():
        assert index.experiment(row.name) == row


def fresh_store(backend: str, tmp_path: Path, fixture_url: str) -> tuple[str, str | None]:
    """A new store for one example (and its PostgreSQL schema, to drop afterwards)."""
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


@pytest.mark.parametrize("page_size", [3])
def test_every_query_equals_a_fold_over_the_log(backend: str, store_url: str, tmp_path: Path,
                                                page_size: int) -> None:
    @settings(max_examples=EXTRA or EXAMPLES[backend], deadline=None, derandomize=not EXTRA,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(commands=scenario)
    def check(commands: list[tuple[Any, ...]]) -> None:
        url, schema = fresh_store(backend, tmp_path, store_url)
        driver = Driver(url)
        try:
            for name in EXPERIMENTS:
                driver.experiment(name)
            index = RunIndex(driver.app, page_size=page_size)
            runs: list[str] = []
            for cmd in commands:
                if cmd[0] == "catch_up":
                    index.catch_up(driver.last_position)
                else:
                    run_command(driver, runs, cmd)
            index.catch_up()
            assert_index_equals_oracle(driver, index)
            # A rebuild from the log gives the same answers.
            index.rebuild()
            assert_index_equals_oracle(driver, index)
        finally:
            driver.app.close()
            if schema is not None:
                drop_schema(store_url, schema)

    check()
