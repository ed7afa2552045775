"""Tags of runs and experiments share one definition (``ledger.domain.tags``); events stored
before it was factored out still decode, to the same classes and fields, and encode the same."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from eventsourcing.persistence import StoredEvent

from ledger.application import LedgerApplication
from ledger.domain.errors import ValidationError
from ledger.domain.experiment import ExperimentAggregate
from ledger.domain.run import RunAggregate
from ledger.domain.values import Actor
from ledger.persistence.store import parse_store_url

OID = uuid.UUID("00000000-0000-4000-8000-000000000001")
TIME = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
ACTOR = {"user": "alice", "host": "h", "pid": 1}
_HEAD = ("83a974696d657374616d70d7ffa1dcd420695735a5a56163746f7283a475736572a5616c696365a4686f7374"
         "a168a370696401")
# (topic, state, version, class, fields): encoded by runledger before the tags were factored
# out (commit 53e2973), with this module's OID, TIME and ACTOR.
STORED = [
    ("runledger:Run.TagsSet", _HEAD + "a47461677382a161a131a4666c6167c0", 3,
     RunAggregate.TagsSet, {"tags": {"a": "1", "flag": None}}),
    ("runledger:Run.TagsRemoved", _HEAD + "a46b65797391a161", 4,
     RunAggregate.TagsRemoved, {"keys": ["a"]}),
    ("runledger:Experiment.TagsSet", _HEAD + "a47461677381a47465616da178", 2,
     ExperimentAggregate.TagsSet, {"tags": {"team": "x"}}),
    ("runledger:Experiment.TagsRemoved", _HEAD + "a46b65797391a47465616d", 3,
     ExperimentAggregate.TagsRemoved, {"keys": ["team"]}),
]


@pytest.fixture(scope="module")
def app() -> Iterator[LedgerApplication]:
    application = LedgerApplication(parse_store_url("memory://"))
    yield application
    application.close()


@pytest.mark.parametrize(("topic", "state", "version", "cls", "fields"), STORED,
                         ids=[s[0] for s in STORED])
def test_tag_events_stored_before_still_decode_and_encode_the_same(
        app: LedgerApplication, topic: str, state: str, version: int, cls: type,
        fields: dict[str, object]) -> None:
    stored = StoredEvent(originator_id=OID, originator_version=version, topic=topic,
                         state=bytes.fromhex(state))
    event = app.mapper.to_domain_event(stored)
    assert type(event) is cls
    assert event.timestamp == TIME and event.actor == ACTOR
    assert {k: getattr(event, k) for k in fields} == fields
    again = app.mapper.to_stored_event(event)
    assert (again.topic, again.state) == (topic, stored.state)


def test_runs_and_experiments_set_and_remove_tags_alike() -> None:
    actor = Actor(user="alice", host="h", pid=1)
    experiment = ExperimentAggregate.create("e", actor)
    run = RunAggregate.create(aggregate_id=uuid.uuid4(), run_id="r1",
                              experiment_id=experiment.id, experiment_name="e", actor=actor)
    for aggregate in (run, experiment):
        aggregate.set_tags({"a": "1", "b": None}, actor)
        aggregate.set_tags({"a": "1"}, actor)  # unchanged: not recorded again
        aggregate.remove_tags(["a", "missing"], actor)
        events = aggregate.collect_events()
        assert [type(e).__name__ for e in events][-2:] == ["TagsSet", "TagsRemoved"]
        assert events[-1].keys == ["a"] and aggregate.tags == {"b": None}
    with pytest.raises(ValidationError, match="experiment 'e'"):
        experiment.set_tags({"": "x"}, actor)
    with pytest.raises(ValidationError, match="r1"):
        run.remove_tags([""], actor)
