#!/usr/bin/env python3
# ruff: noqa: RUF001  (the multiplication sign is the ratio sign of the tables)
"""runledger vs MLflow, side by side: both scenario sets in one invocation, ratios vs targets.

Usage (from the repository root, in runledger's environment):

    python -m benchmarks.compare                      # full scale, 3 repeats, SQLite (~10 min)
    python -m benchmarks.compare --scale small --repeats 1          # quick look (~2 min)
    python -m benchmarks.compare --backends sqlite,postgresql       # also ours on PostgreSQL
    MLFLOW_VENV=/work/.venvs/mlflow python -m benchmarks.compare    # reuse an existing venv

What it does, in order:

1. finds MLflow's virtual environment (``MLFLOW_VENV``, default
   ``~/.cache/runledger-bench/mlflow-venv``, outside the repository) and creates it on demand
   (``python -m venv`` + ``pip install mlflow==$MLFLOW_VERSION``, default 3.17.2).  MLflow is never
   a dependency of runledger;
2. runs our scenarios (``python -m benchmarks.scenarios``) on each backend asked for;
3. runs the peer script (``PEER_MLFLOW``, default ``../shared/bench/peer_mlflow.py`` next to the
   repository) in that venv on SQLite, then its S9 again with 8 worker processes (the peer's
   ``N9_WORKERS`` set to 8 on the loaded module; the file is not modified), so that S9 with 8
   processes has an MLflow figure from the same machine and run (``--no-mlflow-s9-8`` skips it);
4. runs the S4 point at 100,000 runs of ``benchmarks.scaling`` (``--no-s4-100k`` skips it);
5. prints a table -- ours, MLflow, ratio (how many times better we are), target, met -- and
   rewrites the block between ``<!-- compare:begin -->`` and ``<!-- compare:end -->`` of
   ``benchmarks/RESULTS.md`` (the rest of the file is kept).  ``--json-out PATH`` also saves
   every raw result.  ``--mlflow-json PATH`` reuses a saved peer result instead of step 3
   (the table then says so: the figures are not from the same run).

Exit code 1 if a scenario of either side failed (raised or broke its assertion).  Missed targets do
not fail the command: the table says which.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
DEFAULT_VENV = Path.home() / ".cache" / "runledger-bench" / "mlflow-venv"
DEFAULT_PEER = REPO.parent / "shared" / "bench" / "peer_mlflow.py"
MLFLOW_VERSION = os.environ.get("MLFLOW_VERSION", "3.17.2")
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"

# Loads the peer script as a module, sets its S9 worker count, and runs its main().
PEER_S9_8_CODE = r"""
import importlib.util, sys
path, workers = sys.argv[1], int(sys.argv[2])
spec = importlib.util.spec_from_file_location("peer_mlflow", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
mod.N9_WORKERS = workers
sys.argv = [path] + sys.argv[3:]
sys.exit(mod.main())
"""


def log(msg: str) -> None:
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- MLflow's venv
def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_mlflow_venv(venv: Path) -> Path:
    """Return the venv's python, creating the venv with mlflow installed if needed."""
    py = venv_python(venv)
    if py.exists():
        probe = subprocess.run([str(py), "-c", "import mlflow; print(mlflow.__version__)"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            log(f"MLflow {probe.stdout.strip()} in {venv}")
            return py
        log(f"{venv} has no working mlflow: installing it")
    else:
        log(f"creating MLflow's venv in {venv} (mlflow=={MLFLOW_VERSION})")
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", f"mlflow=={MLFLOW_VERSION}"],
                   check=True, stdout=sys.stderr)
    return py


# --------------------------------------------------------------------------- running
WAIT_LOAD: tuple[float, float] | None = None  # (load, max seconds), from --wait-load


def wait_quiet() -> None:
    """Wait until the 1-minute load average drops below the --wait-load threshold."""
    if WAIT_LOAD is None:
        return
    limit, most = WAIT_LOAD
    t = time.time()
    while os.getloadavg()[0] >= limit and time.time() - t < most:
        time.sleep(5)
    log(f"load average {os.getloadavg()[0]:.2f} after waiting {time.time() - t:.0f}s")


def run_json(cmd: list[str], what: str, cwd: Path | None = None,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command printing one JSON object on stdout; return it (stderr passes through)."""
    wait_quiet()
    log(f"{what}: {' '.join(cmd[:6])}{' ...' if len(cmd) > 6 else ''}")
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=cwd, env=env)
    log(f"{what}: done in {time.perf_counter() - t:.0f}s (rc={p.returncode})")
    out = p.stdout.strip()
    if not out:
        return {"errors": [{"scenario": what, "error": f"no output, rc={p.returncode}"}],
                "results": {}}
    data: dict[str, Any] = json.loads(out[out.index("{"):])
    data["_rc"] = p.returncode
    data["_wall_s"] = round(time.perf_counter() - t, 1)
    return data


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                            "python": sys.version.split()[0]}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    try:
        df = subprocess.run(["df", "-T", "/tmp"], capture_output=True, text=True).stdout
        info["tmp_fs"] = df.splitlines()[-1].split()[1]
    except Exception:
        pass
    info["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    info["nice"] = os.nice(0) if hasattr(os, "nice") else 0
    return info


# --------------------------------------------------------------------------- the table
def get(d: dict[str, Any] | None, key: str, metric: str) -> float | None:
    if not d:
        return None
    v = d.get("results", {}).get(key, {}).get(metric)
    return float(v) if isinstance(v, (int, float)) else None


def ratio(ours: float | None, theirs: float | None, higher_is_better: bool) -> float | None:
    if ours is None or theirs is None or ours == 0 or theirs == 0:
        return None
    return ours / theirs if higher_is_better else theirs / ours


def mlflow_version(ml: dict[str, Any] | None) -> str:
    """The peer's MLflow version (``mlflow``, or ``mlflow-skinny`` where that is installed)."""
    versions = (ml or {}).get("versions") or {}
    return str(versions.get("mlflow") or versions.get("mlflow-skinny") or "?")


def rows_for(ours: dict[str, Any], ml: dict[str, Any] | None, ml8: dict[str, Any] | None,
             s4_100k: dict[str, Any] | None,
             ref: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per figure: label, ours, MLflow, unit, ratio, target text, met (True/False/None).

    ``ref`` (a saved peer result, e.g. from a quiet machine) adds ``ratio_ref``: our figure
    against the same MLflow figure of that reference run.
    """
    rows: list[dict[str, Any]] = []
    ref_ratio = ({r["label"]: r["ratio"] for r in rows_for(ours, ref, None, None)}
                 if ref is not None else None)

    def add(sid: str, label: str, o: float | None, m: float | None, unit: str, hib: bool,
            target: str, met: bool | None, note: str = "") -> None:
        row = {"id": sid, "label": label, "ours": o, "mlflow": m, "unit": unit,
               "ratio": ratio(o, m, hib), "target": target, "met": met, "note": note}
        if ref_ratio is not None:
            row["ratio_ref"] = ref_ratio.get(label)
        rows.append(row)

    def at_least(v: float | None, x: float) -> bool | None:
        return None if v is None else v >= x

    def at_most(v: float | None, x: float) -> bool | None:
        return None if v is None else v <= x

    o = get(ours, "S1_log_metric_per_call", "calls_per_s")
    m = get(ml, "S1_log_metric_per_call", "calls_per_s")
    add("S1", "log() per call, one flush at the end", o, m, "values/s", True,
        "≥ 1,000,000 values/s", at_least(o, 1e6))
    o = get(ours, "S1_log_metric_per_call", "lat_p50_ms")
    m = get(ml, "S1_log_metric_per_call", "lat_p50_ms")
    add("S1", "  per-call latency p50", o, m, "ms", False, "—", None)
    o = get(ours, "S1_log_metric_per_call", "lat_p99_ms")
    m = get(ml, "S1_log_metric_per_call", "lat_p99_ms")
    add("S1", "  per-call latency p99", o, m, "ms", False, "—", None)
    o = get(ours, "S1_durable_log_flush_per_call", "calls_per_s")
    m = get(ml, "S1_log_metric_per_call", "calls_per_s")
    r = ratio(o, m, True)
    add("S1-durable", "log() + flush() every call", o, m, "calls/s", True, "≥ 10× MLflow",
        at_least(r, 10))
    o = get(ours, "S2_log_batch_1000", "values_per_s")
    m = get(ml, "S2_log_batch_1000", "values_per_s")
    add("S2", "N1 values in chunks of 1000", o, m, "values/s", True, "≥ 1,000,000 values/s",
        at_least(o, 1e6))
    o = get(ours, "S3_run_creation", "runs_per_s")
    m = get(ml, "S3_run_creation", "runs_per_s")
    r = ratio(o, m, True)
    add("S3", "run + 3 properties + 2 tags + complete", o, m, "runs/s", True, "≥ 100× MLflow",
        at_least(r, 100))
    o = get(ours, "S4_search_runs", "median_ms")
    m = get(ml, "S4_search_runs", "median_ms")
    n3 = (ours.get("params") or {}).get("N3", 2000)
    add("S4", f"query by property + tag, {n3:,} runs", o, m, "ms", False, "≤ 1 ms",
        at_most(o, 1.0))
    if s4_100k is not None:
        # The targets at 100,000 runs: the first 100 of the 16,667 matches, and a query
        # with few matches (the needle tag: 34); all 16,667 are shown for reference.
        def count(key: str) -> str:
            value = s4_100k.get(key) if s4_100k is not None else None
            return "?" if value is None else f"{value:,}"

        o = s4_100k.get("first_100_ms")
        add("S4", "  100,000 runs: first 100 matches", o, None, "ms", False, "≤ 5 ms",
            at_most(o, 5.0), note=f"of {count('n_results')} matches; scaling.py")
        o = s4_100k.get("needle_ms")
        add("S4", "  100,000 runs: a query with few matches", o, None, "ms", False, "≤ 1 ms",
            at_most(o, 1.0), note=f"{count('needle_results')} matches; scaling.py")
        o = s4_100k.get("median_ms")
        add("S4", "  100,000 runs: all matches", o, None, "ms", False, "—", None,
            note=f"{count('n_results')} matches; scaling.py")
    o = get(ours, "S5_get_run", "median_ms")
    m = get(ml, "S5_get_run", "median_ms")
    add("S5", "get one run (Run.get + get_details)", o, m, "ms", False, "≤ 0.1 ms",
        at_most(o, 0.1))
    o = get(ours, "S6_set_tag_update", "calls_per_s")
    m = get(ml, "S6_set_tag_update", "calls_per_s")
    r = ratio(o, m, True)
    add("S6", "tag update ×500, same key", o, m, "calls/s", True, "≥ 10× MLflow",
        at_least(r, 10))
    o = get(ours, "S7_nested_runs", "create_s")
    m = get(ml, "S7_nested_runs", "create_s")
    add("S7", "500 children created", o, m, "s", False, "≤ 0.1 s", at_most(o, 0.1))
    o = get(ours, "S7_nested_runs", "query_median_ms")
    m = get(ml, "S7_nested_runs", "query_median_ms")
    add("S7", "500 children queried", o, m, "ms", False, "≤ 1 ms", at_most(o, 1.0))
    o = get(ours, "S8_cold_open_list_all", "wall_s")
    m = get(ml, "S8_cold_open_list_all", "wall_s")
    add("S8", f"cold process: open + list {n3:,} runs", o, m, "s", False, "≤ 0.5 s",
        at_most(o, 0.5))
    o = get(ours, "S8_cold_open_list_all", "inner_import_s")
    m = get(ml, "S8_cold_open_list_all", "inner_import_s")
    add("S8", "  of which import", o, m, "s", False, "—", None)
    o = get(ours, "S9_two_process_concurrent_log_metric", "aggregate_calls_per_s")
    m = get(ml, "S9_two_process_concurrent_log_metric", "aggregate_calls_per_s")
    oe = get(ours, "S9_two_process_concurrent_log_metric", "errors")
    me = get(ml, "S9_two_process_concurrent_log_metric", "errors")
    add("S9", "2 processes, log+flush per call", o, m, "calls/s", True, "—", None,
        note=f"errors: ours {fmt_int(oe)}, MLflow {fmt_int(me)}")
    o = get(ours, "S9_eight_process_concurrent_log_metric", "aggregate_calls_per_s")
    oe = get(ours, "S9_eight_process_concurrent_log_metric", "errors")
    m8 = get(ml8, "S9_two_process_concurrent_log_metric", "aggregate_calls_per_s")
    m8e = get(ml8, "S9_two_process_concurrent_log_metric", "errors")
    base = m8 if m8 is not None else m
    r = ratio(o, base, True)
    met = None if o is None or oe is None else (oe == 0 and r is not None and r >= 10)
    note = f"errors: ours {fmt_int(oe)}"
    if m8 is not None:
        note += f", MLflow {fmt_int(m8e)}; MLflow also with 8 processes"
    else:
        note += "; MLflow figure is its 2-process run"
    add("S9", "8 processes, log+flush per call", o, base, "calls/s", True,
        "0 errors and ≥ 10× MLflow", met, note=note)
    return rows


def fmt_int(v: float | None) -> str:
    return "n/a" if v is None else f"{int(v):,}"


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit in ("values/s", "calls/s", "runs/s"):
        return f"{v:,.0f}"
    if unit == "ms":
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    if unit == "s":
        return f"{v:.3f}"
    return f"{v:g}"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "—"
    return f"{r:,.0f}×" if r >= 100 else f"{r:.1f}×"


def fmt_met(m: bool | None) -> str:
    return "—" if m is None else ("**met**" if m else "missed")


def table_md(rows: list[dict[str, Any]]) -> str:
    has_ref = any("ratio_ref" in r for r in rows)
    ref_h, ref_a = (" ratio vs reference |", "---:|") if has_ref else ("", "")
    lines = [f"| # | scenario | unit | runledger | MLflow | ratio |{ref_h} target | met? | note |",
             f"|---|---|---|---:|---:|---:|{ref_a}---|---|---|"]
    for r in rows:
        ref_c = f" {fmt_ratio(r.get('ratio_ref'))} |" if has_ref else ""
        lines.append(f"| {r['id']} | {r['label']} | {r['unit']} | {fmt(r['ours'], r['unit'])} | "
                     f"{fmt(r['mlflow'], r['unit'])} | {fmt_ratio(r['ratio'])} |{ref_c} "
                     f"{r['target']} | {fmt_met(r['met'])} | {r['note']} |")
    return "\n".join(lines)


def table_text(rows: list[dict[str, Any]]) -> str:
    has_ref = any("ratio_ref" in r for r in rows)
    out = [f"{'#':<11}{'scenario':<42}{'runledger':>20}{'MLflow':>10}{'ratio':>9}"
           + (f"{'vs ref':>9}" if has_ref else "") + f"  {'target':<26}met?"]
    for r in rows:
        out.append(f"{r['id']:<11}{r['label'][:41]:<42}"
                   f"{fmt(r['ours'], r['unit']) + ' ' + r['unit']:>20}"
                   f"{fmt(r['mlflow'], r['unit']):>10}{fmt_ratio(r['ratio']):>9}"
                   + (f"{fmt_ratio(r.get('ratio_ref')):>9}" if has_ref else "")
                   + f"  {r['target']:<26}{fmt_met(r['met']).strip('*')}")
    return "\n".join(out)


# --------------------------------------------------------------------------- RESULTS.md
RESULTS_SKELETON = f"""# runledger vs MLflow: benchmark results

How to reproduce and what each scenario measures: [README.md](README.md).

{BEGIN}
{END}

## Scaling

<!-- scaling:begin -->
<!-- scaling:end -->
"""


def write_results(block: str) -> None:
    text = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else RESULTS_SKELETON
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    text = pattern.sub(lambda _m: f"{BEGIN}\n{block}\n{END}", text, count=1)
    RESULTS_MD.write_text(text, encoding="utf-8")
    log(f"updated {RESULTS_MD}")


def results_block(args: argparse.Namespace, info: dict[str, Any],
                  ours_by_backend: dict[str, dict[str, Any]], ml: dict[str, Any] | None,
                  ml8: dict[str, Any] | None, s4_100k: dict[str, Any] | None,
                  ml_source: str, ref: dict[str, Any] | None = None) -> str:
    first = next(iter(ours_by_backend.values()))
    v = dict(first.get("versions", {}))
    mv = (ml or {}).get("versions", {})
    lines = [
        f"Latest run: **{info['date']}**, `{info['command']}` "
        f"(wall {info['wall_s']:.0f} s).",
        "",
        f"- Machine: {info.get('cpu', '?')}, {info.get('cpus')} CPUs, "
        f"{info.get('memory_gb', '?')} GB RAM, {info.get('platform')}; temp dirs on "
        f"{info.get('tmp_fs', '?')}.  Load average at start {info.get('loadavg_start')}, at end "
        f"{info.get('loadavg_end')} (the machine is shared: other jobs may have run meanwhile)"
        + (f"; both sides ran at nice {info['nice']}" if info.get("nice") else "") + ".",
        f"- runledger {v.get('runledger', '?')} (eventsourcing {v.get('eventsourcing', '?')}, "
        f"msgpack {v.get('msgpack', '?')}, attrs {v.get('attrs', '?')}), Python "
        f"{first.get('python', '?')}, SQLite {v.get('sqlite3_lib', '?')}"
        + (f", PostgreSQL {ours_by_backend['postgresql'].get('postgresql_server')}"
           if "postgresql" in ours_by_backend else "") + ".",
        f"- MLflow {mlflow_version(ml)} (SQLAlchemy {mv.get('sqlalchemy', '?')}, alembic "
        f"{mv.get('alembic', '?')}), Python {(ml or {}).get('python', '?')}, SQLite store; "
        f"{ml_source}.",
        f"- Method: scale `{args.scale}` (N1 = {first.get('params', {}).get('N1')} values, "
        f"N3 = {first.get('params', {}).get('N3')} runs), {args.repeats} repeats per scenario, "
        "each on a fresh store, median reported; the scenario definitions are the peer's "
        "(`../shared/bench/peer_mlflow.py`), ours are in `benchmarks/scenarios.py`.  runledger "
        "runs with its defaults: SQLite in WAL mode with `synchronous=NORMAL` (every commit "
        "survives a process crash; MLflow's SQLite store uses a rollback journal with "
        "`synchronous=FULL`).  Ratio = how many times better runledger is (ours/MLflow for "
        "rates, MLflow/ours for times)."
        + (f"  *Ratio vs reference*: our figure against MLflow's figure in "
           f"`{args.mlflow_reference}` (a separate MLflow run, "
           f"{(ref or {}).get('bench_wall_s', '?')} s, no load figure recorded), a cross-check "
           "when the machine was busy during this run." if ref else ""),
        "",
    ]
    for backend, ours in ours_by_backend.items():
        rows = rows_for(ours, ml, ml8, s4_100k if backend == "sqlite" else None, ref)
        met = sum(1 for r in rows if r["met"] is True)
        total = sum(1 for r in rows if r["met"] is not None)
        if backend == "sqlite":
            lines.append(f"### runledger on {backend} vs MLflow on SQLite — {met} of {total} "
                         "targets met")
        else:
            # The targets are the embedded default's; a server adds a network round
            # trip to every commit and query (PostgreSQL's own target is bench_writers.py's).
            lines.append(f"### runledger on {backend} vs MLflow on SQLite — for reference "
                         f"({met} of {total} of the default store's targets would be met)")
        lines.append("")
        lines.append(table_md(rows))
        lines.append("")
        errs = ours.get("errors") or []
        if errs:
            lines.append("Failed scenarios (ours): " + "; ".join(
                f"{e.get('scenario')}: {e.get('error')}" for e in errs))
            lines.append("")
        extra = []
        s4 = ours.get("results", {}).get("S4_search_runs", {})
        if s4.get("first_query_ms") is not None:
            extra.append(f"S4's first query, which also catches the index up with the "
                         f"{first.get('params', {}).get('N3')} runs S3 just wrote: "
                         f"{s4['first_query_ms']:.0f} ms")
        s7 = ours.get("results", {}).get("S7_nested_runs", {})
        if s7.get("first_query_ms") is not None:
            extra.append(f"S7's first children query (index catch-up included): "
                         f"{s7['first_query_ms']:.1f} ms")
        s5 = ours.get("results", {}).get("S5_get_run", {})
        if s5.get("get_only_ms") is not None:
            extra.append(f"S5 split: `Run.get` {s5['get_only_ms']:.3f} ms, `get_details()` "
                         f"{s5['details_only_ms']:.3f} ms")
        s8 = ours.get("results", {}).get("S8_cold_open_list_all", {})
        ml_import = get(ml, "S8_cold_open_list_all", "inner_import_s")
        ml_open_list = get(ml, "S8_cold_open_list_all", "inner_open_list_s")
        if s8.get("wall_s") is not None:
            extra.append(f"S8 split: bare `python -c pass` {s8['bare_python_wall_s']:.3f} s, "
                         f"`import ledger` {s8['inner_import_s']:.3f} s, open "
                         f"{s8['inner_open_s']:.3f} s, list {s8['inner_list_s']:.3f} s "
                         f"(MLflow: import {ml_import or 0:.2f} s, "
                         f"open+list {ml_open_list or 0:.2f} s)")
        s1 = ours.get("results", {}).get("S1_log_metric_per_call", {})
        if s1.get("calls_per_s_instrumented") is not None:
            extra.append(f"S1 timed per call like the peer: "
                         f"{s1['calls_per_s_instrumented']:,.0f} calls/s")
        s5b = ours.get("results", {}).get("S5b_get_run_with_history", {})
        if s5b.get("median_ms") is not None:
            extra.append(f"S5b (get a run with a {first.get('params', {}).get('N1')}-step "
                         f"history): {s5b['median_ms']:.3f} ms "
                         f"(MLflow {get(ml, 'S5b_get_run_with_history', 'median_ms') or 0:.2f} "
                         "ms)")
        if extra:
            lines += ["Details: " + "; ".join(extra) + ".", ""]
    if ml:
        a = ml.get("results", {}).get("S2_async_buffered1s_log_metric_incl_flush", {})
        b = ml.get("results", {}).get("S2_async_log_metric_incl_flush", {})
        if a or b:
            lines.append(f"MLflow's own async logging, for reference (S2 values, flush "
                         f"included): default {b.get('values_per_s', 0):,.0f} values/s, "
                         f"with 1 s buffering {a.get('values_per_s', 0):,.0f} values/s.")
            lines.append("")
    return "\n".join(lines).rstrip()


# --------------------------------------------------------------------------- main
def report(args: argparse.Namespace, info: dict[str, Any],
           ours_by_backend: dict[str, dict[str, Any]], ml: dict[str, Any] | None,
           ml8: dict[str, Any] | None, s4_100k: dict[str, Any] | None) -> None:
    """Print the tables and (unless --no-write) rewrite the block of RESULTS.md."""
    ref = json.loads(Path(args.mlflow_reference).read_text()) if args.mlflow_reference else None
    for backend, ours in ours_by_backend.items():
        rows = rows_for(ours, ml, ml8, s4_100k if backend == "sqlite" else None, ref)
        print(f"\nrunledger on {backend} vs MLflow "
              f"{mlflow_version(ml)} on SQLite "
              f"({args.scale}, median of {args.repeats}):")
        print(table_text(rows))
    errors = [e for d in [*ours_by_backend.values(), ml, ml8] if d for e in d.get("errors", [])]
    for e in errors:
        print(f"FAILED {e.get('scenario')}: {e.get('error')}")
    if not args.no_write:
        write_results(results_block(args, info, ours_by_backend, ml, ml8, s4_100k,
                                    info.get("ml_source", "?"), ref))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", choices=["small", "full"], default="full")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="sqlite",
                    help="our backends, comma list: sqlite,postgresql")
    ap.add_argument("--mlflow-json", help="reuse a saved peer result instead of running it")
    ap.add_argument("--no-mlflow-s9-8", action="store_true",
                    help="skip MLflow's S9 with 8 processes")
    ap.add_argument("--no-s4-100k", action="store_true", help="skip S4 at 100,000 runs")
    ap.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    ap.add_argument("--json-out", help="save every raw result to this file")
    ap.add_argument("--wait-load", type=float, default=None, metavar="LOAD",
                    help="before each stage, wait (at most --wait-max s) until the 1-minute "
                         "load average is below LOAD (the machine may be shared)")
    ap.add_argument("--wait-max", type=float, default=600)
    ap.add_argument("--from-json", metavar="FILE",
                    help="run nothing: print the tables and rewrite RESULTS.md from a file "
                         "saved by --json-out (with --mlflow-reference, say)")
    ap.add_argument("--mlflow-reference", metavar="FILE",
                    help="a saved peer result (e.g. from a quiet machine): adds a 'ratio vs "
                         "reference' column")
    args = ap.parse_args(argv)

    global WAIT_LOAD
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        first = next(iter(saved["runledger"].values()))
        args.scale = first.get("scale", args.scale)
        args.repeats = (first.get("params") or {}).get("repeats", args.repeats)
        info = saved["machine"]
        info.setdefault("ml_source", "measured in this run, right after runledger")
        report(args, info, saved["runledger"], saved["mlflow"], saved.get("mlflow_s9_8"),
               saved.get("s4_100k"))
        errors = [e for d in [*saved["runledger"].values(), saved["mlflow"],
                              saved.get("mlflow_s9_8")] if d for e in d.get("errors", [])]
        return 1 if errors else 0
    if args.wait_load is not None:
        WAIT_LOAD = (args.wait_load, args.wait_max)
    t0 = time.perf_counter()
    info = machine()
    info["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info["command"] = "python -m benchmarks.compare " + " ".join(
        argv if argv is not None else sys.argv[1:])
    common = ["--scale", args.scale, "--repeats", str(args.repeats)]
    failed = False

    # 1. MLflow's venv first, so that a failure to create it costs nothing else.
    ml: dict[str, Any] | None = None
    ml8: dict[str, Any] | None = None
    mlpy: Path | None = None
    peer = Path(os.environ.get("PEER_MLFLOW", DEFAULT_PEER))
    if args.mlflow_json:
        ml = json.loads(Path(args.mlflow_json).read_text())
        ml_source = f"figures reused from `{args.mlflow_json}` (not measured in this run)"
    else:
        if not peer.exists():
            log(f"peer script not found at {peer} (set PEER_MLFLOW)")
            return 2
        mlpy = ensure_mlflow_venv(Path(os.environ.get("MLFLOW_VENV", DEFAULT_VENV)))
        ml_source = "measured in this run, right after runledger"

    # 2. ours
    ours_by_backend: dict[str, dict[str, Any]] = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        ours = run_json([sys.executable, "-m", "benchmarks.scenarios", "--backend", backend,
                         *common], f"runledger {backend}", cwd=REPO)
        ours_by_backend[backend] = ours
        failed |= bool(ours.get("errors"))

    # 3. MLflow
    if mlpy is not None:
        env = dict(os.environ)
        ml = run_json([str(mlpy), str(peer), "--backend", "sqlite", *common],
                      "MLflow sqlite", env=env)
        failed |= bool(ml.get("errors"))
        if not args.no_mlflow_s9_8:
            ml8 = run_json([str(mlpy), "-c", PEER_S9_8_CODE, str(peer), "8", "--backend",
                            "sqlite", *common, "--only", "S9"], "MLflow sqlite S9 x8", env=env)
            failed |= bool(ml8.get("errors"))

    # 4. S4 at 100k runs
    s4_100k = None
    if not args.no_s4_100k and "sqlite" in ours_by_backend:
        sc = run_json([sys.executable, "-m", "benchmarks.scaling", "--only", "s4",
                       "--s4-sizes", "100000", "--no-write"], "S4 at 100k runs", cwd=REPO)
        points = sc.get("s4", [])
        s4_100k = points[0] if points else None
        failed |= bool(sc.get("errors"))

    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    info["wall_s"] = time.perf_counter() - t0
    info["ml_source"] = ml_source
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"machine": info, "runledger": ours_by_backend, "mlflow": ml, "mlflow_s9_8": ml8,
             "s4_100k": s4_100k}, indent=1, default=str))
        log(f"raw results in {args.json_out}")
    report(args, info, ours_by_backend, ml, ml8, s4_100k)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
