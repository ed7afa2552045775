"""Supervisor heartbeats: one row per supervised run, outside the event log.

A heartbeat every few seconds as an event would fill a run's audit trail with noise (720 events
an hour), so a supervisor overwrites one row instead: ``rl_heartbeats(run_id, beat_at, interval,
host, pid)``, ``beat_at`` in whole microseconds since the Unix epoch (UTC), ``interval`` the
seconds the supervisor promises between two beats. Readers judge a run whose row is older than
:data:`MISSED_BEATS` intervals (plus :data:`SLACK` seconds of clock skew) as not responding and
record *that* as an event (``StatusChanged`` to NotResponding): the audit trail shows the change,
not the beats.
"""

from __future__ import annotations

import time

import attrs

from ledger.persistence.sidetables import SideTables

MISSED_BEATS = 3
SLACK = 2.0

_TABLES = (
    "CREATE TABLE IF NOT EXISTS {p}rl_heartbeats (run_id TEXT PRIMARY KEY, "
    "beat_at {bigint} NOT NULL, interval_ms {bigint} NOT NULL, host TEXT NOT NULL, "
    "pid {bigint} NOT NULL)",
)
_BEAT = ("INSERT INTO {p}rl_heartbeats (run_id, beat_at, interval_ms, host, pid) "
         "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET beat_at = excluded.beat_at, "
         "interval_ms = excluded.interval_ms, host = excluded.host, pid = excluded.pid")
_SELECT = "SELECT beat_at, interval_ms, host, pid FROM {p}rl_heartbeats WHERE run_id = ?"
# Rows whose beat is older than MISSED_BEATS intervals plus SLACK (all in microseconds), as
# Heartbeat.is_stale judges them.
_LAPSED = ("SELECT run_id FROM {p}rl_heartbeats "
           "WHERE beat_at + interval_ms * ? + ? < ? ORDER BY run_id")
_FORGET = "DELETE FROM {p}rl_heartbeats WHERE run_id = ? AND beat_at = ?"
_SELECT_BEAT_AT = "SELECT beat_at FROM {p}rl_heartbeats WHERE run_id = ?"


@attrs.frozen
class Heartbeat:
    """The last heartbeat of a run's supervisor.

    Attributes:
        beat_at: when (Unix seconds).
        interval: the seconds promised between two beats.
        host: the supervisor's host.
        pid: the supervisor's pid.
    """

    beat_at: float
    interval: float
    host: str
    pid: int

    def is_stale(self, now: float | None = None) -> bool:
        """Whether the supervisor has missed :data:`MISSED_BEATS` beats (plus slack)."""
        moment = time.time() if now is None else now
        return moment - self.beat_at > MISSED_BEATS * self.interval + SLACK


class HeartbeatStore(SideTables):
    """The heartbeat table of one ledger's database (see :class:`SideTables`)."""

    TABLES = _TABLES
    TABLE_NAMES = ("rl_heartbeats",)

    def beat(self, run_id: str, interval: float, host: str, pid: int) -> None:
        """Record a beat now.

        Raises:
            StoreError: the store failed.
        """
        with self._cursor(commit=True) as cursor:
            cursor.execute(self._sql(_BEAT), (run_id, int(time.time() * 1_000_000),
                                              int(interval * 1000), host, pid))

    def last(self, run_id: str) -> Heartbeat | None:
        """Return the run's last heartbeat, or ``None`` if its supervisor never beat.

        Raises:
            StoreError: the store failed.
        """
        with self._cursor(commit=False) as cursor:
            cursor.execute(self._sql(_SELECT), (run_id,))
            row = cursor.fetchone()
        if row is None:
            return None
        return Heartbeat(beat_at=int(row[0]) / 1_000_000, interval=int(row[1]) / 1000,
                         host=str(row[2]), pid=int(row[3]))

    def lapsed(self, now: float | None = None) -> list[str]:
        """Return the runs whose supervisor has missed :data:`MISSED_BEATS` beats (plus slack),
        as :meth:`Heartbeat.is_stale` judges them, whatever their status.

        Args:
            now: the moment to judge at (Unix seconds; default: now).

        Returns:
            Run ids, sorted.

        Raises:
            StoreError: the store failed.
        """
        moment = int((time.time() if now is None else now) * 1_000_000)
        with self._cursor(commit=False) as cursor:
            cursor.execute(self._sql(_LAPSED), (MISSED_BEATS * 1000, int(SLACK * 1_000_000),
                                                moment))
            return [str(row[0]) for row in cursor.fetchall()]

    def forget(self, run_id: str) -> None:
        """Delete a run's heartbeat row (the run has ended: nobody needs its beat), unless its
        supervisor beat again meanwhile.

        Raises:
            StoreError: the store failed.
        """
        with self._cursor(commit=False) as cursor:
            cursor.execute(self._sql(_SELECT_BEAT_AT), (run_id,))
            row = cursor.fetchone()
        if row is None:
            return
        with self._cursor(commit=True) as cursor:
            cursor.execute(self._sql(_FORGET), (run_id, int(row[0])))
