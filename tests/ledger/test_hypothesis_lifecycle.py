"""Property-based lifecycle tests: any sequence of SDK calls, checked against a model and a
reopened ledger.

A hypothesis state machine drives runs through ``start_logging``, ``child_run``, ``log``,
``tag``, ``remove_tags``, ``add_properties`` (conflicting ones included), ``complete`` / ``fail`` /
``cancel`` and display-name changes, in any order and on runs in any status. It keeps a model of
what the seed SDK's semantics say each run must be. At checkpoints and at the end, the state seen
live, the state rebuilt by a *new* ``LedgerApplication`` on the same store (as another process
would) and the model must all agree, and each run's stream must hold exactly the events the
accepted calls imply: a refused call writes nothing, whether the run is already stored or still
buffered in this process.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    multiple,
    rule,
    run_state_machine_as_test,
)
from ledger_contract import event_count, live_state, open_reader, stored_state

from ledger import (
    Experiment,
    InvalidTransitionError,
    PropertyImmutableError,
    Run,
    RunFinishedError,
    ValidationError,
    Workspace,
)
from ledger.domain.ids import run_stream_id

TERMINAL = {"complete": "Completed", "fail": "Failed", "cancel": "Canceled"}
TAG_KEYS = st.sampled_from(["quality", "worth another look", "k"])
TAG_VALUES = st.sampled_from([None, "great run", "fantastic run", 1, 2.5, True])
PROPERTY_KEYS = st.sampled_from(["author", "seed", "data"])
PROPERTY_VALUES = st.sampled_from(["azureml-user", "different-user", 7, "7"])
METRIC_VALUES = st.one_of(st.integers(-(2**31), 2**31), st.booleans(), st.text(max_size=5),
                          st.floats(allow_nan=False, width=64))


def stored_text(value: Any) -> str | None:
    return None if value is None else str(value)


@attrs.define
class Model:
    """What a run must be, by the SDK's documented semantics."""

    parent: str | None
    status: str = "Running"
    tags: dict[str, str | None] = attrs.field(factory=dict)
    properties: dict[str, str | None] = attrs.field(factory=dict)
    metrics: dict[str, list[Any]] = attrs.field(factory=dict)
    display_name: str | None = None
    events: int = 2  # Created, StatusChanged(Running)
    error_code: str | None = None

    @property
    def active(self) -> bool:
        return self.status == "Running"

    def shaped_metrics(self) -> dict[str, Any]:
        return {k: v[0] if len(v) == 1 else list(v) for k, v in self.metrics.items()}


class LedgerMachine(RuleBasedStateMachine):
    """Random SDK call sequences on one fresh experiment of the store under test."""

    store_url = "memory://"
    examples = 0

    runs = Bundle("runs")

    def __init__(self) -> None:
        super().__init__()
        type(self).examples += 1
        self.ws = Workspace(store=self.store_url)
        self.exp = Experiment(self.ws, f"hypothesis-{type(self).examples}")
        self.live: dict[str, Run] = {}
        self.model: dict[str, Model] = {}

    # -------------------------------------------------------------- helpers
    def refused(self, run_id: str, error: type[Exception] | tuple[type[Exception], ...],
                call: Any, measure: bool) -> None:
        """Make a call that must be refused with ``error``; with ``measure``, check the store's
        newest position is unchanged (this stores what was buffered first)."""
        before = event_count(self.ws) if measure else None
        with pytest.raises(error) as caught:
            call()
        assert run_id in str(caught.value)
        if measure:
            assert event_count(self.ws) == before

    # -------------------------------------------------------------- creating runs
    @rule(target=runs, display_name=st.sampled_from([None, "first", "second"]))
    def start_logging(self, display_name: str | None) -> str:
        run = self.exp.start_logging(display_name=display_name)
        self.live[run.id] = run
        self.model[run.id] = Model(parent=None, display_name=display_name)
        return run.id

    @rule(target=runs, parent=runs, measure=st.booleans())
    def child_run(self, parent: str, measure: bool) -> Any:
        if not self.model[parent].active:
            self.refused(parent, RunFinishedError, self.live[parent].child_run, measure)
            return multiple()
        child = self.live[parent].child_run()
        self.live[child.id] = child
        self.model[child.id] = Model(parent=parent)
        return child.id

    # -------------------------------------------------------------- metrics
    @rule(run=runs, name=st.sampled_from(["loss", "acc"]), value=METRIC_VALUES,
          measure=st.booleans())
    def log(self, run: str, name: str, value: Any, measure: bool) -> None:
        if not self.model[run].active:
            self.refused(run, RunFinishedError, lambda: self.live[run].log(name, value), measure)
            return
        self.live[run].log(name, value)
        self.model[run].metrics.setdefault(name, []).append(value)

    @rule(run=runs, measure=st.booleans())
    def log_a_list_by_mistake(self, run: str, measure: bool) -> None:
        # On an ended run either refusal will do: which check comes first is not a contract.
        error = ValidationError if self.model[run].active else (
            ValidationError, RunFinishedError)
        self.refused(run, error, lambda: self.live[run].log("loss", [1, 2]), measure)

    # -------------------------------------------------------------- tags
    @rule(run=runs, key=TAG_KEYS, value=TAG_VALUES)
    def tag(self, run: str, key: str, value: Any) -> None:
        self.live[run].tag(key, value)
        model = self.model[run]
        if key not in model.tags or model.tags[key] != stored_text(value):
            model.tags[key] = stored_text(value)
            model.events += 1

    @rule(run=runs, keys=st.lists(TAG_KEYS, max_size=2))
    def remove_tags(self, run: str, keys: list[str]) -> None:
        self.live[run].remove_tags(keys)
        model = self.model[run]
        present = [k for k in keys if k in model.tags]
        for key in present:
            model.tags.pop(key, None)
        if present:
            model.events += 1

    @rule(run=runs, measure=st.booleans())
    def tag_with_a_bad_key(self, run: str, measure: bool) -> None:
        self.refused(run, ValidationError, lambda: self.live[run].set_tags({"ok": "1", 5: "x"}),
                     measure)

    # -------------------------------------------------------------- properties
    @rule(run=runs, properties=st.dictionaries(PROPERTY_KEYS, PROPERTY_VALUES, max_size=3),
          measure=st.booleans())
    def add_properties(self, run: str, properties: dict[str, Any], measure: bool) -> None:
        model = self.model[run]
        given = {k: stored_text(v) for k, v in properties.items()}
        if any(k in model.properties and model.properties[k] != v for k, v in given.items()):
            self.refused(run, PropertyImmutableError,
                         lambda: self.live[run].add_properties(properties), measure)
            return
        self.live[run].add_properties(properties)
        new = {k: v for k, v in given.items() if k not in model.properties}
        if new:
            model.properties.update(new)
            model.events += 1

    # -------------------------------------------------------------- ending
    @rule(run=runs, action=st.sampled_from(sorted(TERMINAL)), measure=st.booleans())
    def end(self, run: str, action: str, measure: bool) -> None:
        model = self.model[run]
        call = getattr(self.live[run], action)
        if not model.active:
            self.refused(run, InvalidTransitionError, call, measure)
            return
        call()
        model.status = TERMINAL[action]
        model.error_code = "UserError" if action == "fail" else None
        model.events += 1

    # -------------------------------------------------------------- identity
    @rule(run=runs, name=st.sampled_from([None, "first", "renamed"]))
    def set_display_name(self, run: str, name: str | None) -> None:
        self.live[run].display_name = name
        model = self.model[run]
        if name != model.display_name:
            model.display_name = name
            model.events += 1

    @rule(run=runs, measure=st.booleans())
    def set_an_empty_display_name(self, run: str, measure: bool) -> None:
        def call() -> None:
            self.live[run].display_name = ""

        self.refused(run, ValidationError, call, measure)

    @rule()
    def flush(self) -> None:
        self.ws.flush()

    # -------------------------------------------------------------- checks
    @rule()
    def reopen_and_compare(self) -> None:
        self.compare()

    def compare(self) -> None:
        self.ws.flush()
        app = open_reader(self.ws)
        try:
            for run_id, model in self.model.items():
                live = live_state(self.live[run_id])
                stored = stored_state(app, run_id)
                assert stored == live, (run_id, stored, live)
                assert live["status"] == model.status
                assert live["tags"] == model.tags
                assert live["properties"] == model.properties
                assert live["metrics"] == model.shaped_metrics()
                assert live["display_name"] == model.display_name
                assert live["parent"] == model.parent
                assert (live["error"] or {}).get("code") == model.error_code
                assert len(app.stream_events(run_stream_id(run_id))) == model.events, run_id
        finally:
            app.close()

    def teardown(self) -> None:
        try:
            self.compare()
        finally:
            if self.ws._store.kind == "memory":
                self.ws.ledger.close()


def test_any_call_sequence_reopens_to_the_same_state(store_url: str, backend: str) -> None:
    machine = type(f"LedgerMachine_{backend}", (LedgerMachine,),
                   {"store_url": store_url, "examples": 0})
    examples = 10 if backend == "postgresql" else 50
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
