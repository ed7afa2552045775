"""Model-based test: for random sequences of commands (``model_commands``), every query of the
run index equals a brute-force fold over the events read from the log
(``projection_oracle.Oracle``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from projection_oracle import Driver, Oracle

from projections.index import RunIndex
from tests.projections.model_commands import (
    EXPERIMENTS,
    EXTRA,
    PROPERTY_KEYS,
    PROPERTY_VALUES,
    TAG_KEYS,
    TAG_VALUES,
    drop_schema,
    fresh_store,
    run_command,
    scenario,
)

EXAMPLES = {"memory": 30, "sqlite": 12, "postgresql": 4}


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
