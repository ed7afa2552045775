"""Run lifecycle contract: statuses, the transition table, ending a run, details, loading a run.

What users rely on: a run from ``start_logging()`` is Running; ``complete()``, ``fail()`` and
``cancel()`` end it once; a refused transition raises ``InvalidTransitionError`` naming the run and
both statuses and writes nothing; a ``with`` block ends the run the way the seed SDK does; an
ended run refuses new metrics (``RunFinishedError``) but still takes tags and properties;
``get_details()`` has the seed SDK's keys and ``Z`` times; runs load by id from any experiment
object or workspace, and an unknown id raises ``RunNotFoundError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import pytest
from ledger_contract import event_count, run_event_kinds, stored_state

from ledger import (
    Experiment,
    InvalidTransitionError,
    LedgerError,
    Run,
    RunFinishedError,
    RunNotFoundError,
    RunStatus,
    Workspace,
)
from ledger.domain.status import TERMINAL_STATUSES, TRANSITIONS

END_ACTIONS: dict[str, Callable[[Run], None]] = {
    "complete": lambda run: run.complete(),
    "fail": lambda run: run.fail("boom"),
    "cancel": lambda run: run.cancel(),
}
ENDED_STATUS = {"complete": "Completed", "fail": "Failed", "cancel": "Canceled"}


def parse_utc(text: str) -> datetime:
    """Parse an ISO-8601 time that must end in ``Z``."""
    assert text.endswith("Z"), text
    moment = datetime.fromisoformat(text[:-1] + "+00:00")
    assert moment.tzinfo is not None
    return moment


# ------------------------------------------------------------------ statuses
def test_start_logging_returns_a_running_run(exp: Experiment) -> None:
    run = exp.start_logging()
    assert run.get_status() == "Running"
    assert run.status == RunStatus.RUNNING


def test_status_names_are_the_seed_sdks() -> None:
    assert {s.value for s in RunStatus} == {
        "NotStarted", "Queued", "Preparing", "Starting", "Running", "Finalizing",
        "CancelRequested", "Completed", "Failed", "Canceled", "NotResponding"}
    assert RunStatus("Completed") == "Completed"


def test_transition_table_ends_are_final_and_complete_needs_work_done() -> None:
    assert set(TRANSITIONS) == set(RunStatus)
    for status in TERMINAL_STATUSES:
        assert TRANSITIONS[status] == frozenset()
    for status, following in TRANSITIONS.items():
        if status not in TERMINAL_STATUSES:
            assert RunStatus.FAILED in following, status
            assert RunStatus.CANCELED in following or status is RunStatus.CANCELED, status
    completable = {s for s, following in TRANSITIONS.items() if RunStatus.COMPLETED in following}
    assert completable == {RunStatus.RUNNING, RunStatus.NOT_RESPONDING, RunStatus.FINALIZING}


def test_ending_an_ended_run_is_refused_and_writes_nothing(ws: Workspace,
                                                          exp: Experiment) -> None:
    """Every (first end, second end) pair: the second is refused, naming run and statuses."""
    for first in sorted(END_ACTIONS):
        for second in sorted(END_ACTIONS):
            run = exp.start_logging()
            END_ACTIONS[first](run)
            before = event_count(ws)
            with pytest.raises(InvalidTransitionError) as caught:
                END_ACTIONS[second](run)
            message = str(caught.value)
            assert run.id in message, (first, second)
            assert ENDED_STATUS[first] in message, (first, second)
            assert ENDED_STATUS[second] in message, (first, second)
            assert caught.value.run_id == run.id
            assert caught.value.current == ENDED_STATUS[first]
            assert caught.value.requested == ENDED_STATUS[second]
            assert event_count(ws) == before, (first, second)
            assert run.get_status() == ENDED_STATUS[first]


def test_complete_a_canceled_run_names_run_and_both_statuses(
        ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.cancel()
    kinds = run_event_kinds(ws, run.id)
    with pytest.raises(InvalidTransitionError,
                       match=rf"{re.escape(run.id)}.*Canceled.*Completed"):
        run.complete()
    assert run_event_kinds(ws, run.id) == kinds
    assert isinstance(InvalidTransitionError("r", "a", "b"), LedgerError)


def test_refused_end_on_a_run_loaded_elsewhere_writes_nothing(
        ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.complete()
    again = Run.get(ws, run.id)
    before = event_count(ws)
    with pytest.raises(InvalidTransitionError):
        again.cancel()
    assert event_count(ws) == before


def test_set_status_follows_the_table(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.set_status("Finalizing")
    assert run.get_status() == "Finalizing"
    before = event_count(ws)
    with pytest.raises(InvalidTransitionError, match=r"Finalizing.*Queued"):
        run.set_status("Queued")
    assert event_count(ws) == before
    run.complete()
    assert run.get_status() == "Completed"


def test_not_responding_run_can_recover(exp: Experiment) -> None:
    run = exp.start_logging()
    run.set_status(RunStatus.NOT_RESPONDING)
    run.set_status(RunStatus.RUNNING)
    run.log("x", 1)
    run.complete()
    assert run.get_status() == "Completed"


def test_cancel_requested_run_cannot_complete(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.request_cancel()
    assert run.get_status() == "CancelRequested"
    before = event_count(ws)
    with pytest.raises(InvalidTransitionError, match="CancelRequested"):
        run.complete()
    assert event_count(ws) == before
    run.cancel()
    assert run.get_status() == "Canceled"


# ------------------------------------------------------------------ fail()
def test_fail_with_a_string(exp: Experiment) -> None:
    run = exp.start_logging()
    run.fail("the data was bad")
    assert run.get_status() == "Failed"
    assert run.get_details()["error"]["error"] == {"code": "UserError",
                                                   "message": "the data was bad"}


def test_fail_with_an_exception(exp: Experiment) -> None:
    run = exp.start_logging()
    run.fail(ValueError("boom"))
    error = run.get_details()["error"]["error"]
    assert error["code"] == "UserError"
    assert error["message"] == "User program failed with ValueError: boom"


def test_fail_with_nothing(exp: Experiment) -> None:
    run = exp.start_logging()
    run.fail()
    error = run.get_details()["error"]["error"]
    assert error["code"] == "UserError"
    assert isinstance(error["message"], str) and error["message"]


def test_fail_with_an_error_code(exp: Experiment) -> None:
    run = exp.start_logging()
    run.fail("out of memory", error_code="OOM")
    assert run.get_details()["error"]["error"] == {"code": "OOM", "message": "out of memory"}


def test_failure_is_stored(ws: Workspace, exp: Experiment, reader) -> None:
    run = exp.start_logging()
    run.fail(KeyError("k"), error_code="E1")
    state = stored_state(reader(), run.id)
    assert state["status"] == "Failed"
    assert state["error"]["code"] == "E1"
    assert state["error"]["message"].startswith("User program failed with KeyError")


# ------------------------------------------------------------------ with blocks
def test_with_block_completes_on_normal_exit(exp: Experiment) -> None:
    with exp.start_logging() as run:
        run.log("loss", 0.25, step=1)
        assert run.get_status() == "Running"
    assert run.get_status() == "Completed"
    assert run.get_metrics() == {"loss": 0.25}


def test_with_block_fails_on_exception_and_reraises(exp: Experiment) -> None:
    with pytest.raises(ZeroDivisionError), exp.start_logging() as run:
        1 / 0  # noqa: B018
    assert run.get_status() == "Failed"
    error = run.get_details()["error"]["error"]
    assert "ZeroDivisionError" in error["message"]
    assert "division by zero" in error["message"]


def test_with_block_cancels_on_keyboard_interrupt(exp: Experiment) -> None:
    with pytest.raises(KeyboardInterrupt), exp.start_logging() as run:
        raise KeyboardInterrupt
    assert run.get_status() == "Canceled"


def test_with_block_completes_on_sys_exit_zero(exp: Experiment) -> None:
    with pytest.raises(SystemExit), exp.start_logging() as run:
        raise SystemExit(0)
    assert run.get_status() == "Completed"


def test_with_block_fails_on_sys_exit_nonzero(exp: Experiment) -> None:
    with pytest.raises(SystemExit), exp.start_logging() as run:
        raise SystemExit(3)
    assert run.get_status() == "Failed"


def test_with_block_leaves_a_run_ended_inside_as_it_is(exp: Experiment) -> None:
    with exp.start_logging() as run:
        run.fail("decided inside")
    assert run.get_status() == "Failed"
    with exp.start_logging() as other:
        other.cancel()
    assert other.get_status() == "Canceled"


def test_with_block_flushes_metrics(ws: Workspace, exp: Experiment, reader) -> None:
    with exp.start_logging() as run:
        for i in range(10):
            run.log("x", i)
    assert stored_state(reader(), run.id)["metrics"] == {"x": list(range(10))}


# ------------------------------------------------------------------ ended runs
def test_logging_into_an_ended_run_is_refused(ws: Workspace, exp: Experiment) -> None:
    for action in sorted(END_ACTIONS):
        run = exp.start_logging()
        END_ACTIONS[action](run)
        before = event_count(ws)
        calls = [
            lambda run=run: run.log("x", 1),
            lambda run=run: run.log_list("x", [1, 2]),
            lambda run=run: run.log_row("x", a=1),
            lambda run=run: run.log_table("x", {"a": [1]}),
            lambda run=run: run.child_run(),
        ]
        for call in calls:
            with pytest.raises(RunFinishedError) as caught:
                call()
            assert run.id in str(caught.value)
            assert ENDED_STATUS[action] in str(caught.value)
        assert event_count(ws) == before
        assert run.get_metrics() == {}


def test_tags_and_properties_on_finished_runs_are_allowed(exp: Experiment, reader) -> None:
    run = exp.start_logging()
    run.complete()
    run.tag("reviewed", "yes")
    run.set_tags({"quality": "fantastic run"})
    run.remove_tags(["reviewed"])
    run.add_properties({"author": "azureml-user"})
    run.display_name = "after the fact"
    run.description = "written later"
    assert run.get_tags() == {"quality": "fantastic run"}
    assert run.get_properties() == {"author": "azureml-user"}
    state = stored_state(reader(), run.id)
    assert state["status"] == "Completed"
    assert state["tags"] == {"quality": "fantastic run"}
    assert state["properties"] == {"author": "azureml-user"}
    assert state["display_name"] == "after the fact"
    assert state["description"] == "written later"


# ------------------------------------------------------------------ details
def test_details_while_running(exp: Experiment) -> None:
    run = exp.start_logging()
    run.add_properties({"p": "1"})
    run.tag("t")
    details = run.get_details()
    assert details["runId"] == run.id
    assert details["target"] == "local"
    assert details["status"] == "Running"
    assert details["properties"] == {"p": "1"}
    assert details["tags"] == {"t": None}
    assert isinstance(details["submittedBy"], str) and details["submittedBy"]
    parse_utc(details["startTimeUtc"])
    assert "endTimeUtc" not in details
    assert "error" not in details
    assert None not in details.values()


def test_details_once_ended(exp: Experiment) -> None:
    run = exp.start_logging()
    run.complete()
    details = run.get_details()
    assert details["status"] == "Completed"
    start = parse_utc(details["startTimeUtc"])
    end = parse_utc(details["endTimeUtc"])
    assert start <= end
    assert "error" not in details


def test_details_of_a_failed_run_have_the_error(exp: Experiment) -> None:
    run = exp.start_logging()
    run.fail("bad", error_code="Bad")
    details = run.get_details()
    assert details["error"]["error"] == {"code": "Bad", "message": "bad"}
    assert details["error"]["time"] == details["endTimeUtc"]  # the seed's error response
    parse_utc(details["endTimeUtc"])


def test_display_name_in_details(exp: Experiment) -> None:
    run = exp.start_logging(display_name="first try")
    assert run.display_name == "first try"
    assert run.get_details()["displayName"] == "first try"
    run.display_name = "second try"
    assert run.get_details()["displayName"] == "second try"


def test_identity(exp: Experiment) -> None:
    run = exp.start_logging()
    assert run.name == f"run_{run.id}"
    assert run.experiment.name == "contract"
    assert run.type == "experiment_run"
    assert run.parent is None
    other = exp.start_logging()
    assert other.id != run.id


def test_repr(exp: Experiment) -> None:
    run = exp.start_logging()
    assert repr(run) == (f"Run(Experiment: contract,\nId: {run.id},\nType: experiment_run,\n"
                         "Status: Running)")
    run.complete()
    assert repr(run).endswith("Status: Completed)")
    assert repr(exp) == "Experiment(Name: contract,\nWorkspace: default)"


# ------------------------------------------------------------------ loading
def test_run_loads_by_experiment_and_id(exp: Experiment) -> None:
    run = exp.start_logging()
    run.tag("k", "v")
    run.add_properties({"p": "q"})
    run.log("m", 2.5)
    run.complete()
    loaded = Run(exp, run.id)
    assert loaded.id == run.id
    assert loaded.get_status() == "Completed"
    assert loaded.get_tags() == {"k": "v"}
    assert loaded.get_properties() == {"p": "q"}
    assert loaded.get_metrics() == {"m": 2.5}
    assert loaded == run


def test_run_get_loads_from_the_workspace(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    loaded = Run.get(ws, run.id)
    assert loaded.get_status() == "Running"
    assert loaded.experiment.name == "contract"
    loaded.tag("from", "loaded")
    assert run.get_tags() == {"from": "loaded"}
    loaded.complete()
    assert run.get_status() == "Completed"


def test_a_run_loads_with_a_new_experiment_object(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    same = Experiment(workspace=ws, name="contract")
    assert Run(same, run.id).get_status() == "Running"


def test_unknown_run_id_raises_run_not_found(ws: Workspace, exp: Experiment) -> None:
    with pytest.raises(RunNotFoundError, match="no-such-run"):
        Run.get(ws, "no-such-run")
    with pytest.raises(RunNotFoundError, match="no-such-run"):
        Run(exp, "no-such-run")
    with pytest.raises(RunNotFoundError):
        Run.get(ws, "01a21fcf-20be-7521-b4c5-0cc59e879826")


def test_run_of_another_experiment_is_not_found_there(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    other = Experiment(workspace=ws, name="another")
    with pytest.raises(RunNotFoundError, match=re.escape(run.id)):
        Run(other, run.id)


def test_other_workspace_objects_on_the_store_see_the_runs(store_url: str, ws: Workspace,
                                                           exp: Experiment) -> None:
    """A second ``Workspace`` on the same URL sees the runs; ``memory://`` is a new, empty
    ledger each time it is opened."""
    run = exp.start_logging()
    run.complete()
    again = Workspace(store=store_url)
    if store_url == "memory://":
        with pytest.raises(RunNotFoundError):
            Run.get(again, run.id)
    else:
        assert Run.get(again, run.id).get_status() == "Completed"
