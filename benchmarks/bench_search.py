#!/usr/bin/env python3
"""Search at scale: a metric-filtered, ordered query over N runs (default 100,000).

Usage (from the repository root):

    python -m benchmarks.bench_search                     # 100,000 runs, SQLite (~30 s build)
    python -m benchmarks.bench_search --runs 10000 --no-write
    python -m benchmarks.bench_search --store postgresql://postgres@127.0.0.1:5432/test?schema=b1

Builds one experiment of N runs through the SDK (each: properties ``lr`` and ``author``, a tag,
one ``loss`` value ``((i * 7919) % 10007) / 10007``; runs group-committed 1,000 per
transaction, as ``benchmarks/scaling.py`` builds them), catches the query index up, then in a
fresh workspace on the same store times (median of 20, after one warm-up):

- ``first_100_ms``: ``list(exp.get_runs(filter="metrics.loss < 0.2",
  order_by=["metrics.loss ASC"], max_results=100))`` (~N/5 runs match);
- ``first_100_desc_ms``: the same ordered ``DESC``;
- ``first_100_no_limit_ms``: the first 100 runs of the same query without ``max_results``
  (``itertools.islice``);
- ``first_100_with_param_ms``: ``filter="metrics.loss < 0.2 and params.lr = '0.01'"``;
- ``index_first_100_ms``: the first query at the read-model level
  (``RunIndex.find_runs``), without building ``Run`` objects;
- ``newest_first_100_ms``: the filter without an ordering (newest first, the run index's walk).

Each result is checked against the expected runs (computed from the schedule). The statements
the first query executes are recorded and their query plans printed (SQLite ``EXPLAIN QUERY
PLAN``, PostgreSQL ``EXPLAIN``), so the index use is shown, not assumed. On PostgreSQL the
tables are ``ANALYZE``d after the bulk load (autovacuum would, a while later). Prints one JSON
object; unless ``--no-write`` it rewrites the block between ``<!-- search:begin -->`` and
``<!-- search:end -->`` of ``benchmarks/RESULTS.md`` (``search-postgresql:`` on PostgreSQL).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- search:begin -->", "<!-- search:end -->"
BATCH = 1000
REPEATS = 20
FILTER = "metrics.loss < 0.2"
ORDER = ["metrics.loss ASC"]


def loss(i: int) -> float:
    return ((i * 7919) % 10007) / 10007


def lr(i: int) -> str:
    return ("0.01", "0.1", "0.001")[i % 3]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build(url: str, n: int, outputs: str) -> dict[str, Any]:
    from ledger import Experiment, Workspace
    from ledger.domain.values import current_actor

    ws = Workspace(store=url)
    exp = Experiment(ws, "search")
    actor = current_actor()
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        for i in range(start, min(n, start + BATCH)):
            run = exp.start_logging(outputs=outputs)
            run.add_properties({"lr": lr(i), "author": "azureml-user"})
            run.tag("quality", "fantastic run" if i % 6 == 1 else "fine")
            run.log("loss", loss(i))
            # As benchmarks/scaling.py: the completion applied to the unpublished run, so the
            # group commit of ws.flush() publishes the batch.
            run._command(lambda agg, _actor: agg.complete(actor))
        ws.flush()
        if start and start % 20_000 == 0:
            log(f"  {start} runs")
    write_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    index = ws.ledger.index  # flush and catch the index up
    index_s = time.perf_counter() - t1
    if index._dialect.kind == "postgresql":
        # Statistics of the bulk-loaded tables, as autovacuum gathers them in a while.
        with index._dialect.transaction(index._datastore, commit=True) as (_w, cursor):
            cursor.execute("ANALYZE")
    ws.ledger.close()
    return {"runs": n, "build_s": round(write_s, 1), "runs_per_s": round(n / write_s),
            "index_catch_up_s": round(index_s, 1)}


def median_ms(call: Callable[[], Any]) -> float:
    call()  # warm-up
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1e3, 3)


def expected_ids(numbers: list[int], n: int, with_lr: bool, descending: bool) -> list[int]:
    """The run numbers (1-based) the query gives: losses ascending (descending), ties newest
    first."""
    chosen = [i for i in range(n) if loss(i) < 0.2 and (not with_lr or lr(i) == "0.01")]
    chosen.sort(key=lambda i: (loss(i) if not descending else -loss(i), -i))
    del numbers
    return [i + 1 for i in chosen[:100]]


@contextlib.contextmanager
def recorded(index: Any) -> Iterator[list[tuple[str, list[Any]]]]:
    """Record the statements the index executes."""
    statements: list[tuple[str, list[Any]]] = []
    original = index._read

    @contextlib.contextmanager
    def reading() -> Iterator[Any]:
        with original() as cursor:
            yield _Recorder(cursor, statements)

    index._read = reading
    try:
        yield statements
    finally:
        index._read = original


class _Recorder:
    def __init__(self, cursor: Any, statements: list[tuple[str, list[Any]]]) -> None:
        self._cursor, self._statements = cursor, statements

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._statements.append((sql, list(params)))
        return self._cursor.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def shown_sql(sql: str) -> str:
    """A statement as RESULTS.md shows it: the run columns and long IN lists abbreviated."""
    from projections.index import _RUN_SELECT

    text = re.sub(r"\s+", " ", sql).replace(_RUN_SELECT, "<run columns>")
    text = re.sub(r'"[^"]+"\.', "", text)  # PostgreSQL's schema prefix
    return re.sub(r"\((?:(?:\?|%s), ){3,}(?:\?|%s)\)", "(?, ..., ?)", text)


def plans(index: Any, statements: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    out = []
    kind = index._dialect.kind
    with index._read() as cursor:
        for sql, params in statements:
            prefix = "EXPLAIN QUERY PLAN " if kind == "sqlite" else "EXPLAIN "
            cursor.execute(prefix + sql, params)
            rows = cursor.fetchall()
            lines = [re.sub(r"'\{[^}]{40,}\}'", "'{...}'", str(row[-1]) if kind == "sqlite"
                            else str(row[0])) for row in rows]
            out.append({"sql": shown_sql(sql), "plan": lines})
    return out


def measure(url: str, n: int) -> dict[str, Any]:
    from ledger import Experiment, Workspace

    ws = Workspace(store=url)
    exp = Experiment(ws, "search")
    index = ws.ledger.index

    def numbers(runs: Any) -> list[int]:
        return [run.number for run in runs]

    def query(**kwargs: Any) -> list[Any]:
        return list(exp.get_runs(**kwargs))

    checks = {
        "asc": (numbers(query(filter=FILTER, order_by=ORDER, max_results=100)),
                expected_ids([], n, False, False)),
        "desc": (numbers(query(filter=FILTER, order_by=["metrics.loss DESC"], max_results=100)),
                 expected_ids([], n, False, True)),
        "param": (numbers(query(filter=FILTER + " and params.lr = '0.01'", order_by=ORDER,
                                max_results=100)), expected_ids([], n, True, False)),
        "no_limit": (numbers(itertools.islice(exp.get_runs(filter=FILTER, order_by=ORDER), 100)),
                     expected_ids([], n, False, False)),
    }
    for name, (got, want) in checks.items():
        assert got == want, (name, got[:5], want[:5])
    newest = numbers(query(filter=FILTER, max_results=100))
    assert newest == [i + 1 for i in reversed(range(n)) if loss(i) < 0.2][:100]

    out: dict[str, Any] = {
        "first_100_ms": median_ms(lambda: query(filter=FILTER, order_by=ORDER, max_results=100)),
        "first_100_desc_ms": median_ms(lambda: query(filter=FILTER,
                                                     order_by=["metrics.loss DESC"],
                                                     max_results=100)),
        "first_100_no_limit_ms": median_ms(lambda: list(itertools.islice(
            exp.get_runs(filter=FILTER, order_by=ORDER), 100))),
        "first_100_with_param_ms": median_ms(lambda: query(
            filter=FILTER + " and params.lr = '0.01'", order_by=ORDER, max_results=100)),
        "index_first_100_ms": median_ms(lambda: list(index.find_runs(
            experiment_name="search", filter=FILTER, order_by=ORDER, limit=100))),
        "newest_first_100_ms": median_ms(lambda: query(filter=FILTER, max_results=100)),
        "matches": sum(1 for i in range(n) if loss(i) < 0.2),
    }
    with recorded(index) as statements:
        list(index.find_runs(experiment_name="search", filter=FILTER, order_by=ORDER, limit=100))
    out["plans"] = plans(index, statements)
    ws.ledger.close()
    return out


def block(result: dict[str, Any], command: str) -> str:
    m = result["measured"]
    lines = [
        f"Measured {result['date']} on {result['store']}, load average {result['load']}, "
        f"with `{command}`.",
        "",
        f"{result['build']['runs']:,} runs built in {result['build']['build_s']} s "
        f"({result['build']['runs_per_s']:,} runs/s), index caught up in "
        f"{result['build']['index_catch_up_s']} s; `{FILTER}` matches {m['matches']:,} runs."
        if isinstance(result["build"]["build_s"], float) else
        f"{result['build']['runs']:,} runs built earlier by the same script; `{FILTER}` "
        f"matches {m['matches']:,} runs.",
        "",
        "| query (first 100 rows) | median ms |",
        "|---|---|",
        f"| `get_runs(filter=\"{FILTER}\", order_by=[\"metrics.loss ASC\"], max_results=100)` "
        f"| {m['first_100_ms']} |",
        f"| the same, `DESC` | {m['first_100_desc_ms']} |",
        f"| the same without `max_results`, first 100 of the generator | "
        f"{m['first_100_no_limit_ms']} |",
        f"| `... and params.lr = '0.01'` | {m['first_100_with_param_ms']} |",
        f"| `RunIndex.find_runs(...)` (read models only, no `Run` objects) | "
        f"{m['index_first_100_ms']} |",
        f"| the filter without an ordering (newest first) | {m['newest_first_100_ms']} |",
        "",
        "Query plan of the ordered query's statements:",
        "",
        "```text",
    ]
    for plan in m["plans"]:
        lines.append(plan["sql"])
        lines += [f"    {line}" for line in plan["plan"]]
    lines.append("```")
    return "\n".join(lines)


def write_block(text: str, store: str) -> None:
    begin, end = BEGIN, END
    if store != "SQLite":  # one block per store
        begin, end = (m.replace("search:", f"search-{store.lower()}:") for m in (BEGIN, END))
    content = RESULTS_MD.read_text(encoding="utf-8")
    if BEGIN not in content:
        content = content.rstrip() + f"\n\n## Search at scale\n\n{BEGIN}\n{END}\n"
    if begin not in content:
        content = content.replace(END, f"{END}\n\n{begin}\n{end}", 1)
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    content = pattern.sub(lambda _m: f"{begin}\n{text}\n{end}", content, count=1)
    RESULTS_MD.write_text(content, encoding="utf-8")
    log(f"updated {RESULTS_MD}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--store", help="a store URL (default: a fresh SQLite file)")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--existing", action="store_true",
                        help="measure the store of --store as this script built it earlier "
                             "(same --runs), without building it again")
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # the measuring subprocess: a fresh process opens the built store
        print(json.dumps(measure(args.measure, args.runs)))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        url = args.store or f"sqlite:///{folder}/search.db"
        if args.existing:
            if not args.store:
                parser.error("--existing needs --store")
            built = {"runs": args.runs, "build_s": "-", "runs_per_s": "-",
                     "index_catch_up_s": "- (built earlier)"}
        else:
            log(f"building {args.runs} runs in {url}")
            built = build(url, args.runs, os.path.join(folder, "outputs"))
            log(f"built: {built}")
        measuring = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_search", "--runs", str(args.runs),
             "--measure", url], capture_output=True, text=True, check=False,
            cwd=Path(__file__).resolve().parent.parent)
        if measuring.returncode != 0:
            log(measuring.stderr)
            return 1
        measured = json.loads(measuring.stdout.strip().splitlines()[-1])
    result = {"date": time.strftime("%Y-%m-%d", time.gmtime()),
              "store": "PostgreSQL" if url.startswith("postgresql") else "SQLite",
              "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
              "build": built, "measured": measured}
    print(json.dumps(result, indent=1))
    if not args.no_write:
        command = "python -m benchmarks.bench_search" + (
            f" --runs {args.runs}" if args.runs != 100_000 else "") + (
            " --store postgresql://...?schema=NEW" if args.store else "") + (
            " --existing" if args.existing else "")
        write_block(block(result, command), str(result["store"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
