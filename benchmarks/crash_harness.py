#!/usr/bin/env python3
"""Crash harness: writer processes killed with SIGKILL at random moments, then the ledger checked.

Each trial starts ``--writers`` writer processes on one ledger (which grows from trial to trial),
and kills each of them with SIGKILL at a random moment: half after a random delay (0 to
``--max-delay`` seconds: while it imports, opens the store, creates tables, appends, catches the
projections up...), the others after a random number of acknowledged writes (so that every trial
kills writers mid-work however slowly a loaded machine starts them). A writer loops
over runs: ``start_logging()``, ``log()`` values 0..n-1 at steps 0..n-1, sometimes ``flush()``,
``add_properties``, ``tag``, sometimes a tag after the run is published, ``complete()``, sometimes a
query. After each call that promises durability returns (``flush()``, ``complete()``, a command on
a published run) it appends what it was told is saved to a side file of its own, fsync'd.

After each trial the harness checks:

- every acknowledged value is present: completed runs are Completed with their properties, tags
  and exactly their n metric values; flushed values are present; acknowledged tags are set
  (the trial's acknowledgements after each trial, all of them again at the end);
- nothing is duplicated: every stream's versions and every metric stream's steps run 1, 2, 3...
  and 0, 1, 2... with no repeat or gap (the new part of the log after each trial, the whole log
  at the end);
- the ledger opens, the projections catch up, and (every ``--rebuild-every`` trials and at the
  end) equal a rebuild from the log; every acknowledged run is in the index;
- SQLite: ``PRAGMA integrity_check`` says ``ok``.

Usage::

    python benchmarks/crash_harness.py --backend sqlite --trials 300
    python benchmarks/crash_harness.py --backend postgresql --trials 300 --writers 4
    python benchmarks/crash_harness.py --backend sqlite --trials 50 --synchronous FULL

Prints one JSON object (trials, kills, acknowledgements checked, events, seconds); exits 1 on the
first failed check, printing it. ``--keep`` keeps the store (a temp folder or a ``c_<hex>``
schema) for inspection.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
EXPERIMENT = "crash"


# ---------------------------------------------------------------------- the writer process
def writer(url: str, ack_path: Path, seed: int) -> None:
    """Write runs forever (until killed), acknowledging what each durable call returned."""
    from ledger import Experiment, Workspace

    rng = random.Random(seed)
    handle = open(ack_path, "a", encoding="utf-8")  # noqa: SIM115

    def ack(record: dict[str, Any]) -> None:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())

    ws = Workspace(store=url)
    exp = Experiment(ws, EXPERIMENT)
    name = f"{seed}"
    i = 0
    while True:
        i += 1
        run = exp.start_logging(tags={"writer": name})
        values = rng.randint(0, 60)
        flushed_at = rng.randint(1, values) if values and rng.random() < 0.4 else -1
        for step in range(values):
            run.log("loss", float(step), step=step)
            if step + 1 == flushed_at:
                run.flush()
                ack({"k": "flush", "id": run.id, "values": step + 1})
        props = {"writer": name, "seq": str(i)}
        run.add_properties(props)
        run.tag("t", str(i))
        tags = {"writer": name, "t": str(i)}
        if flushed_at > 0:  # published by flush(): this tag is its own durable write
            run.tag("late", "yes")
            tags["late"] = "yes"
            ack({"k": "tag", "id": run.id, "key": "late", "value": "yes"})
        run.complete()
        ack({"k": "run", "id": run.id, "values": values, "props": props, "tags": tags})
        if rng.random() < 0.15:
            list(exp.get_runs(tags={"writer": name}))


# ---------------------------------------------------------------------- checking
def read_acks(paths: list[Path]) -> list[dict[str, Any]]:
    """Read the writers' acknowledgements (a line torn by the kill is no acknowledgement)."""
    records = []
    for path in paths:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    records.append(json.loads(line))
    return records


def sqlite_integrity(path: Path) -> str:
    """Return SQLite's ``PRAGMA integrity_check`` verdict (``ok`` when sound)."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return "; ".join(str(r[0]) for r in rows)


class Checker:
    """Checks a ledger after each trial, reading only what was appended since the last check.

    Notification ids commit in order on both stores, so the log read so far never changes: the
    checker keeps each stream's last version and each metric stream's next step.

    Args:
        url: the store.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.position = 0
        self.events = 0
        self.runs = 0
        self.versions: dict[Any, int] = {}
        self.next_step: dict[Any, int] = {}

    def check(self, acks: list[dict[str, Any]], *, rebuild: bool) -> dict[str, int]:
        """Check the new part of the log and the new acknowledgements; return counts.

        Raises:
            AssertionError: something acknowledged is missing, something is duplicated, the
                projections do not catch up or differ from a rebuild, or SQLite finds
                corruption.
        """
        from ledger.application import LedgerApplication
        from ledger.domain.ids import metric_stream_id
        from ledger.domain.run import RunAggregate
        from ledger.persistence.store import parse_store_url
        from projections.index import RunIndex

        store = parse_store_url(self.url)
        if store.path is not None:
            verdict = sqlite_integrity(store.path)
            assert verdict == "ok", f"integrity_check: {verdict}"
        app = LedgerApplication(store)
        try:
            while True:
                page = app.read_log(self.position, 2000)
                if not page:
                    break
                for n in page:
                    self.events += 1
                    stream = n.originator_id
                    expected = self.versions.get(stream, 0) + 1
                    assert n.originator_version == expected, (
                        f"stream {stream}: version {n.originator_version} after {expected - 1}")
                    self.versions[stream] = expected
                    if n.topic == RunAggregate.Created.TOPIC:
                        self.runs += 1
                    elif n.topic == "runledger:MetricsLogged":
                        event: Any = app.decode(n)
                        for series in event.series:
                            for step in series[4]:
                                want = self.next_step.get(stream, 0)
                                assert step == want, (
                                    f"metric stream {stream}: step {step}, expected {want} "
                                    "(a batch repeated or lost)")
                                self.next_step[stream] = want + 1
                self.position = page[-1].id
            for record in acks:
                run_id = record["id"]
                stored = self.next_step.get(metric_stream_id(run_id), 0)
                if record["k"] == "run":
                    agg = app.get_run(run_id)
                    assert agg.status.value == "Completed", (record, agg.status)
                    assert {k: agg.properties.get(k) for k in record["props"]} == \
                        record["props"], record
                    assert {k: agg.tags.get(k) for k in record["tags"]} == record["tags"], \
                        record
                    assert stored == record["values"], (record, stored)
                elif record["k"] == "flush":
                    assert stored >= record["values"], (record, stored)
                elif record["k"] == "tag":
                    assert app.get_run(run_id).tags.get(record["key"]) == record["value"], \
                        record
            index = RunIndex(app)
            index.catch_up()
            for record in acks:
                if record["k"] == "run":
                    row = index.get(record["id"])
                    assert row is not None and row.status == "Completed", (record, row)
            if rebuild:
                before = _dump(index)
                assert len(before["rl_runs"]) == self.runs, (len(before["rl_runs"]), self.runs)
                index.rebuild()
                assert _dump(index) == before, "the projections differ from a rebuild"
            return {"events": self.events, "runs": self.runs}
        finally:
            app.close()


def _dump(index: Any) -> dict[str, list[tuple[Any, ...]]]:
    sys.path.insert(0, str(REPO / "tests" / "scale"))
    import workload

    result: dict[str, list[tuple[Any, ...]]] = workload.dump_read_models(index)
    return result


# ---------------------------------------------------------------------- trials
def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return handle.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _wait_for_server_backends(url: str, app_name: str, timeout: float = 60.0) -> None:
    """Wait until PostgreSQL has ended every backend of the killed writers.

    A killed client's backend may still hold a transaction the client had sent in full
    (psycopg pipelines it, COMMIT included): it commits after the client died. Checking before
    it is gone would race with it.
    """
    import psycopg

    base = url.split("?")[0]
    deadline = time.monotonic() + timeout
    with psycopg.connect(base, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                               (app_name,)).fetchone()
            if not row or not row[0]:
                return
            time.sleep(0.02)
    raise AssertionError(f"backends of killed writers ({app_name}) did not end")


def kill_writers(url: str, folder: Path, writers: int, max_delay: float, rng: random.Random,
                 trial: int) -> tuple[list[Path], int]:
    """Start writers, SIGKILL each at a random moment; return their ack files and kill count.

    Half the writers die at a random time after they were started (while importing, opening
    the store, creating tables, writing...), the others once they have acknowledged a random
    number (1-30) of writes, plus a random 0-0.3 s: so that every trial kills writers in the
    middle of their work however slowly a loaded machine starts them.
    """
    app_name = f"rl_crash_{uuid.uuid4().hex[:12]}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]), RUNLEDGER_FLUSH_INTERVAL="0.2",
        PGAPPNAME=app_name)
    plans = []
    paths = []
    start = time.monotonic()
    for w in range(writers):
        path = folder / f"acks-{trial}-{w}.jsonl"
        paths.append(path)
        seed = trial * 1000 + w
        by_acks = w % 2 == 1
        plan = {"path": path, "by_acks": by_acks, "delay": rng.uniform(0.0, max_delay),
                "acks": rng.randint(1, 30), "extra": rng.uniform(0.0, 0.3), "reached": None,
                "proc": subprocess.Popen(
                    [sys.executable, __file__, "writer", url, str(path), str(seed)], env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)}
        plans.append(plan)
    kills = 0
    pending = list(plans)
    while pending:
        now = time.monotonic()
        for plan in list(pending):
            proc = plan["proc"]
            if proc.poll() is not None:
                pending.remove(plan)
                continue
            if plan["by_acks"]:
                if plan["reached"] is None and _lines(plan["path"]) >= plan["acks"]:
                    plan["reached"] = now
                due = (plan["reached"] is not None and now >= plan["reached"] + plan["extra"]) \
                    or now >= start + 60
            else:
                due = now >= start + plan["delay"]
            if due:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                pending.remove(plan)
        time.sleep(0.005)
    for plan in plans:
        proc = plan["proc"]
        _out, err = proc.communicate()
        if proc.returncode != -signal.SIGKILL:
            raise AssertionError(f"a writer died by itself ({proc.returncode}): "
                                 f"{err.decode()[-3000:]}")
    if url.startswith("postgres"):
        _wait_for_server_backends(url, app_name)
    return paths, kills


def run_trials(url: str, folder: Path, *, trials: int, writers: int, max_delay: float,
               rebuild_every: int = 25, seed: int | None = None,
               log: Any = None) -> dict[str, Any]:
    """Run the trials on ``url`` (acks kept in ``folder``); return a summary.

    Raises:
        AssertionError: a check failed (the message says which).
    """
    rng = random.Random(seed)
    started = time.monotonic()
    all_paths: list[Path] = []
    kills = 0
    summary: dict[str, int] = {}
    checker = Checker(url)
    for trial in range(trials):
        paths, killed = kill_writers(url, folder, writers, max_delay, rng, trial)
        kills += killed
        all_paths.extend(paths)
        last = trial == trials - 1
        summary = checker.check(read_acks(paths), rebuild=last or (
            rebuild_every > 0 and trial % rebuild_every == rebuild_every - 1))
        if log is not None:
            log(f"trial {trial + 1}/{trials}: {kills} kills, {summary}")
    acks = read_acks(all_paths)
    final = Checker(url)  # everything again, from the start of the log
    final.check(acks, rebuild=False)
    return {"trials": trials, "writers": writers, "kills": kills, "acks": len(acks),
            "runs_acknowledged": sum(1 for a in acks if a["k"] == "run"), **summary,
            "seconds": round(time.monotonic() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    """The harness (or, as ``writer URL ACKFILE SEED``, one writer)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "writer":
        writer(argv[1], Path(argv[2]), int(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--url", help="PostgreSQL database (default %(default)s)",
                        default=os.environ.get("RUNLEDGER_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--max-delay", type=float, default=2.0,
                        help="kill each writer within this many seconds of its start")
    parser.add_argument("--rebuild-every", type=int, default=25)
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    folder = Path(tempfile.mkdtemp(prefix="runledger-crash-"))
    schema = None
    if args.backend == "sqlite":
        url = f"sqlite:///{folder / 'ledger.db'}?synchronous={args.synchronous}"
    else:
        schema = "c_" + uuid.uuid4().hex[:12]
        url = f"{args.url}?schema={schema}"

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    status = 0
    try:
        from ledger import LedgerError

        result = run_trials(url, folder, trials=args.trials, writers=args.writers,
                            max_delay=args.max_delay, rebuild_every=args.rebuild_every,
                            seed=args.seed, log=log)
        result.update(backend=args.backend, synchronous=args.synchronous, ok=True)
    except (AssertionError, LedgerError) as error:
        result = {"backend": args.backend, "ok": False, "error": str(error)[:4000],
                  "traceback": traceback.format_exc()[-4000:], "store": url}
        status = 1
    finally:
        if not args.keep:
            if schema is not None:
                import psycopg

                with psycopg.connect(args.url, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
