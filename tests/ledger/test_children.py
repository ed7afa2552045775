"""Child runs: ``child_run()``, ``create_children()`` and the queries across runs.

Users rely on: a child run is Running, knows its parent (``child.parent.id``) and ends with its
``with`` block; ``create_children()`` creates every child in **one** atomic write (one
transaction, so another reader sees all of them or none), tags them as the seed SDK does, and
refuses the seed SDK's bad argument combinations without writing anything. ``get_children()``,
``get_runs()`` and ``number`` come from the query index (the projections package).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ledger_contract import (
    CASE_BY_CASE,
    SWEEP_BACKENDS,
    event_count,
    stored_state,
    sweep,
)

from ledger import Experiment, Run, RunFinishedError, ValidationError, Workspace

CREATED_TOPIC = "runledger:Run.Created"


@pytest.fixture
def transactions(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """The topics of the events of every transaction the ledger writes from now on.

    eventsourcing's recorders write each ``insert_events`` call in one transaction.
    """
    recorder: Any = ws.ledger.application.recorder
    seen: list[list[str]] = []
    original = recorder.insert_events

    def counting(stored_events: Any, **kwargs: Any) -> Any:
        seen.append([e.topic for e in stored_events])
        return original(stored_events, **kwargs)

    monkeypatch.setattr(recorder, "insert_events", counting)
    yield seen


# ------------------------------------------------------------------ child_run
def test_child_run_is_running_and_knows_its_parent(exp: Experiment) -> None:
    parent = exp.start_logging()
    child = parent.child_run()
    assert child.get_status() == "Running"
    assert child.parent is not None
    assert child.parent.id == parent.id
    assert child.get_details()["parentRunId"] == parent.id
    assert parent.parent is None
    assert child.id != parent.id
    assert child.experiment.name == parent.experiment.name


def test_child_run_as_context_manager(exp: Experiment, reader) -> None:
    with exp.start_logging() as parent_run:
        for c, _count in enumerate(range(5)):
            with parent_run.child_run() as child:
                child.log(name="Hello from child run", value=c)
            assert child.get_status() == "Completed"
            assert child.get_metrics() == {"Hello from child run": c}
    app = reader()
    assert stored_state(app, child.id)["parent"] == parent_run.id
    assert stored_state(app, child.id)["status"] == "Completed"
    assert stored_state(app, parent_run.id)["status"] == "Completed"


def test_child_run_name_and_id(ws: Workspace, exp: Experiment) -> None:
    parent = exp.start_logging()
    child = parent.child_run(name="fold-1", run_id="my-fold-1")
    assert child.id == "my-fold-1"
    assert child.name == "fold-1"
    assert Run.get(ws, "my-fold-1").parent.id == parent.id


def test_grandchildren_know_their_parents(ws: Workspace, exp: Experiment) -> None:
    root = exp.start_logging()
    child = root.child_run()
    grandchild = child.child_run()
    loaded = Run.get(ws, grandchild.id)
    assert loaded.parent.id == child.id
    assert loaded.parent.parent.id == root.id
    assert loaded.parent.parent.parent is None


def test_child_run_of_an_ended_run_is_refused(ws: Workspace, exp: Experiment) -> None:
    parent = exp.start_logging()
    parent.complete()
    before = event_count(ws)
    with pytest.raises(RunFinishedError, match=parent.id):
        parent.child_run()
    with pytest.raises(RunFinishedError, match=parent.id):
        parent.create_children(count=2)
    assert event_count(ws) == before


def test_child_of_a_failed_child(exp: Experiment) -> None:
    parent = exp.start_logging()
    with pytest.raises(RuntimeError), parent.child_run() as child:
        raise RuntimeError("child broke")
    assert child.get_status() == "Failed"
    assert parent.get_status() == "Running"


# ------------------------------------------------------------------ create_children
def test_create_children_with_count(exp: Experiment) -> None:
    parent = exp.start_logging()
    children = parent.create_children(count=3)
    assert len(children) == 3
    assert [c.get_tags() for c in children] == [
        {"azureml.batch_child_number": str(i)} for i in range(3)]
    for child in children:
        assert child.get_status() == "Running"
        assert child.parent.id == parent.id
    assert len({c.id for c in children}) == 3


def test_create_children_with_tag_values(ws: Workspace, exp: Experiment, reader) -> None:
    parent = exp.start_logging()
    children = parent.create_children(tag_key="fruit", tag_values=["Apple", "Banana", 3])
    assert [c.get_tags() for c in children] == [
        {"fruit": "Apple"}, {"fruit": "Banana"}, {"fruit": "3"}]
    app = reader()
    assert [stored_state(app, c.id)["tags"] for c in children] == [
        {"fruit": "Apple"}, {"fruit": "Banana"}, {"fruit": "3"}]


def test_create_1000_children_in_one_transaction(ws: Workspace, exp: Experiment,
                                                 transactions: list[list[str]]) -> None:
    parent = exp.start_logging()
    ws.flush()
    transactions.clear()
    before = ws.ledger.application.max_position()
    children = parent.create_children(count=1000)
    assert len(children) == 1000
    with_children = [t for t in transactions if CREATED_TOPIC in t]
    assert len(with_children) == 1, [len(t) for t in transactions]
    assert with_children[0].count(CREATED_TOPIC) == 1000
    # The children's events sit side by side in the log, nothing else among them.
    app = ws.ledger.application
    after = app.max_position()
    notifications = app.read_log(before, limit=after - before + 1)
    created = [n.id for n in notifications if n.topic == CREATED_TOPIC]
    assert len(created) == 1000
    assert all(n.originator_id in {c._agg.id for c in children} for n in notifications)
    assert children[999].get_tags() == {"azureml.batch_child_number": "999"}
    assert children[0].parent.id == parent.id


def test_create_children_stays_atomic_with_a_busy_background_flusher(
        monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    """A service that flushes often (``RUNLEDGER_FLUSH_INTERVAL``) must still get all its
    children in one transaction, never half of them."""
    monkeypatch.setenv("RUNLEDGER_FLUSH_INTERVAL", "0.001")
    ws = Workspace(store=store_url)
    parent = Experiment(ws, "busy").start_logging()
    ws.flush()
    recorder: Any = ws.ledger.application.recorder
    seen: list[int] = []
    original = recorder.insert_events

    def counting(stored_events: Any, **kwargs: Any) -> Any:
        seen.append(sum(1 for e in stored_events if e.topic == CREATED_TOPIC))
        return original(stored_events, **kwargs)

    monkeypatch.setattr(recorder, "insert_events", counting)
    try:
        for _ in range(3):
            seen.clear()
            parent.create_children(count=400)
            assert [n for n in seen if n] == [400]
    finally:
        ws.ledger.close()  # stop its busy flusher now (the session would outlive the test)


def test_create_children_of_an_unpublished_parent(ws: Workspace, exp: Experiment,
                                                  transactions: list[list[str]]) -> None:
    parent = exp.start_logging()
    children = parent.create_children(count=5)
    with_children = [t for t in transactions if CREATED_TOPIC in t]
    assert len(with_children) == 1
    assert with_children[0].count(CREATED_TOPIC) == 6  # the parent and its five children
    assert Run.get(ws, children[4].id).parent.id == parent.id


ARGUMENT_ERRORS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "neither": ({}, ["count", "tag_key"]),
    "key-without-values": ({"tag_key": "fruit"}, ["fruit", "tag_values"]),
    "values-without-key": ({"tag_values": ["a"]}, ["tag_key"]),
    "count-with-tags": ({"count": 2, "tag_key": "k", "tag_values": ["a"]}, ["not both"]),
    "count-with-key": ({"count": 2, "tag_key": "k"}, ["not both"]),
    "zero": ({"count": 0}, ["count"]),
    "negative": ({"count": -3}, ["count"]),
    "float": ({"count": 2.0}, ["count"]),
    "string": ({"count": "2"}, ["count"]),
    "bool": ({"count": True}, ["count"]),
    "values-string": ({"tag_key": "k", "tag_values": "abc"}, ["tag_values"]),
    "values-empty": ({"tag_key": "k", "tag_values": []}, ["tag_values"]),
}
BAD_TAGS: dict[str, tuple[Any, list[str]]] = {
    "value-too-long-last": ("k", ["ok", "fine", "x" * 9000]),
    "value-too-long-middle": ("k", ["ok", "fine", "x" * 9000, "never"]),
    "empty-key": ("", ["a", "b"]),
    "int-key": (5, ["a", "b"]),
}


def check_argument_error(ws: Workspace, exp: Experiment, case: str) -> None:
    kwargs, words = ARGUMENT_ERRORS[case]
    parent = exp.start_logging()
    before = event_count(ws)
    with pytest.raises(ValidationError) as caught:
        parent.create_children(**kwargs)
    message = str(caught.value)
    assert parent.id in message
    for word in words:
        assert word in message
    assert event_count(ws) == before


def check_bad_tag(ws: Workspace, exp: Experiment, case: str) -> None:
    """One bad tag refuses the whole batch: no child of it is ever written."""
    tag_key, tag_values = BAD_TAGS[case]
    parent = exp.start_logging()
    before = event_count(ws)
    with pytest.raises(ValidationError) as caught:
        parent.create_children(tag_key=tag_key, tag_values=tag_values)
    assert event_count(ws) == before, "children of a refused batch were written"
    assert parent.id in str(caught.value), "the error names a run the user never saw"


@CASE_BY_CASE
@pytest.mark.parametrize("case", sorted(ARGUMENT_ERRORS))
def test_create_children_argument_errors(ws: Workspace, exp: Experiment, case: str) -> None:
    check_argument_error(ws, exp, case)


@CASE_BY_CASE
@pytest.mark.parametrize("case", sorted(BAD_TAGS))
def test_create_children_with_a_bad_tag_writes_no_child(ws: Workspace, exp: Experiment,
                                                        case: str) -> None:
    check_bad_tag(ws, exp, case)


@SWEEP_BACKENDS
def test_create_children_errors_on_the_stores(ws: Workspace, exp: Experiment) -> None:
    sweep(sorted(ARGUMENT_ERRORS), lambda case: check_argument_error(ws, exp, case))
    sweep(sorted(BAD_TAGS), lambda case: check_bad_tag(ws, exp, case))


# ------------------------------------------------------------------ queries (projections)
def test_get_children(exp: Experiment) -> None:
    parent = exp.start_logging()
    made = [parent.child_run() for _ in range(3)]
    made += parent.create_children(count=2)
    grandchild = made[0].child_run()
    other = exp.start_logging()
    other.child_run()
    children = list(parent.get_children())
    assert {c.id for c in children} == {c.id for c in made}
    assert parent.id not in {c.id for c in children}
    assert {c.id for c in parent.get_children(recursive=True)} == (
        {c.id for c in made} | {grandchild.id})


def test_get_children_filters(exp: Experiment) -> None:
    parent = exp.start_logging()
    children = parent.create_children(tag_key="fruit", tag_values=["Apple", "Banana"])
    children[0].complete()
    assert [c.id for c in parent.get_children(tags={"fruit": "Apple"})] == [children[0].id]
    assert {c.id for c in parent.get_children(tags="fruit")} == {c.id for c in children}
    assert [c.id for c in parent.get_children(status="Completed")] == [children[0].id]


def test_get_children_newest_first(exp: Experiment) -> None:
    parent = exp.start_logging()
    first = parent.child_run()
    second = parent.child_run()
    third = parent.child_run()
    assert [c.id for c in parent.get_children()] == [third.id, second.id, first.id]


def test_get_runs_excludes_children_unless_asked(exp: Experiment) -> None:
    parent = exp.start_logging()
    child = parent.child_run()
    assert [r.id for r in exp.get_runs()] == [parent.id]
    assert {r.id for r in exp.get_runs(include_children=True)} == {parent.id, child.id}


def test_run_numbers_count_up_per_experiment(ws: Workspace, exp: Experiment) -> None:
    first = exp.start_logging()
    second = exp.start_logging()
    other = Experiment(ws, "other").start_logging()
    assert (first.number, second.number) == (1, 2)
    assert other.number == 1


def test_listed_runs_answer_from_the_index_without_replaying_their_events(
        ws: Workspace, exp: Experiment, monkeypatch: pytest.MonkeyPatch) -> None:
    # A query returns many runs of which callers (and the CLI's listing) read a few fields:
    # those come from the index row, made when first read; the run's events are not replayed.
    with exp.start_logging(display_name="parent") as parent:
        children = [parent.child_run(name=f"child-{i}") for i in range(3)]
        for child in children:
            child.tag("k", "v")
            child.complete()
    application = ws.ledger.application

    def no_replay(run_id: str) -> Any:
        raise AssertionError(f"run {run_id} was replayed")

    monkeypatch.setattr(application, "get_run", no_replay)
    from ledger.cli.access import listed_details

    listed = list(parent.get_children())
    assert [run.id for run in listed] == [child.id for child in reversed(children)]
    assert [run.name for run in listed] == ["child-2", "child-1", "child-0"]
    assert {run.type for run in listed} == {"experiment_run"}
    details = [listed_details(run) for run in listed]
    assert [d["runId"] for d in details] == [run.id for run in listed]
    assert {d["status"] for d in details} == {"Completed"}
    assert [run.name for run in exp.get_runs(include_children=True)][-1] == parent.name
    monkeypatch.undo()
    # Read beyond the row, a listed run is the run itself.
    assert listed[0].get_tags() == {"k": "v"}
    assert listed[0].get_status() == "Completed"
