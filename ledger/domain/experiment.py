"""The ``Experiment`` aggregate: a named group of runs, with a deterministic id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from ledger.domain.ids import experiment_stream_id
from ledger.domain.values import Actor, check_name


class ExperimentAggregate(Aggregate):
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

    if TYPE_CHECKING:  # see RunAggregate: class annotations would make a dataclass of it
        name: str
        created_by: dict[str, Any]

    @classmethod
    def create(cls, name: str, actor: Actor) -> ExperimentAggregate:
        """Create an experiment.

        Raises:
            ValidationError: the name is not a valid name.
        """
        name = check_name(name, "experiment name")
        return cls._create(cls.Created, id=experiment_stream_id(name), name=name,
                           actor=actor.as_dict())


register_topic(ExperimentAggregate.TOPIC, ExperimentAggregate)
register_topic(ExperimentAggregate.Event.TOPIC, ExperimentAggregate.Event)
register_topic(ExperimentAggregate.Created.TOPIC, ExperimentAggregate.Created)
