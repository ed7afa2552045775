"""Events survive the msgpack round trip: every event type, through the application's mapper.

Each of the Run aggregate's event classes, the Experiment's ``Created`` and ``MetricsLogged`` is
turned into a stored event (``app.mapper.to_stored_event``) and back (``to_domain_event``); the
fields must come back equal and of the same kind (UUIDs as UUIDs, aware datetimes, NaN and
infinities, ``None``, nested dicts), the stored bytes must be msgpack, and the stored topic must be
the class's explicit ``TOPIC`` (so a renamed or moved class still reads old events).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgpack
import pytest

from ledger.application import LedgerApplication
from ledger.domain.experiment import ExperimentAggregate
from ledger.domain.files import LogAppended, log_stream_id
from ledger.domain.ids import experiment_stream_id, metric_stream_id, run_stream_id
from ledger.domain.metrics import MetricsLogged
from ledger.domain.run import RUN_EVENT_CLASSES, RunAggregate
from ledger.domain.status import RunStatus
from ledger.domain.values import Actor
from ledger.persistence.store import parse_store_url
from ledger.persistence.transcoder import MsgpackTranscoder, uuid_from_bytes, uuid_from_text

ACTOR = Actor(user="alice", host="gpu-box-7", pid=4242)
NAN = float("nan")
INF = float("inf")


@pytest.fixture(scope="module")
def mapper_app() -> Iterator[LedgerApplication]:
    """The mapper is the same whatever the backend: one application serves the mapper tests."""
    application = LedgerApplication(parse_store_url("memory://"))
    yield application
    application.close()


@pytest.fixture
def app(store_url: str) -> Iterator[LedgerApplication]:
    """An application on a fresh store of the backend under test."""
    application = LedgerApplication(parse_store_url(store_url))
    yield application
    application.close()


def _new_run(run_id: str = "run-1", parent: RunAggregate | None = None) -> RunAggregate:
    return RunAggregate.create(
        aggregate_id=run_stream_id(run_id), run_id=run_id,
        experiment_id=experiment_stream_id("exp"), experiment_name="exp", actor=ACTOR,
        parent=parent, display_name="Shown name" if parent is None else None,
        description=None, run_type="experiment_run", target="local")


def every_domain_event() -> list[Any]:
    """At least one event of every class the ledger stores, with awkward values."""
    events: list[Any] = []
    parent = _new_run("parent-run")
    parent.set_status(RunStatus.QUEUED, ACTOR)
    parent.start(ACTOR)
    parent.add_properties({"author": "azureml-user", "seed": 7, "empty": None}, ACTOR)
    parent.set_tags({"quality": "great run", "worth another look": None, "n": 1.5}, ACTOR)
    parent.remove_tags(["n"], ACTOR)
    parent.set_display_name("Renamed ✓ ünïcode", ACTOR)
    parent.set_description("line one\nline two", ACTOR)
    parent.set_description(None, ACTOR)
    parent.add_files([("outputs/ünï 文件.bin", 0, "e3" * 32, "application/octet-stream"),
                      ("azureml-logs/70_driver_log.txt", 2**40, "ab" * 32, "text/plain")],
                     ACTOR)
    parent.correct_property("seed", 8, "the seed was recorded wrong ✓", ACTOR)
    parent.correct_property("empty", "now set", "filled in later", ACTOR)
    parent.archive("superseded by run 2", ACTOR)
    parent.restore(ACTOR)
    parent.complete(ACTOR)
    events += parent.collect_events()

    child = _new_run(str(uuid.uuid4()), parent=parent)
    child.start(ACTOR)
    child.fail("ValueError", "User program failed with ValueError: boom", "ValueError", ACTOR)
    events += child.collect_events()

    quiet = _new_run("quiet")
    quiet.fail("UserError", "no exception", None, ACTOR)
    events += quiet.collect_events()

    canceled = _new_run("canceled")
    canceled.start(ACTOR)
    canceled.request_cancel(ACTOR)
    canceled.cancel(ACTOR)
    events += canceled.collect_events()

    imported = _new_run("imported")
    imported.start(ACTOR)
    imported.record_import(
        source="mlflow", source_uri="sqlite:///mlflow.db", source_run_id="4fa0725ad0a0",
        created_at=datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc),
        started_at=datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc),
        ended_at=None, submitted_by="ünïcode user", metric_values=3,
        artifacts=["model/MLmodel", "plots/loss ✓.png"], actor=ACTOR)
    events += imported.collect_events()

    experiment = ExperimentAggregate.create("exp", ACTOR)
    events += experiment.collect_events()

    events.append(MetricsLogged(  # type: ignore[call-arg]
        originator_id=metric_stream_id("parent-run"),
        originator_version=1,
        timestamp=MetricsLogged.create_timestamp(),
        run_id="parent-run",
        series=[
            ["loss", "scalar", "", [0.5, NAN, INF, -INF, 3, True, "text"], [0, 1, None, 3, 4, 5, 6],
             [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]],
            ["acc", "row", "per epoch", [{"epoch": 1, "acc": NAN}], [None], [1.0]],
            ["table", "table", "", [{"x": [1, 2], "y": [INF, None]}], [None], [2.0]],
        ],
        actor=ACTOR.as_dict(),
    ))
    events.append(LogAppended(  # type: ignore[call-arg]
        originator_id=log_stream_id("parent-run"), originator_version=1,
        timestamp=LogAppended.create_timestamp(), run_id="parent-run",
        name="azureml-logs/70_driver_log.txt", offset=2**33, size=65536, sha256="cd" * 32,
        actor=ACTOR.as_dict()))
    return events


def _equal(a: Any, b: Any) -> bool:
    """Deep equality where NaN equals NaN and types must match (1 is not True, 1 is not 1.0)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


EVENTS = every_domain_event()
EVENT_IDS = [f"{i}-{type(e).__qualname__}" for i, e in enumerate(EVENTS)]


def test_the_fixture_covers_every_event_class() -> None:
    """Adding an event class without a round trip here must fail this test."""
    declared = {v for v in vars(RunAggregate).values()
                if isinstance(v, type) and issubclass(v, RunAggregate.Event)
                and v is not RunAggregate.Event}
    assert declared == set(RUN_EVENT_CLASSES)
    assert len(RUN_EVENT_CLASSES) == 16
    covered = {type(e) for e in EVENTS}
    assert set(RUN_EVENT_CLASSES) <= covered
    assert ExperimentAggregate.Created in covered
    assert MetricsLogged in covered
    assert LogAppended in covered


@pytest.mark.parametrize("event", EVENTS, ids=EVENT_IDS)
def test_round_trip_keeps_every_field(mapper_app: LedgerApplication, event: Any) -> None:
    stored = mapper_app.mapper.to_stored_event(event)
    back = mapper_app.mapper.to_domain_event(stored)

    assert type(back) is type(event)
    assert back.originator_id == event.originator_id
    assert isinstance(back.originator_id, uuid.UUID)
    assert back.originator_version == event.originator_version
    assert back.timestamp == event.timestamp
    assert back.timestamp.tzinfo is not None
    assert back.timestamp.utcoffset() == timedelta(0)
    assert _equal(vars(back), vars(event)), (vars(back), vars(event))


@pytest.mark.parametrize("event", EVENTS, ids=EVENT_IDS)
def test_stored_topic_is_the_explicit_topic(mapper_app: LedgerApplication, event: Any) -> None:
    stored = mapper_app.mapper.to_stored_event(event)
    assert stored.topic == type(event).TOPIC
    assert stored.topic.startswith("runledger:")
    assert "ledger.domain" not in stored.topic


@pytest.mark.parametrize("event", EVENTS, ids=EVENT_IDS)
def test_state_is_stored_as_msgpack(mapper_app: LedgerApplication, event: Any) -> None:
    stored = mapper_app.mapper.to_stored_event(event)
    state = msgpack.unpackb(stored.state, raw=False, strict_map_key=False,
                            ext_hook=lambda code, data: msgpack.ExtType(code, data),
                            timestamp=3)
    assert isinstance(state, dict)
    with pytest.raises(ValueError):
        json.loads(stored.state)


def test_created_keeps_uuid_and_none_fields(mapper_app: LedgerApplication) -> None:
    created = next(e for e in EVENTS if type(e) is RunAggregate.Created
                   and e.parent_run_id is not None)
    back = mapper_app.mapper.to_domain_event(mapper_app.mapper.to_stored_event(created))
    assert isinstance(back.experiment_id, uuid.UUID)
    assert back.experiment_id == experiment_stream_id("exp")
    assert back.parent_run_id == "parent-run"
    assert back.display_name is None and back.description is None
    assert back.actor == {"user": "alice", "host": "gpu-box-7", "pid": 4242}


def test_metrics_keep_nan_infinities_bools_and_columns(mapper_app: LedgerApplication) -> None:
    metrics = next(e for e in EVENTS if isinstance(e, MetricsLogged))
    back = mapper_app.mapper.to_domain_event(mapper_app.mapper.to_stored_event(metrics))
    values = back.series[0][3]
    assert values[0] == 0.5
    assert math.isnan(values[1])
    assert values[2] == INF and values[3] == -INF
    assert values[4] == 3 and type(values[4]) is int
    assert values[5] is True
    assert values[6] == "text"
    assert back.series[0][4] == [0, 1, None, 3, 4, 5, 6]
    assert math.isnan(back.series[1][3][0]["acc"])
    assert back.series[2][3][0] == {"x": [1, 2], "y": [INF, None]}


def test_round_trip_through_the_store(app: LedgerApplication) -> None:
    """What is saved and read back from the backend equals what was recorded."""
    run = _new_run("stored")
    run.start(ACTOR)
    run.set_tags({"k": None}, ACTOR)
    run.fail("E42", "bad ✗", "KeyError", ACTOR)
    app.save_all(run)
    loaded = app.get_run("stored")
    assert loaded.status is RunStatus.FAILED
    assert loaded.tags == {"k": None}
    assert loaded.error == {"code": "E42", "message": "bad ✗", "exceptionType": "KeyError"}
    assert loaded.created_at == run.created_at and loaded.created_at.tzinfo is not None
    assert loaded.ended_at == run.ended_at


def test_transcoder_values_nested_anywhere() -> None:
    """UUIDs, Decimals and naive or aware datetimes come back as themselves at any depth."""
    transcoder = MsgpackTranscoder()
    when = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=timezone(timedelta(hours=2)))
    naive = datetime(2020, 1, 1, 12, 0, 0, 7)
    value = {
        "ids": [uuid.UUID(int=0), uuid.uuid4()],
        "deep": {"when": when, "naive": naive, "price": Decimal("1.10"),
                 "none": None, "floats": [NAN, INF, -0.0]},
        "int_keys": {1: "one"},
        "tuple": (1, 2),
    }
    back = transcoder.decode(transcoder.encode(value))
    assert back["ids"] == value["ids"] and all(isinstance(i, uuid.UUID) for i in back["ids"])
    assert back["deep"]["when"] == when
    assert back["deep"]["when"].tzinfo is not None
    assert back["deep"]["naive"] == naive and back["deep"]["naive"].tzinfo is None
    assert back["deep"]["price"] == Decimal("1.10") and str(back["deep"]["price"]) == "1.10"
    assert back["deep"]["none"] is None
    assert math.isnan(back["deep"]["floats"][0]) and back["deep"]["floats"][1] == INF
    assert math.copysign(1.0, back["deep"]["floats"][2]) == -1.0
    assert back["int_keys"] == {1: "one"}
    assert back["tuple"] == [1, 2]


@pytest.mark.parametrize("value", [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.uuid4(),
                                   uuid.uuid5(uuid.NAMESPACE_URL, "x"), uuid.uuid1()])
def test_fast_uuids_are_the_uuids_of_the_constructor(value: uuid.UUID) -> None:
    """The decoder's and log reader's UUIDs behave as ``UUID(...)``'s: equal, same hash, text,
    fields and pickle, whichever way they are made."""
    import pickle

    for made in (uuid_from_bytes(value.bytes), uuid_from_text(str(value)),
                 uuid_from_text(value.hex)):
        assert type(made) is uuid.UUID
        assert made == value and hash(made) == hash(value) and made.int == value.int
        assert str(made) == str(value) and repr(made) == repr(value)
        assert made.version == value.version and made.is_safe == uuid.UUID(str(value)).is_safe
        assert pickle.loads(pickle.dumps(made)) == value
        assert {made: 1}[value] == 1


@pytest.mark.parametrize("text", ["", "not a uuid", "z" * 32 + "----",
                                  "12345678-1234-1234-1234-12345678901",
                                  "{12345678-1234-1234-1234-1234567890}", "0x" + "a" * 30,
                                  "urn:uuid:12345678-1234-1234-1234-123456789012",
                                  "1234567812341234123412345678901-"])
def test_fast_uuid_text_refuses_or_reads_as_the_constructor(text: str) -> None:
    try:
        expected = uuid.UUID(text)
    except ValueError:
        with pytest.raises(ValueError):
            uuid_from_text(text)
    else:
        assert uuid_from_text(text) == expected


def test_fast_uuid_bytes_refuse_a_wrong_length() -> None:
    with pytest.raises(ValueError):
        uuid_from_bytes(b"\x00" * 15)
    with pytest.raises(ValueError):
        MsgpackTranscoder().decode(msgpack.packb(msgpack.ExtType(1, b"\x00" * 17)))


def test_transcoder_refuses_what_it_cannot_store() -> None:
    with pytest.raises(TypeError, match="object"):
        MsgpackTranscoder().encode({"x": object()})


def test_corrections_and_archiving_keep_their_fields(mapper_app: LedgerApplication) -> None:
    corrected = [e for e in EVENTS if type(e) is RunAggregate.PropertyCorrected]
    back = [mapper_app.mapper.to_domain_event(mapper_app.mapper.to_stored_event(e))
            for e in corrected]
    assert [(e.key, e.old, e.new, e.reason) for e in back] == [
        ("seed", "7", "8", "the seed was recorded wrong ✓"), ("empty", None, "now set",
                                                               "filled in later")]
    archived = next(e for e in EVENTS if type(e) is RunAggregate.Archived)
    again = mapper_app.mapper.to_domain_event(mapper_app.mapper.to_stored_event(archived))
    assert again.reason == "superseded by run 2" and again.actor["user"] == "alice"
    assert mapper_app.mapper.to_stored_event(archived).topic == "runledger:Run.Archived"
