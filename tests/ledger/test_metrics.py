"""Metrics contract: what ``log*`` accepts, what ``get_metrics()`` returns, and when it is stored.

Shapes follow the seed SDK: a scalar logged once is the value, several times a list in log order;
``log_row`` once is ``{col: value}``, several times ``{col: [...]}``; ``log_table`` is
``{col: [...]}``; ``name=`` gives ``{name: value}`` or ``{}``. numpy scalars, NaN, infinities,
bools and strings are accepted; lists and other non-scalars in ``log()`` raise a clear
``ValidationError``. Values are buffered with a bounded buffer and become durable (visible to
another process) once ``flush()`` returns.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ledger_contract import (
    CASE_BY_CASE,
    SWEEP_BACKENDS,
    event_count,
    stored_state,
    sweep,
)

from ledger import Experiment, LedgerError, Run, ValidationError, Workspace


# ------------------------------------------------------------------ shapes
def test_scalar_once_is_the_value_several_times_a_list(exp: Experiment) -> None:
    run = exp.start_logging()
    run.log("once", 0.5)
    for value in (3, 1, 2):
        run.log("many", value)
    assert run.get_metrics() == {"once": 0.5, "many": [3, 1, 2]}


def test_log_list_is_a_list(exp: Experiment) -> None:
    run = exp.start_logging()
    run.log_list("accuracies", [0.6, 0.7, 0.87])
    run.log_list("from a generator", (i * i for i in range(4)))
    assert run.get_metrics() == {"accuracies": [0.6, 0.7, 0.87], "from a generator": [0, 1, 4, 9]}


def test_log_row_once_and_several_times(exp: Experiment) -> None:
    run = exp.start_logging()
    run.log_row("single", x=1, y=0.5)
    run.log_row("curve", x=1, y=0.5)
    run.log_row("curve", x=2, y=0.25)
    run.log_row("curve", "the curve", x=3, y=0.125)
    assert run.get_metrics() == {
        "single": {"x": 1, "y": 0.5},
        "curve": {"x": [1, 2, 3], "y": [0.5, 0.25, 0.125]},
    }


def test_log_table_is_a_dict_of_columns(exp: Experiment) -> None:
    run = exp.start_logging()
    run.log_table("table", {"epoch": [1, 2, 3], "loss": [0.9, 0.5, 0.3]})
    run.log_table("table", {"epoch": [4], "loss": [0.2]})
    assert run.get_metrics() == {"table": {"epoch": [1, 2, 3, 4], "loss": [0.9, 0.5, 0.3, 0.2]}}


def test_name_filter(exp: Experiment) -> None:
    run = exp.start_logging()
    run.log("a", 1)
    run.log("a", 2)
    run.log("b", "text")
    assert run.get_metrics(name="a") == {"a": [1, 2]}
    assert run.get_metrics(name="b") == {"b": "text"}
    assert run.get_metrics(name="never logged") == {}


def test_no_metrics_is_an_empty_dict(exp: Experiment) -> None:
    assert exp.start_logging().get_metrics() == {}


def test_metric_kinds_and_values_across_flushes(exp: Experiment) -> None:
    run = exp.start_logging()
    run.log("x", 1)
    run.flush()
    run.log("x", 2)
    run.log_row("r", a=1)
    run.flush()
    run.log_row("r", a=2)
    assert run.get_metrics() == {"x": [1, 2], "r": {"a": [1, 2]}}


# ------------------------------------------------------------------ accepted values
def test_numpy_scalars_become_python_numbers(exp: Experiment, reader) -> None:
    run = exp.start_logging()
    run.log("f32", np.float32(0.5))
    run.log("f64", np.float64(0.25))
    run.log("i64", np.int64(7))
    run.log("bool", np.bool_(True))
    run.log("zero-d", np.array(2.0))
    run.log("step", 1.0, step=np.int64(3))
    run.log_list("list", np.array([1, 2, 3]))
    run.log_row("row", a=np.float64(1.5))
    metrics = run.get_metrics()
    assert metrics == {"f32": 0.5, "f64": 0.25, "i64": 7, "bool": True, "zero-d": 2.0,
                       "step": 1.0, "list": [1, 2, 3], "row": {"a": 1.5}}
    assert type(metrics["i64"]) is int and type(metrics["f32"]) is float
    assert type(metrics["bool"]) is bool
    assert stored_state(reader(), run.id)["metrics"] == metrics


def test_nan_and_infinities(exp: Experiment, reader) -> None:
    run = exp.start_logging()
    for value in (float("nan"), float("inf"), float("-inf"), np.float64("nan")):
        run.log("odd", value)
    for metrics in (run.get_metrics(), stored_state(reader(), run.id)["metrics"]):
        values = metrics["odd"]
        assert math.isnan(values[0]) and math.isnan(values[3])
        assert values[1:3] == [math.inf, -math.inf]


def test_bools_and_strings_keep_their_type(exp: Experiment) -> None:
    run = exp.start_logging()
    run.log("flag", True)
    run.log("flag", False)
    run.log("word", "Hello from run!")
    metrics = run.get_metrics()
    assert metrics["flag"] == [True, False] and all(type(v) is bool for v in metrics["flag"])
    assert metrics["word"] == "Hello from run!"


def test_steps_and_descriptions_are_accepted(exp: Experiment) -> None:
    run = exp.start_logging()
    run.log("loss", 0.5, description="training loss", step=0)
    run.log("loss", 0.4, step=10)
    run.log(name="loss", value=0.3, description="", step=None)
    assert run.get_metrics() == {"loss": [0.5, 0.4, 0.3]}


# ------------------------------------------------------------------ refused values
SEQUENCES = {"list": [1, 2], "tuple": (1, 2), "range": range(3), "set": {1, 2},
             "generator": "make a fresh generator", "ndarray": np.array([1.0, 2.0])}
NON_SCALARS = {"none": None, "dict": {"a": 1}, "object": object(), "bytes": b"bytes",
               "complex": 1 + 2j}
BAD_STEPS = {"negative": -1, "float": 1.5, "string": "3", "bool": True, "type": int}
BAD_CALLS: dict[str, Callable[[Run], None]] = {
    "list-int": lambda run: run.log_list("l", 5),
    "list-str": lambda run: run.log_list("l", "abc"),
    "list-nested": lambda run: run.log_list("l", [1, [2]]),
    "row-empty": lambda run: run.log_row("l"),
    "row-list": lambda run: run.log_row("l", a=[1]),
    "table-list": lambda run: run.log_table("l", [1, 2]),
    "table-empty": lambda run: run.log_table("l", {}),
    "table-ragged": lambda run: run.log_table("l", {"a": [1], "b": [1, 2]}),
    "table-scalar-column": lambda run: run.log_table("l", {"a": 5}),
}


def check_sequence(ws: Workspace, exp: Experiment, case: str) -> None:
    """``log()`` refuses sequences, points to ``log_list()`` and writes nothing."""
    value = (i for i in range(2)) if case == "generator" else SEQUENCES[case]
    run = exp.start_logging()
    before = event_count(ws)
    with pytest.raises(ValidationError) as caught:
        run.log("seq", value)
    message = str(caught.value)
    assert "log_list" in message and "seq" in message and run.id in message
    assert event_count(ws) == before
    assert run.get_metrics() == {}


def check_non_scalar(ws: Workspace, exp: Experiment, case: str) -> None:
    run = exp.start_logging()
    with pytest.raises(ValidationError, match="bad") as caught:
        run.log("bad", NON_SCALARS[case])
    assert run.id in str(caught.value)
    assert run.get_metrics() == {}


def check_bad_step(ws: Workspace, exp: Experiment, case: str) -> None:
    run = exp.start_logging()
    with pytest.raises(ValidationError, match="step") as caught:
        run.log("loss", 0.5, step=BAD_STEPS[case])
    assert "loss" in str(caught.value) and run.id in str(caught.value)
    assert run.get_metrics() == {}


def check_bad_call(ws: Workspace, exp: Experiment, case: str) -> None:
    """Bad lists, rows and tables are refused whole: nothing of them is kept."""
    run = exp.start_logging()
    before = event_count(ws)
    with pytest.raises(ValidationError) as caught:
        BAD_CALLS[case](run)
    assert re.search(r"'l[.']", str(caught.value)) and run.id in str(caught.value)
    assert event_count(ws) == before
    assert run.get_metrics() == {}


@CASE_BY_CASE
@pytest.mark.parametrize("case", sorted(SEQUENCES))
def test_log_refuses_sequences_and_points_to_log_list(ws: Workspace, exp: Experiment,
                                                      case: str) -> None:
    check_sequence(ws, exp, case)


@CASE_BY_CASE
@pytest.mark.parametrize("case", sorted(NON_SCALARS))
def test_log_refuses_non_scalars(ws: Workspace, exp: Experiment, case: str) -> None:
    check_non_scalar(ws, exp, case)


@CASE_BY_CASE
@pytest.mark.parametrize("case", sorted(BAD_STEPS))
def test_bad_steps_are_refused(ws: Workspace, exp: Experiment, case: str) -> None:
    check_bad_step(ws, exp, case)


@CASE_BY_CASE
@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_lists_rows_and_tables_are_refused_whole(ws: Workspace, exp: Experiment,
                                                     case: str) -> None:
    check_bad_call(ws, exp, case)


@SWEEP_BACKENDS
def test_every_refused_value_on_the_stores(ws: Workspace, exp: Experiment) -> None:
    sweep(sorted(SEQUENCES), lambda case: check_sequence(ws, exp, case))
    sweep(sorted(NON_SCALARS), lambda case: check_non_scalar(ws, exp, case))
    sweep(sorted(BAD_STEPS), lambda case: check_bad_step(ws, exp, case))
    sweep(sorted(BAD_CALLS), lambda case: check_bad_call(ws, exp, case))


def test_a_refused_value_keeps_the_others(exp: Experiment) -> None:
    run = exp.start_logging()
    run.log("m", 1)
    with pytest.raises(LedgerError):
        run.log("m", [2])
    run.log("m", 3)
    assert run.get_metrics() == {"m": [1, 3]}


# ------------------------------------------------------------------ buffering and durability
@pytest.fixture
def metric_batch_50(monkeypatch: pytest.MonkeyPatch) -> None:
    """``RUNLEDGER_METRIC_BATCH=50``, set before the workspace (which reads it) is opened."""
    monkeypatch.setenv("RUNLEDGER_METRIC_BATCH", "50")


@pytest.mark.usefixtures("metric_batch_50")
def test_memory_stays_bounded(ws: Workspace, exp: Experiment) -> None:
    """With ``RUNLEDGER_METRIC_BATCH`` small, logging past it appends batches as it goes."""
    assert ws.settings.metric_batch == 50
    run = exp.start_logging()
    app = ws.ledger.application
    batches_seen = []
    for i in range(520):
        run.log("loss", float(i))
        if i % 10 == 9:
            run.log_row("row", i=i)
        assert run._metrics.count < 50
        if i % 100 == 99:
            batches_seen.append(len(list(app.metric_events(run.id))))
    assert batches_seen == sorted(batches_seen)
    assert batches_seen[0] >= 2 and batches_seen[-1] >= 10
    metrics = run.get_metrics()
    assert metrics["loss"] == [float(i) for i in range(520)]
    assert metrics["row"] == {"i": list(range(9, 520, 10))}


def test_complete_stores_buffered_metrics(ws: Workspace, exp: Experiment, reader) -> None:
    run = exp.start_logging()
    run.log("a", 1)
    run.log_list("b", [1, 2])
    run.complete()
    assert stored_state(reader(), run.id)["metrics"] == {"a": 1, "b": [1, 2]}


@pytest.mark.parametrize("end", ["fail", "cancel"])
def test_fail_and_cancel_store_buffered_metrics(ws: Workspace, exp: Experiment, reader,
                                                end: str) -> None:
    run = exp.start_logging()
    run.log("a", 1)
    getattr(run, end)()
    assert stored_state(reader(), run.id)["metrics"] == {"a": 1}


def test_flush_makes_values_visible_to_another_process(tmp_path: Path) -> None:
    """A second ``Workspace`` opened in a subprocess on the same SQLite file sees what was
    logged as soon as ``flush()`` returned (the run is still open and buffering)."""
    store_url = f"sqlite:///{tmp_path / 'shared.db'}"
    run = Experiment(Workspace(store=store_url), "shared").start_logging()
    for i in range(1000):
        run.log("loss", i / 1000)
    run.log_row("row", a=1, b="x")
    run.tag("t", "v")
    run.flush()
    script = (
        "import json, sys\n"
        "from ledger import Workspace, Run\n"
        "ws = Workspace(store=sys.argv[1])\n"
        "run = Run.get(ws, sys.argv[2])\n"
        "print(json.dumps({'status': run.get_status(), 'tags': run.get_tags(),\n"
        "                  'metrics': run.get_metrics()}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, store_url, run.id],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["status"] == "Running"
    assert seen["tags"] == {"t": "v"}
    assert seen["metrics"]["loss"] == [i / 1000 for i in range(1000)]
    assert seen["metrics"]["row"] == {"a": 1, "b": "x"}


def test_recursive_metrics(exp: Experiment) -> None:
    """``recursive=True`` gives ``{run_id: metrics}`` for the run and its descendants that have
    metrics (needs the projections package: the query index)."""
    run = exp.start_logging()
    run.log("top", 1)
    child = run.child_run()
    child.log("c", 2)
    grandchild = child.child_run()
    grandchild.log("g", 3)
    child.child_run()  # no metrics: left out
    assert run.get_metrics(recursive=True) == {
        run.id: {"top": 1}, child.id: {"c": 2}, grandchild.id: {"g": 3}}


def test_loaded_run_reads_metrics_logged_elsewhere(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.log("m", 1)
    run.flush()
    assert Run.get(ws, run.id).get_metrics() == {"m": 1}
