"""The ``Environment`` aggregate: the registered versions of one named environment definition.

One stream per environment name (id ``uuid5("environment:" + name)``). Each ``Registered`` event
records one immutable version: ``"1"``, ``"2"``... Registering a definition equal to the latest
version's records nothing (as the seed SDK answers with the existing version), so a run refers to
exactly the definition it ran with by name and version.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from ledger.domain.errors import ValidationError
from ledger.domain.ids import LEDGER_NAMESPACE
from ledger.domain.values import Actor, check_name


def environment_stream_id(name: str) -> uuid.UUID:
    """Return the UUID of the stream of the environment ``name``."""
    return uuid.uuid5(LEDGER_NAMESPACE, "environment:" + name)


class EnvironmentAggregate(Aggregate):
    """An environment's registered versions (``versions``: version -> definition)."""

    TOPIC = "runledger:Environment"

    class Event(Aggregate.Event):
        TOPIC = "runledger:Environment.Event"
        actor: dict[str, Any]

    class Created(Event, Aggregate.Created):
        """The environment's name was first registered."""

        TOPIC = "runledger:Environment.Created"
        name: str

        def apply(self, aggregate: Any) -> None:
            aggregate.name = self.name
            aggregate.versions = {}
            aggregate.registered_at = {}
            aggregate.created_by = dict(self.actor)

    class Registered(Event):
        """A new version of the definition was registered (never changed afterwards)."""

        TOPIC = "runledger:Environment.Registered"
        version: str
        definition: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.versions[self.version] = dict(self.definition)
            aggregate.registered_at[self.version] = self.timestamp

    if TYPE_CHECKING:  # see RunAggregate: class annotations would make a dataclass of it
        name: str
        versions: dict[str, dict[str, Any]]
        registered_at: dict[str, Any]
        created_by: dict[str, Any]

    @classmethod
    def create(cls, name: str, actor: Actor) -> EnvironmentAggregate:
        """Start the environment ``name`` (no version yet).

        Raises:
            ValidationError: the name is not a valid name.
        """
        name = check_name(name, "environment name")
        return cls._create(cls.Created, id=environment_stream_id(name), name=name,
                           actor=actor.as_dict())

    @property
    def latest_version(self) -> str | None:
        """The newest version (``None`` before the first registration)."""
        if not self.versions:
            return None
        return max(self.versions, key=int)

    def register(self, definition: dict[str, Any], actor: Actor) -> str:
        """Register a definition; return its version (the latest one when it is unchanged).

        Raises:
            ValidationError: the definition is not a dict.
        """
        if not isinstance(definition, dict):
            raise ValidationError(
                f"environment {self.name!r}: a definition must be a dict, not "
                f"{type(definition).__name__}")
        latest = self.latest_version
        if latest is not None and self.versions[latest] == definition:
            return latest
        version = str(int(latest) + 1 if latest is not None else 1)
        self.trigger_event(self.Registered, version=version, definition=dict(definition),
                           actor=actor.as_dict())
        return version


register_topic(EnvironmentAggregate.TOPIC, EnvironmentAggregate)
register_topic(EnvironmentAggregate.Event.TOPIC, EnvironmentAggregate.Event)
register_topic(EnvironmentAggregate.Created.TOPIC, EnvironmentAggregate.Created)
register_topic(EnvironmentAggregate.Registered.TOPIC, EnvironmentAggregate.Registered)
