"""The one retry policy of runledger, and the one classification of errors worth retrying.

Every loop that tries again -- a command that lost a write race (``LedgerApplication.run_command``,
``append_metrics``), opening a store other processes are creating, a projector's transaction, an
import batch, a supervisor recording a script's end -- iterates over ``RETRY`` (or a policy made
with ``RetryPolicy``) and asks ``is_transient`` / ``is_conflict`` what to retry::

    for attempt in RETRY.attempts():     # pauses before every attempt but the first
        try:
            return write()
        except IntegrityError:
            continue
    raise ConcurrencyError(...)

Pauses are "full jitter" (a random time between 0 and a bound doubling from ``first_pause`` to
``max_pause``): measured on PostgreSQL with 31 processes tagging one run 10 times each while
writing runs of their own, writers without pauses collided in step and gave up after 20
attempts; with them, at most 47 attempts were needed.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import attrs
from eventsourcing.persistence import IntegrityError, OperationalError

T = TypeVar("T")

# Words of the operational errors that mean a lost race or a busy store, not a fault: SQLite's
# "database is locked"/"busy", PostgreSQL's deadlock and serialisation failures, and concurrent
# catalogue updates or "already exists" while several processes create the same tables.
TRANSIENT_WORDS = ("locked", "busy", "deadlock", "serializ", "concurrently", "already exists")


def is_conflict(error: BaseException) -> bool:
    """Whether ``error`` is a write conflict: another writer appended to the stream first
    (eventsourcing's ``IntegrityError``); the caller reloads and tries again."""
    return isinstance(error, IntegrityError)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` means "the store is busy or another process got there first, try
    again": a write conflict, or an operational error naming a lock, a deadlock, a
    serialisation failure or a concurrent creation (``TRANSIENT_WORDS``)."""
    if is_conflict(error):
        return True
    if isinstance(error, (OperationalError, sqlite3.OperationalError)):
        text = str(error).lower()
        return any(word in text for word in TRANSIENT_WORDS)
    return False


@attrs.frozen
class RetryPolicy:
    """How often and how long to try again.

    Attributes:
        attempts: at most this many attempts in all.
        first_pause: the bound of the first pause, in seconds (doubling after each attempt).
        max_pause: the largest bound of a pause.
        deadline: give up once this many seconds have passed since the first attempt
            (``None``: attempts only).
    """

    attempts_max: int = 100
    first_pause: float = 0.002
    max_pause: float = 0.5
    deadline: float | None = 60.0

    def pause(self, attempt: int) -> float:
        """The pause before attempt ``attempt + 1`` (0-based), drawn with full jitter."""
        return random.uniform(0, min(self.max_pause, self.first_pause * 2 ** attempt))

    def attempts(self, sleep: Callable[[float], None] = time.sleep) -> Iterator[int]:
        """Yield the attempt numbers 0, 1, 2..., pausing before each but the first; stop after
        ``attempts_max`` attempts or when the deadline has passed."""
        started = time.monotonic()
        for attempt in range(self.attempts_max):
            if attempt:
                if self.deadline is not None and time.monotonic() - started >= self.deadline:
                    return
                sleep(self.pause(attempt - 1))
            yield attempt

    def call(self, action: Callable[[], T], retry_if: Callable[[BaseException], bool]
             = is_transient) -> T:
        """Run ``action``; again (after a pause) while it raises an error ``retry_if`` accepts.

        Returns:
            What ``action`` returned.

        Raises:
            Whatever ``action`` raised last: an error ``retry_if`` refuses at once, an accepted
            one when the attempts or the deadline are used up.
        """
        last: BaseException | None = None
        for _attempt in self.attempts():
            try:
                return action()
            except Exception as error:
                if not retry_if(error):
                    raise
                last = error
        assert last is not None
        raise last


RETRY = RetryPolicy()
