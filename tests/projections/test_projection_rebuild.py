"""Rebuilding equals building incrementally; a read model added later back-fills by itself."""

from __future__ import annotations

import gc
import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from projection_oracle import Driver, Oracle, read_whole_log

from projections.dialect import DbCursor
from projections.index import RunIndex
from projections.projection import LoggedEvent, Projection
from projections.rebuild import rebuild_with_progress
from projections.registry import PROJECTIONS
from projections.runs import RunProjection
from projections.sealing import CHECKPOINTS


def dump(index: RunIndex) -> dict[str, list[Any]]:
    """Every row of every read-model table, sorted.

    The sealing checkpoints are a history of when pages were sealed (one per page, with the
    time), not a fold of the log: only the newest one's size and root are compared.
    """
    out = {}
    with index._dialect.transaction(index._datastore, commit=False) as (_wrapped, cursor):
        for projection in index._projector.projections:
            for table in projection.tables:
                if table == CHECKPOINTS:
                    cursor.execute(index._dialect.sql(
                        "SELECT tree_size, root_hash FROM {p}" + table
                        + " ORDER BY tree_size DESC LIMIT 1"))
                else:
                    cursor.execute(index._dialect.sql("SELECT * FROM {p}" + table))
                out[table] = sorted((tuple(row) for row in cursor.fetchall()), key=repr)
    return out


def populate(driver: Driver) -> None:
    driver.experiment("exp")
    driver.experiment("other")
    parents = []
    for i in range(12):
        run_id = driver.create("exp" if i % 4 else "other", display_name=f"run {i}")
        parents.append(run_id)
        driver.start(run_id)
        driver.tag(run_id, {"quality": ["great", "ok", None][i % 3], "i": i})
        driver.props(run_id, {"author": ["me", "you"][i % 2]})
        driver.log(run_id, "loss", [1.0 / (i + 1), 0.5], steps=[i, i + 1])
        if i % 3 == 0:
            driver.untag(run_id, ["i"])
        if i % 5 == 0:
            driver.fail(run_id)
        else:
            driver.complete(run_id)
    children = [driver.new_run("exp", parents[1]) for _ in range(5)]
    driver.save(*children)
    driver.do(children[0].run_id, lambda r: r.set_description("changed", driver.actor))
    driver.experiment_do("exp", lambda e: e.set_tags({"team": "vision", "gone": None},
                                                     driver.actor))
    driver.experiment_do("exp", lambda e: e.remove_tags(["gone"], driver.actor))
    driver.experiment_do("other", lambda e: e.archive(driver.actor))


def test_rebuilt_tables_equal_incrementally_built_ones(driver: Driver, index: RunIndex) -> None:
    populate(driver)
    # Incremental: several catch-ups of small pages, interleaved with writes.
    index.catch_up()
    run_id = driver.create("exp")
    driver.tag(run_id, {"late": "yes"})
    index.catch_up()
    incremental = dump(index)
    assert sum(len(rows) for rows in incremental.values()) > 50

    seen: list[tuple[int, int]] = []
    applied = index.rebuild(lambda done, total: seen.append((done, total)))
    assert applied == len(read_whole_log(driver.app))
    assert dump(index) == incremental
    assert seen[0] == (0, driver.app.max_position())
    assert seen[-1] == (driver.app.max_position(), driver.app.max_position())
    assert [done for done, _total in seen] == sorted(done for done, _total in seen)
    assert index.position() == driver.app.max_position()
    experiments = {row.name: row for row in index.experiments()}
    assert experiments["exp"].tags == {"team": "vision"}
    assert experiments["exp"].archived_time is None
    assert experiments["other"].archived_time is not None
    assert index.experiments() == Oracle(driver.app).experiments()

    # Another index over the same store sees the rebuilt tables with their indexes.
    again = RunIndex(driver.app)
    assert again.catch_up() == driver.app.max_position()
    assert list(again.find_runs(experiment_name="exp")) == Oracle(driver.app).find_runs(
        experiment_name="exp")


def test_rebuild_with_progress_off_a_terminal(driver: Driver, index: RunIndex) -> None:
    populate(driver)
    index.catch_up()
    before = dump(index)
    out = io.StringIO()
    assert rebuild_with_progress(index, console_file=out) == len(read_whole_log(driver.app))
    assert out.getvalue() == ""
    assert dump(index) == before


def test_rebuild_leaves_the_garbage_collector_as_it_found_it(driver: Driver,
                                                            index: RunIndex) -> None:
    """The rebuild collects less often while it loads, and puts the thresholds back after it,
    also when it fails; collection switched off (threshold 0) stays off."""
    populate(driver)
    old = gc.get_threshold()
    during: list[tuple[int, int, int]] = []
    try:
        gc.set_threshold(700, 9, 8)
        index.rebuild(lambda done, total: during.append(gc.get_threshold()))
        assert gc.get_threshold() == (700, 9, 8)
        assert during[-1][0] > 700 and during[-1][1:] == (9, 8)

        def fail(done: int, total: int) -> None:
            if done:
                raise RuntimeError("stop")

        with pytest.raises(RuntimeError, match="stop"):
            index.rebuild(fail)
        assert gc.get_threshold() == (700, 9, 8)

        gc.set_threshold(0)
        during.clear()
        index.rebuild(lambda done, total: during.append(gc.get_threshold()))
        assert gc.get_threshold()[0] == 0 and during[-1][0] == 0
    finally:
        gc.set_threshold(*old)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # an SQLite setting
def test_rebuild_leaves_sqlite_secure_delete_as_it_was(driver: Driver, index: RunIndex) -> None:
    """The reset drops the read models' tables without zeroing their pages, and the ledger's
    connections keep their ``secure_delete`` setting for everything else."""
    populate(driver)
    index.catch_up()

    def settings() -> set[int]:
        found = set()
        for _ in range(3):
            with index._dialect.transaction(index._datastore, commit=False) as (_w, cursor):
                cursor.execute("PRAGMA secure_delete")
                found.add(int(cursor.fetchone()[0]))
        return found

    for setting in (1, 0):
        with index._dialect.transaction(index._datastore, commit=False) as (_w, cursor):
            cursor.execute(f"PRAGMA secure_delete = {setting}")
        before = settings()
        index.rebuild()
        assert settings() == before


def test_rebuild_of_an_empty_ledger(index: RunIndex) -> None:
    assert index.rebuild() == 0
    assert index.experiments() == []


class TopicCounts(Projection):
    """A read model added "later": how many events of each topic, and the last position."""

    name = "test.topic_counts.v1"
    topics = RunProjection.topics | PROJECTIONS[1].topics
    tables = {"rl_test_topic_counts": (
        "CREATE TABLE IF NOT EXISTS {p}rl_test_topic_counts ("
        "topic {text} PRIMARY KEY, n {bigint} NOT NULL, last {bigint} NOT NULL)")}

    def apply(self, cursor: DbCursor, events: Sequence[LoggedEvent]) -> None:
        counts = Counter(topic for _p, topic, _e in events)
        last = {topic: position for position, topic, _e in events}
        cursor.executemany(self.dialect.sql(
            "INSERT INTO {p}rl_test_topic_counts (topic, n, last) VALUES (?, ?, ?) "
            "ON CONFLICT (topic) DO UPDATE SET n = rl_test_topic_counts.n + excluded.n, "
            "last = excluded.last"), [(t, n, last[t]) for t, n in counts.items()])


def topic_counts(index: RunIndex) -> dict[str, tuple[int, int]]:
    with index._dialect.transaction(index._datastore, commit=False) as (_wrapped, cursor):
        cursor.execute(index._dialect.sql("SELECT topic, n, last FROM {p}rl_test_topic_counts"))
        return {topic: (n, last) for topic, n, last in cursor.fetchall()}


def expected_topic_counts(driver: Driver) -> dict[str, tuple[int, int]]:
    log = read_whole_log(driver.app)
    counts = Counter(topic for _p, topic, _e in log)
    last = {topic: position for position, topic, _e in log}
    return {t: (n, last[t]) for t, n in counts.items() if t in TopicCounts.topics}


def test_a_read_model_added_later_back_fills_from_the_log(driver: Driver,
                                                          index: RunIndex) -> None:
    populate(driver)
    index.catch_up()
    before = dump(index)
    position = index.position()

    extended = RunIndex(driver.app, projections=[*PROJECTIONS, TopicCounts], page_size=5)
    assert extended.position() == 0  # the new read model starts from the beginning
    assert extended.catch_up() == position
    assert topic_counts(extended) == expected_topic_counts(driver)
    # The read models that were up to date were not applied again.
    assert {t: rows for t, rows in dump(extended).items() if t in before} == before
    assert extended.experiment("exp").run_count == 14  # type: ignore[union-attr]

    # From now on the new model follows the log like the others.
    run_id = driver.create("exp")
    driver.tag(run_id, {"x": "y"})
    extended.catch_up()
    assert topic_counts(extended) == expected_topic_counts(driver)
    assert index.catch_up() == extended.position()


def test_a_missing_table_is_recreated_and_back_filled(driver: Driver, index: RunIndex) -> None:
    populate(driver)
    index.catch_up()
    before = dump(index)
    with index._dialect.transaction(index._datastore, commit=True) as (_wrapped, cursor):
        cursor.execute(index._dialect.sql("DROP TABLE {p}rl_metrics"))
    reopened = RunIndex(driver.app)
    assert reopened.position() == 0
    reopened.catch_up()
    assert dump(reopened) == before


def test_rebuild_with_progress_on_a_terminal(driver: Driver, index: RunIndex) -> None:
    populate(driver)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    assert rebuild_with_progress(index, console_file=out) == len(read_whole_log(driver.app))
    assert "Rebuilding read models" in out.getvalue()
    total = driver.app.max_position()
    assert f"{total}/{total}" in out.getvalue()
