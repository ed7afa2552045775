"""Properties are immutable, tags are mutable, and both have an audit trail.

The issue's example lines run exactly as written; a conflicting property raises
``PropertyImmutableError`` naming the run, the key, the recorded and the attempted value, and
nothing of that call is written (not even its other keys), whether the run is already stored or
still buffered in this process. Tags merge, can be removed, may have no value, and non-string
values are stored as strings. ``get_history()`` shows every change with its time, actor and kind.
"""

from __future__ import annotations

import os
import socket

import pytest
from ledger_contract import event_count, run_event_kinds, stored_state

import ledger
from ledger import Experiment, PropertyImmutableError, Run, Workspace


def test_issue_example_lines(exp: Experiment, capsys: pytest.CaptureFixture[str]) -> None:
    with exp.start_logging() as run:
        run.log("loss", 0.25, step=1)

    run.add_properties({"author": "azureml-user"})
    with pytest.raises(PropertyImmutableError):
        run.add_properties({"author": "different-user"})   # raises, writes nothing
    run.tag("quality", "great run"); run.tag("quality", "fantastic run"); run.tag("worth another look")  # noqa: E501, E702
    print(run.get_tags())   # {'quality': 'fantastic run', 'worth another look': None}
    print(ledger.VERSION)

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "{'quality': 'fantastic run', 'worth another look': None}"
    assert out[1] == ledger.__version__
    assert run.get_properties() == {"author": "azureml-user"}


# ------------------------------------------------------------------ properties
def test_properties_are_recorded(exp: Experiment, reader) -> None:
    run = exp.start_logging()
    run.add_properties({"author": "azureml-user", "dataset": "v2"})
    run.add_properties({"seed": "7"})
    assert run.get_properties() == {"author": "azureml-user", "dataset": "v2", "seed": "7"}
    assert run.properties == run.get_properties()
    assert stored_state(reader(), run.id)["properties"] == run.get_properties()


def test_conflicting_property_error_names_everything(exp: Experiment) -> None:
    run = exp.start_logging()
    run.add_properties({"author": "azureml-user"})
    with pytest.raises(PropertyImmutableError) as caught:
        run.add_properties({"author": "different-user"})
    error = caught.value
    assert isinstance(error, ledger.LedgerError)
    for part in (run.id, "author", "azureml-user", "different-user"):
        assert part in str(error)
    assert (error.run_id, error.key, error.recorded, error.attempted) == (
        run.id, "author", "azureml-user", "different-user")


def test_conflicting_property_writes_nothing_of_the_call(ws: Workspace, exp: Experiment,
                                                          reader) -> None:
    run = exp.start_logging()
    run.add_properties({"author": "azureml-user"})
    before = event_count(ws)
    with pytest.raises(PropertyImmutableError):
        run.add_properties({"new-key": "x", "author": "different-user", "other": "y"})
    assert event_count(ws) == before
    assert run.get_properties() == {"author": "azureml-user"}
    assert stored_state(reader(), run.id)["properties"] == {"author": "azureml-user"}


def test_conflict_on_a_run_not_yet_stored_writes_nothing(ws: Workspace,
                                                          exp: Experiment) -> None:
    """The run and its first property are still buffered in this process when the conflict
    comes: the run is stored later without any part of the refused call."""
    run = exp.start_logging()
    run.add_properties({"author": "azureml-user"})
    with pytest.raises(PropertyImmutableError):
        run.add_properties({"new-key": "x", "author": "different-user"})
    assert run_event_kinds(ws, run.id) == ["Created", "StatusChanged", "PropertiesAdded"]
    assert run.get_properties() == {"author": "azureml-user"}


def test_conflict_through_another_run_object(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.add_properties({"author": "azureml-user"})
    other = Run.get(ws, run.id)
    before = event_count(ws)
    with pytest.raises(PropertyImmutableError, match="different-user"):
        other.add_properties({"author": "different-user", "x": "1"})
    assert event_count(ws) == before
    assert run.get_properties() == {"author": "azureml-user"}


def test_same_value_again_is_a_no_op(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.add_properties({"author": "azureml-user", "n": 5})
    before = event_count(ws)
    run.add_properties({"author": "azureml-user"})
    run.add_properties({"n": "5"})
    run.add_properties({"n": 5})
    run.add_properties({})
    assert event_count(ws) == before
    assert run.get_properties() == {"author": "azureml-user", "n": "5"}


def test_same_value_with_a_new_key_adds_only_the_new_key(exp: Experiment) -> None:
    run = exp.start_logging()
    run.add_properties({"author": "azureml-user"})
    run.add_properties({"author": "azureml-user", "team": "vision"})
    assert run.get_properties() == {"author": "azureml-user", "team": "vision"}
    changes = [e.payload for e in run.get_history() if e.kind == "PropertiesAdded"]
    assert changes == [{"properties": {"author": "azureml-user"}},
                       {"properties": {"team": "vision"}}]


def test_property_values_are_stored_as_strings(exp: Experiment) -> None:
    run = exp.start_logging()
    run.add_properties({"int": 1, "float": 0.5, "bool": True, "none": None})
    assert run.get_properties() == {"int": "1", "float": "0.5", "bool": "True", "none": None}


# ------------------------------------------------------------------ tags
def test_tag_and_retag(exp: Experiment) -> None:
    run = exp.start_logging()
    run.tag("quality", "great run")
    assert run.get_tags() == {"quality": "great run"}
    run.tag("quality", "fantastic run")
    assert run.get_tags() == {"quality": "fantastic run"}


def test_valueless_tag_is_none(exp: Experiment) -> None:
    run = exp.start_logging()
    run.tag("worth another look")
    assert run.get_tags() == {"worth another look": None}
    run.tag("worth another look", "now with a value")
    assert run.get_tags() == {"worth another look": "now with a value"}
    run.tag("worth another look", None)
    assert run.get_tags() == {"worth another look": None}


def test_set_tags_merges(exp: Experiment) -> None:
    run = exp.start_logging()
    run.set_tags({"a": "1", "b": "2"})
    run.set_tags({"b": "20", "c": "3"})
    assert run.get_tags() == {"a": "1", "b": "20", "c": "3"}
    assert run.tags == run.get_tags()


def test_remove_tags(exp: Experiment) -> None:
    run = exp.start_logging()
    run.set_tags({"a": "1", "b": "2", "c": None})
    run.remove_tags(["a", "c", "never-set"])
    assert run.get_tags() == {"b": "2"}
    run.remove_tags(["b"])
    assert run.get_tags() == {}


def test_removing_absent_tags_writes_nothing(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.tag("a")
    before = event_count(ws)
    run.remove_tags(["missing"])
    run.tag("a")  # unchanged
    assert event_count(ws) == before


def test_non_string_tag_values_are_stored_as_strings(exp: Experiment, reader) -> None:
    run = exp.start_logging()
    run.set_tags({"int": 1, "float": 0.25, "bool": False, "none": None, "list": [1, 2]})
    expected = {"int": "1", "float": "0.25", "bool": "False", "none": None, "list": "[1, 2]"}
    assert run.get_tags() == expected
    run.tag("epoch", 3)
    assert run.get_tags()["epoch"] == "3"
    assert stored_state(reader(), run.id)["tags"] == {**expected, "epoch": "3"}


def test_tags_are_stored(exp: Experiment, reader) -> None:
    run = exp.start_logging()
    run.tag("quality", "great run")
    run.tag("quality", "fantastic run")
    run.tag("worth another look")
    run.set_tags({"x": "1"})
    run.remove_tags(["x"])
    assert stored_state(reader(), run.id)["tags"] == {
        "quality": "fantastic run", "worth another look": None}


# ------------------------------------------------------------------ audit trail
def test_history_shows_both_tag_changes(exp: Experiment) -> None:
    run = exp.start_logging()
    run.tag("quality", "great run")
    run.tag("quality", "fantastic run")
    history = run.get_history()
    tag_changes = [e for e in history if e.kind == "TagsSet"]
    assert [e.payload["tags"] for e in tag_changes] == [
        {"quality": "great run"}, {"quality": "fantastic run"}]
    first, second = tag_changes
    assert first.time.tzinfo is not None
    assert first.time <= second.time
    for entry in tag_changes:
        assert entry.actor.pid == os.getpid()
        assert entry.actor.host == socket.gethostname()
        assert entry.actor.user == run.get_details()["submittedBy"]
        assert entry.actor.user


def test_history_is_in_order_and_complete(exp: Experiment) -> None:
    run = exp.start_logging()
    run.add_properties({"author": "azureml-user"})
    run.tag("quality", "great run")
    run.remove_tags(["quality"])
    run.display_name = "shown"
    run.log("m", 1)
    run.complete()
    history = run.get_history()
    kinds = [e.kind for e in history]
    assert kinds[:2] == ["Created", "StatusChanged"]
    assert kinds[-1] == "Completed"
    assert kinds.count("MetricsLogged") == 1
    assert [k for k in kinds if k != "MetricsLogged"] == [
        "Created", "StatusChanged", "PropertiesAdded", "TagsSet", "TagsRemoved",
        "DisplayNameChanged", "Completed"]
    times = [e.time for e in history]
    assert times == sorted(times)
    assert history[0].payload["experiment_name"] == "contract"
    as_dict = history[3].as_dict()
    assert as_dict["kind"] == "TagsSet" and as_dict["time"].endswith("Z")
    assert set(as_dict["actor"]) == {"user", "host", "pid", "server_role"}


def test_history_of_a_loaded_run(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.tag("quality", "great run")
    run.tag("quality", "fantastic run")
    kinds = [e.kind for e in Run.get(ws, run.id).get_history()]
    assert kinds == ["Created", "StatusChanged", "TagsSet", "TagsSet"]
