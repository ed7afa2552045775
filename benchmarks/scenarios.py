#!/usr/bin/env python3
"""runledger's side of the MLflow comparison: scenarios S0-S9 of ../shared/bench/peer_mlflow.py.

Usage (from the repository root, in the environment runledger is installed in):

    python -m benchmarks.scenarios --backend sqlite --scale full > ours_sqlite_full.json
    python -m benchmarks.scenarios --backend postgresql --scale full   # needs the server below
    python -m benchmarks.scenarios --backend sqlite --scale small --repeats 1   # smoke run

Options: --repeats R (default 3; each scenario is measured R times, each time on a fresh store --
a new temp dir for SQLite, a new schema ``b_<hex>`` for PostgreSQL -- and the median is
reported), --only S1,S4,... (subset; S4, S5 and S8 run with S3 whose store they use), --keep
(keep temp dirs / schemas), --pg-url URL (default ``postgresql://postgres@127.0.0.1:5432/test``,
or ``RUNLEDGER_BENCH_PG``), --s9-workers 2,8 (worker counts of S9).  Exactly one JSON object is
printed on stdout (same shape as the peer's: ``results[key]`` holds the medians and ``reps``);
progress goes to stderr.  Exit code 1 if any scenario raised or failed its assertion.
--profile S3|S4|S5|S7 also runs that scenario's operation under cProfile, outside the timed
regions, and prints the top functions to stderr (``--profile-out FILE`` keeps the stats).

The scenarios, mapped 1:1 onto the seed (Azure ML SDK v1) API; sizes and assertions are the
peer's (full: N1=5000, N3=2000; small: N1=1000, N3=300):

  S0  store init: ``Workspace(store=url)`` + ``Experiment(ws, "s0")`` on an empty store (creates
      the event tables; the query index is created by the first query).  Never inside another
      scenario's timed region.
  S1  1 run (``exp.start_logging()``, published before timing); ``run.log("loss", v, step=i)``
      N1 times, then one ``run.flush()`` inside the timed region -> calls/s.  Measured twice, in
      two runs: without per-call timers (the headline ``calls_per_s``) and with a
      ``perf_counter()`` pair around every call, as the peer times it (``lat_p50_ms``,
      ``lat_p99_ms``, ``calls_per_s_instrumented``).  The stored history is asserted == N1
      values with steps 0..N1-1.
  S1_durable  the same, ``run.log(...)`` + ``run.flush()`` every call: each value is durable when
      the call returns (one transaction per call, like MLflow's ``log_metric``).
  S2  1 run; the same N1 values in chunks of 1000: per chunk, 1000 x ``run.log(..., step=i)``
      then ``run.flush()`` (one event + one transaction per chunk).  Chosen over ``log_list``
      because ``log_list`` stores no steps, while MLflow's Metric history has one per value; the
      stored history is asserted == N1 values with steps -> values/s.
  S3  1 experiment; N3 x: ``exp.start_logging()``; ``add_properties({author, lr, batch_size})``
      (MLflow: 3 params); ``tag("quality", ..)``; ``tag("team", ..)``; ``complete()`` (durable on
      return) -> runs/s.  Values from ``s3_attrs(i)``, the peer's schedule.
  S4  over the S3 store: ``list(exp.get_runs(properties={"author": "azureml-user"},
      tags={"quality": "fantastic run"}))`` 5 times -> median latency; the count is asserted ==
      ``s4_expected(N3)`` and (outside the timed region) every run's tags/properties are checked.
      ``first_query_ms`` is reported apart: the first query also catches the index up with S3's
      writes.
  S5  over the S3 store: ``Run.get(ws, run #N3//2).get_details()`` 200 times -> median latency
      (the details hold status, times, properties and tags: what MLflow's get_run returns for a
      run without metrics).  ``get_only_ms`` / ``details_only_ms`` split the two calls.
      S5b (extra): the same on the S1 run (a run with an N1-step metric history).
  S6  1 run (published); ``run.tag("status", f"v{i}")`` 500 times -> calls/s; a reload asserts
      the last value.
  S7  ``with exp.start_logging() as parent:`` 500 x ``with parent.child_run(): pass`` -> create
      time (parent start and end included, as in the peer); then ``list(parent.get_children())``
      5 times -> median query time; the count is asserted == 500.
  S8  over the S3 store: wall time of ``python -c <import ledger; open the store; list the
      experiment's runs; assert count == N3>`` in a subprocess (interpreter start included),
      with its internal split (import / open / list), and a bare ``import ledger`` subprocess
      as a baseline.  OS page cache warm, as in the peer.
  S9  W worker processes (W = 2, MLflow's configuration, and 8, the issue's), each
      ``run.log(...)`` + ``run.flush()`` per call 1000 times into its own run of one store,
      started together by a file barrier -> aggregate calls/s over the concurrent window,
      errors, and the stored history length of every run (asserted == 1000).
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
import traceback
import uuid
from collections.abc import Callable
from contextlib import redirect_stdout, suppress
from typing import Any

SCALES = {
    "full": dict(N1=5000, N3=2000),
    "small": dict(N1=1000, N3=300),
}
BATCH_CHUNK = 1000
N4_QUERIES = 5
N5_GETS = 200
N6_TAGS = 500
N7_CHILDREN = 500
N7_QUERIES = 5
N9_PER_WORKER = 1000
S9_WORKERS_DEFAULT = (2, 8)
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

QUALITY = ["great run", "fantastic run", "ok"]
TEAM = ["a", "b"]
AUTHOR = ["azureml-user", "other-user"]
S4_PROPERTIES = {"author": "azureml-user"}
S4_TAGS = {"quality": "fantastic run"}

# Result keys shared with the peer's JSON, so that compare.py can pair them.
S9_KEYS = {2: "S9_two_process_concurrent_log_metric",
           8: "S9_eight_process_concurrent_log_metric"}


def s3_attrs(i: int) -> dict[str, str]:
    """The peer's value schedule for run ``i`` of S3 (identical, by design)."""
    return dict(
        quality=QUALITY[i % 3],
        team=TEAM[i % 2],
        author=AUTHOR[(i // 3) % 2],
        lr=str(0.001 * (i % 10 + 1)),
        batch_size=str(32 * (i % 4 + 1)),
    )


def s4_expected(n3: int) -> int:
    """How many of the first ``n3`` S3 runs match the S4 filter (334 of 2000, 50 of 300)."""
    return sum(1 for i in range(n3)
               if s3_attrs(i)["quality"] == "fantastic run"
               and s3_attrs(i)["author"] == "azureml-user")


def med(xs: list[float]) -> Any:  # None for an empty list
    return statistics.median(xs) if xs else None


def pct(xs: list[float], p: float) -> Any:  # None for an empty list
    if not xs:
        return None
    s = sorted(xs)
    k = min(len(s) - 1, max(0, round(p / 100.0 * (len(s) - 1))))
    return s[k]


def rnd(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


# --------------------------------------------------------------------------- stores
class Stores:
    """Fresh stores: a temp dir (SQLite) or a new schema (PostgreSQL), and their cleanup."""

    def __init__(self, backend: str, root: str, pg_url: str = DEFAULT_PG_URL,
                 keep: bool = False) -> None:
        self.backend = backend
        self.root = root
        self.pg_url = pg_url
        self.keep = keep
        self._n = 0

    def fresh(self) -> tuple[str, str, str | None]:
        """Return (dir, store URL, schema) of a new, empty store."""
        self._n += 1
        d = os.path.join(self.root, f"s{self._n:03d}")
        os.makedirs(d)
        if self.backend == "sqlite":
            return d, f"sqlite:///{d}/ledger.db", None
        schema = "b_" + uuid.uuid4().hex[:16]
        import psycopg

        # Created here, outside every timed region (older stores did not create it).
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in self.pg_url else "?"
        return d, f"{self.pg_url}{sep}schema={schema}", schema

    def drop(self, d: str, url: str, schema: str | None, ws: Any = None) -> None:
        """Close this process's session on the store and delete the store."""
        close_session(url, ws)
        if self.keep:
            return
        shutil.rmtree(d, ignore_errors=True)
        if schema:
            import psycopg

            with psycopg.connect(self.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def close_session(url: str, ws: Any = None) -> None:
    """Close and forget this process's session on ``url`` (flusher thread, connections)."""
    from ledger.sdk import session as session_module

    key = (os.getpid(), url)
    session = session_module._sessions.pop(key, None)
    if session is None and ws is not None:
        session = ws._session
    if session is not None:
        try:
            session.close()
        except Exception as error:  # a failed scenario may leave a broken store behind
            print(f"[bench] closing {url}: {error}", file=sys.stderr)


def open_store(url: str, experiment: str) -> tuple[Any, Any]:
    from ledger import Experiment, Workspace

    ws = Workspace(store=url)
    return ws, Experiment(ws, experiment)


def check_history(run: Any, n: int) -> None:
    """Assert that the run's stored "loss" history is the n values 1/(i+1) at steps 0..n-1."""
    values = run.get_metrics("loss")["loss"]
    values = values if isinstance(values, list) else [values]
    assert len(values) == n, ("stored values", len(values), n)
    steps: list[Any] = []
    app = run.experiment.workspace.ledger.application
    for event in app.metric_events(run.id):
        for name, _kind, _d, _v, st, _t in event.series:
            if name == "loss":
                steps.extend(st)
    assert steps == list(range(n)), "steps are not 0..n-1"
    assert values[0] == 1.0 and values[-1] == 1.0 / n, "values differ"


# --------------------------------------------------------------------------- workers
COLD_OPEN_CODE = r"""
import sys, time, json
t0 = time.perf_counter()
from ledger import Workspace, Experiment
t1 = time.perf_counter()
uri, exp_name, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
ws = Workspace(store=uri)
exp = Experiment(ws, exp_name)
t2 = time.perf_counter()
runs = list(exp.get_runs())
t3 = time.perf_counter()
assert len(runs) == expected, (len(runs), expected)
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "list_s": t3 - t2,
                  "open_list_s": t3 - t1, "n": len(runs)}))
"""

IMPORT_ONLY_CODE = "from ledger import Workspace, Experiment"

S9_WORKER_CODE = r"""
import sys, os, time, json, collections
uri, run_id, n, ready, go, out = sys.argv[1:7]
n = int(n)
from ledger import Workspace, Run
ws = Workspace(store=uri)
run = Run.get(ws, run_id)           # open the store before the barrier
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.0005)
errs = collections.Counter()
lat = []
pc = time.perf_counter
t0 = time.time()
for i in range(n):
    a = pc()
    try:
        run.log("loss", 1.0 / (i + 1), step=i)
        run.flush()
    except Exception as e:
        errs[(type(e).__name__ + ": " + str(e).splitlines()[0])[:200]] += 1
    lat.append(pc() - a)
t1 = time.time()
lat.sort()
json.dump({"t_start": t0, "t_end": t1, "errors": sum(errs.values()),
           "error_kinds": dict(errs), "lat_p50_ms": lat[len(lat)//2] * 1e3,
           "lat_p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
           "lat_max_ms": lat[-1] * 1e3}, open(out, "w"))
"""


# --------------------------------------------------------------------------- harness
class Bench:
    def __init__(self, backend: str, scale: str, repeats: int, keep: bool, pg_url: str,
                 s9_workers: tuple[int, ...], profile: str = "",
                 profile_out: str = "") -> None:
        self.profile = profile.upper()
        self.profile_out = profile_out
        self.backend = backend
        self.scale = scale
        self.N1 = SCALES[scale]["N1"]
        self.N3 = SCALES[scale]["N3"]
        self.repeats = repeats
        self.keep = keep
        self.s9_workers = s9_workers
        self.root = tempfile.mkdtemp(prefix=f"runledgerbench-{backend}-")
        self.workdir = os.path.join(self.root, "cwd")
        os.makedirs(self.workdir)
        os.chdir(self.workdir)  # a stray default store (./.runledger) would land here
        self.stores = Stores(backend, self.root, pg_url, keep)
        self.results: dict[str, Any] = {}
        self.errors: list[dict[str, str]] = []
        self.scenario_wall_s: dict[str, float] = {}

    def record(self, name: str, reps: list[dict[str, Any]], summary_keys: list[str],
               **extra: Any) -> None:
        out: dict[str, Any] = {"reps": reps}
        for k in summary_keys:
            vals = [r[k] for r in reps if r.get(k) is not None]
            out[k] = rnd(med(vals), 6)
        out.update(extra)
        self.results[name] = out

    def profiled(self, name: str, fn: Callable[[], Any], n: int) -> None:
        """With ``--profile name``: run ``fn`` n more times under cProfile (outside every timed
        region), save the stats and print the top functions to stderr.  Once per invocation."""
        if self.profile != name or getattr(self, "_profiled", False):
            return
        self._profiled = True
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            fn()
        prof.disable()
        out = self.profile_out or os.path.join(tempfile.gettempdir(), f"runledger-{name}.prof")
        prof.dump_stats(out)
        print(f"[bench] profile of {n} x {name} saved to {out}", file=sys.stderr)
        stats = pstats.Stats(prof, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(25)

    def fail(self, scenario: str, error: BaseException) -> None:
        self.errors.append({"scenario": scenario, "error": f"{type(error).__name__}: {error}",
                            "traceback": traceback.format_exc()[-2000:]})
        print(traceback.format_exc(), file=sys.stderr)

    def run_scenario(self, name: str, fn: Callable[[], None]) -> None:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            fn()
        except Exception as e:  # record and continue with the other scenarios
            self.fail(name, e)
        el = time.perf_counter() - t
        self.scenario_wall_s[name] = round(el, 2)
        print(f"[bench] {name} done in {el:.1f}s", file=sys.stderr, flush=True)

    # -- S0 -------------------------------------------------------------------------
    def s0_init(self) -> None:
        reps = []
        for _ in range(self.repeats):
            d, url, schema = self.stores.fresh()
            t = time.perf_counter()
            ws, _exp = open_store(url, "s0")
            reps.append({"init_s": time.perf_counter() - t})
            self.stores.drop(d, url, schema, ws)
        self.record("S0_store_init", reps, ["init_s"])

    # -- S1 + S1_durable + S5b ------------------------------------------------------
    def s1(self) -> None:
        from ledger import Run

        reps, dreps = [], []
        n = self.N1
        pc = time.perf_counter
        for _ in range(self.repeats):
            d, url, schema = self.stores.fresh()
            ws, exp = open_store(url, "s1")
            try:
                # (a) headline: no per-call timers
                run = exp.start_logging()
                run.flush()
                log = run.log
                t0 = pc()
                for i in range(n):
                    log("loss", 1.0 / (i + 1), step=i)
                run.flush()
                dt = pc() - t0
                check_history(run, n)

                # (b) instrumented, as the peer times it
                run_i = exp.start_logging()
                run_i.flush()
                log = run_i.log
                lat = []
                t0 = pc()
                for i in range(n):
                    a = pc()
                    log("loss", 1.0 / (i + 1), step=i)
                    lat.append(pc() - a)
                a = pc()
                run_i.flush()
                flush_s = pc() - a
                dt_i = pc() - t0
                check_history(run_i, n)

                # S5b: get_run on a run carrying an N1-step history (extra)
                g, gm = [], []
                for _ in range(50):
                    a = pc()
                    Run.get(ws, run.id).get_details()
                    g.append(pc() - a)
                for _ in range(5):
                    a = pc()
                    run.get_metrics("loss")
                    gm.append(pc() - a)
                reps.append({"calls_per_s": n / dt, "values_per_s": n / dt, "total_s": dt,
                             "calls_per_s_instrumented": n / dt_i,
                             "final_flush_ms": flush_s * 1e3,
                             "lat_p50_ms": pct(lat, 50) * 1e3, "lat_p99_ms": pct(lat, 99) * 1e3,
                             "s5b_get_run_ms": med(g) * 1e3,
                             "s5b_get_metrics_ms": med(gm) * 1e3})

                # S1_durable: log() + flush() every call
                run_d = exp.start_logging()
                run_d.flush()
                log, flush = run_d.log, run_d.flush
                lat = []
                t0 = pc()
                for i in range(n):
                    a = pc()
                    log("loss", 1.0 / (i + 1), step=i)
                    flush()
                    lat.append(pc() - a)
                dt = pc() - t0
                check_history(run_d, n)
                dreps.append({"calls_per_s": n / dt, "total_s": dt,
                              "lat_p50_ms": pct(lat, 50) * 1e3,
                              "lat_p99_ms": pct(lat, 99) * 1e3})
            finally:
                self.stores.drop(d, url, schema, ws)
        self.record("S1_log_metric_per_call", reps,
                    ["calls_per_s", "values_per_s", "total_s", "calls_per_s_instrumented",
                     "final_flush_ms", "lat_p50_ms", "lat_p99_ms"],
                    note="run.log('loss', v, step=i) x N1 + one run.flush(), timed together; "
                         "calls_per_s without per-call timers, lat_* and "
                         "calls_per_s_instrumented from a second run timed per call")
        self.record("S1_durable_log_flush_per_call", dreps,
                    ["calls_per_s", "total_s", "lat_p50_ms", "lat_p99_ms"],
                    note="run.log(...) + run.flush() every call: one transaction per value")
        self.results["S5b_get_run_with_history"] = {
            "median_ms": rnd(med([r["s5b_get_run_ms"] for r in reps]), 6),
            "get_metrics_ms": rnd(med([r["s5b_get_metrics_ms"] for r in reps]), 6),
            "note": f"Run.get(ws, id).get_details() on the S1 run ('loss' has {self.N1} steps), "
                    f"median of 50 x {self.repeats} reps; get_metrics_ms reads the whole "
                    "history (MLflow's get_run returns only the latest value)"}

    # -- S2 -------------------------------------------------------------------------
    def s2(self) -> None:
        reps = []
        n = self.N1
        pc = time.perf_counter
        for _ in range(self.repeats):
            d, url, schema = self.stores.fresh()
            ws, exp = open_store(url, "s2")
            try:
                run = exp.start_logging()
                run.flush()
                log, flush = run.log, run.flush
                t0 = pc()
                for s in range(0, n, BATCH_CHUNK):
                    for i in range(s, min(n, s + BATCH_CHUNK)):
                        log("loss", 1.0 / (i + 1), step=i)
                    flush()
                dt = pc() - t0
                check_history(run, n)
                reps.append({"values_per_s": n / dt, "total_s": dt})
            finally:
                self.stores.drop(d, url, schema, ws)
        self.record("S2_log_batch_1000", reps, ["values_per_s", "total_s"],
                    note="per chunk of 1000: 1000 x run.log(..., step=i) then run.flush() "
                         "(one event, one transaction); log_list is not used because it "
                         "stores no steps")

    # -- S3 + S4 + S5 + S8 ----------------------------------------------------------
    def s3_s4_s5_s8(self) -> None:
        from ledger import Run

        expected = s4_expected(self.N3)
        r3: list[dict[str, Any]] = []
        r4: list[dict[str, Any]] = []
        r5: list[dict[str, Any]] = []
        r8: list[dict[str, Any]] = []
        pc = time.perf_counter
        failed: set[str] = set()
        for _ in range(self.repeats):
            d, url, schema = self.stores.fresh()
            ws, exp = open_store(url, "s3")
            try:
                run_ids = []
                start = exp.start_logging
                t0 = pc()
                for i in range(self.N3):
                    a = s3_attrs(i)
                    run = start()
                    run.add_properties({"author": a["author"], "lr": a["lr"],
                                        "batch_size": a["batch_size"]})
                    run.tag("quality", a["quality"])
                    run.tag("team", a["team"])
                    run.complete()
                    run_ids.append(run.id)
                dt = pc() - t0
                r3.append({"runs_per_s": self.N3 / dt, "total_s": dt})

                # S4
                try:
                    lat, res = [], []
                    for _ in range(N4_QUERIES):
                        t = pc()
                        res = list(exp.get_runs(properties=S4_PROPERTIES, tags=S4_TAGS))
                        lat.append(pc() - t)
                        assert len(res) == expected, f"S4 returned {len(res)}, expected {expected}"
                    assert all(r.get_tags()["quality"] == "fantastic run"
                               and r.get_properties()["author"] == "azureml-user" for r in res)
                    self.profiled("S4", lambda e=exp: list(e.get_runs(properties=S4_PROPERTIES,
                                                                      tags=S4_TAGS)), 50)  # type: ignore[misc]
                    r4.append({"median_ms": med(lat) * 1e3, "first_query_ms": lat[0] * 1e3,
                               "warm_median_ms": med(lat[1:]) * 1e3, "n_results": len(res)})
                except Exception as e:
                    failed.add("S4")
                    self.fail("S4", e)

                # S5
                try:
                    rid = run_ids[self.N3 // 2]
                    want = s3_attrs(self.N3 // 2)
                    lat, lg, ld = [], [], []
                    details: dict[str, Any] = {}
                    for _ in range(N5_GETS):
                        t = pc()
                        details = Run.get(ws, rid).get_details()
                        lat.append(pc() - t)
                    assert details["status"] == "Completed", details
                    assert details["properties"]["author"] == want["author"], details
                    assert details["tags"]["quality"] == want["quality"], details
                    for _ in range(N5_GETS):
                        t = pc()
                        one = Run.get(ws, rid)
                        lg.append(pc() - t)
                    for _ in range(N5_GETS):
                        t = pc()
                        one.get_details()
                        ld.append(pc() - t)
                    self.profiled("S5", lambda w=ws, i=rid: Run.get(w, i).get_details(), 1000)  # type: ignore[misc]
                    r5.append({"median_ms": med(lat) * 1e3, "p99_ms": pct(lat, 99) * 1e3,
                               "get_only_ms": med(lg) * 1e3, "details_only_ms": med(ld) * 1e3})
                except Exception as e:
                    failed.add("S5")
                    self.fail("S5", e)

                # S8 (fresh interpreter)
                try:
                    t = pc()
                    p = subprocess.run([sys.executable, "-c", COLD_OPEN_CODE, url, "s3",
                                        str(self.N3)], capture_output=True, text=True,
                                       cwd=self.workdir)
                    wall = pc() - t
                    if p.returncode != 0:
                        raise RuntimeError("S8 subprocess failed: " + p.stderr[-1500:])
                    inner = json.loads(p.stdout.strip().splitlines()[-1])
                    t = pc()
                    p2 = subprocess.run([sys.executable, "-c", IMPORT_ONLY_CODE],
                                        capture_output=True, text=True, cwd=self.workdir)
                    wall_imp = pc() - t
                    t = pc()
                    subprocess.run([sys.executable, "-c", "pass"], capture_output=True,
                                   cwd=self.workdir)
                    wall_bare = pc() - t
                    if p2.returncode != 0:
                        raise RuntimeError("S8 import subprocess failed: " + p2.stderr[-1500:])
                    r8.append({"wall_s": wall, "import_only_wall_s": wall_imp,
                               "bare_python_wall_s": wall_bare,
                               "inner_import_s": inner["import_s"],
                               "inner_open_s": inner["open_s"], "inner_list_s": inner["list_s"],
                               "inner_open_list_s": inner["open_list_s"], "n_runs": inner["n"]})
                except Exception as e:
                    failed.add("S8")
                    self.fail("S8", e)

                if self.profile == "S3":  # another experiment: S4-S8 above saw only "s3"
                    from ledger import Experiment

                    other = Experiment(ws, "s3-profile")
                    counter = iter(range(10**9))

                    def one_run(counter: Any = counter, other: Any = other) -> None:
                        a = s3_attrs(next(counter))
                        run = other.start_logging()
                        run.add_properties({"author": a["author"], "lr": a["lr"],
                                            "batch_size": a["batch_size"]})
                        run.tag("quality", a["quality"])
                        run.tag("team", a["team"])
                        run.complete()

                    self.profiled("S3", one_run, self.N3)
            finally:
                self.stores.drop(d, url, schema, ws)
        self.record("S3_run_creation", r3, ["runs_per_s", "total_s"])
        if "S4" not in failed:
            self.record("S4_search_runs", r4, ["median_ms", "first_query_ms", "warm_median_ms",
                                               "n_results"],
                        expected=expected,
                        filter=f"properties={S4_PROPERTIES}, tags={S4_TAGS}")
        if "S5" not in failed:
            self.record("S5_get_run", r5, ["median_ms", "p99_ms", "get_only_ms",
                                           "details_only_ms"],
                        note="Run.get(ws, id).get_details()")
        if "S8" not in failed:
            self.record("S8_cold_open_list_all", r8,
                        ["wall_s", "import_only_wall_s", "bare_python_wall_s", "inner_import_s",
                         "inner_open_s", "inner_list_s", "inner_open_list_s", "n_runs"])

    # -- S6 -------------------------------------------------------------------------
    def s6(self) -> None:
        from ledger import Run

        reps = []
        for _ in range(self.repeats):
            d, url, schema = self.stores.fresh()
            ws, exp = open_store(url, "s6")
            try:
                run = exp.start_logging()
                run.flush()
                tag = run.tag
                t0 = time.perf_counter()
                for i in range(N6_TAGS):
                    tag("status", f"v{i}")
                dt = time.perf_counter() - t0
                assert Run.get(ws, run.id).get_tags()["status"] == f"v{N6_TAGS - 1}"
                reps.append({"calls_per_s": N6_TAGS / dt, "total_s": dt})
            finally:
                self.stores.drop(d, url, schema, ws)
        self.record("S6_set_tag_update", reps, ["calls_per_s", "total_s"])

    # -- S7 -------------------------------------------------------------------------
    def s7(self) -> None:
        reps = []
        pc = time.perf_counter
        for _ in range(self.repeats):
            d, url, schema = self.stores.fresh()
            ws, exp = open_store(url, "s7")
            try:
                t0 = pc()
                with exp.start_logging() as parent:
                    for _ in range(N7_CHILDREN):
                        with parent.child_run():
                            pass
                t_create = pc() - t0
                lat, res = [], []
                for _ in range(N7_QUERIES):
                    t = pc()
                    res = list(parent.get_children())
                    lat.append(pc() - t)
                    assert len(res) == N7_CHILDREN, (len(res), N7_CHILDREN)
                self.profiled("S7", lambda p=parent: list(p.get_children()), 50)  # type: ignore[misc]
                reps.append({"create_s": t_create, "children_per_s": N7_CHILDREN / t_create,
                             "query_median_ms": med(lat) * 1e3,
                             "first_query_ms": lat[0] * 1e3,
                             "n_children": len(res)})
            finally:
                self.stores.drop(d, url, schema, ws)
        self.record("S7_nested_runs", reps,
                    ["create_s", "children_per_s", "query_median_ms", "first_query_ms",
                     "n_children"])

    # -- S9 -------------------------------------------------------------------------
    def s9(self, workers: int) -> None:
        from ledger import Run

        reps = []
        for _ in range(self.repeats):
            d, url, schema = self.stores.fresh()
            ws, exp = open_store(url, "s9")
            try:
                runs = [exp.start_logging() for _ in range(workers)]
                ws.flush()
                rids = [r.id for r in runs]
                ready = [os.path.join(d, f"ready{k}") for k in range(workers)]
                outs = [os.path.join(d, f"out{k}.json") for k in range(workers)]
                go = os.path.join(d, "go")
                procs = [subprocess.Popen(
                    [sys.executable, "-c", S9_WORKER_CODE, url, rids[k], str(N9_PER_WORKER),
                     ready[k], go, outs[k]], cwd=self.workdir,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                    for k in range(workers)]
                deadline = time.time() + 120
                while not all(os.path.exists(r) for r in ready):
                    if time.time() > deadline or any(p.poll() is not None for p in procs):
                        break
                    time.sleep(0.01)
                open(go, "w").close()
                stderrs = []
                for p in procs:
                    try:
                        _, err = p.communicate(timeout=300)
                    except subprocess.TimeoutExpired:
                        p.kill()  # only our own child, by handle
                        _, err = p.communicate()
                    stderrs.append((p.returncode, err[-1500:]))
                ws_out = []
                for k in range(workers):
                    if not os.path.exists(outs[k]):
                        raise RuntimeError(f"S9 worker {k} failed rc={stderrs[k][0]}: "
                                           f"{stderrs[k][1]}")
                    with open(outs[k]) as f:
                        ws_out.append(json.load(f))
                window = max(w["t_end"] for w in ws_out) - min(w["t_start"] for w in ws_out)
                errors = sum(w["errors"] for w in ws_out)
                kinds: dict[str, int] = {}
                for w in ws_out:
                    for k, v in w["error_kinds"].items():
                        kinds[k] = kinds.get(k, 0) + v
                stored = []
                for rid in rids:
                    values = Run.get(ws, rid).get_metrics("loss").get("loss", [])
                    stored.append(len(values) if isinstance(values, list) else 1)
                assert stored == [N9_PER_WORKER] * workers, ("stored per run", stored)
                ok = workers * N9_PER_WORKER - errors
                reps.append({"aggregate_calls_per_s": ok / window, "window_s": window,
                             "errors": errors, "error_kinds": kinds, "stored_per_run": stored,
                             "worker_lat_p50_ms": [rnd(w["lat_p50_ms"], 3) for w in ws_out],
                             "worker_lat_p99_ms": [rnd(w["lat_p99_ms"], 2) for w in ws_out],
                             "worker_lat_max_ms": [rnd(w["lat_max_ms"], 1) for w in ws_out],
                             "start_skew_s": max(w["t_start"] for w in ws_out)
                             - min(w["t_start"] for w in ws_out)})
            finally:
                self.stores.drop(d, url, schema, ws)
        self.record(S9_KEYS.get(workers, f"S9_{workers}_process_concurrent_log_metric"), reps,
                    ["aggregate_calls_per_s", "window_s", "errors"], workers=workers,
                    note="log() + flush() per call, each worker into its own run")

    # -- driver ---------------------------------------------------------------------
    def run(self, only: set[str]) -> float:
        groups = {"S4": "S3", "S5": "S3", "S8": "S3", "S1_durable": "S1", "S5b": "S1"}
        wanted = {groups.get(s, s) for s in only}
        plan: list[tuple[str, str, Callable[[], None]]] = [
            ("S0", "S0", self.s0_init), ("S1", "S1", self.s1), ("S2", "S2", self.s2),
            ("S3", "S3", self.s3_s4_s5_s8), ("S6", "S6", self.s6), ("S7", "S7", self.s7)]
        for w in self.s9_workers:
            plan.append(("S9", f"S9 ({w} workers)", lambda w=w: self.s9(w)))  # type: ignore[misc]
        t0 = time.perf_counter()
        for name, label, fn in plan:
            if name == "S0" or not wanted or name in wanted:
                self.run_scenario(label, fn)
        total = time.perf_counter() - t0
        os.chdir("/")
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        return total


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from ledger._version import __version__ as runledger_version  # distribution runledger-ml

    out = {"runledger": runledger_version}
    for p in ["eventsourcing", "msgpack", "attrs", "psycopg"]:
        with suppress(PackageNotFoundError):
            out[p] = version(p)
    import sqlite3

    out["sqlite3_lib"] = sqlite3.sqlite_version
    return out


def pg_server_version(url: str) -> str | None:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else None
    except Exception:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--scale", choices=["small", "full"], default="full")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="comma list, e.g. S1,S3 (S0 always runs)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--pg-url", default=os.environ.get("RUNLEDGER_BENCH_PG", DEFAULT_PG_URL))
    ap.add_argument("--s9-workers", default=",".join(map(str, S9_WORKERS_DEFAULT)),
                    help="worker counts of S9 (default 2,8)")
    ap.add_argument("--profile", default="", choices=["", "S3", "S4", "S5", "S7"],
                    help="also run this scenario's operation under cProfile, outside the timed "
                         "regions (S3: N3 more runs; S4: 50 queries; S5: 1000 gets; S7: 50 "
                         "children queries); top functions go to stderr")
    ap.add_argument("--profile-out", default="", help="where to save the cProfile stats")
    args = ap.parse_args(argv)

    # A user's configuration must not redirect the stores the benchmark opens.
    for var in ("RUNLEDGER_STORE", "RUNLEDGER_CONFIG", "RUNLEDGER_METRIC_BATCH",
                "RUNLEDGER_FLUSH_INTERVAL", "RUNLEDGER_SQLITE_SYNCHRONOUS"):
        os.environ.pop(var, None)
    pg_version = None
    if args.backend == "postgresql":
        pg_version = pg_server_version(args.pg_url)
        if pg_version is None:
            print(json.dumps({"library": "runledger", "backend": args.backend,
                              "errors": [{"scenario": "setup",
                                          "error": f"PostgreSQL not reachable at "
                                                   f"{args.pg_url}"}]}))
            return 1

    real_stdout = sys.stdout
    with redirect_stdout(sys.stderr):  # keep stdout for the JSON object only
        t_imp = time.perf_counter()
        import ledger  # noqa: F401

        t_imp = time.perf_counter() - t_imp
        b = Bench(args.backend, args.scale, args.repeats, args.keep, args.pg_url,
                  tuple(int(x) for x in args.s9_workers.split(",") if x.strip()),
                  args.profile, args.profile_out)
        only = {s.strip() for s in args.only.split(",") if s.strip()}
        total = b.run(only)

    out = {
        "library": "runledger",
        "backend": args.backend,
        "scale": args.scale,
        "params": {"N1": b.N1, "N3": b.N3, "batch_chunk": BATCH_CHUNK,
                   "s4_queries": N4_QUERIES, "s5_gets": N5_GETS, "s6_tags": N6_TAGS,
                   "s7_children": N7_CHILDREN, "s9_workers": list(b.s9_workers),
                   "s9_per_worker": N9_PER_WORKER, "repeats": args.repeats,
                   "summary": "median over repeats (each repeat on a fresh store)",
                   "store_defaults": "SQLite: WAL, synchronous=NORMAL (runledger's default), "
                                     "lock timeout 60 s; metric batch 10,000 values"},
        "versions": versions(),
        "postgresql_server": pg_version,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "import_ledger_s_in_driver": round(t_imp, 4),
        "tmp_root": tempfile.gettempdir(),
        "results": b.results,
        "errors": b.errors,
        "scenario_wall_s": b.scenario_wall_s,
        "bench_wall_s": round(total, 2),
    }
    real_stdout.write(json.dumps(out, indent=1, default=str) + "\n")
    real_stdout.flush()
    return 1 if b.errors else 0


if __name__ == "__main__":
    sys.exit(main())
