"""What a projection is: a read model, the tables holding it, and how a page of events changes it.

A projection is a small class registered in :data:`projections.registry.PROJECTIONS`. Its ``name``
is its tracking name in eventsourcing's tracking table and includes a version
(``runledger.runs.v1``): a projection whose name has no tracking row yet gets fresh tables and is
back-filled from the start of the log by the next catch-up, so adding a read model (or bumping the
version of one whose tables changed) needs no migration step.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from projections.dialect import DbCursor, Dialect

# One event of a page: its notification id (position in the log), its topic, the decoded event.
LoggedEvent = tuple[int, str, Any]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MICROSECOND = timedelta(microseconds=1)
_fromtimestamp = datetime.fromtimestamp


def to_micros(moment: datetime) -> int:
    """Return an aware datetime as whole microseconds since the Unix epoch.

    Args:
        moment: an aware datetime (naive ones are taken as UTC).

    Returns:
        Microseconds since 1970-01-01T00:00:00Z.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - EPOCH) // _ONE_MICROSECOND


def micros_to_datetime(micros: int) -> datetime:
    """Return the aware UTC datetime of microseconds since the epoch.

    Args:
        micros: microseconds since the epoch.

    Returns:
        The datetime (exact: the float quotient is within 0.25 us of the true value for any date
        before 2100, and ``fromtimestamp()`` rounds to the nearest microsecond).
    """
    return _fromtimestamp(micros / 1e6, timezone.utc)


def from_micros(micros: int | None) -> datetime | None:
    """Return the aware UTC datetime of microseconds since the epoch (``None`` stays ``None``).

    Args:
        micros: microseconds since the epoch, or ``None``.

    Returns:
        The datetime, or ``None``.
    """
    if micros is None:
        return None
    return _fromtimestamp(micros / 1e6, timezone.utc)


class Projection(abc.ABC):
    """A read model built from the log, applied a page at a time in the projector's transaction.

    Subclasses set the class attributes and implement :meth:`apply`. Statements are templates for
    :meth:`projections.dialect.Dialect.sql` (``?`` placeholders, ``{bigint}``-style types and
    ``{p}`` before every table name).

    Attributes:
        name: the tracking name, with a version (``runledger.<model>.v<N>``).
        topics: the event topics this projection reads; others never reach :meth:`apply`.
        tables: table name -> ``CREATE TABLE`` template (tables are prefixed ``rl_``). Keys and
            ``UNIQUE`` constraints that :meth:`apply` looks rows up by belong here.
        indexes: index name -> ``CREATE INDEX IF NOT EXISTS`` template: the indexes only queries
            need (a rebuild loads the tables without them and creates them at the end).
        raw: True for a projection of every event of the log whatever its topic, undecoded:
            :meth:`apply` then receives ``(notification id, topic, stored row)`` for each
            (the sealing projection hashes the stored bytes); ``topics`` is not used.
    """

    name: ClassVar[str]
    topics: ClassVar[frozenset[str]]
    tables: ClassVar[dict[str, str]]
    indexes: ClassVar[dict[str, str]] = {}
    raw: ClassVar[bool] = False

    def __init__(self, app: LedgerApplication, dialect: Dialect) -> None:
        """Bind the projection to a ledger.

        Args:
            app: the ledger (for its transcoder, if the projection stores encoded values).
            dialect: the store's SQL dialect.
        """
        self.app = app
        self.dialect = dialect

    @abc.abstractmethod
    def apply(self, cursor: DbCursor, events: Sequence[LoggedEvent]) -> None:
        """Apply a page of events, in log order, inside the projector's transaction.

        Must not commit, and must fold the page into as few statements as it can (a page holds
        hundreds to thousands of events).

        Args:
            cursor: a tuple-row cursor in the projector's transaction.
            events: the page's events with topics in :attr:`topics`, in log order, none of them
                applied before.
        """
