"""Embedded in a service: 16 threads of one process calling the SDK at once lose nothing.

Threads work on runs of their own and on one shared run (through one ``Run`` object, and through
a ``Run`` object per thread as a request handler would load it), logging metrics, setting tags,
merging tags and adding properties with distinct keys, while another thread keeps flushing. After
joining and flushing, a new application on the same store must find every value and every tag
exactly once, each thread's values in the order it logged them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from ledger_contract import LOCAL_BACKENDS, open_reader, stored_state

from ledger import Experiment, Run, Workspace

THREADS = 16
VALUES = 150
TAGS = 5


def run_threads(work: Callable[[int], None], ws: Workspace | None = None) -> None:
    """Run ``work(i)`` in 16 threads started together; re-raise the first error of any of them.

    With ``ws``, one more thread keeps calling ``ws.flush()`` until the others are done.
    """
    barrier = threading.Barrier(THREADS + (1 if ws is not None else 0))
    errors: list[BaseException] = []
    done = threading.Event()

    def wrapped(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as error:
            errors.append(error)

    def flusher() -> None:
        try:
            barrier.wait()
            while not done.is_set():
                ws.flush()  # type: ignore[union-attr]
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(THREADS)]
    extra = threading.Thread(target=flusher) if ws is not None else None
    for thread in threads + ([extra] if extra else []):
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    done.set()
    if extra:
        extra.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    if errors:
        raise errors[0]


def do_work(run: Run, index: int) -> None:
    """What each thread does to a run: values, tags, merged tags and properties of its own."""
    for i in range(VALUES):
        run.log("shared", index * 10_000 + i)
        run.log(f"mine-{index}", i)
        if i % 30 == 0:
            run.log_row(f"row-{index}", i=i)
    for i in range(TAGS):
        run.tag(f"tag-{index}-{i}", str(i))
    run.set_tags({f"merged-{index}": index, f"merged-{index}-none": None})
    run.add_properties({f"prop-{index}": f"value-{index}"})


def expected_tags(indexes: range) -> dict[str, Any]:
    tags: dict[str, Any] = {}
    for index in indexes:
        tags.update({f"tag-{index}-{i}": str(i) for i in range(TAGS)})
        tags.update({f"merged-{index}": str(index), f"merged-{index}-none": None})
    return tags


def check_shared_run(state: dict[str, Any]) -> None:
    metrics = state["metrics"]
    shared = Counter(metrics["shared"])
    assert sum(shared.values()) == THREADS * VALUES
    assert set(shared.values()) == {1}
    assert set(shared) == {t * 10_000 + i for t in range(THREADS) for i in range(VALUES)}
    # Each thread's values keep their order within the shared series.
    for t in range(THREADS):
        mine = [v for v in metrics["shared"] if v // 10_000 == t]
        assert mine == sorted(mine)
        assert metrics[f"mine-{t}"] == list(range(VALUES))
        assert metrics[f"row-{t}"] == {"i": list(range(0, VALUES, 30))}
    assert state["tags"] == expected_tags(range(THREADS))
    assert state["properties"] == {f"prop-{t}": f"value-{t}" for t in range(THREADS)}


def test_threads_on_runs_of_their_own(ws: Workspace, exp: Experiment, reader) -> None:
    runs: dict[int, Run] = {}

    def work(index: int) -> None:
        run = exp.start_logging()
        runs[index] = run
        do_work(run, index)
        if index % 2:
            run.complete()

    run_threads(work, ws)
    ws.flush()
    app = reader()
    assert len({run.id for run in runs.values()}) == THREADS
    for index, run in runs.items():
        state = stored_state(app, run.id)
        assert state["status"] == ("Completed" if index % 2 else "Running")
        assert state["metrics"]["shared"] == [index * 10_000 + i for i in range(VALUES)]
        assert state["metrics"][f"mine-{index}"] == list(range(VALUES))
        assert state["tags"] == expected_tags(range(index, index + 1))
        assert state["properties"] == {f"prop-{index}": f"value-{index}"}


def test_threads_on_one_shared_run_object(ws: Workspace, exp: Experiment, reader) -> None:
    run = exp.start_logging()
    run_threads(lambda index: do_work(run, index), ws)
    run.complete()
    state = stored_state(reader(), run.id)
    assert state["status"] == "Completed"
    check_shared_run(state)
    assert run.get_tags() == state["tags"]


@pytest.fixture
def metric_batch_64(monkeypatch: pytest.MonkeyPatch) -> None:
    """``RUNLEDGER_METRIC_BATCH=64``, set before the workspace (which reads it) is opened."""
    monkeypatch.setenv("RUNLEDGER_METRIC_BATCH", "64")


@LOCAL_BACKENDS
@pytest.mark.usefixtures("metric_batch_64")
def test_threads_on_one_shared_run_with_small_metric_batches(
        ws: Workspace, exp: Experiment, reader) -> None:
    """Threshold flushes from many threads at once (``RUNLEDGER_METRIC_BATCH=64``)."""
    assert ws.settings.metric_batch == 64
    run = exp.start_logging()
    run_threads(lambda index: do_work(run, index), ws)
    run.complete()
    check_shared_run(stored_state(reader(), run.id))


def test_threads_each_loading_the_same_run(ws: Workspace, exp: Experiment, reader) -> None:
    """Each thread loads the run by id, as a request handler of a web service would."""
    run = exp.start_logging()
    ws.flush()
    run_threads(lambda index: do_work(Run.get(ws, run.id), index))
    ws.flush()
    check_shared_run(stored_state(reader(), run.id))


def test_threads_creating_children_of_one_run(ws: Workspace, exp: Experiment, reader) -> None:
    parent = exp.start_logging()
    made: dict[int, list[str]] = {}

    def work(index: int) -> None:
        ids = [parent.child_run().id for _ in range(5)]
        ids += [c.id for c in parent.create_children(count=5)]
        made[index] = ids

    run_threads(work, ws)
    ws.flush()
    app = reader()
    every = [run_id for ids in made.values() for run_id in ids]
    assert len(every) == len(set(every)) == THREADS * 10
    for run_id in every:
        state = stored_state(app, run_id)
        assert state["parent"] == parent.id
        assert state["status"] == "Running"


@LOCAL_BACKENDS
@pytest.mark.parametrize("pending", ["metrics", "new-run"])
def test_flush_waits_for_a_flush_already_in_progress(monkeypatch: pytest.MonkeyPatch,
                                                     ws: Workspace, exp: Experiment,
                                                     pending: str) -> None:
    """``ws.flush()`` returns only once everything buffered before it is durable, even when
    another thread (the background flusher, another request) started flushing it first and is
    still writing (a slow store is simulated by a pause before each write)."""
    run = exp.start_logging()
    ws.flush()
    if pending == "metrics":
        run.log("m", 1)
    else:
        run = exp.start_logging()
        run.tag("new", "run")
    recorder: Any = ws.ledger.application.recorder
    original = recorder.insert_events
    writing = threading.Event()

    def slow(stored_events: Any, **kwargs: Any) -> Any:
        writing.set()
        time.sleep(0.3)
        return original(stored_events, **kwargs)

    monkeypatch.setattr(recorder, "insert_events", slow)
    other = threading.Thread(target=ws.flush)
    other.start()
    try:
        assert writing.wait(5)
        ws.flush()
        app = open_reader(ws)
        try:
            state = stored_state(app, run.id)  # RunNotFoundError: the new run is not stored
        finally:
            app.close()
        if pending == "metrics":
            assert state["metrics"] == {"m": 1}
        else:
            assert state["tags"] == {"new": "run"}
    finally:
        other.join()
