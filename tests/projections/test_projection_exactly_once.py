"""A projector that dies between applying a page and committing it applies no event twice and
skips none; projectors racing each other (threads, processes) end in the same state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from projection_oracle import Driver, Oracle

from ledger.domain.errors import StoreError
from projections.index import RunIndex

REPO = Path(__file__).resolve().parents[2]


def populate(driver: Driver, runs: int = 12) -> None:
    driver.experiment("exp")
    for i in range(runs):
        run_id = driver.create("exp")
        driver.start(run_id)
        driver.tag(run_id, {"i": i, "parity": str(i % 2)})
        driver.log(run_id, "loss", [float(i), 1.0], steps=[0, 1])
        driver.complete(run_id)


def assert_matches_oracle(driver: Driver, index: RunIndex) -> None:
    oracle = Oracle(driver.app)
    assert list(index.find_runs(include_children=True)) == oracle.find_runs()
    assert index.experiments() == oracle.experiments()  # run counts: no double application
    for run_id in oracle.runs:
        got = [(m.name, m.count, m.minimum, m.maximum, m.last_step)
               for m in index.metric_summaries(run_id)]
        want = [(m.name, m.count, m.minimum, m.maximum, m.last_step)
                for m in oracle.metric_summaries(run_id)]
        assert got == want


class Crash(Exception):
    pass


def test_an_exception_before_commit_leaves_the_last_committed_page(driver: Driver) -> None:
    populate(driver)
    pages: list[tuple[int, int]] = []

    def crash_on_third_page(start: int, end: int) -> None:
        pages.append((start, end))
        if len(pages) == 3:
            raise Crash

    crashing = RunIndex(driver.app, page_size=7, before_commit=crash_on_third_page)
    with pytest.raises(Crash):
        crashing.catch_up()
    committed = pages[1][1]
    assert crashing.position() == committed
    # What is visible is exactly the first two pages: every run created in them, no more.
    created_by_then = [r for r in Oracle(driver.app).find_runs() if
                       Oracle(driver.app).order[r.run_id] <= committed]
    assert [r.run_id for r in crashing.find_runs()] == [r.run_id for r in created_by_then]

    restarted = RunIndex(driver.app, page_size=7)
    assert restarted.catch_up() == driver.app.max_position()
    assert_matches_oracle(driver, restarted)


_CHILD = """
import os, signal, sys
from ledger.application import LedgerApplication
from ledger.persistence.store import parse_store_url
from projections.index import RunIndex

pages = []

def hook(start, end):
    pages.append(end)
    if len(pages) == int(sys.argv[2]):
        print(start, flush=True)  # the position committed before this page
        os.kill(os.getpid(), signal.SIGKILL)

app = LedgerApplication(parse_store_url(sys.argv[1]))
RunIndex(app, page_size=int(sys.argv[3]), before_commit=hook).catch_up()
"""


def run_child(url: str, kill_on_page: int, page_size: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", _CHILD, url, str(kill_on_page), str(page_size)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def test_a_projector_killed_before_commit_resumes_exactly(driver: Driver,
                                                          shared_store_url: str) -> None:
    store_url = shared_store_url
    populate(driver)
    index = RunIndex(driver.app, page_size=9)
    assert index.position() == 0

    child = run_child(store_url, kill_on_page=3, page_size=9)
    assert child.returncode == -signal.SIGKILL, child.stderr
    committed = int(child.stdout.split()[0])
    assert committed > 0
    assert index.position() == committed  # the killed page left nothing behind

    # Killed again, on its first page this time, from the position the first one left.
    child = run_child(store_url, kill_on_page=1, page_size=9)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert int(child.stdout.split()[0]) == committed
    assert index.position() == committed

    assert index.catch_up() == driver.app.max_position()
    assert_matches_oracle(driver, index)


def test_projectors_racing_in_threads(driver: Driver) -> None:
    populate(driver, runs=20)
    indexes = [RunIndex(driver.app, page_size=3) for _ in range(3)]
    errors: list[BaseException] = []

    def catch_up(index: RunIndex) -> None:
        try:
            index.catch_up()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=catch_up, args=(i,)) for i in indexes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for index in indexes:
        assert index.catch_up() == driver.app.max_position()
    assert_matches_oracle(driver, indexes[0])


_RACER = """
import sys
from ledger.application import LedgerApplication
from ledger.persistence.store import parse_store_url
from projections.index import RunIndex

app = LedgerApplication(parse_store_url(sys.argv[1]))
index = RunIndex(app, page_size=4)
for _ in range(40):
    index.catch_up()
print(index.catch_up())
"""


def test_projectors_racing_in_processes_while_a_writer_writes(driver: Driver,
                                                              shared_store_url: str) -> None:
    store_url = shared_store_url
    driver.experiment("exp")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, store_url], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(3)]
    try:
        populate(driver, runs=15)
        outcomes = [(racer.communicate(timeout=120), racer.returncode) for racer in racers]
    finally:
        for racer in racers:  # a failure above must not leave racers running into later tests
            if racer.poll() is None:
                racer.kill()
                racer.communicate()
    for (out, err), returncode in outcomes:
        assert returncode == 0, err
        assert int(out) > 0
    index = RunIndex(driver.app)
    assert index.catch_up() == driver.app.max_position()
    assert_matches_oracle(driver, index)


def test_other_errors_are_not_retried(driver: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(driver, runs=2)
    index = RunIndex(driver.app)

    def broken(*args: object) -> None:
        from eventsourcing.persistence import OperationalError

        raise OperationalError("disk I/O error")

    monkeypatch.setattr(index._projector, "_apply_page", broken)
    with pytest.raises(StoreError, match="disk I/O error"):
        index.catch_up()


def test_a_deadlock_postgresql_broke_is_tried_again_not_taken_for_a_lock_wait() -> None:
    # PostgreSQL's text names the other process as "blocked by", which once read as a lock
    # wait that had used the whole timeout: the racing projector gave up at once.
    from eventsourcing.persistence import OperationalError

    from projections.projector import is_conflict, is_lock_wait

    deadlock = OperationalError(
        "deadlock detected\nDETAIL:  Process 2563 waits for ShareLock on transaction 122442; "
        "blocked by process 2580.")
    assert is_conflict(deadlock) and not is_lock_wait(deadlock)
    lock_timeout = OperationalError("canceling statement due to lock timeout")
    assert is_lock_wait(lock_timeout)
    assert is_lock_wait(OperationalError("database is locked"))
