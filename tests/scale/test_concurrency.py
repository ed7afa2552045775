"""Many writers on one ledger: processes on one SQLite file or one PostgreSQL database, and
threads sharing one session. Every acknowledged event is present exactly once, the projections
equal a rebuild, and no writer sees a lock or version-conflict error.

The full-size runs (8 processes on SQLite, 32 on PostgreSQL) are in
``benchmarks/bench_writers.py --mixed``; these use fewer, to stay at a few seconds each.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import workload

PROCESSES = {"sqlite": 8, "postgresql": 8}
THREADS = 16


def test_processes_write_runs_and_one_shared_run(shared_backend: str, store_url: str,
                                                 tmp_path: Path) -> None:
    writers = PROCESSES[shared_backend]
    acks = workload.run_processes(store_url, tmp_path, writers, runs=6, values=20)
    summary = workload.verify(store_url, acks, expect_done=writers)
    assert summary["runs"] == writers * 6 + 1


def test_threads_of_one_process_write_runs_and_one_shared_run(store_url: str) -> None:
    from ledger import Workspace

    ws = Workspace(store=store_url)
    acks = workload.run_threads(ws, THREADS, runs=6, values=20)
    summary = workload.verify(store_url, acks, expect_done=THREADS, store=ws._store)
    assert summary["runs"] == THREADS * 6 + 1


def test_two_processes_racing_for_one_property_key_one_wins(shared_backend: str, store_url: str,
                                                             tmp_path: Path) -> None:
    """Both processes have the run loaded before the start signal, so each first attempt is on
    the same version: one write wins, the other conflicts, reloads, and must then refuse."""
    run_id = workload.create_shared_run(store_url)
    keys = [f"key{i}" for i in range(10)]
    go = tmp_path / "go"
    outs = [tmp_path / f"race-{name}.jsonl" for name in ("a", "b")]
    procs = [subprocess.Popen([sys.executable, workload.__file__, "race", store_url, run_id,
                               value, str(go), str(out), *keys],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for value, out in zip(("a", "b"), outs, strict=True)]
    time.sleep(1.5)  # both load the run and wait
    go.touch()
    for proc in procs:
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output.decode()
    acks = workload.read_acks(outs)
    assert not [a for a in acks if a["kind"] == "error"], acks
    from ledger import Experiment, Run, Workspace

    stored = Run(Experiment(Workspace(store=store_url), workload.EXPERIMENT), run_id)
    properties = stored.get_properties()
    for key in keys:
        won = [a for a in acks if a["key"] == key and a["kind"] == "won"]
        lost = [a for a in acks if a["key"] == key and a["kind"] == "lost"]
        assert len(won) == 1 and len(lost) == 1, (key, won, lost)
        assert lost[0]["recorded"] == won[0]["value"] == properties[key]
    history = [e for e in stored.get_history(include_metrics=False)
               if e.kind == "PropertiesAdded"]
    assert sorted(k for e in history for k in e.payload["properties"]) == sorted(keys)


OPEN_AND_WRITE = """
import sys, time
from pathlib import Path
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
from ledger import Experiment, Workspace
ws = Workspace(store=sys.argv[1])
exp = Experiment(ws, "many")
run = exp.start_logging()
run.log("x", 1.0)
run.complete()
assert run.id in {r.id for r in exp.get_runs()}
"""


def test_many_processes_opening_a_fresh_store_at_once_all_succeed(shared_backend: str,
                                                                  store_url: str,
                                                                  tmp_path: Path) -> None:
    """Creating the tables (and, on PostgreSQL, the schema) from many processes at once fails
    in eventsourcing alone (``tuple concurrently updated``; SQLite's ``database is locked`` while
    switching to WAL mode): runledger serialises or retries it."""
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AND_WRITE, store_url, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(12)]
    time.sleep(1.0)  # all imported and waiting
    go.touch()
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    failed = [out for p, out in zip(procs, outputs, strict=True) if p.returncode != 0]
    assert not failed, failed[0][-3000:]
    from ledger import Experiment, Workspace

    assert len(list(Experiment(Workspace(store=store_url), "many").get_runs())) == 12

