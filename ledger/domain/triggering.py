"""eventsourcing's ``_create`` and ``trigger_event``, without the work they repeat on every call.

A run triggers its events one command at a time (six for a run that is started, given
properties and two tags, and completed), and eventsourcing's two methods cost more than the
commands around them: ``trigger_event`` copies its keywords, and ``mutate`` then checks that the
event it was just given belongs to the aggregate and follows its version, which it does by
construction; ``_create`` filters its keywords for an id factory the given id makes useless, and
``CanInitAggregate.mutate`` filters the event's fields by ``inspect`` signatures twice.

:class:`LeanEventsMixin` does what they do (the same registered-topic checks, on every call; the
same event, built by the event class itself, with the same id, version and timestamp; ``apply``
called before the aggregate's version and modification time are set; the event appended to the
pending events) and hands any case it does not cover to eventsourcing's own method, which then
raises the errors it raises: an aggregate class without ``TOPIC``, an event class whose topic is
not registered to it (or the base ``Event``), an event or aggregate class that overrides
``mutate``, ``__init__`` or ``__base_init__``, an id that is not given or not a ``UUID``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from eventsourcing.domain import BaseAggregate, CanInitAggregate, CanMutateAggregate
from eventsourcing.utils import TopicError, get_topic, resolve_topic

_A = TypeVar("_A", bound="LeanEventsMixin")

_MUTATE = CanMutateAggregate.mutate
_INIT_MUTATE = CanInitAggregate.mutate
_BASE_INIT: Any = BaseAggregate.__base_init__
_OBJECT_INIT = object.__init__


def _registered(event_class: type[Any]) -> bool:
    """Whether the explicit ``TOPIC`` of ``event_class`` resolves to it (what eventsourcing
    checks before it builds an event of an aggregate with an explicit topic)."""
    topic = getattr(event_class, "TOPIC", None)
    if not topic:
        return False
    try:
        return resolve_topic(topic) is event_class
    except TopicError:
        return False


class LeanEventsMixin:
    """``_create`` and ``trigger_event`` for an eventsourcing ``Aggregate`` subclass with an
    explicit ``TOPIC`` (put it before ``Aggregate`` in the bases); see the module's docstring.
    """

    if TYPE_CHECKING:
        _id: UUID
        _version: int
        _modified_on: Any
        _pending_events: list[Any]
        INITIAL_VERSION: int

        def __base_init__(self, originator_id: Any, originator_version: int,
                          timestamp: Any) -> None: ...

    @classmethod
    def _create(cls: type[_A], event_class: type[Any], *, id: Any = None,
                **kwargs: Any) -> _A:
        """Create the aggregate from a ``Created`` event, as eventsourcing's ``_create`` does.
        """
        if (type(id) is not UUID or not getattr(cls, "TOPIC", None)
                or not _registered(event_class) or event_class.mutate is not _INIT_MUTATE
                or cls.__init__ is not _OBJECT_INIT
                or cls.__base_init__ is not _BASE_INIT):
            return super()._create(event_class, id=id, **kwargs)  # type: ignore[misc,no-any-return]
        aggregate_topic = get_topic(cls)
        if resolve_topic(aggregate_topic) is not cls:  # pragma: no cover - never so
            return super()._create(event_class, id=id, **kwargs)  # type: ignore[misc,no-any-return]
        version = cls.INITIAL_VERSION
        kwargs["originator_topic"] = aggregate_topic
        kwargs["originator_id"] = id
        kwargs["originator_version"] = version
        if kwargs.get("timestamp") is None:
            kwargs["timestamp"] = event_class.create_timestamp()
        try:
            created = event_class(**kwargs)
        except TypeError as e:
            msg = f"Unable to construct '{event_class.__qualname__}' event: {e}"
            raise TypeError(msg) from e
        # CanInitAggregate.mutate(None): a shell of the class, its base attributes from the
        # event's id, version and timestamp (object.__init__ takes nothing), then apply().
        aggregate = cls.__new__(cls)
        aggregate.__base_init__(
            originator_id=created.originator_id,
            originator_version=created.originator_version, timestamp=created.timestamp)
        created.apply(aggregate)
        aggregate._pending_events.append(created)
        return aggregate

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        """Trigger an event of ``event_class``, as eventsourcing's ``trigger_event`` does.
        """
        if (event_class.mutate is not _MUTATE or event_class.__name__ == "Event"
                or not getattr(type(self), "TOPIC", None) or not _registered(event_class)):
            super().trigger_event(event_class, **kwargs)  # type: ignore[misc]
            return
        # ``kwargs`` is this call's own dict: no copy needed before adding to it.
        kwargs["originator_id"] = self._id
        kwargs["originator_version"] = self._version + 1
        if kwargs.get("timestamp") is None:
            kwargs["timestamp"] = event_class.create_timestamp()
        try:
            event = event_class(**kwargs)
        except TypeError as e:
            msg = f"Can't construct event {event_class}: {e}"
            raise TypeError(msg) from None
        # CanMutateAggregate.mutate(self), whose id and version checks hold by construction.
        event.apply(self)
        self._version = event.originator_version
        self._modified_on = event.timestamp
        self._pending_events.append(event)
