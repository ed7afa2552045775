"""The audit methods of ``Run``: governed corrections, archiving, and the run as of a moment.

A mixin, so that ``ledger/sdk/run.py`` gains them with one line (``class Run(RunAuditMixin)``).
The moments and their semantics (log positions, recorded times, clock skew) are described in
``ledger.audit.timeline``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledger.audit.timeline import (
    ChangeEntry,
    RunAsOf,
    RunDiff,
    run_as_of,
    run_diff,
    run_history,
)
from ledger.domain.values import check_reason, normalise_properties

if TYPE_CHECKING:
    from datetime import datetime

    from ledger.domain.run import RunAggregate
    from ledger.sdk.session import LedgerSession


class RunAuditMixin:
    """Corrections, archiving and views as of a moment, for ``Run``."""

    if TYPE_CHECKING:
        _run_id: str
        _session: LedgerSession

        def _command(self, command: Any, *, publish_first: bool = False) -> Any: ...

        def flush(self) -> None: ...

        def _refreshed(self) -> RunAggregate: ...

    def correct_property(self, key: str, value: Any, reason: str) -> None:
        """Correct a recorded property: the governed way to change an immutable value.

        ``get_properties()`` then shows the new value; the history keeps both, with the reason
        and who corrected it. Correcting a property to the value it has records nothing.

        Args:
            key: a property the run has.
            value: its new value (stored as ``str(value)``; ``None`` stays ``None``).
            reason: why (a non-empty string).

        Raises:
            ValidationError: a bad key or value, or no reason (nothing is recorded).
            PropertyNotFoundError: the run has no such property (nothing is recorded).
        """
        normalise_properties({key: value}, self._run_id)
        check_reason(reason, f"correct_property of property {key!r}", self._run_id)
        self._command(lambda agg, actor: agg.correct_property(key, value, reason, actor),
                      publish_first=True)

    def archive(self, reason: str) -> None:
        """Archive the run: ``get_runs``, ``Run.list``, ``get_children`` and ``run list`` hide
        it unless given ``include_archived=True``. Nothing is deleted: the run keeps its
        history, can still be loaded by id, and ``restore()`` shows it again.

        Args:
            reason: why (a non-empty string).

        Raises:
            ValidationError: no reason (nothing is recorded).
        """
        check_reason(reason, "archive", self._run_id)
        self._command(lambda agg, actor: agg.archive(reason, actor))

    def restore(self) -> None:
        """Restore an archived run: queries show it again (a run not archived is left as is)."""
        self._command(lambda agg, actor: agg.restore(actor))

    @property
    def archived(self) -> bool:
        """Whether the run is archived now."""
        return bool(self._refreshed().archived)

    def as_of(self, when: datetime | int) -> RunAsOf:
        """Return the run as it was at a moment: a read-only view with ``get_status``,
        ``get_details``, ``get_properties``, ``get_tags`` and ``get_metrics``.

        Args:
            when: a log position (an int: the ledger after the event at that position) or an
                aware datetime (each of the run's streams up to its first event recorded after
                it). See ``ledger.audit.timeline`` for clock skew between hosts.

        Raises:
            ValidationError: a naive datetime, a negative position, or another type.
            RunNotFoundError: the run did not exist then.
        """
        self.flush()
        return run_as_of(self._session.app, self._run_id, when)

    def diff(self, since: datetime | int, until: datetime | int) -> RunDiff:
        """Return what changed in the run between two moments: status, display name,
        description, error, archived, and properties, tags and metric counts by key, each
        added, changed or removed with its old and new value.

        Raises:
            ValidationError: a moment is neither a position nor an aware datetime.
            RunNotFoundError: the run existed at neither moment.
        """
        self.flush()
        return run_diff(self._session.app, self._run_id, since, until)

    def get_audit_history(self, since: datetime | int | None = None,
                          until: datetime | int | None = None) -> list[ChangeEntry]:
        """Return every recorded change of the run in log order, each with its position, time,
        actor and what it changed (old -> new); optionally only those after the run as of
        ``since`` and up to the run as of ``until``.

        Raises:
            ValidationError: a moment is neither a position nor an aware datetime.
        """
        self.flush()
        return run_history(self._session.app, self._run_id, since, until)
