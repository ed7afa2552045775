"""Bad inputs get a clear, typed error and write nothing.

Wrong types, empty or huge (> 256 characters) names and keys, non-string keys, tags given as a
list, unknown run ids, bad counts...: each call raises a ``ledger.LedgerError`` subclass (callers
catch one base class) whose message names the run and the offending key or argument, and the
ledger holds exactly what it held before the call, whether the run was already stored or still
buffered in this process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ledger_contract import (
    CASE_BY_CASE,
    SWEEP_BACKENDS,
    event_count,
    run_event_kinds,
    sweep,
)

from ledger import (
    Experiment,
    LedgerError,
    Run,
    RunNotFoundError,
    ValidationError,
    Workspace,
)

HUGE = "k" * 300


def _set(attribute: str, value: Any) -> Callable[[Run], None]:
    return lambda run: setattr(run, attribute, value)


# (call on a running run, expected error, words the message must contain besides the run id)
RUN_CASES: dict[str, tuple[Callable[[Run], Any], type[LedgerError], list[str]]] = {
    "tag-int-key": (lambda r: r.tag(5, "x"), ValidationError, ["5", "string"]),
    "tag-none-key": (lambda r: r.tag(None), ValidationError, ["None"]),
    "tag-empty-key": (lambda r: r.tag("", "x"), ValidationError, ["empty"]),
    "tag-blank-key": (lambda r: r.tag("   ", "x"), ValidationError, ["empty"]),
    "tag-huge-key": (lambda r: r.tag(HUGE, "x"), ValidationError, [HUGE[:40], "300"]),
    "tag-huge-value": (lambda r: r.tag("k", "v" * 9000), ValidationError, ["'k'", "9000"]),
    "tags-as-list": (lambda r: r.set_tags(["a", "b"]), ValidationError, ["dict", "list"]),
    "tags-as-string": (lambda r: r.set_tags("quality"), ValidationError, ["dict", "str"]),
    "tags-non-string-key": (lambda r: r.set_tags({"ok": "1", 2: "x"}), ValidationError, ["2"]),
    "tags-tuple-key": (lambda r: r.set_tags({("a",): "x"}), ValidationError, ["('a',)"]),
    "remove-int": (lambda r: r.remove_tags(5), ValidationError, ["list"]),
    "remove-int-key": (lambda r: r.remove_tags(["ok", 7]), ValidationError, ["7"]),
    "remove-dict": (lambda r: r.remove_tags({"a": 1}), ValidationError, ["list"]),
    "props-as-list": (lambda r: r.add_properties([("a", "b")]), ValidationError, ["dict"]),
    "props-none": (lambda r: r.add_properties(None), ValidationError, ["dict"]),
    "props-non-string-key": (lambda r: r.add_properties({"a": "1", 3: "x"}), ValidationError,
                             ["3"]),
    "props-empty-key": (lambda r: r.add_properties({"": "x"}), ValidationError, ["empty"]),
    "props-huge-key": (lambda r: r.add_properties({HUGE: "x"}), ValidationError, [HUGE[:40]]),
    "props-huge-value": (lambda r: r.add_properties({"a": "1", "big": "v" * 9000}),
                         ValidationError, ["'big'"]),
    "log-int-name": (lambda r: r.log(5, 1.0), ValidationError, ["5"]),
    "log-empty-name": (lambda r: r.log("", 1.0), ValidationError, ["empty"]),
    "log-huge-name": (lambda r: r.log(HUGE, 1.0), ValidationError, [HUGE[:40]]),
    "log-list": (lambda r: r.log("m", [1, 2]), ValidationError, ["'m'", "log_list"]),
    "log-none": (lambda r: r.log("m", None), ValidationError, ["'m'"]),
    "log-bad-step": (lambda r: r.log("m", 1, step="one"), ValidationError, ["'m'", "step"]),
    "log-bad-description": (lambda r: r.log("m", 1, description=5), ValidationError, ["'m'"]),
    "log-row-int-column": (lambda r: r.log_row("m", **{"": 1}), ValidationError, ["empty"]),
    "log-table-int-column": (lambda r: r.log_table("m", {1: [1]}), ValidationError, ["1"]),
    "display-name-empty": (_set("display_name", ""), ValidationError, ["display_name"]),
    "display-name-huge": (_set("display_name", HUGE), ValidationError, ["display_name", "300"]),
    "display-name-int": (_set("display_name", 5), ValidationError, ["display_name"]),
    "description-int": (_set("description", 5), ValidationError, ["description"]),
    "child-empty-name": (lambda r: r.child_run(name=""), ValidationError, ["name"]),
    "child-huge-name": (lambda r: r.child_run(name=HUGE), ValidationError, ["name"]),
    "child-int-name": (lambda r: r.child_run(name=5), ValidationError, ["name"]),
    "child-empty-id": (lambda r: r.child_run(run_id=""), ValidationError, ["run_id"]),
    "children-zero": (lambda r: r.create_children(count=0), ValidationError, ["count"]),
    "children-list-count": (lambda r: r.create_children(count=[1]), ValidationError,
                            ["count"]),
    "children-values-string": (lambda r: r.create_children(tag_key="k", tag_values="ab"),
                               ValidationError, ["tag_values"]),
    "status-unknown": (lambda r: r.set_status("Bogus"), ValidationError, ["Bogus"]),
    # Unhashable keys and non-iterable tag values: Python's TypeError before the validators ran.
    "tag-list-key": (lambda r: r.tag(["a"], "x"), ValidationError, ["['a']", "string"]),
    "tag-dict-key": (lambda r: r.tag({"a": 1}), ValidationError, ["{'a': 1}", "string"]),
    "log-list-name": (lambda r: r.log(["m"], 1.0), ValidationError, ["['m']", "string"]),
    "log-list-list-name": (lambda r: r.log_list(["m"], [1]), ValidationError, ["['m']"]),
    "log-row-list-name": (lambda r: r.log_row(["m"], x=1), ValidationError, ["['m']"]),
    "log-table-list-name": (lambda r: r.log_table(["m"], {"x": [1]}), ValidationError,
                            ["['m']"]),
    "children-values-int": (lambda r: r.create_children(tag_key="k", tag_values=5),
                            ValidationError, ["tag_values", "int"]),
    "children-values-dict": (lambda r: r.create_children(tag_key="k", tag_values={"a": 1}),
                             ValidationError, ["tag_values", "dict"]),
    "children-list-key": (lambda r: r.create_children(tag_key=["k"], tag_values=[1]),
                          ValidationError, ["['k']"]),
}

# Errors whose message cannot name the run: the run id itself is missing (empty child id).
NO_RUN_ID_IN_MESSAGE = {"child-empty-id", "child-empty-name", "child-huge-name",
                        "child-int-name"}


def check_on_a_stored_run(ws: Workspace, exp: Experiment, case: str) -> None:
    call, error, words = RUN_CASES[case]
    run = exp.start_logging()
    run.tag("before", "1")
    run.add_properties({"a": "1"})
    before = event_count(ws)
    with pytest.raises(LedgerError) as caught:
        call(run)
    assert isinstance(caught.value, error), repr(caught.value)
    message = str(caught.value)
    if case not in NO_RUN_ID_IN_MESSAGE:
        assert run.id in message, message
    for word in words:
        assert word in message, (word, message)
    assert event_count(ws) == before
    assert run.get_tags() == {"before": "1"}
    assert run.get_properties() == {"a": "1"}
    assert run.get_metrics() == {}


def check_on_a_buffered_run(ws: Workspace, exp: Experiment, case: str) -> None:
    """The run is not stored yet when the bad call comes: it is stored later without it."""
    call, error, _words = RUN_CASES[case]
    run = exp.start_logging()
    with pytest.raises(error):
        call(run)
    assert run_event_kinds(ws, run.id) == ["Created", "StatusChanged"]
    assert run.get_metrics() == {}
    assert run.get_status() == "Running"


@CASE_BY_CASE
@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_bad_call_on_a_stored_run(ws: Workspace, exp: Experiment, case: str) -> None:
    check_on_a_stored_run(ws, exp, case)


@CASE_BY_CASE
@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_bad_call_on_a_run_still_buffered(ws: Workspace, exp: Experiment, case: str) -> None:
    check_on_a_buffered_run(ws, exp, case)


@SWEEP_BACKENDS
def test_every_bad_call_on_the_stores(ws: Workspace, exp: Experiment) -> None:
    sweep(sorted(RUN_CASES), lambda case: check_on_a_stored_run(ws, exp, case))
    sweep(sorted(RUN_CASES), lambda case: check_on_a_buffered_run(ws, exp, case))


# ------------------------------------------------------------------ unknown ids, bad names
RUN_IDS: dict[str, Any] = {"name": "no-such-run", "empty": "",
                           "uuid": "01a21fcf-20be-7521-b4c5-0cc59e879826", "huge": HUGE,
                           "int": 5, "none": None}
EXPERIMENT_NAMES: dict[str, Any] = {"empty": "", "blank": "   ", "huge": HUGE, "int": 5,
                                    "none": None}
START_ARGUMENTS: dict[str, dict[str, Any]] = {
    "display-empty": {"display_name": ""}, "display-huge": {"display_name": HUGE},
    "description-int": {"description": 5}, "id-empty": {"run_id": ""},
    "id-huge": {"run_id": HUGE}, "tags-list": {"tags": ["a"]}, "tags-int-key": {"tags": {5: "x"}},
}


def check_run_id(ws: Workspace, exp: Experiment, case: str) -> None:
    run_id = RUN_IDS[case]
    before = event_count(ws)
    with pytest.raises(LedgerError) as caught:
        Run.get(ws, run_id)
    if isinstance(run_id, str) and run_id:
        assert isinstance(caught.value, RunNotFoundError)
        assert run_id[:40] in str(caught.value)
    with pytest.raises(LedgerError):
        Run(exp, run_id)
    assert event_count(ws) == before


def check_experiment_name(ws: Workspace, case: str) -> None:
    before = event_count(ws)
    with pytest.raises(ValidationError, match="experiment name"):
        Experiment(workspace=ws, name=EXPERIMENT_NAMES[case])
    assert event_count(ws) == before


def check_start_arguments(ws: Workspace, exp: Experiment, case: str) -> None:
    before = event_count(ws)
    with pytest.raises(ValidationError):
        exp.start_logging(**START_ARGUMENTS[case])
    assert event_count(ws) == before


@CASE_BY_CASE
@pytest.mark.parametrize("case", sorted(RUN_IDS))
def test_unknown_or_invalid_run_ids(ws: Workspace, exp: Experiment, case: str) -> None:
    exp.start_logging()
    check_run_id(ws, exp, case)


@CASE_BY_CASE
@pytest.mark.parametrize("case", sorted(EXPERIMENT_NAMES))
def test_bad_experiment_names(ws: Workspace, case: str) -> None:
    check_experiment_name(ws, case)


@CASE_BY_CASE
@pytest.mark.parametrize("case", sorted(START_ARGUMENTS))
def test_bad_start_logging_arguments(ws: Workspace, exp: Experiment, case: str) -> None:
    check_start_arguments(ws, exp, case)


@SWEEP_BACKENDS
def test_bad_ids_names_and_arguments_on_the_stores(ws: Workspace, exp: Experiment) -> None:
    exp.start_logging()
    sweep(sorted(RUN_IDS), lambda case: check_run_id(ws, exp, case))
    sweep(sorted(EXPERIMENT_NAMES), lambda case: check_experiment_name(ws, case))
    sweep(sorted(START_ARGUMENTS), lambda case: check_start_arguments(ws, exp, case))


@pytest.mark.parametrize("reuse", ["child_run", "start_logging"])
def test_a_run_id_in_use_is_refused_and_the_ledger_keeps_working(
        ws: Workspace, exp: Experiment, reuse: str) -> None:
    """A run id names one run. Reusing it is refused (at the call, or at the latest when the
    buffered run is flushed) with a ``LedgerError`` naming the id, and nothing else is lost:
    the runs created afterwards are still stored."""
    parent = exp.start_logging()
    parent.child_run(run_id="fixed-id")
    ws.flush()
    before = event_count(ws)
    try:
        with pytest.raises(LedgerError, match="fixed-id"):
            if reuse == "child_run":
                parent.child_run(run_id="fixed-id")
            else:
                exp.start_logging(run_id="fixed-id")
            ws.flush()
        assert event_count(ws) == before
        later = exp.start_logging()
        later.tag("still", "stored")
        ws.flush()
        assert Run.get(ws, later.id).get_tags() == {"still": "stored"}
        assert Run.get(ws, "fixed-id").parent.id == parent.id
    finally:
        ws._session._unpublished.clear()  # a failed case leaves writes no flush can store
