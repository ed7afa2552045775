"""The run write path's shortcuts give what eventsourcing's own code gives: the same events and
aggregate state (``ledger.domain.triggering``), the same stored bytes and rows
(``LedgerApplication.stored_events``, ``ledger.persistence.sqlite.insert_sqlite_rows``), the same
stream for a new run id (``new_run``), and the same validation (the accepted-keys cache)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import BaseAggregate, ProgrammingError
from eventsourcing.persistence import IntegrityError

from ledger.application import LedgerApplication
from ledger.domain import values
from ledger.domain.errors import ValidationError
from ledger.domain.ids import new_run, run_stream_id
from ledger.domain.run import RunAggregate
from ledger.domain.values import ACCEPTED_CACHE_SIZE, Actor, check_key, check_name
from ledger.persistence.store import parse_store_url

ACTOR = Actor(user="alice", host="h", pid=1)
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
EXPERIMENT = uuid.UUID("00000000-0000-4000-8000-0000000000e1")

# (event class, fields) of a run's life after Created, each at T0 + its index in seconds.
STEPS: list[tuple[type[Any], dict[str, Any]]] = [
    (RunAggregate.StatusChanged, {"status": "Running"}),
    (RunAggregate.PropertiesAdded, {"properties": {"author": "a", "lr": "0.1"}}),
    (RunAggregate.TagsSet, {"tags": {"quality": "good", "flag": None}}),
    (RunAggregate.TagsRemoved, {"keys": ["flag"]}),
    (RunAggregate.Failed, {"error_code": "E", "message": "m", "exception_type": "ValueError"}),
]


def _created_fields(run_id: str) -> dict[str, Any]:
    return {"timestamp": T0, "actor": ACTOR.as_dict(), "run_id": run_id,
            "experiment_id": EXPERIMENT, "experiment_name": "e", "parent_run_id": None,
            "root_run_id": run_id, "name": f"run_{run_id}", "display_name": None,
            "description": None, "run_type": "experiment_run", "target": "local"}


def _lives(run_id: str) -> tuple[RunAggregate, RunAggregate]:
    """The same run made twice: by runledger's methods, and by eventsourcing's own."""
    stream = run_stream_id(run_id)
    ours = RunAggregate._create(RunAggregate.Created, id=stream, **_created_fields(run_id))
    theirs: Any = BaseAggregate._create.__func__(  # type: ignore[attr-defined]
        RunAggregate, RunAggregate.Created, id=stream, **_created_fields(run_id))
    for seconds, (cls, fields) in enumerate(STEPS, start=1):
        when = T0 + timedelta(seconds=seconds)
        ours.trigger_event(cls, timestamp=when, actor=ACTOR.as_dict(), **fields)
        BaseAggregate.trigger_event(theirs, cls, timestamp=when, actor=ACTOR.as_dict(),
                                    **fields)
    return ours, theirs


def test_lean_events_are_eventsourcings_events() -> None:
    ours, theirs = _lives("r1")
    assert type(ours) is type(theirs) is RunAggregate
    assert [type(e) for e in ours.pending_events] == [type(e) for e in theirs.pending_events]
    assert [vars(e) for e in ours.pending_events] == [vars(e) for e in theirs.pending_events]
    # Field order too: it is the order of the stored msgpack map.
    assert [list(vars(e)) for e in ours.pending_events] == [
        list(vars(e)) for e in theirs.pending_events]
    state = {k: v for k, v in vars(ours).items() if k != "_pending_events"}
    assert state == {k: v for k, v in vars(theirs).items() if k != "_pending_events"}
    assert ours.version == 6 and ours.modified_on == T0 + timedelta(seconds=5)
    assert ours.created_on == T0 and ours.status.value == "Failed"


def test_a_replay_of_lean_events_is_the_aggregate() -> None:
    ours, _ = _lives("r2")
    replayed: Any = None
    for event in ours.pending_events:
        replayed = event.mutate(replayed)
    assert {k: v for k, v in vars(replayed).items() if k != "_pending_events"} == {
        k: v for k, v in vars(ours).items() if k != "_pending_events"}


def test_commands_stamp_their_events_now_in_order() -> None:
    run_id, stream = new_run()
    before = datetime.now(timezone.utc)
    run = RunAggregate.create(aggregate_id=stream, run_id=run_id, experiment_id=EXPERIMENT,
                              experiment_name="e", actor=ACTOR)
    run.start(ACTOR)
    run.complete(ACTOR)
    events = run.pending_events
    assert [e.originator_version for e in events] == [1, 2, 3]
    assert all(e.originator_id == stream for e in events)
    stamps = [e.timestamp for e in events]
    assert before <= stamps[0] <= stamps[1] <= stamps[2] <= datetime.now(timezone.utc)
    assert run.modified_on == stamps[2] and run.ended_at == stamps[2]


def test_an_event_whose_apply_raises_leaves_the_run_as_eventsourcing_would() -> None:
    # apply() runs before the version, the modification time and the pending events change, on
    # the lean path as in eventsourcing's mutate(): a refused event leaves none of them changed.
    ours, theirs = _lives("r4")
    for run in (ours, theirs):
        before = (run.version, run.modified_on, len(run.pending_events))
        trigger = (run.trigger_event if run is ours
                   else lambda *a, **k: BaseAggregate.trigger_event(theirs, *a, **k))
        with pytest.raises(ValueError):
            trigger(RunAggregate.StatusChanged, timestamp=T0 + timedelta(seconds=9),
                    actor=ACTOR.as_dict(), status="no such status")
        assert (run.version, run.modified_on, len(run.pending_events)) == before


def test_what_eventsourcing_refuses_is_still_refused() -> None:
    run, _ = _lives("r3")
    version = run.version
    with pytest.raises(TypeError, match="Can't construct event"):
        run.trigger_event(RunAggregate.Completed)  # no actor
    with pytest.raises(ProgrammingError, match="base 'Event' class is prohibited"):
        run.trigger_event(RunAggregate.Event, actor={})

    class Unregistered(RunAggregate.Event):
        TOPIC = "runledger:Test.Unregistered"

    with pytest.raises(ProgrammingError, match="is not registered"):
        run.trigger_event(Unregistered, actor={})
    with pytest.raises(TypeError, match="Unable to construct"):
        RunAggregate._create(RunAggregate.Created, id=uuid.uuid4(), run_id="x")
    assert run.version == version and len(run.pending_events) == 6


def test_new_run_gives_the_stream_its_id_names() -> None:
    seen = []
    for _ in range(200):
        run_id, stream = new_run()
        assert run_id == str(uuid.UUID(run_id)) == str(stream)
        assert stream == run_stream_id(run_id) and hash(stream) == hash(uuid.UUID(run_id))
        assert stream.version == 7 and stream.variant == uuid.RFC_4122
        seen.append(run_id)
    assert len(set(seen)) == len(seen)
    assert sorted(s[:13] for s in seen) == [s[:13] for s in seen]  # time-ordered prefix


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[LedgerApplication]:
    application = LedgerApplication(parse_store_url(f"sqlite:///{tmp_path}/l.db"))
    yield application
    application.close()


def test_stored_events_are_the_mappers(app: LedgerApplication) -> None:
    ours, _ = _lives("r4")
    events = list(ours.pending_events)
    assert app.stored_events(events) == [app.mapper.to_stored_event(e) for e in events]


def test_the_sqlite_write_stores_eventsourcings_rows(app: LedgerApplication,
                                                      tmp_path: Path) -> None:
    ours, _ = _lives("r5")
    events = list(ours.pending_events)
    position = app.save_all(ours)
    assert position == app.max_position() == 6
    stored = app.recorder.select_events(run_stream_id("r5"))
    assert stored == [app.mapper.to_stored_event(e) for e in events]
    # The same events written by eventsourcing's recorder, to another store: the same rows.
    other = LedgerApplication(parse_store_url(f"sqlite:///{tmp_path}/other.db"))
    try:
        other.recorder.insert_events([other.mapper.to_stored_event(e) for e in events])
        assert other.read_log_rows(0, 100) == app.read_log_rows(0, 100)
    finally:
        other.close()


def test_a_conflicting_sqlite_write_stores_nothing(app: LedgerApplication) -> None:
    ours, _ = _lives("r6")
    app.save_all(ours)
    again, _ = _lives("r6")  # versions 1-6 of the same stream
    fresh, _ = _lives("r7")
    with pytest.raises(IntegrityError):
        app.save_all(fresh, again)  # r7's events come first, in the same transaction
    assert app.max_position() == 6
    assert app.recorder.select_events(run_stream_id("r7")) == []
    retried, _ = _lives("r7")
    assert app.save_all(retried) == 12


def test_accepted_keys_and_names_are_remembered_and_bounded() -> None:
    assert check_key("k-accepted", "tag", None) == "k-accepted"
    assert "k-accepted" in values._accepted_keys
    assert check_name("n-accepted", "name") == "n-accepted"
    assert "n-accepted" in values._accepted_names
    for bad in ["", " ", "a\x00b", "x" * 257, "\ud800", 1, None, ["k-accepted"]]:
        with pytest.raises(ValidationError):
            check_key(bad, "tag", "r")
        with pytest.raises(ValidationError):
            check_name(bad, "name", "r")

    class Text(str):
        pass

    subclassed = check_key(Text("k-accepted"), "tag", None)
    assert type(subclassed) is str and subclassed == "k-accepted"
    for i in range(ACCEPTED_CACHE_SIZE + 10):
        check_key(f"key-{i}", "tag", None)
        check_name(f"name-{i}", "name")
    assert 0 < len(values._accepted_keys) <= ACCEPTED_CACHE_SIZE
    assert 0 < len(values._accepted_names) <= ACCEPTED_CACHE_SIZE
