"""Contract tests of the time half of the audit: corrections, archiving, runs as of a moment,
differences, history, list queries as of a moment and replay, through the SDK, on every backend.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ledger import Experiment, Run, Workspace
from ledger.application import LedgerApplication
from ledger.audit.timeline import RunAsOf, replay
from ledger.domain.errors import (
    PropertyImmutableError,
    PropertyNotFoundError,
    RunNotFoundError,
    ValidationError,
)
from ledger.persistence.store import parse_store_url


@pytest.fixture
def ws(store_url: str) -> Workspace:
    return Workspace(store=store_url)


@pytest.fixture
def exp(ws: Workspace) -> Experiment:
    return Experiment(ws, "audit")


def position(ws: Workspace) -> int:
    ws.flush()
    return ws._session.app.max_position()


def tick() -> datetime:
    """A moment strictly between what was recorded before and what is recorded after."""
    time.sleep(0.002)
    moment = datetime.now(timezone.utc)
    time.sleep(0.002)
    return moment


# ---------------------------------------------------------------------- corrections
def test_a_correction_replaces_the_value_and_history_keeps_both(ws: Workspace,
                                                                exp: Experiment) -> None:
    run = exp.start_logging()
    run.add_properties({"lr": "0.1", "author": "me"})
    run.correct_property("lr", 0.01, "the learning rate was mistyped")
    assert run.get_properties() == {"lr": "0.01", "author": "me"}
    assert Run.get(ws, run.id).get_properties()["lr"] == "0.01"  # as stored, from another load

    entries = run.get_audit_history()
    corrected = [e for e in entries if e.kind == "PropertyCorrected"]
    assert len(corrected) == 1
    change = corrected[0].changes[0]
    assert (change.field, change.key, change.old, change.new) == ("property", "lr", "0.1", "0.01")
    assert corrected[0].reason == "the learning rate was mistyped"
    assert corrected[0].actor.user and corrected[0].actor.pid
    added = next(e for e in entries if e.kind == "PropertiesAdded")
    assert any(c.key == "lr" and c.new == "0.1" for c in added.changes)
    # The plain history lists both events too.
    kinds = [e.kind for e in run.get_history(include_metrics=False)]
    assert "PropertiesAdded" in kinds and "PropertyCorrected" in kinds
    # The index answers with the corrected value.
    assert [r.id for r in exp.get_runs(properties={"lr": "0.01"})] == [run.id]
    assert list(exp.get_runs(properties={"lr": "0.1"})) == []
    run.complete()


@pytest.mark.parametrize(("key", "value", "reason", "error"), [
    ("missing", "1", "why", PropertyNotFoundError),
    ("lr", "1", "", ValidationError),
    ("lr", "1", "   ", ValidationError),
    ("lr", "1", None, ValidationError),
    ("lr", "1", 42, ValidationError),
    ("lr", "nul\x00byte", "why", ValidationError),
    ("", "1", "why", ValidationError),
])
def test_refused_corrections_write_nothing(ws: Workspace, exp: Experiment, key: str,
                                           value: Any, reason: Any,
                                           error: type[Exception]) -> None:
    run = exp.start_logging()
    run.add_properties({"lr": "0.1"})
    before = position(ws)
    with pytest.raises(error) as raised:
        run.correct_property(key, value, reason)
    assert run.id in str(raised.value)
    if key:
        assert repr(key) in str(raised.value)
    assert position(ws) == before
    assert run.get_properties() == {"lr": "0.1"}
    if error is PropertyNotFoundError:
        assert raised.value.run_id == run.id and raised.value.key == key  # type: ignore[attr-defined]


def test_the_immutability_error_names_the_governed_path(exp: Experiment) -> None:
    run = exp.start_logging()
    run.add_properties({"lr": "0.1"})
    with pytest.raises(PropertyImmutableError, match=r"run\.correct_property\(key, value, "
                                                     r"reason\)"):
        run.add_properties({"lr": "0.2"})


def test_correcting_to_the_same_value_records_nothing(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.add_properties({"lr": "0.1"})
    before = position(ws)
    run.correct_property("lr", "0.1", "no change")
    assert position(ws) == before


# ---------------------------------------------------------------------- archiving
def test_archive_hides_the_run_and_restore_shows_it(ws: Workspace, exp: Experiment) -> None:
    parent = exp.start_logging()
    child = parent.child_run()
    kept = exp.start_logging()
    ws.flush()
    child.archive("a failed attempt")
    parent.archive("superseded")
    assert parent.archived and not kept.archived

    assert [r.id for r in exp.get_runs()] == [kept.id]
    assert [r.id for r in Run.list(exp)] == [kept.id]
    assert {r.id for r in exp.get_runs(include_archived=True)} == {parent.id, kept.id}
    assert {r.id for r in exp.get_runs(include_children=True, include_archived=True)} == {
        parent.id, child.id, kept.id}
    assert list(parent.get_children()) == []
    assert [r.id for r in parent.get_children(include_archived=True)] == [child.id]
    # Still there: loadable by id, and in the history.
    assert Run.get(ws, parent.id).get_status() == "Running"
    kinds = [e.kind for e in parent.get_audit_history()]
    assert kinds.count("Archived") == 1

    parent.restore()
    assert not parent.archived
    assert {r.id for r in exp.get_runs()} == {parent.id, kept.id}
    entries = parent.get_audit_history()
    assert [e.kind for e in entries][-2:] == ["Archived", "Restored"]
    assert entries[-2].reason == "superseded"
    assert entries[-1].changes[0].as_dict() == {"field": "archived", "key": None, "old": True,
                                                "new": False, "change": "changed"}
    for run in (parent, child, kept):
        if run.get_status() == "Running":
            run.complete()


def test_archive_needs_a_reason_and_twice_records_once(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    before = position(ws)
    for reason in ("", " ", None, 3):
        with pytest.raises(ValidationError, match=run.id):
            run.archive(reason)  # type: ignore[arg-type]
    assert position(ws) == before
    run.archive("once")
    after = position(ws)
    run.archive("twice")
    assert position(ws) == after
    run.restore()
    run.restore()
    assert position(ws) == after + 1


# ---------------------------------------------------------------------- as of a moment
def test_a_run_as_of_positions_and_times(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging(display_name="first")
    run.add_properties({"lr": "0.1"})
    run.tag("quality", "good")
    run.log("loss", 1.0)
    p1 = position(ws)
    t1 = tick()
    run.log("loss", 0.5)
    run.tag("quality", "bad")
    run.remove_tags("quality")
    run.correct_property("lr", "0.01", "typo")
    run.display_name = "renamed"
    run.complete()
    p2 = position(ws)

    for when in (p1, t1):
        then = run.as_of(when)
        assert then.get_status() == "Running"
        assert then.get_properties() == {"lr": "0.1"}
        assert then.get_tags() == {"quality": "good"}
        assert then.get_metrics() == {"loss": 1.0}
        assert then.get_details()["displayName"] == "first"
        assert "endTimeUtc" not in then.get_details()
        assert then.position <= p1
    now = run.as_of(p2)
    assert now.get_details() == run.get_details()
    assert now.get_metrics() == run.get_metrics() == {"loss": [1.0, 0.5]}
    assert run.as_of(10**12).get_details() == run.get_details()  # beyond the end: as it is
    assert run.as_of(datetime.now(timezone.utc) + timedelta(days=1)).get_tags() == {}

    created = run.get_audit_history()[0].position
    with pytest.raises(RunNotFoundError, match=run.id) as too_early:
        run.as_of(0)
    # The error says the moment is too early, not that the run does not exist; run_id is bare.
    assert too_early.value.run_id == run.id
    assert f"as of position 0: it was created later, at position {created}" in str(
        too_early.value)
    with pytest.raises(RunNotFoundError, match="created later"):
        run.as_of(datetime(2000, 1, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize("when", [datetime(2026, 1, 1), True, -1, 1.5, "12", None])
def test_bad_moments_are_refused(exp: Experiment, when: Any) -> None:
    run = exp.start_logging()
    with pytest.raises(ValidationError):
        run.as_of(when)
    with pytest.raises(ValidationError):
        run.diff(0, when)
    with pytest.raises(ValidationError):
        exp.get_runs(as_of=when) if when is not None else run.as_of(when)


def test_a_zone_other_than_utc_is_the_same_moment(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.tag("k", "v")
    moment = tick()
    run.tag("k", "w")
    ws.flush()
    paris = moment.astimezone(timezone(timedelta(hours=1)))
    assert run.as_of(paris).get_tags() == run.as_of(moment).get_tags() == {"k": "v"}


def test_diff_between_two_moments(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.add_properties({"lr": "0.1", "seed": "1"})
    run.set_tags({"keep": "same", "drop": "x", "change": "a"})
    run.log("loss", 1.0)
    p1 = position(ws)
    run.tag("change", "b")
    run.tag("new", None)
    run.remove_tags("drop")
    run.correct_property("lr", "0.2", "wrong")
    run.log("loss", 2.0)
    run.log("acc", 0.5)
    run.description = "described"
    run.complete()
    p2 = position(ws)

    changes = {(c.field, c.key): (c.old, c.new, c.change) for c in run.diff(p1, p2).changes}
    assert changes == {
        ("status", None): ("Running", "Completed", "changed"),
        ("description", None): (None, "described", "added"),
        ("property", "lr"): ("0.1", "0.2", "changed"),
        ("tag", "change"): ("a", "b", "changed"),
        ("tag", "drop"): ("x", None, "removed"),
        ("tag", "new"): (None, None, "added"),
        ("metric", "loss"): (1, 2, "changed"),
        ("metric", "acc"): (None, 1, "added"),
    }
    backwards = {(c.field, c.key): c.change for c in run.diff(p2, p1).changes}
    assert backwards[("tag", "drop")] == "added" and backwards[("tag", "new")] == "removed"
    assert run.diff(p2, p2).changes == ()
    created = run.diff(0, p1)
    assert created.changes[0].field == "run" and created.changes[0].change == "added"
    assert run.diff(p1, p2).as_dict()["from"] == p1


def test_history_since_and_until(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.tag("k", "1")
    p1 = position(ws)
    run.tag("k", "2")
    run.log("m", 1)
    p2 = position(ws)
    run.tag("k", "3")
    run.complete()
    whole = run.get_audit_history()
    assert [e.position for e in whole] == sorted(e.position for e in whole)
    assert len({e.position for e in whole}) == len(whole)
    window = run.get_audit_history(since=p1, until=p2)
    assert [e.kind for e in window] == ["TagsSet", "MetricsLogged"]
    assert window[0].what == "tag k: '1' -> '2'"
    assert window[1].stream == "metrics"
    assert [e.position for e in run.get_audit_history(until=p1)] == [
        e.position for e in whole if e.position <= p1]
    # Each entry's position is where the run's view changes.
    for entry in whole:
        assert run.as_of(entry.position).position == entry.position


def test_history_names_each_uploaded_file_with_its_size_and_hash(ws: Workspace,
                                                                  exp: Experiment) -> None:
    import hashlib
    import io

    run = exp.start_logging()
    content = b"weights" * 100
    run.upload_file("outputs/model.bin", io.BytesIO(content))
    run.complete()
    (uploaded,) = [e for e in run.get_audit_history() if e.kind == "FileUploaded"]
    (change,) = uploaded.changes
    digest = hashlib.sha256(content).hexdigest()
    assert (change.field, change.key, change.change) == ("file", "outputs/model.bin", "added")
    assert change.new == {"size": len(content), "sha256": digest,
                          "media_type": "application/octet-stream"}
    assert uploaded.what == f"file outputs/model.bin: + {len(content)} bytes (sha256 {digest[:12]})"


# ---------------------------------------------------------------------- list queries as of
def test_get_runs_as_of_answers_as_then(ws: Workspace, exp: Experiment) -> None:
    first = exp.start_logging()
    first.tag("stage", "dev")
    p1 = position(ws)
    t1 = tick()
    second = exp.start_logging()
    first.tag("stage", "prod")
    first.archive("old")
    second.complete()
    p2 = position(ws)

    for when in (p1, t1):
        then = list(exp.get_runs(as_of=when))
        assert [r.id for r in then] == [first.id]
        assert isinstance(then[0], RunAsOf) and then[0].number == 1
        assert then[0].get_tags() == {"stage": "dev"}
        assert [r.id for r in exp.get_runs(tags={"stage": "dev"}, as_of=when)] == [first.id]
        assert list(exp.get_runs(tags={"stage": "prod"}, as_of=when)) == []
    assert [r.id for r in exp.get_runs(as_of=p2)] == [second.id]
    assert [r.id for r in exp.get_runs(as_of=p2, include_archived=True)] == [second.id,
                                                                              first.id]
    assert [r.get_status() for r in Run.list(exp, status="Completed", as_of=p2)] == [
        "Completed"]
    assert list(exp.get_runs(as_of=0)) == []
    first.restore()
    first.complete()


# ---------------------------------------------------------------------- replay
def test_replay_equals_the_source_as_of_the_moment(ws: Workspace, exp: Experiment,
                                                   store_factory: Any) -> None:
    runs = []
    for i in range(3):
        run = exp.start_logging(display_name=f"run {i}")
        run.add_properties({"i": str(i)})
        run.log("loss", float(i))
        runs.append(run)
    p1 = position(ws)
    t1 = tick()
    runs[0].correct_property("i", "zero", "named")
    runs[1].archive("bad")
    runs[2].tag("late", "yes")
    runs[2].log("loss", 9.0)
    for run in runs:
        run.complete()
    late = exp.start_logging()
    late.complete()
    app = ws._session.app

    for when in (p1, t1):
        url = store_factory("sqlite")
        target = LedgerApplication(parse_store_url(url))
        try:
            summary = replay(app, target, when)
            assert summary.events == target.max_position() > 0
        finally:
            target.close()
        copy = Workspace(store=url)
        copy_runs = {r.id: r for r in Experiment(copy, "audit").get_runs(
            include_archived=True)}
        expected = {r.id: r for r in exp.get_runs(as_of=when, include_archived=True)}
        assert set(copy_runs) == set(expected) == {r.id for r in runs}
        for run_id, view in expected.items():
            assert copy_runs[run_id].get_details() == view.get_details()
            assert copy_runs[run_id].get_metrics() == view.get_metrics()
        # Nothing of the source after the moment is in the copy.
        assert late.id not in copy_runs

    # A replay never writes into a ledger that holds events.
    target = LedgerApplication(parse_store_url(store_factory("sqlite")))
    try:
        replay(app, target, p1)
        before = target.max_position()
        with pytest.raises(ValidationError, match="empty"):
            replay(app, target, p1)
        assert target.max_position() == before
    finally:
        target.close()
