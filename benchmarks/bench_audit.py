#!/usr/bin/env python3
"""Tamper-evidence benchmark: verify rate, proof check time, sealing's cost (issue 11, speed).

Usage (from the repository root)::

    python -m benchmarks.bench_audit                   # 200k events, S1/S3 x3 (~2-3 min)
    python -m benchmarks.bench_audit --quick           # 50k events, S1/S3 x1 (< 1 min)
    python -m benchmarks.bench_audit --events 1000000 --skip-scenarios

Measured, on SQLite (one invocation, so the ratios compare like with like on a noisy machine):

- ``verify``: ``ledger.audit.verify`` against a digest of the whole log: events read from the
  store (``select_notifications``, 5,000 per page), re-encoded, hashed and folded into the root,
  events/s (target >= 100,000). The log is built through the application layer: runs of 5 events
  (created, started, properties, tags, completed), 1,000 runs per ``save_all``.
- ``proof check``: ``verify_inclusion`` of one event's inclusion proof against the digest
  (median over 2,000 random events, target <= 1 ms), and ``check_proof`` of a whole run's proof
  document (JSON-decoded, every event hashed and checked).
- ``catch-up``: the first catch-up of a fresh index over the log, with every read model and
  without the sealing projection, on two copies of the same database file: the cost of sealing,
  which runs there (in the projector's catch-up, off the write path).
- ``S1``/``S3``: the scenarios of ``benchmarks/scenarios.py`` (its helpers and values; scale
  full, S1 at 10 x N1: 50,000 ``log`` calls; 2,000 runs), after a warm-up round, alternately
  without and with the sealing projection registered (``projections.registry.PROJECTIONS``),
  median of the repeats, in wall and CPU time; then the first query over S3's store, which
  catches the index up with S3's writes: the catch-up share of the cost (target: S1 and S3
  within 10%).

Prints one JSON object; progress on stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ledger import Workspace, audit  # noqa: E402
from ledger.application import LedgerApplication  # noqa: E402
from ledger.domain.ids import experiment_stream_id, new_run_id, run_stream_id  # noqa: E402
from ledger.domain.merkle import leaf_hash, verify_inclusion  # noqa: E402
from ledger.domain.run import RunAggregate  # noqa: E402
from ledger.domain.values import current_actor  # noqa: E402
from ledger.persistence.store import parse_store_url  # noqa: E402
from projections import registry  # noqa: E402
from projections.index import RunIndex  # noqa: E402
from projections.sealing import SealingProjection  # noqa: E402


def log(message: str) -> None:
    print(f"[bench_audit] {message}", file=sys.stderr, flush=True)


def build(url: str, events: int) -> list[str]:
    """Write about ``events`` events (5 per run) through the application layer."""
    app = LedgerApplication(parse_store_url(url))
    actor = current_actor()
    ids: list[str] = []
    try:
        app.ensure_experiment("bench", actor)
        exp_id = experiment_stream_id("bench")
        runs = max(1, events // 5)
        for start in range(0, runs, 1000):
            batch = []
            for i in range(start, min(runs, start + 1000)):
                run_id = new_run_id()
                run = RunAggregate.create(aggregate_id=run_stream_id(run_id), run_id=run_id,
                                          experiment_id=exp_id, experiment_name="bench",
                                          actor=actor)
                run.start(actor)
                run.add_properties({"author": ["a", "b"][i % 2], "lr": str(i % 10)}, actor)
                run.set_tags({"quality": ["great", "ok", "fantastic"][i % 3]}, actor)
                run.complete(actor)
                batch.append(run)
                ids.append(run_id)
            app.save_all(*batch)
    finally:
        app.close()
    return ids


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def catch_up_rate(url: str, with_sealing: bool) -> dict[str, Any]:
    app = LedgerApplication(parse_store_url(url))
    try:
        projections = list(registry.PROJECTIONS)
        if not with_sealing:
            projections.remove(SealingProjection)
        index = RunIndex(app, projections=projections)
        started = time.process_time()
        seconds, applied = timed(lambda: index._projector.catch_up())
        cpu = time.process_time() - started
        return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
                "events": applied[1], "events_per_s": round(applied[1] / seconds)}
    finally:
        app.close()


def measure_log(root: Path, events: int) -> dict[str, Any]:
    base = root / "base.db"
    log(f"building a ledger of ~{events} events")
    seconds, ids = timed(lambda: build(f"sqlite:///{base}", events))
    log(f"built in {seconds:.1f}s; catch-up with and without sealing")
    copies = {}
    for name in ("plain", "sealed"):
        copies[name] = root / f"{name}.db"
        shutil.copy(base, copies[name])
    plain = catch_up_rate(f"sqlite:///{copies['plain']}", with_sealing=False)
    sealed = catch_up_rate(f"sqlite:///{copies['sealed']}", with_sealing=True)
    result: dict[str, Any] = {
        "events": sealed["events"], "build_s": round(seconds, 1),
        "catch_up_without_sealing": plain, "catch_up_with_sealing": sealed,
        "catch_up_time_ratio": round(sealed["seconds"] / plain["seconds"], 3),
        "catch_up_cpu_ratio": round(sealed["cpu_seconds"] / plain["cpu_seconds"], 3)}

    ws = Workspace(store=f"sqlite:///{copies['sealed']}")
    digest = audit.digest(ws)
    log(f"verify over {digest.tree_size} events")
    runs, cpu = [], []
    for _ in range(3):
        started = time.process_time()
        seconds, report = timed(lambda: audit.verify(ws, [digest]))
        cpu.append(time.process_time() - started)
        assert report.ok, report.message
        runs.append(seconds)
    verify_s, verify_cpu = statistics.median(runs), statistics.median(cpu)
    # CPU time too: on a shared machine the wall time measures the other jobs as well.
    result["verify"] = {"seconds": round(verify_s, 3), "cpu_seconds": round(verify_cpu, 3),
                        "events": digest.tree_size,
                        "events_per_s": round(digest.tree_size / verify_s),
                        "events_per_cpu_s": round(digest.tree_size / verify_cpu),
                        "target_events_per_s": 100_000}

    log("proof checks")
    rng = random.Random(7)
    sample = [rng.choice(ids) for _ in range(200)]
    checks: list[float] = []
    documents: list[float] = []
    per_event: list[float] = []
    for run_id in sample:
        doc = json.loads(json.dumps(audit.prove(ws, run_id, digest)))
        seconds, checked = timed(lambda doc=doc: audit.check_proof(doc, digest))
        documents.append(seconds)
        per_event.append(seconds / checked.events)
        for event in doc["events"]:
            leaf = leaf_hash(base64.b64decode(event["leaf"]))
            path = [bytes.fromhex(h) for h in event["proof"]]
            start = time.perf_counter()
            verify_inclusion(event["leaf_index"], digest.tree_size, leaf, path,
                             digest.root_hash)
            checks.append(time.perf_counter() - start)
    result["proof_check"] = {
        "verify_inclusion_median_ms": round(statistics.median(checks) * 1e3, 4),
        "verify_inclusion_p99_ms": round(sorted(checks)[int(len(checks) * 0.99)] * 1e3, 4),
        "check_proof_of_a_run_median_ms": round(statistics.median(documents) * 1e3, 4),
        "check_proof_per_event_median_ms": round(statistics.median(per_event) * 1e3, 4),
        "proofs_checked": len(checks), "target_ms": 1.0}
    ws._session.close()
    return result


def _s1_s3_once(stores: Any, n1: int, n3: int) -> dict[str, float]:
    """S1 and S3 of benchmarks/scenarios.py (its helpers and value schedule), timed in wall and
    CPU time, then the first query over S3's store (which catches the index up)."""
    from benchmarks.scenarios import check_history, open_store, s3_attrs

    out: dict[str, float] = {}
    d, url, schema = stores.fresh()
    ws, exp = open_store(url, "s1")
    try:
        run = exp.start_logging()
        run.flush()
        log_value = run.log
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n1):
            log_value("loss", 1.0 / (i + 1), step=i)
        run.flush()
        out["S1_calls_per_s"] = n1 / (time.perf_counter() - wall)
        out["S1_calls_per_cpu_s"] = n1 / (time.process_time() - cpu)
        check_history(run, n1)
    finally:
        stores.drop(d, url, schema, ws)
    d, url, schema = stores.fresh()
    ws, exp = open_store(url, "s3")
    try:
        start = exp.start_logging
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n3):
            a = s3_attrs(i)
            run = start()
            run.add_properties({"author": a["author"], "lr": a["lr"],
                                "batch_size": a["batch_size"]})
            run.tag("quality", a["quality"])
            run.tag("team", a["team"])
            run.complete()
        out["S3_runs_per_s"] = n3 / (time.perf_counter() - wall)
        out["S3_runs_per_cpu_s"] = n3 / (time.process_time() - cpu)
        wall, cpu = time.perf_counter(), time.process_time()
        found = list(exp.get_runs())
        out["S4_first_query_ms"] = (time.perf_counter() - wall) * 1e3
        out["S4_first_query_cpu_ms"] = (time.process_time() - cpu) * 1e3
        assert len(found) == n3
    finally:
        stores.drop(d, url, schema, ws)
    return out


def scenarios(repeats: int) -> dict[str, Any]:
    """S1 and S3 (scale full), alternately without and with the sealing projection."""
    from benchmarks.scenarios import SCALES, Stores

    # S1 at 10 x N1: 5,000 calls take ~10 ms, below what a busy machine lets one time.
    n1, n3 = 10 * SCALES["full"]["N1"], SCALES["full"]["N3"]
    root = tempfile.mkdtemp(prefix="bench-audit-scenarios-")
    stores = Stores("sqlite", root)
    figures: dict[str, dict[str, list[float]]] = {"without": {}, "with": {}}
    try:
        log("S1/S3 warm-up (not counted)")
        _s1_s3_once(stores, n1, n3)
        for rep in range(repeats):
            for mode in ("without", "with"):
                log(f"S1/S3 {mode} sealing (repeat {rep + 1}/{repeats})")
                if mode == "without":
                    registry.PROJECTIONS.remove(SealingProjection)
                try:
                    once = _s1_s3_once(stores, n1, n3)
                finally:
                    if SealingProjection not in registry.PROJECTIONS:
                        registry.PROJECTIONS.append(SealingProjection)
                for key, value in once.items():
                    figures[mode].setdefault(key, []).append(value)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    medians = {mode: {k: round(statistics.median(v), 3) for k, v in values.items()}
               for mode, values in figures.items()}
    ratios = {key: round(medians["with"][key] / medians["without"][key], 3)
              for key in medians["with"]}
    return {"repeats": repeats, "N1": n1, "N3": n3, "medians": medians,
            "ratios_with_over_without": ratios, "all": figures,
            "target": "S1 and S3 ratios within 0.9-1.1 (rates: with/without)"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3, help="S1/S3 repeats per mode")
    parser.add_argument("--quick", action="store_true", help="50k events, 1 repeat")
    parser.add_argument("--skip-scenarios", action="store_true")
    parser.add_argument("--only-scenarios", action="store_true")
    args = parser.parse_args(argv)
    events, repeats = (50_000, 1) if args.quick else (args.events, args.repeats)
    root = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    started = time.perf_counter()
    try:
        out: dict[str, Any] = {
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "load_at_start": list(os.getloadavg())},
            "log": {} if args.only_scenarios else measure_log(root, events)}
        if not args.skip_scenarios:
            out["scenarios"] = scenarios(repeats)
        out["machine"]["load_at_end"] = list(os.getloadavg())
        out["wall_s"] = round(time.perf_counter() - started, 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
