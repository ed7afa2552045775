"""Contract tests of every RunIndex query, on each backend (memory and SQLite)."""

from __future__ import annotations

import math
from datetime import timezone
from typing import Any

import pytest
from projection_oracle import Driver, Oracle

import projections.index as index_module
from ledger.domain.errors import ValidationError
from ledger.domain.status import RunStatus
from projections.index import RunIndex
from projections.read_models import MetricSummaryRow


def ids(rows: object) -> list[str]:
    return [r.run_id for r in rows]  # type: ignore[attr-defined]


@pytest.fixture
def family(driver: Driver) -> dict[str, str]:
    """e1: top1 (children c1, c2; c1 has grandchild g1), top2; e2: other."""
    driver.experiment("e1")
    driver.experiment("e2")
    top1 = driver.create("e1")
    c1 = driver.create("e1", top1, run_type="child_type")
    g1 = driver.create("e1", c1)
    top2 = driver.create("e1")
    c2 = driver.create("e1", top1)
    other = driver.create("e2")
    return {"top1": top1, "c1": c1, "g1": g1, "top2": top2, "c2": c2, "other": other}


# ---------------------------------------------------------------------- get and catch_up
def test_get_returns_the_whole_run(driver: Driver, index: RunIndex) -> None:
    driver.experiment("exp")
    run_id = driver.create("exp", display_name="first", description="a description")
    driver.start(run_id)
    driver.props(run_id, {"author": "me", "n": 3})
    driver.tag(run_id, {"quality": "good", "flag": None})
    driver.complete(run_id)
    assert index.get(run_id) is None  # nothing is projected before a catch-up
    index.catch_up(driver.last_position)

    row = index.get(run_id)
    assert row is not None
    assert row == Oracle(driver.app).runs[run_id]
    assert row.status == "Completed" and row.number == 1
    assert row.properties == {"author": "me", "n": "3"}
    assert row.tags == {"quality": "good", "flag": None}
    assert row.display_name == "first" and row.description == "a description"
    assert row.created_at.tzinfo == timezone.utc
    assert row.started_at is not None and row.ended_at is not None
    assert row.created_at <= row.started_at <= row.ended_at
    assert index.get("no-such-run") is None


def test_log_rows_are_the_notifications(driver: Driver) -> None:
    """The projector's page reader (``read_log_rows``: a plain SELECT on SQLite) gives what
    eventsourcing's notifications hold, page after page, the stream as the same UUID."""
    driver.experiment("exp")
    for _ in range(4):
        run_id = driver.create("exp")
        driver.tag(run_id, {"k": "v"})
        driver.log(run_id, "loss", [0.5, 0.25])
    app = driver.app
    expected = [(n.id, n.originator_id, n.originator_version, n.topic, bytes(n.state))
                for n in app.read_log(0, 1000)]
    paged: list[tuple[object, ...]] = []
    while True:
        page = app.read_log_rows(paged[-1][0] if paged else 0, 3)  # type: ignore[arg-type]
        paged += [(p, s, v, t, bytes(state)) for p, s, v, t, state in page]
        if len(page) < 3:
            break
    assert paged == expected and len(expected) > 3
    assert [type(row[1]) for row in paged] == [type(row[1]) for row in expected]
    assert app.read_log_rows(expected[-1][0], 10) == []


def test_read_your_writes_and_cheap_catch_up(driver: Driver, index: RunIndex,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    driver.experiment("exp")
    run_id = driver.create("exp")
    position = driver.tag(run_id, {"k": "v"})
    assert index.catch_up(position) >= position
    assert index.position() == driver.app.max_position()
    assert ids(index.find_runs(experiment_name="exp", tags={"k": "v"})) == [run_id]

    # Already there: no query at all; nothing new: no write transaction.
    calls: list[object] = []
    monkeypatch.setattr(driver.app, "read_log_rows", lambda *a, **k: calls.append(a) or [])
    assert index.catch_up(position) == position
    assert calls == []

    def no_write(*args: object) -> None:
        raise AssertionError("a catch-up with nothing new must not write")

    monkeypatch.setattr(index._projector, "_apply_page", no_write)
    assert index.catch_up() == position
    assert len(calls) == 1


def test_writes_of_another_process_are_seen_on_the_next_catch_up(driver: Driver,
                                                                 shared_store_url: str
                                                                 ) -> None:
    writer = Driver(shared_store_url)
    reader_index = RunIndex(driver.app)
    writer.experiment("exp")
    run_id = writer.create("exp")
    reader_index.catch_up()
    assert ids(reader_index.find_runs(experiment_name="exp")) == [run_id]
    writer.app.close()


def test_runs_are_numbered_per_experiment_in_log_order(driver: Driver, index: RunIndex) -> None:
    driver.experiment("a")
    driver.experiment("b")
    runs = [driver.new_run("a" if i % 3 else "b") for i in range(9)]
    driver.save(*runs)
    index.catch_up()
    numbers = {r.run_id: r.number for r in index.find_runs(include_children=True)}
    for name in ("a", "b"):
        mine = [r.run_id for r in runs if r.experiment_name == name]
        assert [numbers[i] for i in mine] == list(range(1, len(mine) + 1))


# ---------------------------------------------------------------------- find_runs
def test_experiment_runs_newest_first_top_level_by_default(
        driver: Driver, index: RunIndex, family: dict[str, str]) -> None:
    index.catch_up()
    assert ids(index.find_runs(experiment_name="e1")) == [family["top2"], family["top1"]]
    assert ids(index.find_runs(experiment_name="e1", include_children=True)) == [
        family[k] for k in ("c2", "top2", "g1", "c1", "top1")]
    assert ids(index.find_runs(experiment_name="e2")) == [family["other"]]
    assert ids(index.find_runs(experiment_name="nope")) == []
    assert len(list(index.find_runs())) == 6  # no filter: every run


def test_children_and_descendants(driver: Driver, index: RunIndex,
                                  family: dict[str, str]) -> None:
    index.catch_up()
    top1 = family["top1"]
    assert ids(index.find_runs(parent_run_id=top1)) == [family["c2"], family["c1"]]
    assert ids(index.find_runs(parent_run_id=top1, include_children=True)) == [
        family["c2"], family["c1"]]
    assert ids(index.find_runs(parent_run_id=top1, recursive=True)) == [
        family["c2"], family["g1"], family["c1"]]
    assert index.descendant_ids(top1) == [family["c2"], family["g1"], family["c1"]]
    assert index.descendant_ids(family["g1"]) == []
    assert index.descendant_ids("unknown") == []
    assert ids(index.find_runs(parent_run_id=top1, recursive=True,
                               run_type="child_type")) == [family["c1"]]
    assert ids(index.find_runs(parent_run_id=top1, experiment_name="e2")) == []
    g1 = index.get(family["g1"])
    assert g1 is not None and g1.root_run_id == top1 and g1.parent_run_id == family["c1"]


def test_tag_and_property_filters(driver: Driver, index: RunIndex) -> None:
    driver.experiment("exp")
    a, b, c, d = (driver.create("exp") for _ in range(4))
    driver.tag(a, {"quality": "great", "team": "x", "flag": None})
    driver.tag(b, {"quality": "ok", "team": "x", "n": 1})
    driver.tag(c, {"quality": "great", "team": "y", "flag": "set"})
    driver.props(a, {"author": "me"})
    driver.props(c, {"author": "me", "lr": 0.1})
    driver.props(d, {"author": None})
    index.catch_up()

    def find(**query: object) -> list[str]:
        return ids(index.find_runs(experiment_name="exp", **query))  # type: ignore[arg-type]

    assert find(tags="quality") == [c, b, a]
    assert find(tags="flag") == [c, a]  # a key that exists, whatever its value (None too)
    assert find(tags={"flag": None}) == [a]  # None matches a tag without value
    assert find(tags={"quality": "great"}) == [c, a]
    assert find(tags={"quality": "great", "team": "x"}) == [a]
    assert find(tags={"n": 1}) == [b]  # query values compare as str(v)
    assert find(tags={"n": "1"}) == [b]
    assert find(tags={"quality": "missing"}) == []
    assert find(tags={"nokey": "x"}) == []
    assert find(tags={}) == [d, c, b, a]
    assert find(properties="author") == [d, c, a]
    assert find(properties={"author": None}) == [d]
    assert find(properties={"lr": 0.1}) == [c]
    assert find(properties={"author": "me"}, tags={"team": "y"}) == [c]
    assert find(properties={"author": "me"}, tags="flag") == [c, a]

    driver.untag(a, ["quality"])
    driver.tag(c, {"quality": "ok"})
    index.catch_up()
    assert find(tags={"quality": "great"}) == []
    assert find(tags={"quality": "ok"}) == [c, b]
    assert index.get(a).tags == {"team": "x", "flag": None}  # type: ignore[union-attr]


def test_status_type_and_limit(driver: Driver, index: RunIndex) -> None:
    driver.experiment("exp")
    done = driver.create("exp", run_type="sweep")
    driver.start(done)
    driver.complete(done)
    failed = driver.create("exp")
    driver.start(failed)
    driver.fail(failed, "it broke", "SystemError")
    waiting = driver.create("exp")
    index.catch_up()

    def find(**query: object) -> list[str]:
        return ids(index.find_runs(experiment_name="exp", **query))  # type: ignore[arg-type]

    assert find(status="Completed") == [done]
    assert find(status=RunStatus.FAILED) == [failed]
    assert find(status="NotStarted") == [waiting]
    assert find(run_type="sweep") == [done]
    assert find(limit=2) == [waiting, failed]
    assert find(limit=0) == []
    row = index.get(failed)
    assert row is not None and (row.error_code, row.error_message) == ("SystemError", "it broke")


@pytest.mark.parametrize("bad", [["a", "b"], ("a",), 5, {"a"}])
def test_tags_or_properties_of_another_type_raise_at_the_call(index: RunIndex,
                                                              bad: object) -> None:
    with pytest.raises(ValidationError, match="tags must be a string"):
        index.find_runs(experiment_name="exp", tags=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="properties must be a string"):
        index.find_runs(experiment_name="exp", properties=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="keys must be strings"):
        index.find_runs(experiment_name="exp", tags={1: "x"})  # type: ignore[dict-item]


@pytest.mark.parametrize("probe_limit", [5, 1000])  # a probe that counts all, or gives up
def test_results_are_read_in_pages(driver: Driver, index: RunIndex,
                                   monkeypatch: pytest.MonkeyPatch, probe_limit: int) -> None:
    monkeypatch.setattr(index_module, "QUERY_PAGE", 4)
    monkeypatch.setattr(index_module, "FIRST_PAGE", 3)
    monkeypatch.setattr(index_module, "PROBE_LIMIT", probe_limit)
    driver.experiment("exp")
    runs = [driver.new_run("exp") for _ in range(23)]
    for i, run in enumerate(runs):
        run.set_tags({"parity": str(i % 2)}, driver.actor)
        run.add_properties({"third": str(i % 3)}, driver.actor)
    driver.save(*runs)
    index.catch_up()
    newest_first = [r.run_id for r in reversed(runs)]
    assert ids(index.find_runs(experiment_name="exp")) == newest_first
    assert ids(index.find_runs(experiment_name="exp", limit=9)) == newest_first[:9]
    even = [r.run_id for i, r in reversed(list(enumerate(runs))) if i % 2 == 0 and i % 3 == 1]
    assert ids(index.find_runs(experiment_name="exp", tags={"parity": "0"},
                               properties={"third": "1"})) == even
    rows = list(index.find_runs(experiment_name="exp", tags="parity"))
    assert [r.tags["parity"] for r in rows] == [str(i % 2) for i in reversed(range(23))]


def test_children_read_in_pages(driver: Driver, index: RunIndex,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "QUERY_PAGE", 3)
    monkeypatch.setattr(index_module, "FIRST_PAGE", 2)
    driver.experiment("exp")
    parent = driver.create("exp")
    driver.create("exp")  # a run that is no child
    children = [driver.new_run("exp", parent) for _ in range(10)]
    driver.save(*children)
    index.catch_up()
    expected = [c.run_id for c in reversed(children)]
    assert ids(index.find_runs(parent_run_id=parent)) == expected
    assert ids(index.find_runs(parent_run_id=parent, recursive=True)) == expected
    assert ids(index.find_runs(parent_run_id=parent, limit=4)) == expected[:4]


def test_runs_matching_after_the_probe_counted_are_found_too(
        driver: Driver, index: RunIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    # The probe's count sizes the query's one page; runs that match and are saved between the
    # count and the page (another writer) must still be found: a full page reads on.
    driver.experiment("exp")

    def save_matching_runs(count: int) -> list[str]:
        """Save runs that match the query; their ids, newest first."""
        runs = [driver.new_run("exp") for _ in range(count)]
        for run in runs:
            run.set_tags({"quality": "good"}, driver.actor)
            run.add_properties({"author": "me"}, driver.actor)
        driver.save(*runs)
        index.catch_up()
        return [run.run_id for run in reversed(runs)]

    first = save_matching_runs(6)
    choose = index._choose_driver
    late: list[str] = []

    def choose_then_another_writer_saves(*args: Any) -> Any:
        chosen = choose(*args)
        if not late:
            late.extend(save_matching_runs(3))
        return chosen

    monkeypatch.setattr(index, "_choose_driver", choose_then_another_writer_saves)
    found = ids(index.find_runs(experiment_name="exp", tags={"quality": "good"},
                                properties={"author": "me"}))
    assert found == late + first


# ---------------------------------------------------------------------- metrics, experiments
def test_metric_summaries(driver: Driver, index: RunIndex) -> None:
    driver.experiment("exp")
    run_id = driver.create("exp")
    driver.start(run_id)
    driver.log(run_id, "loss", [3.0, 1.5, float("nan")], steps=[0, 1, None])
    driver.log(run_id, "loss", [2, True], steps=[None, None])
    driver.log(run_id, "labels", ["a", "b"], kind="list")
    driver.log(run_id, "row", [{"x": 1, "y": 2.0}], kind="row")
    driver.log(run_id, "table", [{"x": [1, 2], "y": [3, 4]}], kind="table")
    index.catch_up()
    summaries = {m.name: m for m in index.metric_summaries(run_id)}
    assert list(summaries) == ["labels", "loss", "row", "table"]
    assert summaries["loss"] == MetricSummaryRow(
        run_id=run_id, name="loss", kind="scalar", count=5, last=True, minimum=1.5,
        maximum=3.0, last_step=1)
    assert summaries["labels"].last == "b" and summaries["labels"].minimum is None
    assert summaries["row"].last == {"x": 1, "y": 2.0} and summaries["row"].count == 1
    assert summaries["table"].kind == "table"
    assert index.metric_summaries("unknown") == []

    oracle = Oracle(driver.app).metric_summaries(run_id)
    assert [(m.name, m.count, m.minimum, m.maximum, m.last_step) for m in oracle] == [
        (m.name, m.count, m.minimum, m.maximum, m.last_step) for m in summaries.values()]
    nan_run = driver.create("exp")
    driver.log(nan_run, "only_nan", [float("nan")])
    index.catch_up()
    (only,) = index.metric_summaries(nan_run)
    assert math.isnan(only.last) and only.minimum is None and only.maximum is None


def test_experiments(driver: Driver, index: RunIndex, family: dict[str, str]) -> None:
    driver.experiment("empty")
    index.catch_up()
    rows = index.experiments()
    assert [(e.name, e.run_count) for e in rows] == [("e1", 5), ("e2", 1), ("empty", 0)]
    assert rows == Oracle(driver.app).experiments()
    e1 = index.experiment("e1")
    assert e1 is not None and e1.run_count == 5 and e1.created_by == driver.actor.user
    assert index.experiment("nope") is None


def test_every_query_matches_the_oracle(driver: Driver, index: RunIndex,
                                        family: dict[str, str]) -> None:
    driver.tag(family["c1"], {"k": "v"})
    driver.props(family["top2"], {"p": "1"})
    driver.start(family["top1"])
    index.catch_up()
    oracle = Oracle(driver.app)
    for run_id, row in oracle.runs.items():
        assert index.get(run_id) == row
        assert index.descendant_ids(run_id) == oracle.descendant_ids(run_id)
    queries: list[dict[str, object]] = [
        {}, {"experiment_name": "e1"}, {"experiment_name": "e1", "include_children": True},
        {"experiment_name": "e1", "tags": "k", "include_children": True},
        {"experiment_name": "e1", "properties": {"p": 1}},
        {"experiment_name": "e1", "status": "Running"},
        {"parent_run_id": family["top1"], "recursive": True, "tags": {"k": "v"}},
    ]
    for query in queries:
        assert list(index.find_runs(**query)) == oracle.find_runs(**query), query  # type: ignore[arg-type]


def test_runs_of_an_experiment_never_declared_are_counted(driver: Driver,
                                                          index: RunIndex) -> None:
    first = driver.create("undeclared")
    driver.create("undeclared", first)
    index.catch_up()
    row = index.experiment("undeclared")
    assert row is not None and row.run_count == 2
    assert row == Oracle(driver.app).experiment_rows["undeclared"]
    driver.experiment("undeclared")  # declared later: its creation event now dates it
    index.catch_up()
    assert index.experiments() == Oracle(driver.app).experiments()
    assert index.experiment("undeclared").run_count == 2  # type: ignore[union-attr]
