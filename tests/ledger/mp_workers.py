"""Functions run in child processes by the fork and multiprocessing tests (importable by spawn)."""

from __future__ import annotations

from typing import Any


def log_values(task: tuple[Any, int, int]) -> int:
    """Log ``count`` values of metric ``p`` with steps ``first..`` to the run given."""
    run, first, count = task
    for step in range(first, first + count):
        run.log("p", step, step=step)
    return count


def dump_threads_on_sigusr1() -> None:
    """Pool initializer: SIGUSR1 prints every thread's stack to stderr (a hung worker's, before
    the test's watchdog kills it)."""
    import faulthandler
    import signal
    import sys

    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # Shown only when the test fails: how SIGTERM stood when this worker began.
    print(f"worker: SIGTERM handler {signal.getsignal(signal.SIGTERM)!r}, blocked "
          f"{sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))}", file=sys.stderr, flush=True)
