"""The one retry policy (``ledger.persistence.retry``): how often, how long, and what is retried."""

from __future__ import annotations

import sqlite3

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, ProgrammingError

from ledger.persistence.retry import RETRY, RetryPolicy, is_conflict, is_transient


def test_attempts_are_counted_and_paused_between() -> None:
    pauses: list[float] = []
    policy = RetryPolicy(attempts_max=6, first_pause=0.01, max_pause=0.04, deadline=None)
    assert list(policy.attempts(sleep=pauses.append)) == [0, 1, 2, 3, 4, 5]
    assert len(pauses) == 5  # none before the first attempt
    bounds = [0.01, 0.02, 0.04, 0.04, 0.04]  # doubling, capped
    assert all(0 <= p <= bound for p, bound in zip(pauses, bounds, strict=True))


def test_pauses_are_jittered() -> None:
    assert len({RETRY.pause(8) for _ in range(20)}) > 1


def test_the_deadline_stops_the_attempts() -> None:
    policy = RetryPolicy(attempts_max=1000, first_pause=0.001, max_pause=0.001, deadline=0.05)
    assert 2 <= len(list(policy.attempts())) < 1000


@pytest.mark.parametrize(("error", "transient"), [
    (IntegrityError("duplicate key"), True),
    (OperationalError("database is locked"), True),
    (sqlite3.OperationalError("database is locked"), True),
    (OperationalError("deadlock detected"), True),
    (OperationalError("could not serialize access"), True),
    (OperationalError("no such table: stored_events"), False),
    (ProgrammingError("syntax error"), False),
    (ValueError("locked"), False),
])
def test_one_classification_of_transient_errors(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient
    assert is_conflict(error) is isinstance(error, IntegrityError)


def test_call_retries_transient_errors_then_returns() -> None:
    outcomes: list[Exception | str] = [OperationalError("database is locked"),
                                       IntegrityError("conflict"), "done"]

    def action() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert RetryPolicy(first_pause=0.0001, max_pause=0.0001).call(action) == "done"
    assert outcomes == []


def test_call_raises_other_errors_at_once_and_the_last_when_exhausted() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise OperationalError("no such table")

    with pytest.raises(OperationalError, match="no such table"):
        RETRY.call(broken)
    assert calls == [1]

    def busy() -> None:
        calls.append(1)
        raise OperationalError("database is locked")

    calls.clear()
    with pytest.raises(OperationalError, match="locked"):
        RetryPolicy(attempts_max=3, first_pause=0.0001, max_pause=0.0001).call(busy)
    assert calls == [1, 1, 1]
