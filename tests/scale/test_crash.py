"""Writers killed with SIGKILL at random moments lose nothing they acknowledged, duplicate
nothing, and leave a ledger that opens, whose projections catch up and equal a rebuild, and
(SQLite) passes ``PRAGMA integrity_check``.

A few trials of ``benchmarks/crash_harness.py``; run it directly for hundreds.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import crash_harness


def test_writers_killed_at_random_lose_nothing_acknowledged(shared_backend: str, store_url: str,
                                                            tmp_path: Path) -> None:
    result = crash_harness.run_trials(store_url, tmp_path, trials=3, writers=4, max_delay=1.5,
                                      rebuild_every=3, seed=7)
    assert result["kills"] == 12, result
    assert result["acks"] > 0, result


def test_sqlite_with_synchronous_full_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}?synchronous=FULL"
    result = crash_harness.run_trials(url, tmp_path, trials=2, writers=3, max_delay=1.5,
                                      rebuild_every=2, seed=3)
    assert result["kills"] == 6, result
