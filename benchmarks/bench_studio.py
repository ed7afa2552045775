"""Studio speed: server time of the runs page of an experiment with 100,000 runs (plain, filtered,
sorted), and the time headless Chromium takes to draw a 100,000-point chart.

    python -m benchmarks.bench_studio [--runs 100000] [--repeats 30] [--no-browser]

The ledger is written through the group-commit path (``save_all`` of 500 runs at a time; one
metric batch for every 10th run) into ``$TMPDIR/runledger-bench-studio/`` and reused by later
runs. Server time is measured by calling the ASGI application directly (no socket), from the
request to the last byte of the answer; the index is caught up before measuring. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ledger.application import LedgerApplication
from ledger.domain.ids import experiment_stream_id, new_run_id, run_stream_id
from ledger.domain.run import RunAggregate
from ledger.domain.values import current_actor
from ledger.persistence.store import parse_store_url

EXPERIMENT = "bench"
GROUP = 500


def build(url: str, n: int) -> float:
    """Write ``n`` runs (every 10th with a ``loss`` metric); return the seconds it took."""
    app = LedgerApplication(parse_store_url(url))
    actor = current_actor()
    app.ensure_experiment(EXPERIMENT, actor)
    exp_id = experiment_stream_id(EXPERIMENT)
    started = time.perf_counter()
    for first in range(0, n, GROUP):
        runs = []
        for i in range(first, min(n, first + GROUP)):
            run_id = new_run_id()
            run = RunAggregate.create(aggregate_id=run_stream_id(run_id), run_id=run_id,
                                      experiment_id=exp_id, experiment_name=EXPERIMENT,
                                      actor=actor, display_name=f"run-{i}",
                                      description=f"sweep {i % 100}")
            run.start(actor)
            run.add_properties({"lr": str(0.001 * (i % 10 + 1))}, actor)
            run.set_tags({"quality": ["good", "bad", "meh"][i % 3]}, actor)
            if i % 7:
                run.complete(actor)
            runs.append(run)
        app.save_all(*runs)
        for run in runs[::10]:
            app.append_metrics(run.run_id, [["loss", "scalar", "", [1.0 / (1 + len(run.run_id)
                                             % 13)], [None], [time.time()]]], actor)
    elapsed = time.perf_counter() - started
    app.close()
    return elapsed


async def _call(app: Any, path: str, query: str) -> tuple[int, int]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "root_path": "",
             "headers": [(b"host", b"127.0.0.1:5000")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 5000)}
    status = 0
    size = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))

    await app(scope, receive, send)
    return status, size


def measure(app: Any, path: str, query: str, repeats: int) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    try:
        status, size = loop.run_until_complete(_call(app, path, query))  # warm-up
        assert status == 200, (path, query, status)
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            loop.run_until_complete(_call(app, path, query))
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        loop.close()
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 1),
            "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 1), "bytes": size}


def chart_ms() -> dict[str, Any] | None:
    """Draw a 100,000-point chart in headless Chromium: the uPlot construction time and the
    time from navigation to the drawn chart (data fetch included)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "studio"))
    from studio_helpers import CHROMIUM_ARGS, CHROMIUM_PATHS, RunningStudio

    from ledger import Experiment, Workspace

    folder = Path(tempfile.mkdtemp(prefix="runledger-bench-chart-"))
    store = f"sqlite:///{folder / 'chart.db'}"
    ws = Workspace(store=store)
    run = Experiment(ws, "chart").start_logging()
    run.log_list("series", [float(i % 977) for i in range(100_000)])
    run.complete()
    studio = RunningStudio(store)
    executable = next(p for p in CHROMIUM_PATHS if Path(p).exists())
    results = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page()
            for _ in range(3):
                started = time.perf_counter()
                page.goto(f"{studio.url}/runs/{quote(run.id)}")
                while page.evaluate("() => document.querySelector('#chart').dataset.points")\
                        != "100000":
                    time.sleep(0.01)
                total = (time.perf_counter() - started) * 1000
                render = float(page.evaluate(
                    "() => document.querySelector('#chart').dataset.renderMs"))
                results.append((render, total))
            browser.close()
    finally:
        studio.stop()
        ws.ledger.close()
    return {"points": 100_000, "uplot_draw_ms_median": statistics.median(r[0] for r in results),
            "page_to_chart_ms_median": round(statistics.median(r[1] for r in results))}


def _cursor_after(ws: Any, sort: str, skip: int) -> str:
    """The cursor of the page that starts after the first ``skip`` runs in this order."""
    from projections.studio_queries import MAX_PAGE, RunsQuery, SortKey, StudioQueries

    queries = StudioQueries(ws.ledger.index)
    after = None
    for _ in range(skip // MAX_PAGE):
        page = queries.runs_page(RunsQuery(experiment=EXPERIMENT, sort=SortKey.parse(sort),
                                           after=after, limit=MAX_PAGE))
        after = page.next_cursor
    assert after is not None
    return after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    folder = Path(tempfile.gettempdir()) / "runledger-bench-studio"
    folder.mkdir(exist_ok=True)
    database = folder / f"ledger-{args.runs}.db"
    url = f"sqlite:///{database}"
    report: dict[str, Any] = {"runs": args.runs}
    if not database.exists():
        partial = folder / f"ledger-{args.runs}.partial.db"
        partial.unlink(missing_ok=True)
        report["build_s"] = round(build(f"sqlite:///{partial}", args.runs), 1)
        partial.rename(database)
    from ledger import Workspace
    from ledger.studio.app import create_app

    ws = Workspace(store=url)
    started = time.perf_counter()
    ws.ledger.index.catch_up()
    report["index_catch_up_s"] = round(time.perf_counter() - started, 1)
    app = create_app(ws)
    path = f"/experiments/{EXPERIMENT}"
    cases = {
        "page": "",
        "filtered_status_tag": "status=Completed&tag=quality%3Dgood",
        "filtered_text": "q=sweep+42",
        "filtered_metric": "metric=loss+%3C+0.2",
        "filtered_metric_none": "metric=loss.max+%3E+5",
        "sorted_name": "sort=name",
        "sorted_duration": "sort=-duration",
        "sorted_duration_asc": "sort=duration",
        "sorted_tag": "sort=tag%3Aquality&col=tag%3Aquality",
        "sorted_metric": "sort=-metric%3Aloss.last&col=metric%3Aloss.last",
        "sorted_metric_min": "sort=metric%3Aloss.min&col=metric%3Aloss.min",
        "sorted_metric_max": "sort=-metric%3Aloss.max&col=metric%3Aloss.max",
        "filtered_sorted": "status=Running&sort=-duration",
    }
    report["server_ms"] = {name: measure(app, path, query, args.repeats)
                           for name, query in cases.items()}
    # Keyset pages: the page after the first half of the runs costs what the first costs.
    for name, sort in (("deep_page_name", "name"), ("deep_page_duration", "-duration")):
        after = _cursor_after(ws, sort, args.runs // 2)
        report["server_ms"][name] = measure(app, path, f"sort={quote(sort)}&after={after}",
                                            args.repeats)
    report["experiments_page"] = measure(app, "/", "", max(5, args.repeats // 3))
    ws.ledger.close()
    if not args.no_browser:
        report["chart"] = chart_ms()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
