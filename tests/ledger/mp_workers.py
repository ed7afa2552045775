"""Functions run in child processes by the fork and multiprocessing tests (importable by spawn)."""

from __future__ import annotations

from typing import Any


def log_values(task: tuple[Any, int, int]) -> int:
    """Log ``count`` values of metric ``p`` with steps ``first..`` to the run given."""
    run, first, count = task
    for step in range(first, first + count):
        run.log("p", step, step=step)
    return count
