"""``runledger convert mlflow`` against MLflow's own read of the same store, in one run.

For each size, an MLflow SQLite store is written by MLflow itself (``log_batch``; runs of
``--values-per-run`` values over 10 metrics), then timed:

- ``mlflow read``: MLflow's ``search_runs`` (paged) and ``get_metric_history`` of every metric
  of every run: the least any import must do (in a process of its own, client start included,
  as the import's);
- ``convert``: ``convert_mlflow`` into a fresh SQLite ledger, in a process of its own, with its
  peak memory (max RSS);
- ``re-import``: the same again (nothing to add: reads both sides and compares).

The ratio ``convert / mlflow read`` is the importer's cost over the reading it cannot avoid.
Memory is flat when the peak RSS does not grow with the store (runs grow, a run stays the same).

    python benchmarks/bench_convert_mlflow.py                       # 100,000 and 1,000,000
    python benchmarks/bench_convert_mlflow.py --sizes 20000 --values-per-run 2000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
METRICS = 10


def build_store(uri: str, values: int, per_run: int) -> None:
    """Write an MLflow store of ``values`` metric values, ``per_run`` to a run."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("bench")
    t0 = 1_700_000_000_000
    for r in range(values // per_run):
        run_id = client.create_run(experiment, start_time=t0 + r).info.run_id
        client.log_param(run_id, "seed", str(r))
        steps = per_run // METRICS
        batch: list[Metric] = []
        for step in range(steps):
            for m in range(METRICS):
                batch.append(Metric(f"m{m}", 1.0 / (step + m + 1), t0 + step, step))
                if len(batch) == 1000:  # log_batch's own limit
                    client.log_batch(run_id, metrics=batch)
                    batch = []
        if batch:
            client.log_batch(run_id, metrics=batch)
        client.set_terminated(run_id, "FINISHED", end_time=t0 + steps)


def mlflow_read(uri: str) -> int:
    """Read every metric value as an importer must; return how many."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    count, token = 0, None
    while True:
        page = client.search_runs(ids, max_results=1000, page_token=token)
        for run in page:
            for key in run.data.metrics:
                count += len(client.get_metric_history(run.info.run_id, key))
        token = page.token
        if not token:
            return count


def convert_child(uri: str, ledger: str) -> None:
    """In a process of its own: import, print seconds, values and peak RSS as JSON."""
    from ledger import Workspace
    from ledger.importers.mlflow import convert_mlflow

    workspace = Workspace(store=ledger)
    start = time.perf_counter()
    summary = convert_mlflow(workspace, uri)
    seconds = time.perf_counter() - start
    workspace.ledger.close()
    print(json.dumps({"seconds": seconds, "added": summary.metric_values,
                      "read": summary.read_values, "rss_mb": peak_rss_kb() / 1024}))


def peak_rss_kb() -> int:
    """This process's peak resident memory: VmHWM (ru_maxrss may keep the peak of the parent
    that forked it, across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def read_child(uri: str) -> None:
    """In a process of its own, as the import runs: MLflow's read, timed from its client."""
    start = time.perf_counter()
    count = mlflow_read(uri)
    print(json.dumps({"seconds": time.perf_counter() - start, "read": count}))


def run_child(uri: str, ledger: str | None) -> dict[str, float]:
    command = ["--child", uri, ledger] if ledger else ["--read-child", uri]
    done = subprocess.run([sys.executable, __file__, *command], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    out = done.stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--values-per-run", type=int, default=10_000)
    parser.add_argument("--folder", help="keep the stores here (reused when present)")
    parser.add_argument("--child", nargs=2, metavar=("URI", "LEDGER"), help=argparse.SUPPRESS)
    parser.add_argument("--read-child", metavar="URI", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read_child:
        read_child(args.read_child)
        return
    if args.child:
        convert_child(*args.child)
        return
    folder = Path(args.folder or tempfile.mkdtemp(prefix="bench-mlflow-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'values':>10} {'runs':>5} {'mlflow read':>14} {'convert':>14} {'convert/read':>12} "
          f"{'re-import':>14} {'peak RSS':>9}")
    for size in (int(s) for s in args.sizes.split(",")):
        db = folder / f"mlflow-{size}-{args.values_per_run}.db"
        uri = f"sqlite:///{db}"
        if not db.exists():
            start = time.perf_counter()
            build_store(uri, size, args.values_per_run)
            print(f"  (store of {size:,} values written by MLflow in "
                  f"{time.perf_counter() - start:.0f} s)", file=sys.stderr)
        measured = run_child(uri, None)
        read, baseline = int(measured["read"]), measured["seconds"]
        ledger_db = folder / f"ledger-{size}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(ledger_db) + suffix).unlink(missing_ok=True)
        first = run_child(uri, f"sqlite:///{ledger_db}")
        again = run_child(uri, f"sqlite:///{ledger_db}")
        assert first["added"] == read and again["added"] == 0, (first, again, read)
        print(f"{read:>10,} {size // args.values_per_run:>5} "
              f"{read / baseline:>10,.0f} v/s {read / first['seconds']:>10,.0f} v/s "
              f"{baseline / first['seconds']:>12.2f} {read / again['seconds']:>10,.0f} v/s "
              f"{first['rss_mb']:>6.0f} MB")
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
