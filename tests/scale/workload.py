"""The concurrent workload of the scale tests and of ``benchmarks/bench_writers.py --mixed``.

Each writer (a process or a thread) interleaves two jobs:

- its own runs: ``start_logging()``, ``log()`` values 0..V-1 at steps 0..V-1, ``add_properties``,
  ``tag``, ``complete()``, with a query now and then (so projectors of many writers race);
- the *shared* run, which every writer opens by id: the ``logger`` logs to it and ``flush()``es,
  ``tagger``s set tags and add properties, the ``canceller`` also cancels it at the end, and every
  writer but the logger tries to add the property ``winner`` with its own value (exactly one may
  win; the others must get ``PropertyImmutableError``).

Each writer acknowledges what was durable when a call returned (``complete()``, ``flush()``, a
command on a published run) as JSON lines, fsync'd, in a file of its own. :func:`verify` then
checks the log: every acknowledged event is present exactly once, the projections equal a rebuild.

Run as a script it is one writer process: ``python workload.py URL WORKER ROLE OUT [options]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

EXPERIMENT = "scale"
ROLES = ("logger", "tagger", "canceller")

Ack = Callable[[dict[str, Any]], None]


@attrs.frozen
class WorkerConfig:
    """What one writer does.

    Attributes:
        worker: the writer's number (0-based).
        role: ``logger``, ``tagger`` or ``canceller`` (for the shared run).
        runs: how many runs of its own it creates.
        values: metric values per run (and per flush of the shared run's logger).
        shared: the shared run's id.
        query_every: run a query after every this many runs (0: never).
    """

    worker: int
    role: str
    runs: int
    values: int
    shared: str
    query_every: int = 4


def file_ack(path: Path) -> tuple[Ack, Callable[[], None]]:
    """Return an ``ack`` writing JSON lines to ``path`` (fsync'd each time) and a closer."""
    handle = open(path, "a", encoding="utf-8")  # noqa: SIM115
    lock = threading.Lock()

    def ack(record: dict[str, Any]) -> None:
        line = json.dumps(record) + "\n"
        with lock:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    return ack, handle.close


def read_acks(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Read the acknowledgements of several writers (a torn last line is ignored)."""
    records: list[dict[str, Any]] = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # killed while writing its last line: that ack never happened
    return records


def create_shared_run(url_or_ws: Any) -> str:
    """Create (and publish) the shared run, Running, in a store or a workspace; return its id."""
    from ledger import Experiment, Workspace

    ws = Workspace(store=url_or_ws) if isinstance(url_or_ws, str) else url_or_ws
    run = Experiment(ws, EXPERIMENT).start_logging(display_name="shared")
    run.flush()
    return run.id


def run_worker(ws: Any, cfg: WorkerConfig, ack: Ack) -> None:
    """Do one writer's work on the workspace ``ws``, acknowledging as it goes.

    Unexpected errors are acknowledged as ``{"kind": "error", ...}`` and stop the writer.
    """
    from ledger import Experiment, Run
    from ledger.domain.errors import PropertyImmutableError, RunFinishedError

    closed = False
    try:
        exp = Experiment(ws, EXPERIMENT)
        shared = Run(exp, cfg.shared)
        worker = str(cfg.worker)
        steps = max(cfg.runs, 1)
        for i in range(steps):
            if i < cfg.runs:
                run = exp.start_logging(tags={"worker": worker})
                for step in range(cfg.values):
                    run.log("loss", float(step), step=step)
                run.add_properties({"worker": worker, "i": str(i)})
                run.tag("stage", "done")
                run.complete()
                ack({"kind": "run", "run_id": run.id, "values": cfg.values, "worker": worker,
                     "i": i})
                if cfg.query_every and i % cfg.query_every == cfg.query_every - 1:
                    found = {r.id for r in exp.get_runs(tags={"worker": worker})}
                    if run.id not in found:
                        ack({"kind": "error", "error": f"query missed own run {run.id}"})
            if cfg.role == "logger" and not closed:
                base = i * cfg.values
                try:
                    for step in range(base, base + cfg.values):
                        shared.log("shared", float(step), step=step)
                except RunFinishedError:  # the canceller was faster: logging stops
                    closed = True
                    ack({"kind": "shared_closed"})
                shared.flush()
                if not closed:
                    ack({"kind": "shared_metrics", "count": base + cfg.values})
            else:
                key = f"w{worker}_{i}"
                shared.tag(key, str(i))
                ack({"kind": "shared_tag", "key": key})
                if i == 0:
                    shared.add_properties({f"p{worker}": worker})
                    ack({"kind": "shared_property", "key": f"p{worker}"})
                if i == steps // 2:
                    try:
                        shared.add_properties({"winner": worker})
                    except PropertyImmutableError as error:
                        ack({"kind": "loser", "recorded": error.recorded})
                    else:
                        ack({"kind": "winner", "value": worker})
        if cfg.role == "canceller":
            shared.cancel()
            ack({"kind": "cancel"})
        ack({"kind": "done", "worker": worker})
    except Exception as error:
        ack({"kind": "error", "worker": cfg.worker, "error": repr(error),
             "traceback": traceback.format_exc()})


def roles(writers: int) -> list[str]:
    """The roles of ``writers`` writers: one logger, one canceller, taggers."""
    names = ["logger", "canceller"] + ["tagger"] * max(writers - 2, 0)
    return names[:writers]


def run_processes(url: str, folder: Path, writers: int, runs: int, values: int,
                  timeout: float = 600) -> list[dict[str, Any]]:
    """Run ``writers`` writer processes on the store and return their acknowledgements.

    Raises:
        AssertionError: a writer exited with an error status or did not finish in time.
    """
    import subprocess

    shared = create_shared_run(url)
    env = dict(os.environ, RUNLEDGER_STORE=url, PYTHONUNBUFFERED="1")
    procs = []
    outs = []
    for worker, role in enumerate(roles(writers)):
        out = folder / f"acks-{worker}.jsonl"
        outs.append(out)
        procs.append(subprocess.Popen(
            [sys.executable, __file__, url, str(worker), role, str(out), "--runs", str(runs),
             "--values", str(values), "--shared", shared],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout
    failures = []
    for proc in procs:
        try:
            output, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            failures.append(f"pid {proc.pid} timed out: {output.decode()[-2000:]}")
            continue
        if proc.returncode != 0:
            failures.append(f"pid {proc.pid} exited {proc.returncode}: {output.decode()[-2000:]}")
    assert not failures, failures
    acks = read_acks(outs)
    acks.append({"kind": "shared_run", "run_id": shared})
    return acks


def run_threads(ws: Any, writers: int, runs: int, values: int) -> list[dict[str, Any]]:
    """Run ``writers`` writer threads sharing the ``Workspace`` ``ws`` (one session)."""
    shared = create_shared_run(ws)
    acks: list[dict[str, Any]] = []
    lock = threading.Lock()

    def ack(record: dict[str, Any]) -> None:
        with lock:
            acks.append(record)

    threads = [threading.Thread(target=run_worker, args=(ws, WorkerConfig(
        worker=worker, role=role, runs=runs, values=values, shared=shared), ack))
        for worker, role in enumerate(roles(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    assert not any(t.is_alive() for t in threads), "writer threads did not finish"
    ws.flush()
    acks.append({"kind": "shared_run", "run_id": shared})
    return acks


# ---------------------------------------------------------------------- verification
def read_streams(app: Any) -> dict[Any, list[tuple[int, str, Any]]]:
    """Read the whole log: stream id -> [(version, topic, decoded event)] in log order."""
    streams: dict[Any, list[tuple[int, str, Any]]] = defaultdict(list)
    position = 0
    while True:
        page = app.read_log(position, 1000)
        if not page:
            break
        for notification in page:
            streams[notification.originator_id].append(
                (notification.originator_version, notification.topic, app.decode(notification)))
        position = page[-1].id
    return streams


def _steps(events: list[tuple[int, str, Any]], name: str) -> list[Any]:
    steps: list[Any] = []
    for _version, _topic, event in events:
        for series in event.series:
            if series[0] == name:
                steps.extend(series[4])
    return steps


def dump_read_models(index: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read-model table, sorted (to compare an index with a rebuild).

    The sealing checkpoints are a history of when pages were sealed (one per page, with the
    time), not a fold of the log: only the newest one's size and root are compared.
    """
    projector = index._projector
    dialect = projector.dialect
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with dialect.transaction(projector.datastore, commit=False) as (_wrapped, cursor):
        for projection in projector.projections:
            for table in projection.tables:
                if table == "rl_seal_checkpoints":
                    cursor.execute(f"SELECT tree_size, root_hash FROM {dialect.types['p']}"
                                   f"{table} ORDER BY tree_size DESC LIMIT 1")
                else:
                    cursor.execute(f"SELECT * FROM {dialect.types['p']}{table}")
                rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                        for row in cursor.fetchall()]
                tables[table] = sorted(rows, key=repr)
    return tables


def verify(url: str, acks: list[dict[str, Any]], *, expect_done: int | None = None,
           store: Any = None) -> dict[str, Any]:
    """Check the store against the writers' acknowledgements; return a summary.

    ``store`` is the parsed store of an in-memory ledger (reachable only through it).

    Raises:
        AssertionError: an acknowledged event is missing or duplicated, a writer saw an
            unexpected error, or the projections differ from a rebuild.
    """
    from ledger.application import LedgerApplication
    from ledger.domain.ids import metric_stream_id, run_stream_id
    from ledger.domain.run import RunAggregate
    from ledger.persistence.store import parse_store_url
    from projections.index import RunIndex

    errors = [a for a in acks if a["kind"] == "error"]
    assert not errors, "writers saw errors:\n" + "\n".join(
        f"{e.get('error')}\n{e.get('traceback', '')}" for e in errors)
    if expect_done is not None:
        done = [a for a in acks if a["kind"] == "done"]
        assert len(done) == expect_done, f"{len(done)} of {expect_done} writers finished"
    app = LedgerApplication(store if store is not None else parse_store_url(url))
    try:
        streams = read_streams(app)
        for stream_id, events in streams.items():
            versions = [v for v, _t, _e in events]
            assert versions == list(range(1, len(versions) + 1)), (stream_id, versions)
        own = [a for a in acks if a["kind"] == "run"]
        assert len({a["run_id"] for a in own}) == len(own), "a run was acknowledged twice"
        for record in own:
            events = streams[run_stream_id(record["run_id"])]
            topics = Counter(t for _v, t, _e in events)
            assert topics[RunAggregate.Created.TOPIC] == 1, (record, topics)
            assert topics[RunAggregate.Completed.TOPIC] == 1, (record, topics)
            assert topics[RunAggregate.PropertiesAdded.TOPIC] == 1, (record, topics)
            assert len(events) == sum(topics.values())
            steps = _steps(streams.get(metric_stream_id(record["run_id"]), []), "loss")
            assert steps == list(range(record["values"])), (record, steps)
        shared_id = next(a["run_id"] for a in acks if a["kind"] == "shared_run")
        shared_events = streams[run_stream_id(shared_id)]
        tag_keys: Counter[str] = Counter()
        prop_keys: Counter[str] = Counter()
        winners: list[Any] = []
        for _v, topic, event in shared_events:
            if topic == RunAggregate.TagsSet.TOPIC:
                tag_keys.update(list(event.tags))
            elif topic == RunAggregate.PropertiesAdded.TOPIC:
                prop_keys.update(list(event.properties))
                if "winner" in event.properties:
                    winners.append(event.properties["winner"])
        for record in acks:
            if record["kind"] == "shared_tag":
                assert tag_keys[record["key"]] == 1, (record, tag_keys[record["key"]])
            elif record["kind"] == "shared_property":
                assert prop_keys[record["key"]] == 1, record
        won = [a["value"] for a in acks if a["kind"] == "winner"]
        lost = [a for a in acks if a["kind"] == "loser"]
        if won or lost:
            assert len(won) == 1, f"{len(won)} writers won the property race: {won}"
            assert winners == won, (winners, won)
            assert all(a["recorded"] == won[0] for a in lost), lost
        cancels = sum(1 for a in acks if a["kind"] == "cancel")
        canceled = sum(1 for _v, t, _e in shared_events if t == RunAggregate.Canceled.TOPIC)
        assert canceled == cancels, (canceled, cancels)
        logged = [a["count"] for a in acks if a["kind"] == "shared_metrics"]
        if logged:
            steps = _steps(streams.get(metric_stream_id(shared_id), []), "shared")
            assert steps[:max(logged)] == list(range(max(logged))), "shared metrics lost"
            assert steps == list(range(len(steps))), "shared metrics duplicated or reordered"
        index = RunIndex(app)
        index.catch_up()
        live = dump_read_models(index)
        index.rebuild()
        rebuilt = dump_read_models(index)
        assert live == rebuilt, "the projections differ from a rebuild"
        runs = len(live.get("rl_runs", []))
        assert runs == len({r["run_id"] for r in own}) + 1, (runs, len(own))
        return {"events": sum(len(e) for e in streams.values()), "streams": len(streams),
                "runs": runs, "acks": len(acks)}
    finally:
        app.close()


def race_properties(url: str, run_id: str, keys: list[str], value: str, go: Path,
                    ack: Ack) -> None:
    """Wait for the file ``go``, then add each property key with ``value`` to the run, as fast as
    possible, acknowledging ``won`` or ``lost`` per key (any other error as ``error``)."""
    from ledger import Experiment, Run, Workspace
    from ledger.domain.errors import PropertyImmutableError

    ws = Workspace(store=url)
    run = Run(Experiment(ws, EXPERIMENT), run_id)
    while not go.exists():
        time.sleep(0.001)
    for key in keys:
        try:
            run.add_properties({key: value})
        except PropertyImmutableError as error:
            ack({"kind": "lost", "key": key, "recorded": error.recorded, "value": value})
        except Exception as error:
            ack({"kind": "error", "error": repr(error), "traceback": traceback.format_exc()})
        else:
            ack({"kind": "won", "key": key, "value": value})


def main(argv: list[str] | None = None) -> int:
    """One writer process (see the module docstring); ``race URL RUN VALUE GO OUT KEY...`` runs
    :func:`race_properties`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "race":
        url, run_id, value, go, out, *keys = argv[1:]
        ack, close = file_ack(Path(out))
        try:
            race_properties(url, run_id, keys, value, Path(go), ack)
        finally:
            close()
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("worker", type=int)
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("out", type=Path)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--values", type=int, default=20)
    parser.add_argument("--shared", required=True)
    args = parser.parse_args(argv)
    from ledger import Workspace

    ack, close = file_ack(args.out)
    try:
        ws = Workspace(store=args.url)
        run_worker(ws, WorkerConfig(worker=args.worker, role=args.role, runs=args.runs,
                                    values=args.values, shared=args.shared), ack)
        ws.flush()
    finally:
        close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
