"""A run's audit trail: ``Run.get_history()`` and the ``HistoryEntry`` it lists."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ledger.domain.ids import metric_stream_id, run_stream_id
from ledger.domain.metrics import MetricsLogged
from ledger.domain.values import Actor
from ledger.sdk.details import iso_utc

if TYPE_CHECKING:
    from ledger.sdk.session import LedgerSession


@attrs.frozen
class HistoryEntry:
    """One recorded change of a run: when, by whom, what kind, and what.

    Attributes:
        version: the event's position in its stream (runs and their metric batches each count
            from 1).
        time: when it was recorded (UTC).
        actor: who recorded it: ``user``, ``host``, ``pid`` as the writing process declared them,
            and ``server_role``, the role the PostgreSQL server authenticated for the write
            (``None`` on SQLite and for writes made before the server recorded roles).
        kind: the event's name (``Created``, ``TagsSet``, ``MetricsLogged``...).
        payload: what the event recorded.
    """

    version: int
    time: datetime
    actor: Actor
    kind: str
    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-ready data."""
        return {"version": self.version, "time": iso_utc(self.time),
                "actor": {**self.actor.as_dict(), "server_role": self.actor.server_role},
                "kind": self.kind, "payload": self.payload}


def history_entry(event: Any, server_roles: Mapping[int, str] | None = None) -> HistoryEntry:
    """Return the history entry of one stored event of a run (or of its metric stream).

    Args:
        event: the stored event.
        server_roles: the role the server authenticated for each version of the event's stream
            (``LedgerApplication.server_roles``); none known when not given.
    """
    state = dict(vars(event))
    version = state.pop("originator_version")
    state.pop("originator_id", None)
    state.pop("originator_topic", None)
    moment = state.pop("timestamp")
    actor = Actor.from_dict(state.pop("actor", {}) or {})
    if server_roles:
        actor = attrs.evolve(actor, server_role=server_roles.get(version))
    kind = type(event).__name__
    if isinstance(event, MetricsLogged):
        state = {"series": [{"name": s[0], "kind": s[1], "count": len(s[3])}
                            for s in event.series]}
    elif kind != "Created":
        state.pop("run_id", None)
    payload = {k: (str(v) if not isinstance(v, (str, int, float, bool, list, dict, type(None)))
                   else v) for k, v in state.items()}
    return HistoryEntry(version=version, time=moment, actor=actor, kind=kind, payload=payload)


class HistoryMixin:
    """``Run.get_history()``."""

    if TYPE_CHECKING:
        _run_id: str
        _session: LedgerSession

        def flush(self) -> None: ...

    def get_history(self, include_metrics: bool = True) -> builtins.list[HistoryEntry]:
        """Return every recorded change of the run, oldest first: the audit trail.

        Args:
            include_metrics: also list the metric batches (with their names and value counts).
        """
        self.flush()
        app = self._session.app
        stream = run_stream_id(self._run_id)
        roles = app.server_roles(stream)
        entries = [history_entry(event, roles) for event in app.stream_events(stream)]
        if include_metrics:
            roles = app.server_roles(metric_stream_id(self._run_id))
            entries.extend(history_entry(event, roles)
                           for event in app.metric_events(self._run_id))
            entries.sort(key=lambda e: e.time)
        return entries
