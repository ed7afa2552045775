#!/usr/bin/env python3
"""CLI start-up benchmark: ``runledger --help`` against ``python -c "import click"``.

Usage (from the repository root, in the environment where runledger is installed)::

    python benchmarks/bench_cli_startup.py                 # 21 runs of each command
    python benchmarks/bench_cli_startup.py --runs 51 --json
    python benchmarks/bench_cli_startup.py --write         # also rewrites the block in RESULTS.md
    # and another checkout's `python -m ledger.cli --help` in the same rounds (before a change):
    python benchmarks/bench_cli_startup.py --baseline /path/to/other/checkout

Each command is a fresh process (wall time of ``subprocess.run``, output captured). The commands
are run in rounds, one of each per round in a fixed order, so that a burst of load on a shared
machine slows every command alike; the figure is the median of the rounds, and the ratio is
``runledger --help`` over ``python -c "import click"`` of the same run: the part of the start-up
that is runledger's own (click is the floor: the CLI cannot print help without it). ``python -c
pass`` is the interpreter's start, and ``experiment list`` on an empty in-memory store the
start-up of a command that opens a ledger (it imports the SDK and eventsourcing). With
``--baseline DIR``, ``python -m ledger.cli --help`` of the checkout DIR (``PYTHONPATH=DIR``) is
measured in the same rounds, with its ratio to ours.

Prints a Markdown table (or one JSON object with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- cli-startup:begin -->", "<!-- cli-startup:end -->"


def runledger(use_module: bool) -> list[str]:
    """The ``runledger`` console script (``python -m ledger.cli`` if asked or not installed)."""
    script = None if use_module else shutil.which("runledger")
    return [script] if script else [sys.executable, "-m", "ledger.cli"]


def commands(use_module: bool, baseline: str | None) -> dict[str, list[str]]:
    cli = runledger(use_module)
    extra = {} if baseline is None else {
        f"baseline: python -m ledger.cli --help ({baseline})":
            [sys.executable, "-m", "ledger.cli", "--help"],
        "ours: python -m ledger.cli --help": [sys.executable, "-m", "ledger.cli", "--help"]}
    return {**extra,
        "python -c pass": [sys.executable, "-c", "pass"],
        'python -c "import click"': [sys.executable, "-c", "import click"],
        "runledger --help": [*cli, "--help"],
        "runledger --version": [*cli, "--version"],
        "runledger --store memory:// experiment list": [*cli, "--store", "memory://",
                                                        "experiment", "list"],
    }


def measure(runs: int, use_module: bool, baseline: str | None) -> dict[str, list[float]]:
    """Wall seconds of each command, ``runs`` rounds."""
    todo = commands(use_module, baseline)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    envs = {name: ({**env, "PYTHONPATH": baseline} if name.startswith("baseline")
                   and baseline else env) for name in todo}
    times: dict[str, list[float]] = {name: [] for name in todo}
    # An empty current folder: `python -m` puts it first on sys.path, where a checkout would
    # shadow the baseline.
    with tempfile.TemporaryDirectory() as folder:
        for name, argv in todo.items():  # one warm-up each: file caches, .pyc files
            subprocess.run(argv, capture_output=True, check=True, env=envs[name], cwd=folder)
        for _ in range(runs):
            for name, argv in todo.items():
                start = time.perf_counter()
                subprocess.run(argv, capture_output=True, check=True, env=envs[name],
                               cwd=folder)
                times[name].append(time.perf_counter() - start)
    return times


def summary(times: dict[str, list[float]], runs: int, use_module: bool) -> dict[str, object]:
    medians = {name: statistics.median(values) for name, values in times.items()}
    help_ms = medians["runledger --help"]
    click_ms = medians['python -c "import click"']
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": runs,
        "arguments": " ".join(sys.argv[1:]),
        "command": "python -m ledger.cli" if use_module or not shutil.which("runledger")
        else "the runledger console script",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "median_ms": {name: round(value * 1000, 1) for name, value in medians.items()},
        "ratio_help_to_import_click": round(help_ms / click_ms, 2),
        "help_minus_import_click_ms": round((help_ms - click_ms) * 1000, 1),
        "baseline_ratio": next((round(medians[b] / medians["ours: python -m ledger.cli --help"],
                                      2) for b in medians if b.startswith("baseline")), None),
    }


def markdown(result: dict[str, object]) -> str:
    medians: dict[str, float] = result["median_ms"]  # type: ignore[assignment]
    lines = [
        f"Latest run: **{result['date']}**, `python benchmarks/bench_cli_startup.py "
        f"{result['arguments']}` ({result['command']}; Python {result['python']}, "
        f"{result['cpus']} CPUs, load average {result['load_average']}).",
        "",
        "| command | median ms |",
        "|---|---:|",
        *(f"| `{name}` | {value:.1f} |" for name, value in medians.items()),
        "",
        f"`runledger --help` / `python -c \"import click\"` = "
        f"**{result['ratio_help_to_import_click']} times** "
        f"(+{result['help_minus_import_click_ms']} ms of runledger's own).",
    ]
    if result.get("baseline_ratio"):
        lines.append(f"The baseline's `--help` takes **{result['baseline_ratio']} times** as "
                     "long as ours (`python -m ledger.cli --help`, same rounds).")
    return "\n".join(lines)


def write_results(block: str) -> None:
    text = RESULTS.read_text(encoding="utf-8")
    new = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: new, text,
                      flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n## CLI start-up\n\n" + new + "\n"
    RESULTS.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="rounds (default 21)")
    parser.add_argument("--module", action="store_true",
                        help="measure `python -m ledger.cli` instead of the console script")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time `python -m ledger.cli --help` of another checkout")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--write", action="store_true",
                        help="rewrite the CLI start-up block of benchmarks/RESULTS.md")
    args = parser.parse_args()
    result = summary(measure(args.runs, args.module, args.baseline), args.runs, args.module)
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    if args.write:
        write_results(markdown(result))


if __name__ == "__main__":
    main()
