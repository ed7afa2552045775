#!/usr/bin/env python3
"""Run-index benchmark: query latency against ledger size, rebuild rate and memory, cold open.

Usage (from the repository root)::

    python benchmarks/bench_projections.py            # 1k, 10k, 100k runs (~3 min)
    python benchmarks/bench_projections.py --quick    # 1k, 10k runs (< 60 s)
    python benchmarks/bench_projections.py --sizes 100000 --repeats 9

For each size N a fresh SQLite ledger is built through the application layer (1,000 runs per
``save_all``): run ``i`` is created, started, gets properties ``author`` =
``["azureml-user", "other-user"][(i // 3) % 2]``, ``lr``, ``batch_size`` and tags ``quality`` =
``["great run", "fantastic run", "ok"][i % 3]``, ``team``, is completed (5 events); 50 runs spread
over the ledger also get the tag ``needle``; one more run gets 500 children. Then, measured:

- ``catch_up``: the first catch-up of a fresh index over the whole log (events/s);
- ``selective``: ``find_runs(experiment_name, properties={"author": "azureml-user"},
  tags={"quality": "fantastic run"})``, ~N/6 matches: p50 of the whole iteration, and of the first
  run yielded (one page);
- ``needle``: the same with ``tags={"needle": "yes"}``: the same ~34 matches whatever N (the cost
  must follow the matches, not the runs);
- ``children``: ``find_runs(parent_run_id=<run with 500 children>)``, whole iteration and first
  run, and ``descendant_ids`` (ids only);
- ``get``: ``get(run_id)``;
- ``rebuild``: in a fresh subprocess, events/s and peak RSS growth (``ru_maxrss``) over the opened
  baseline; then, in another, the Python heap peak under ``tracemalloc``;
- ``cold``: wall time of ``python -c`` that imports runledger, opens the ledger and its index,
  catches up and reads the first page (100 runs) of the selective query (median of repeats), with
  the bare interpreter start (``python -c pass``) for reference.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ledger.application import LedgerApplication  # noqa: E402
from ledger.domain.ids import experiment_stream_id, new_run_id, run_stream_id  # noqa: E402
from ledger.domain.run import RunAggregate  # noqa: E402
from ledger.domain.values import current_actor  # noqa: E402
from ledger.persistence.store import parse_store_url  # noqa: E402
from projections.index import RunIndex  # noqa: E402

EXPERIMENT = "bench"
QUALITY = ["great run", "fantastic run", "ok"]
AUTHOR = ["azureml-user", "other-user"]
SELECTIVE = {"properties": {"author": "azureml-user"}, "tags": {"quality": "fantastic run"}}
NEEDLE = {"properties": {"author": "azureml-user"}, "tags": {"needle": "yes"}}
NEEDLES = 50
CHILDREN = 500
GROUP = 1000
TARGETS = {"selective_p50_ms_at_100k": 5.0, "children_500_p50_ms": 1.0,
           "rebuild_events_per_s": 100_000, "cold_open_first_query_s": 0.5}


def expected_selective(n: int) -> int:
    return sum(1 for i in range(n) if i % 3 == 1 and (i // 3) % 2 == 0)


def build(url: str, n: int) -> dict[str, Any]:
    """Write the ledger; return its figures and the ids the queries need."""
    app = LedgerApplication(parse_store_url(url))
    actor = current_actor()
    app.ensure_experiment(EXPERIMENT, actor)
    exp_id = experiment_stream_id(EXPERIMENT)
    needle_every = max(1, n // NEEDLES)
    needle_expected = 0
    started = time.perf_counter()
    some_run = ""
    for first in range(0, n, GROUP):
        runs = []
        for i in range(first, min(n, first + GROUP)):
            run_id = new_run_id()
            run = RunAggregate.create(aggregate_id=run_stream_id(run_id), run_id=run_id,
                                      experiment_id=exp_id, experiment_name=EXPERIMENT,
                                      actor=actor)
            run.start(actor)
            run.add_properties({"author": AUTHOR[(i // 3) % 2], "lr": str(0.001 * (i % 10 + 1)),
                                "batch_size": str(32 * (i % 4 + 1))}, actor)
            tags = {"quality": QUALITY[i % 3], "team": ["a", "b"][i % 2]}
            if i % needle_every == 0 and i // needle_every < NEEDLES:
                tags["needle"] = "yes"
                needle_expected += AUTHOR[(i // 3) % 2] == "azureml-user"
            run.set_tags(tags, actor)
            run.complete(actor)
            runs.append(run)
        app.save_all(*runs)
        some_run = runs[len(runs) // 2].run_id
    parent_id = new_run_id()
    parent = RunAggregate.create(aggregate_id=run_stream_id(parent_id), run_id=parent_id,
                                 experiment_id=exp_id, experiment_name=EXPERIMENT, actor=actor)
    parent.start(actor)
    app.save_all(parent)
    children = []
    for _ in range(CHILDREN):
        child_id = new_run_id()
        child = RunAggregate.create(aggregate_id=run_stream_id(child_id), run_id=child_id,
                                    experiment_id=exp_id, experiment_name=EXPERIMENT,
                                    actor=actor, parent=parent)
        child.start(actor)
        child.complete(actor)
        children.append(child)
    app.save_all(*children)
    elapsed = time.perf_counter() - started
    events = app.max_position()
    app.close()
    return {"runs": n + 1 + CHILDREN, "events": events, "build_s": round(elapsed, 2),
            "build_runs_per_s": round((n + 1 + CHILDREN) / elapsed),
            "parent": parent_id, "some_run": some_run, "needle_expected": needle_expected}


def p50_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def timed(fn: Any, repeats: int) -> tuple[list[float], Any]:
    samples, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - started)
    return samples, result


def queries(url: str, n: int, built: dict[str, Any], repeats: int) -> dict[str, Any]:
    app = LedgerApplication(parse_store_url(url))
    index = RunIndex(app)
    started = time.perf_counter()
    index.catch_up()
    catch_up_s = time.perf_counter() - started
    out: dict[str, Any] = {"catch_up_events_per_s": round(built["events"] / catch_up_s),
                           "catch_up_s": round(catch_up_s, 2)}

    def selective() -> int:
        return sum(1 for _ in index.find_runs(experiment_name=EXPERIMENT, **SELECTIVE))

    samples, count = timed(selective, repeats)
    assert count == expected_selective(n), (count, expected_selective(n))
    out["selective"] = {"matches": count, "p50_ms": p50_ms(samples),
                        "us_per_match": round(statistics.median(samples) / max(count, 1) * 1e6,
                                              2)}
    samples, _ = timed(lambda: next(index.find_runs(experiment_name=EXPERIMENT, **SELECTIVE)),
                       repeats)
    out["selective"]["first_run_p50_ms"] = p50_ms(samples)
    samples, _ = timed(lambda: list(index.find_runs(experiment_name=EXPERIMENT, limit=100,
                                                    **SELECTIVE)), repeats)
    out["selective"]["first_100_p50_ms"] = p50_ms(samples)

    samples, count = timed(lambda: sum(1 for _ in index.find_runs(experiment_name=EXPERIMENT,
                                                                  **NEEDLE)), repeats)
    assert count == built["needle_expected"], (count, built["needle_expected"])
    out["needle"] = {"matches": count, "p50_ms": p50_ms(samples)}

    samples, count = timed(lambda: sum(1 for _ in index.find_runs(
        parent_run_id=built["parent"])), repeats)
    assert count == CHILDREN
    out["children"] = {"matches": count, "p50_ms": p50_ms(samples)}
    samples, _ = timed(lambda: next(index.find_runs(parent_run_id=built["parent"])), repeats)
    out["children"]["first_run_p50_ms"] = p50_ms(samples)
    samples, ids = timed(lambda: index.descendant_ids(built["parent"]), repeats)
    assert len(ids) == CHILDREN
    out["children"]["descendant_ids_p50_ms"] = p50_ms(samples)

    samples, row = timed(lambda: index.get(built["some_run"]), max(repeats, 20))
    assert row is not None
    out["get_p50_ms"] = p50_ms(samples)
    app.close()
    return out


_REBUILD = """
import json, resource, sys, time, tracemalloc
from ledger.application import LedgerApplication
from ledger.persistence.store import parse_store_url
from projections.index import RunIndex
app = LedgerApplication(parse_store_url(sys.argv[1]))
index = RunIndex(app)
trace = sys.argv[2] == "trace"
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if trace:
    tracemalloc.start()
started = time.perf_counter()
applied = index.rebuild()
elapsed = time.perf_counter() - started
peak = tracemalloc.get_traced_memory()[1] if trace else None
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"applied": applied, "s": elapsed, "rss_before_kb": before,
                  "rss_growth_kb": after - before, "heap_peak_b": peak}))
"""

_COLD = """
import json, sys, time
t0 = time.perf_counter()
from ledger.application import LedgerApplication
from ledger.persistence.store import parse_store_url
from projections.index import RunIndex
t1 = time.perf_counter()
app = LedgerApplication(parse_store_url(sys.argv[1]))
index = RunIndex(app)
index.catch_up()
rows = list(index.find_runs(experiment_name="bench", limit=100,
                            properties={"author": "azureml-user"},
                            tags={"quality": "fantastic run"}))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_catch_up_query_s": t2 - t1, "rows": len(rows)}))
"""


def subprocess_json(code: str, *args: str) -> tuple[dict[str, Any], float]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, check=False, timeout=900)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def rebuild(url: str, repeats: int) -> dict[str, Any]:
    runs = [subprocess_json(_REBUILD, url, "plain")[0] for _ in range(repeats)]
    best = min(runs, key=lambda r: r["s"])
    traced, _wall = subprocess_json(_REBUILD, url, "trace")
    return {"applied": best["applied"], "s": round(best["s"], 3),
            "events_per_s": round(best["applied"] / best["s"]),
            "events_per_s_runs": [round(r["applied"] / r["s"]) for r in runs],
            "rss_before_mb": round(best["rss_before_kb"] / 1024, 1),
            "rss_growth_mb": round(max(r["rss_growth_kb"] for r in runs) / 1024, 1),
            "tracemalloc_peak_mb": round(traced["heap_peak_b"] / 2**20, 2)}


def cold(url: str, repeats: int) -> dict[str, Any]:
    walls, inner = [], []
    for _ in range(repeats):
        result, wall = subprocess_json(_COLD, url)
        assert result["rows"] == 100 or result["rows"] > 0
        walls.append(wall)
        inner.append(result)
    bare = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - started)
    return {"wall_s_p50": round(statistics.median(walls), 3),
            "import_s_p50": round(statistics.median(r["import_s"] for r in inner), 3),
            "open_catch_up_query_s_p50": round(
                statistics.median(r["open_catch_up_query_s"] for r in inner), 4),
            "bare_interpreter_s_p50": round(statistics.median(bare), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k runs only (< 60 s)")
    parser.add_argument("--sizes", help="comma-separated run counts (default 1000,10000,100000)")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 7; 3 quick)")
    parser.add_argument("--dir", help="where to build the ledgers (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the ledgers")
    args = parser.parse_args(argv)
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
             else [1000, 10000] if args.quick else [1000, 10000, 100000])
    repeats = args.repeats or (3 if args.quick else 7)
    root = Path(args.dir or tempfile.mkdtemp(prefix="rl-bench-projections-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = []
    try:
        for n in sizes:
            url = f"sqlite:///{root / f'ledger-{n}.db'}"
            if (root / f"ledger-{n}.db").exists():
                (root / f"ledger-{n}.db").unlink()
            built = build(url, n)
            entry: dict[str, Any] = {"size": n, **{k: v for k, v in built.items()
                                                   if k not in ("parent", "some_run")}}
            entry.update(queries(url, n, built, repeats))
            entry["rebuild"] = rebuild(url, 1 if args.quick else 2)
            entry["cold"] = cold(url, repeats)
            results.append(entry)
            print(f"[bench_projections] {n} runs done at {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    largest = results[-1]
    summary = {
        "at_runs": largest["size"],
        "selective_p50_ms": {"whole": largest["selective"]["p50_ms"],
                             "first_run": largest["selective"]["first_run_p50_ms"],
                             "matches": largest["selective"]["matches"]},
        "needle_p50_ms_by_size": {r["size"]: r["needle"]["p50_ms"] for r in results},
        "children_500_p50_ms": {"whole": largest["children"]["p50_ms"],
                                "first_run": largest["children"]["first_run_p50_ms"],
                                "ids_only": largest["children"]["descendant_ids_p50_ms"]},
        "rebuild_events_per_s": largest["rebuild"]["events_per_s"],
        "rebuild_memory_mb_by_size": {
            r["size"]: {"rss_growth": r["rebuild"]["rss_growth_mb"],
                        "tracemalloc_peak": r["rebuild"]["tracemalloc_peak_mb"]}
            for r in results},
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cold_open_first_query_s": largest["cold"]["wall_s_p50"],
    }
    print(json.dumps({
        "benchmark": "bench_projections", "quick": args.quick, "targets": TARGETS,
        "summary": summary,
        "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "sqlite": __import__("sqlite3").sqlite_version,
        "elapsed_s": round(time.perf_counter() - started, 1), "sizes": results,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
