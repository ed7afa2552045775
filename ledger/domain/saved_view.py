"""The ``SavedView`` aggregate: a named arrangement of an experiment's runs table (the seed's
custom views), the one thing the Studio writes.

A view records the runs page's URL query string (filters, sort, columns), so restoring it is
opening that URL. Views are events like everything else: created, then updated (renamed or given
a new arrangement), each with its actor.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from ledger.domain.errors import ValidationError
from ledger.domain.values import Actor, check_name

MAX_QUERY_LENGTH = 4_000


def check_view_query(query: Any) -> str:
    """Validate a saved view's arrangement (a URL query string without the ``?``).

    Args:
        query: the query string.

    Returns:
        The query string.

    Raises:
        ValidationError: not a string, longer than :data:`MAX_QUERY_LENGTH`, or holding a NUL or
            a line break.
    """
    if not isinstance(query, str):
        raise ValidationError(
            f"A saved view's query must be a string, not {type(query).__name__}")
    if len(query) > MAX_QUERY_LENGTH:
        raise ValidationError(
            f"A saved view's query is at most {MAX_QUERY_LENGTH} characters, not {len(query)}")
    if any(c in query for c in "\x00\r\n"):
        raise ValidationError("A saved view's query cannot hold NUL or line breaks")
    return query


class SavedViewAggregate(Aggregate):
    """A saved view of an experiment's runs table.

    Attributes (rebuilt from events): ``view_id`` (str), ``experiment_name``, ``name``,
    ``query``, ``created_by``.
    """

    TOPIC = "runledger:SavedView"

    class Event(Aggregate.Event):
        TOPIC = "runledger:SavedView.Event"
        actor: dict[str, Any]

    class Created(Event, Aggregate.Created):
        """A view was saved."""

        TOPIC = "runledger:SavedView.Created"
        experiment_name: str
        name: str
        query: str

        def apply(self, aggregate: Any) -> None:
            aggregate.experiment_name = self.experiment_name
            aggregate.name = self.name
            aggregate.query = self.query
            aggregate.created_by = dict(self.actor)

    class Updated(Event):
        """A view was renamed or given a new arrangement."""

        TOPIC = "runledger:SavedView.Updated"
        name: str
        query: str

        def apply(self, aggregate: Any) -> None:
            aggregate.name = self.name
            aggregate.query = self.query

    if TYPE_CHECKING:  # see RunAggregate: class annotations would make a dataclass of it
        experiment_name: str
        name: str
        query: str
        created_by: dict[str, Any]

    @property
    def view_id(self) -> str:
        """The view's id (its stream's UUID as a string)."""
        return str(self.id)

    @classmethod
    def create(cls, experiment_name: str, name: str, query: str,
               actor: Actor) -> SavedViewAggregate:
        """Save a new view.

        Args:
            experiment_name: the experiment whose runs table it arranges.
            name: the view's name.
            query: the runs page's query string.
            actor: who saves it.

        Returns:
            The new aggregate (not yet stored).

        Raises:
            ValidationError: a bad name, experiment name or query (nothing is created).
        """
        experiment_name = check_name(experiment_name, "experiment name")
        name = check_name(name, "view name")
        query = check_view_query(query)
        return cls._create(cls.Created, id=uuid.uuid4(), experiment_name=experiment_name,
                           name=name, query=query, actor=actor.as_dict())

    def update(self, name: str, query: str, actor: Actor) -> None:
        """Rename the view or give it a new arrangement (nothing happens if neither changes).

        Raises:
            ValidationError: a bad name or query (nothing is recorded).
        """
        name = check_name(name, "view name")
        query = check_view_query(query)
        if name == self.name and query == self.query:
            return
        self.trigger_event(self.Updated, name=name, query=query, actor=actor.as_dict())


for _cls in (SavedViewAggregate, SavedViewAggregate.Event, SavedViewAggregate.Created,
             SavedViewAggregate.Updated):
    register_topic(_cls.TOPIC, _cls)
