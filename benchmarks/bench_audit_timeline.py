#!/usr/bin/env python3
"""Audit timeline benchmark: one run as of a moment costs O(its events), not O(the log).

Usage (from the repository root)::

    python benchmarks/bench_audit_timeline.py                  # ~100k events in all (~1 min)
    python benchmarks/bench_audit_timeline.py --background 2000 --repeats 50   # quick

A fresh SQLite ledger is built through the application layer: ``--background`` runs of 5 events
each (created, started, properties, tags, completed; 1,000 runs per ``save_all``), and, spread
among them, the *audited* run: 1,000 events in all (its Created and start, then tags set and
changed, properties added and corrected, metric batches of 10 values, an archive and a restore,
its end), so its events are scattered over the whole log. A *small* run of 10 events is spread
the same way. A second ledger holds the audited run's 1,000 events alone.

Measured (median and p95 of ``--repeats`` calls each, at moments drawn at random over the run's
life): ``ledger.audit.timeline.run_as_of`` of the audited run by position and by time; as of
its last event (all 1,000 events folded: the figure the target is about), alone and then with
``get_details()`` and ``get_metrics()`` of the view; the same for the small run; the same for the
audited run in the ledger that holds nothing else. The target (issue 11): one run of 1,000 events
as of a moment in <= 5 ms. The ratio "big ledger / alone" shows that the cost does not follow the
size of the log. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ledger.application import LedgerApplication  # noqa: E402
from ledger.audit.timeline import run_as_of  # noqa: E402
from ledger.domain.ids import experiment_stream_id, new_run_id, run_stream_id  # noqa: E402
from ledger.domain.run import RunAggregate  # noqa: E402
from ledger.domain.values import current_actor  # noqa: E402
from ledger.persistence.store import parse_store_url  # noqa: E402

EXPERIMENT = "bench"
ACTOR = current_actor()
TARGET_MS = 5.0


def new_run(run_id: str | None = None) -> RunAggregate:
    run_id = run_id or new_run_id()
    return RunAggregate.create(aggregate_id=run_stream_id(run_id), run_id=run_id,
                               experiment_id=experiment_stream_id(EXPERIMENT),
                               experiment_name=EXPERIMENT, actor=ACTOR)


def background_batch(count: int) -> list[RunAggregate]:
    runs = []
    for i in range(count):
        run = new_run()
        run.start(ACTOR)
        run.add_properties({"author": "azureml-user", "lr": str(i % 7)}, ACTOR)
        run.set_tags({"quality": ["great", "ok"][i % 2]}, ACTOR)
        run.complete(ACTOR)
        runs.append(run)
    return runs


def audited_steps(total: int) -> list[tuple[str, Any]]:
    """The commands of a run of ``total`` events (Created is the first)."""
    steps: list[tuple[str, Any]] = [("start", None)]
    middle = total - 5  # Created, start, archive, restore, complete
    added: list[str] = []
    for i in range(middle):
        kind = i % 10
        if kind < 5:
            steps.append(("tag", {f"t{i % 37}": str(i)}))
        elif kind < 7:
            added.append(f"p{i}")
            steps.append(("prop", {f"p{i}": str(i)}))
        elif kind == 7:
            steps.append(("correct", added[-1]))
        else:
            steps.append(("metrics", [float(i + j) for j in range(10)]))
    steps += [("archive", "bench"), ("restore", None), ("complete", None)]
    return steps


def apply_step(app: LedgerApplication, run_id: str, step: tuple[str, Any], n: int) -> None:
    kind, arg = step
    if kind == "metrics":
        app.append_metrics(run_id, [["loss", "scalar", "", arg, [None] * len(arg),
                                     [0.0] * len(arg)]], ACTOR)
        return
    commands = {
        "start": lambda r: r.start(ACTOR),
        "tag": lambda r: r.set_tags(arg, ACTOR),
        "prop": lambda r: r.add_properties(arg, ACTOR),
        "correct": lambda r: r.correct_property(arg, f"fixed {n}", "bench", ACTOR),
        "archive": lambda r: r.archive(arg, ACTOR),
        "restore": lambda r: r.restore(ACTOR),
        "complete": lambda r: r.complete(ACTOR),
    }
    app.run_command(None, run_id, commands[kind])


def build(path: Path, background: int, events: int) -> tuple[LedgerApplication, str, str]:
    app = LedgerApplication(parse_store_url(f"sqlite:///{path}"))
    app.ensure_experiment(EXPERIMENT, ACTOR)
    audited, small = new_run("audited-run"), new_run("small-run")
    app.save_all(audited, small)
    big_steps = audited_steps(events)
    small_steps = [("start", None)] + [("tag", {"k": str(i)}) for i in range(7)] + [
        ("complete", None)]
    batches = max(1, background // 1000)
    per_batch = len(big_steps) // batches + 1
    small_per_batch = len(small_steps) // batches + 1
    done = small_done = 0
    for b in range(batches):
        if background:
            app.save_all(*background_batch(min(1000, background - b * 1000)))
        for step in big_steps[done:done + per_batch]:
            apply_step(app, audited.run_id, step, done)
            done += 1
        for step in small_steps[small_done:small_done + small_per_batch]:
            apply_step(app, small.run_id, step, small_done)
            small_done += 1
    for step in big_steps[done:]:
        apply_step(app, audited.run_id, step, done)
        done += 1
    for step in small_steps[small_done:]:
        apply_step(app, small.run_id, step, small_done)
        small_done += 1
    return app, audited.run_id, small.run_id


def moments(app: LedgerApplication, run_id: str, repeats: int,
            rng: random.Random) -> tuple[list[int], list[Any], int]:
    from ledger.domain.ids import metric_stream_id

    found = app.stream_notifications([run_stream_id(run_id), metric_stream_id(run_id)])
    positions = [row[0] for row in found]
    times = [event.timestamp for event in app.decode_rows(found)]
    return ([rng.choice(positions) for _ in range(repeats)],
            [rng.choice(times) for _ in range(repeats)], len(found))


def timed(calls: list[Any]) -> dict[str, float]:
    """Wall time and this process's CPU time per call (on a shared machine the CPU time is the
    steadier figure: the wall time also counts the time other processes held the cores)."""
    samples, cpu = [], []
    for call in calls:
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        cpu.append((time.process_time() - start_cpu) * 1000)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 3),
            "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 3),
            "max_ms": round(samples[-1], 3),
            "cpu_p50_ms": round(statistics.median(cpu), 3)}


def measure(app: LedgerApplication, run_id: str, repeats: int,
            rng: random.Random) -> dict[str, Any]:
    positions, times, count = moments(app, run_id, repeats, rng)
    run_as_of(app, run_id, positions[0])  # warm the connection and the statement cache
    last = max(positions)
    return {
        "events": count,
        "as_of_position": timed([lambda p=p: run_as_of(app, run_id, p) for p in positions]),
        "as_of_time": timed([lambda t=t: run_as_of(app, run_id, t) for t in times]),
        # The whole run: every one of its events folded (the figure the target is about).
        "as_of_end": timed([lambda: run_as_of(app, run_id, last)] * repeats),
        "as_of_end_with_details_and_metrics": timed(
            [lambda: (lambda v: (v.get_details(), v.get_metrics()))(
                run_as_of(app, run_id, last))] * repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--background", type=int, default=20_000,
                        help="background runs of 5 events (default 20,000: 100k events)")
    parser.add_argument("--events", type=int, default=1000, help="events of the audited run")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        app, audited, small = build(Path(folder) / "big.db", args.background, args.events)
        built = time.perf_counter() - started
        alone, alone_run, _small = build(Path(folder) / "alone.db", 0, args.events)
        try:
            log_size = app.max_position()
            big = measure(app, audited, args.repeats, rng)
            result = {
                "benchmark": "audit timeline: one run as of a moment",
                "machine": {"python": platform.python_version(),
                            "platform": platform.platform(), "store": "sqlite (file)"},
                "ledger_events": log_size,
                "build_seconds": round(built, 1),
                "audited_run_in_big_ledger": big,
                "small_run_in_big_ledger": measure(app, small, args.repeats, rng),
                "audited_run_alone": measure(alone, alone_run, args.repeats, rng),
                "target_ms": TARGET_MS,
            }
            by_itself = result["audited_run_alone"]["as_of_end"]
            result["ratio_big_ledger_vs_alone_cpu_p50"] = round(
                big["as_of_end"]["cpu_p50_ms"] / by_itself["cpu_p50_ms"], 2)
            result["meets_target_wall_p50"] = big["as_of_end"]["p50_ms"] <= TARGET_MS
            result["meets_target_cpu_p50"] = big["as_of_end"]["cpu_p50_ms"] <= TARGET_MS
            result["load_average_1min"] = round(os.getloadavg()[0], 1)
            result["cpus"] = os.cpu_count()
        finally:
            app.close()
            alone.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
