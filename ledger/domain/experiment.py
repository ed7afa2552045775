"""The ``Experiment`` aggregate: a named group of runs, with a deterministic id, its tags and
whether it is archived.

Experiment names follow the seed SDK's rule (``check_experiment_name``): 1 to 256 characters,
letters, digits, ``_`` and ``-``, starting with a letter or a digit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from ledger.domain.errors import ValidationError
from ledger.domain.ids import experiment_stream_id
from ledger.domain.tags import T, TagsMixin, TagsRemovedFields, TagsSetFields
from ledger.domain.values import Actor, check_name

# The seed SDK's experiment name rule (azureml-core's Experiment name check).
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,255}")


def check_experiment_name(name: Any) -> str:
    """Return ``name`` if it is a valid experiment name (see the module docstring).

    Raises:
        ValidationError: naming the experiment name and the rule.
    """
    checked = check_name(name, "experiment name")
    if EXPERIMENT_NAME.fullmatch(checked) is None:
        raise ValidationError(
            f"experiment name {checked[:60]!r} is not valid: an experiment name is 1-256 "
            "characters of letters, digits, '_' and '-', starting with a letter or a digit")
    return checked


class ExperimentAggregate(TagsMixin, Aggregate):
    """An experiment. Its id is derived from its name (``experiment_stream_id``)."""

    TOPIC = "runledger:Experiment"

    class Event(Aggregate.Event):
        TOPIC = "runledger:Experiment.Event"
        actor: dict[str, Any]

    class Created(Event, Aggregate.Created):
        """An experiment was created."""

        TOPIC = "runledger:Experiment.Created"
        name: str

        def apply(self, aggregate: Any) -> None:
            aggregate.name = self.name
            aggregate.created_by = dict(self.actor)
            aggregate.tags = {}
            aggregate.archived_time = None

    class TagsSet(TagsSetFields, Event):
        """Tags of the experiment were set or changed (``None``: a tag without a value)."""

        TOPIC = "runledger:Experiment.TagsSet"

    class TagsRemoved(TagsRemovedFields, Event):
        """Tags of the experiment were removed."""

        TOPIC = "runledger:Experiment.TagsRemoved"

    class Archived(Event):
        """The experiment was archived (hidden from the default listing)."""

        TOPIC = "runledger:Experiment.Archived"

        def apply(self, aggregate: Any) -> None:
            aggregate.archived_time = self.timestamp

    class Reactivated(Event):
        """An archived experiment was made active again."""

        TOPIC = "runledger:Experiment.Reactivated"

        def apply(self, aggregate: Any) -> None:
            aggregate.archived_time = None

    if TYPE_CHECKING:  # see RunAggregate: class annotations would make a dataclass of it
        name: str
        created_by: dict[str, Any]
        tags: dict[str, str | None]
        archived_time: datetime | None

    @classmethod
    def create(cls, name: str, actor: Actor) -> ExperimentAggregate:
        """Create an experiment.

        Raises:
            ValidationError: the name is not a valid experiment name.
        """
        name = check_experiment_name(name)
        return cls._create(cls.Created, id=experiment_stream_id(name), name=name,
                           actor=actor.as_dict())

    def _tag_check(self, check: Callable[[Any, str | None], T], value: Any) -> T:
        try:
            return check(value, None)
        except ValidationError as error:
            raise ValidationError(f"experiment {self.name!r}: {error}") from None

    def archive(self, actor: Actor) -> None:
        """Archive the experiment (an archived one stays archived)."""
        if self.archived_time is None:
            self.trigger_event(self.Archived, actor=actor.as_dict())

    def reactivate(self, actor: Actor) -> None:
        """Make an archived experiment active (an active one stays as it is)."""
        if self.archived_time is not None:
            self.trigger_event(self.Reactivated, actor=actor.as_dict())


register_topic(ExperimentAggregate.TOPIC, ExperimentAggregate)
register_topic(ExperimentAggregate.Event.TOPIC, ExperimentAggregate.Event)
EXPERIMENT_EVENT_CLASSES: tuple[type[ExperimentAggregate.Event], ...] = (
    ExperimentAggregate.Created,
    ExperimentAggregate.TagsSet,
    ExperimentAggregate.TagsRemoved,
    ExperimentAggregate.Archived,
    ExperimentAggregate.Reactivated,
)
for _cls in EXPERIMENT_EVENT_CLASSES:
    register_topic(_cls.TOPIC, _cls)
