#!/usr/bin/env python3
"""Run-file benchmark: upload and download MB/s against a plain file copy, and peak memory.

Usage (from the repository root)::

    python -m benchmarks.bench_files                      # 1 MB and 200 MB on SQLite
    python -m benchmarks.bench_files --backends sqlite,postgresql
    python -m benchmarks.bench_files --sizes 1,50 --repeats 1   # a quick look
    python -m benchmarks.bench_files --trees .,/tmp/before      # A/B: another checkout's code

With ``--trees``, the upload and download of each repeat run once with each tree's code (its
folder on ``PYTHONPATH`` of the measured subprocess), alternating, against the same copy and
hash references, each tree on a ledger of its own: results are reported per tree.

For each backend and size a fresh ledger is made; a file of random bytes is written to a
temporary folder on the same disk as the SQLite ledger; then, each in a fresh subprocess (so peak
RSS, ``VmHWM``, is the measured operation's own, reported as growth over the process's
baseline after opening the ledger, and as the process's whole peak):

- ``copy``: ``shutil.copyfile`` of the file (the reference: the disk's own speed, mostly the
  page cache's);
- ``copy_fsync``: the same, then ``fsync`` of the copy (what a durable write of the bytes costs);
- ``sha256``: reading and hashing the file once (an upload hashes it twice: each chunk for its
  key, and the whole, in a second thread);
- ``upload``: ``run.upload_file(name, path)`` (hashing, chunking, committing, the event);
- ``upload_fresh``: the same, of a file of new random bytes written just before (not timed),
  as a training script uploads the checkpoint it has just saved: its pages are still dirty,
  and the upload's own writes queue behind their writeback;
- ``download``: ``run.download_file(name, path)`` (reading, checking the hash, writing).

The median of ``--repeats`` runs is reported (each upload under a new name: the first upload of a
content stores its chunks, later ones of the same content store nothing new, so ``upload`` is
measured on fresh random content every time). Prints one JSON object; ratios are
``copy time / operation time`` (1.0 = as fast as a plain copy); ``cpu_seconds`` (upload and
download: the process's CPU time, all threads) is the figure least moved by a loaded machine.
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
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

_WORKER = textwrap.dedent("""
    import json, os, resource, shutil, sys, time

    def hwm_kb():
        # VmHWM: this process image's own peak RSS (ru_maxrss keeps the parent's across exec)
        try:
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    op, store, run_id, name, path, target = sys.argv[1:7]
    if op == "copy":
        base = hwm_kb()
        start = time.perf_counter()
        shutil.copyfile(path, target)
        elapsed = time.perf_counter() - start
    elif op == "copy_fsync":
        base = hwm_kb()
        start = time.perf_counter()
        shutil.copyfile(path, target)
        fd = os.open(target, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        elapsed = time.perf_counter() - start
    elif op == "sha256":
        import hashlib
        base = hwm_kb()
        start = time.perf_counter()
        with open(path, "rb") as handle:
            digest = hashlib.sha256()
            for block in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(block)
        elapsed = time.perf_counter() - start
    else:
        import ledger
        from ledger import Run, Workspace
        code = os.path.dirname(os.path.dirname(os.path.abspath(ledger.__file__)))
        run = Run.get(Workspace(store=store), run_id)
        run.get_file_names()  # the ledger is open and its tables exist before measuring
        base = hwm_kb()
        cpu = time.process_time()
        start = time.perf_counter()
        if op == "upload":
            run.upload_file(name, path)
        else:
            run.download_file(name, target)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
    peak = hwm_kb()
    measured = op in ("upload", "download")
    print(json.dumps({"seconds": elapsed, "rss_growth_mb": (peak - base) / 1024,
                      "peak_rss_mb": peak / 1024, "cpu_seconds": cpu if measured else None,
                      "code": code if measured else None}))
""")


def _store_url(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'ledger.db'}"
    schema = "bench_files_" + os.urandom(4).hex()
    base = os.environ.get("RUNLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    return f"{base}?schema={schema}"


def _drop_schema(url: str) -> None:
    if "schema=" not in url:
        return
    import psycopg

    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _measure(op: str, store: str, run_id: str, name: str, path: Path, target: Path,
             tree: Path = REPO) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), os.environ.get(
        "PYTHONPATH", "")]))
    # cwd = the tree: ``python -c`` puts its working directory first on sys.path, ahead of
    # PYTHONPATH (run from another checkout's root, it would measure that one's code).
    done = subprocess.run([sys.executable, "-c", _WORKER, op, store, run_id, name, str(path),
                           str(target)], check=True, capture_output=True, text=True, env=env,
                          cwd=tree)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] is not None and Path(result["code"]) != tree.resolve():
        raise SystemExit(f"the worker ran the code of {result['code']}, not of {tree}")
    return result


def _digest(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _summary(runs: list[dict[str, float]], megabytes: int, copy_seconds: float) -> dict[
        str, float]:
    seconds = statistics.median(f["seconds"] for f in runs)
    cpu = [f["cpu_seconds"] for f in runs if f.get("cpu_seconds") is not None]
    return {
        "seconds": round(seconds, 4),
        **({"cpu_seconds": round(statistics.median(cpu), 4)} if cpu else {}),
        "mb_per_s": round(megabytes / seconds, 1),
        "rss_growth_mb": round(max(f["rss_growth_mb"] for f in runs), 1),
        "peak_rss_mb": round(max(f["peak_rss_mb"] for f in runs), 1),
        "vs_copy": round(copy_seconds / seconds, 3),
    }


def bench(backend: str, megabytes: int, repeats: int,
          trees: list[Path] | None = None) -> dict[str, Any]:
    """Measure one backend and size; return the medians (seconds, MB/s, RSS growth), per tree
    when several are given."""
    from ledger import Experiment, Workspace

    trees = trees or [REPO]
    folder = Path(tempfile.mkdtemp(prefix="bench-files-", dir=os.environ.get("BENCH_DIR")))
    stores = [_store_url(backend, folder / f"tree-{index}") for index in range(len(trees))]
    try:
        run_ids = []
        for index, store in enumerate(stores):
            (folder / f"tree-{index}").mkdir()
            run = Experiment(Workspace(store=store), "bench-files").start_logging()
            run.flush()
            run_ids.append(run.id)
        references: dict[str, list[dict[str, float]]] = {"copy": [], "copy_fsync": [],
                                                         "sha256": []}
        measured: list[dict[str, list[dict[str, float]]]] = [
            {"upload": [], "download": [], "upload_fresh": []} for _ in trees]
        for attempt in range(repeats):
            source = folder / f"source-{attempt}.bin"
            with open(source, "wb") as handle:
                for _ in range(megabytes):
                    handle.write(os.urandom(1024 * 1024))
            name = f"outputs/file-{attempt}.bin"
            for reference in references:
                references[reference].append(_measure(reference, stores[0], run_ids[0], name,
                                                       source, folder / "copy.bin"))
            order = list(range(len(trees)))
            if attempt % 2:
                order.reverse()  # neither tree always runs on the page cache the other left
            for index in order:
                figures = measured[index]
                figures["upload"].append(_measure("upload", stores[index], run_ids[index], name,
                                                  source, source, trees[index]))
                back = folder / f"back-{attempt}.bin"
                figures["download"].append(_measure("download", stores[index], run_ids[index],
                                                    name, source, back, trees[index]))
                if _digest(back) != _digest(source):
                    raise SystemExit(f"download of {name} ({trees[index]}) is not byte-exact")
                back.unlink()
                fresh = folder / f"fresh-{attempt}-{index}.bin"
                with open(fresh, "wb") as handle:
                    for _ in range(megabytes):
                        handle.write(os.urandom(1024 * 1024))
                figures["upload_fresh"].append(_measure(
                    "upload", stores[index], run_ids[index], f"outputs/fresh-{attempt}.bin",
                    fresh, fresh, trees[index]))
                fresh.unlink()
            for path in (source, folder / "copy.bin"):
                path.unlink()
        result: dict[str, Any] = {"backend": backend, "megabytes": megabytes}
        copy_seconds = statistics.median(f["seconds"] for f in references["copy"])
        for op, runs in references.items():
            result[op] = _summary(runs, megabytes, copy_seconds)
        if len(trees) == 1:
            for op, runs in measured[0].items():
                result[op] = _summary(runs, megabytes, copy_seconds)
        else:
            result["trees"] = {str(tree): {op: _summary(runs, megabytes, copy_seconds)
                                           for op, runs in figures.items()}
                               for tree, figures in zip(trees, measured, strict=True)}
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if backend == "postgresql":
            for store in stores:
                _drop_schema(store)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--sizes", default="1,200", help="file sizes in MB, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trees", default="", help="checkouts whose code is measured, "
                        "comma-separated (default: this one)")
    args = parser.parse_args(argv)
    trees = [Path(t).resolve() for t in args.trees.split(",") if t] or None
    results = [bench(backend, int(size), args.repeats, trees)
               for backend in args.backends.split(",") for size in args.sizes.split(",")]
    print(json.dumps({"machine": {"python": platform.python_version(),
                                  "cpus": os.cpu_count(), "platform": platform.platform(),
                                  "load_average": os.getloadavg()},
                      "repeats": args.repeats, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
