"""The heartbeat table's lapse query agrees with ``Heartbeat.is_stale`` (the oracle), on every
backend."""

from __future__ import annotations

import time

import pytest

from ledger.application import LedgerApplication
from ledger.config import parse_store_url
from ledger.persistence.heartbeats import MISSED_BEATS, SLACK


def test_lapsed_is_what_is_stale_judges(store_url: str) -> None:
    app = LedgerApplication(parse_store_url(store_url))
    try:
        beats = app.heartbeats
        intervals = {"run-a": 0.2, "run-b": 1.0, "run-c": 5.0, "run-d": 0.05, "run-e": 30.0}
        for run_id, interval in intervals.items():
            beats.beat(run_id, interval, "host", 1)
        assert beats.lapsed() == []  # every beat is fresh
        start = time.time()
        # Moments around each run's own threshold, so every run is judged both ways.
        moments = sorted({start + MISSED_BEATS * i + SLACK + d
                          for i in intervals.values() for d in (-0.01, 0.01, 1.0)})
        seen = set()
        for moment in moments:
            oracle = sorted(r for r in intervals
                            if (beat := beats.last(r)) is not None and beat.is_stale(moment))
            assert beats.lapsed(moment) == oracle, moment
            seen.update(oracle)
        assert seen == set(intervals)
        beats.forget("run-a")
        assert beats.last("run-a") is None
        assert "run-a" not in beats.lapsed(moments[-1])
        beats.forget("no-such-run")  # nothing to forget: no error
    finally:
        app.close()


def test_queries_answer_when_the_heartbeats_cannot_be_read(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger import Experiment, Workspace
    from ledger.domain.errors import StoreError

    exp = Experiment(Workspace(store=store_url), "beats")
    run = exp.start_logging()
    beats = exp.workspace.ledger.application.heartbeats

    def unreadable(now: float | None = None) -> list[str]:
        raise StoreError("permission denied for table rl_heartbeats")

    monkeypatch.setattr(beats, "lapsed", unreadable)
    assert [r.id for r in exp.get_runs()] == [run.id]  # the statuses recorded
    assert run.get_status() == "Running"
