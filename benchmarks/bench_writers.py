#!/usr/bin/env python3
"""Many writers on one ledger: runs created per second, metric values per second, errors.

Every point starts W writer processes on a fresh store (a new SQLite file, or a new PostgreSQL
schema ``b_<hex>``), waits until all have opened it, then lets them write for ``--seconds`` and
sums what they finished in that window. A run is: created and started, ``--values`` metric
values, two properties, two tags, completed. Writing modes:

- ``per_call``: the SDK, each call durable on its own (``flush()`` after ``start_logging()``,
  then every property/tag call, the metric values, ``complete()`` are separate transactions:
  6 per run);
- ``sdk``: the SDK as scripts use it (a run's calls are buffered until ``complete()``, which
  appends its creation, its metric values and its end in one transaction: 1 per run; 3 before
  issue 13, and 3 still for a run the background flusher published before it ended);
- ``batch50``: 50 runs and their metric batches in one transaction, through
  ``LedgerApplication.save_all`` (the group commit the SDK's session uses for unpublished runs);
- ``raw``: no SDK, no run: one event of ~100 bytes per transaction straight through
  eventsourcing's recorder (``recorder.insert_events``): the store's commit ceiling, which the
  other modes are measured against (its "runs" are transactions);
- ``raw_es``: the same through eventsourcing's own insert path (on PostgreSQL, the
  ``PostgresApplicationRecorder.insert_events`` that runledger's recorder replaces for small
  writes: the lock taken, then the ``INSERT`` and ``COMMIT`` sent after it), for an A/B of the
  two in one invocation.

PostgreSQL serialises inserts with a table lock (eventsourcing's ``LOCK TABLE ... IN EXCLUSIVE
MODE``): its ceiling is transactions per second, whatever the number of writers, so the modes
show what batching does to that ceiling. Errors counts any exception a writer's call raised
(lock timeouts, conflicts given up on...), by type.

``--mixed`` also runs the full concurrency workload of the test suite (tests/scale/workload.py):
8 processes on one SQLite file, 32 on PostgreSQL, writing runs and one shared run; it prints the
wall time and the verification summary.

Usage (from the repository root)::

    python benchmarks/bench_writers.py                 # full: SQLite 1/2/4/8, PostgreSQL 1/4/16/32
    python benchmarks/bench_writers.py --quick         # under 60 s
    python benchmarks/bench_writers.py --backend sqlite --writers 1,8 --modes sdk --seconds 3
    python benchmarks/bench_writers.py --mixed

Prints one JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
MODES = ("per_call", "sdk", "batch50", "raw", "raw_es")
EXPERIMENT = "bench"
BATCH = 50


# ---------------------------------------------------------------------- one writer
def _write_one(exp: Any, mode: str, values: int, serial: int) -> int:
    """Write one run the ``per_call`` or ``sdk`` way; return the transactions it took."""
    run = exp.start_logging()
    if mode == "per_call":
        run.flush()
    run.add_properties({"writer": str(os.getpid()), "serial": str(serial)})
    run.tag("quality", "ok")
    run.tag("stage", "bench")
    for step in range(values):
        run.log("loss", 1.0 / (step + 1), step=step)
    if mode == "per_call":
        run.flush()
    run.complete()
    return 6 if mode == "per_call" else 1


def _write_batch(app: Any, experiment_id: Any, values: int, serial: int) -> int:
    """Write ``BATCH`` runs and their metric batches in one transaction; return 1."""
    from ledger.domain.ids import metric_stream_id, new_run_id, run_stream_id
    from ledger.domain.metrics import SCALAR, MetricsLogged
    from ledger.domain.run import RunAggregate
    from ledger.domain.values import current_actor

    actor = current_actor()
    objs: list[Any] = []
    now = time.time()
    for i in range(BATCH):
        run_id = new_run_id()
        agg = RunAggregate.create(aggregate_id=run_stream_id(run_id), run_id=run_id,
                                  experiment_id=experiment_id, experiment_name=EXPERIMENT,
                                  actor=actor)
        agg.start(actor)
        agg.add_properties({"writer": str(os.getpid()), "serial": str(serial + i)}, actor)
        agg.set_tags({"quality": "ok", "stage": "bench"}, actor)
        agg.complete(actor)
        objs.append(agg)
        if values:
            objs.append(MetricsLogged(  # type: ignore[call-arg]
                originator_id=metric_stream_id(run_id), originator_version=1,
                timestamp=MetricsLogged.create_timestamp(), run_id=run_id,
                series=[["loss", SCALAR, "", [1.0 / (s + 1) for s in range(values)],
                         list(range(values)), [now] * values]],
                actor=actor.as_dict()))
    app.save_all(*objs)
    return 1


def _write_raw(app: Any, stock: bool) -> int:
    """Insert one ~100-byte event in one transaction through the store's recorder (``stock``:
    through eventsourcing's own ``insert_events`` of the recorder's base class); return 1."""
    from eventsourcing.persistence import StoredEvent

    events = [StoredEvent(originator_id=uuid.uuid4(), originator_version=1,
                          topic="bench:raw", state=b"x" * 100)]
    recorder = app.recorder
    if stock:
        base = next(c for c in type(recorder).__mro__
                    if c.__module__.startswith("eventsourcing.") and "insert_events" in vars(c))
        base.insert_events(recorder, events)
    else:
        recorder.insert_events(events)
    return 1


def writer(url: str, mode: str, values: int, ready: Path, go: Path, seconds: float) -> None:
    """Open the store, say ready, wait for go, write for ``seconds``; print a JSON result."""
    from ledger import Experiment, Workspace

    ws = Workspace(store=url)
    exp = Experiment(ws, EXPERIMENT)
    app = ws.ledger.application
    ready.touch()
    while not go.exists():
        time.sleep(0.002)
    start = float(go.read_text() or time.time())
    deadline = start + seconds
    runs = transactions = serial = 0
    errors: Counter[str] = Counter()
    while time.time() < deadline:
        try:
            if mode in ("raw", "raw_es"):
                transactions += _write_raw(app, stock=mode == "raw_es")
                runs += 1
            elif mode == "batch50":
                transactions += _write_batch(app, exp._experiment_id, values, serial)
                runs += BATCH
                serial += BATCH
            else:
                transactions += _write_one(exp, mode, values, serial)
                runs += 1
                serial += 1
        except Exception as error:
            errors[f"{type(error).__name__}: {str(error)[:120]}"] += 1
    elapsed = time.time() - start
    print(json.dumps({"runs": runs, "values": 0 if mode.startswith("raw") else runs * values,
                      "transactions": transactions, "errors": dict(errors), "elapsed": elapsed}))


# ---------------------------------------------------------------------- one point
def fresh_store(backend: str, pg_url: str, folder: Path,
                synchronous: str = "NORMAL") -> tuple[str, str | None]:
    """Return a new, empty store URL (and its PostgreSQL schema), with its tables created."""
    from ledger import Experiment, Workspace
    from ledger.sdk.session import _live_sessions

    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{folder / (uuid.uuid4().hex + '.db')}?synchronous={synchronous}"
    else:
        schema = "b_" + uuid.uuid4().hex[:12]
        url = f"{pg_url}?schema={schema}"
    ws = Workspace(store=url)
    Experiment(ws, EXPERIMENT)
    list(Experiment(ws, EXPERIMENT).get_runs())  # the read models too
    for session in list(_live_sessions):
        if session.store.url == url:
            session.close()
    return url, schema


def drop_schema(pg_url: str, schema: str) -> None:
    """Drop a benchmark schema."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def measure(backend: str, writers: int, mode: str, *, values: int, seconds: float,
            pg_url: str, folder: Path, synchronous: str = "NORMAL") -> dict[str, Any]:
    """Run one point; return its figures."""
    url, schema = fresh_store(backend, pg_url, folder, synchronous)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")]))
    point = folder / uuid.uuid4().hex
    point.mkdir()
    go = point / "go"
    procs = []
    try:
        for w in range(writers):
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "writer", url, mode, str(values),
                 str(point / f"ready{w}"), str(go), str(seconds)], env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        deadline = time.monotonic() + 120
        while sum(1 for w in range(writers) if (point / f"ready{w}").exists()) < writers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("writers did not start: " + "".join(
                    p.stderr.read().decode()[-2000:] for p in procs
                    if p.poll() is not None and p.stderr))
            time.sleep(0.01)
        go.write_text(str(time.time() + 0.05))
        results = []
        errors: Counter[str] = Counter()
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + 300)
            if proc.returncode != 0:
                errors[f"writer exited {proc.returncode}: {err.decode()[-300:]}"] += 1
                continue
            result = json.loads(out.decode().strip().splitlines()[-1])
            results.append(result)
            errors.update(result["errors"])
        elapsed = max((r["elapsed"] for r in results), default=seconds)
        runs = sum(r["runs"] for r in results)
        return {
            "backend": backend, "writers": writers, "mode": mode,
            "runs_per_s": round(runs / elapsed, 1),
            "metric_values_per_s": round(sum(r["values"] for r in results) / elapsed, 1),
            "transactions_per_s": round(sum(r["transactions"] for r in results) / elapsed, 1),
            "runs": runs, "errors": sum(errors.values()), "error_kinds": dict(errors),
            "seconds": round(elapsed, 2),
        }
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        if schema is not None:
            drop_schema(pg_url, schema)


def mixed(backend: str, writers: int, pg_url: str, folder: Path) -> dict[str, Any]:
    """Run the test suite's concurrency workload at full size; return time and verification."""
    sys.path.insert(0, str(REPO / "tests" / "scale"))
    import workload

    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'mixed.db'}"
    else:
        schema = "b_" + uuid.uuid4().hex[:12]
        url = f"{pg_url}?schema={schema}"
    point = folder / uuid.uuid4().hex
    point.mkdir()
    started = time.monotonic()
    try:
        acks = workload.run_processes(url, point, writers, runs=8, values=20)
        wall = time.monotonic() - started
        summary = workload.verify(url, acks, expect_done=writers)
        return {"backend": backend, "writers": writers, "ok": True, "seconds": round(wall, 1),
                **summary}
    except AssertionError as error:
        return {"backend": backend, "writers": writers, "ok": False, "error": str(error)[:3000]}
    finally:
        if schema is not None:
            drop_schema(pg_url, schema)


def main(argv: list[str] | None = None) -> int:
    """The benchmark (or, as ``writer ...``, one writer process)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "writer":
        url, mode, values, ready, go, seconds = argv[1:7]
        writer(url, mode, int(values), Path(ready), Path(go), float(seconds))
        return 0
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--writers", help="comma-separated counts (default: SQLite 1,2,4,8; "
                        "PostgreSQL 1,4,16,32)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--values", type=int, default=100, help="metric values per run")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per point")
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL",
                        help="SQLite's durability setting (docs/durability.md)")
    parser.add_argument("--pg-url", default=os.environ.get("RUNLEDGER_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--quick", action="store_true",
                        help="SQLite 1,8 and PostgreSQL 1,16, modes sdk and batch50, 1 s each")
    parser.add_argument("--mixed", action="store_true",
                        help="also run the full concurrency workload (8 SQLite / 32 PostgreSQL)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    counts = {"sqlite": [1, 2, 4, 8], "postgresql": [1, 4, 16, 32]}
    modes = [m for m in args.modes.split(",") if m]
    seconds = args.seconds
    if args.quick:
        counts = {"sqlite": [1, 8], "postgresql": [1, 16]}
        modes = ["sdk", "batch50"]
        seconds = 1.0
    if args.writers:
        counts = {b: [int(n) for n in args.writers.split(",")] for b in backends}
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; known: {', '.join(MODES)}")
    started = time.monotonic()
    points: list[dict[str, Any]] = []
    mixed_results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="runledger-bench-") as tmp:
        folder = Path(tmp)
        for backend in backends:
            for mode in modes:
                for writers in counts[backend]:
                    try:
                        point = measure(backend, writers, mode, values=args.values,
                                        seconds=seconds, pg_url=args.pg_url, folder=folder,
                                        synchronous=args.synchronous)
                    except Exception as error:
                        point = {"backend": backend, "writers": writers, "mode": mode,
                                 "failed": f"{error}\n{traceback.format_exc()[-1500:]}"}
                    points.append(point)
                    print(json.dumps(point), file=sys.stderr, flush=True)
            if args.mixed:
                result = mixed(backend, 8 if backend == "sqlite" else 32, args.pg_url, folder)
                mixed_results.append(result)
                print(json.dumps(result), file=sys.stderr, flush=True)
    output: dict[str, Any] = {
        "benchmark": "bench_writers", "values_per_run": args.values, "seconds_per_point": seconds,
        "sqlite_synchronous": args.synchronous,
        "cpus": os.cpu_count(), "points": points, "total_seconds": round(
            time.monotonic() - started, 1)}
    if mixed_results:
        output["mixed"] = mixed_results
    print(json.dumps(output, indent=2))
    failed = any("failed" in p for p in points) or any(not m["ok"] for m in mixed_results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
