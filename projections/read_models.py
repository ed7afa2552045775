"""Read models: the rows the query indexes answer with. Frozen ``attrs`` classes.

They are built by the projections in this package from the ledger's events and never written by
anything else, so each can be dropped and rebuilt from the log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs


@attrs.frozen
class RunRow:
    """One run as the run index knows it.

    ``number`` is the run's 1-based position among its experiment's runs, in the order their
    creation was recorded in the log (so a rebuild gives every run the same number).
    ``properties`` and ``tags`` are complete copies (a tag without a value maps to ``None``).
    ``archived`` is true while the run is archived (queries skip it unless asked not to).
    """

    run_id: str
    experiment_name: str
    parent_run_id: str | None
    root_run_id: str
    status: str
    run_type: str
    target: str
    name: str
    display_name: str | None
    description: str | None
    number: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    created_by: str
    error_code: str | None
    error_message: str | None
    properties: dict[str, str | None] = attrs.field(factory=dict)
    tags: dict[str, str | None] = attrs.field(factory=dict)
    archived: bool = False


@attrs.frozen
class MetricSummaryRow:
    """A summary of one metric of one run: how many values, the last, min, max and last step.

    ``minimum``/``maximum`` consider numeric scalar values only (``None`` when there are none);
    ``last`` is the last value logged whatever its type.
    """

    run_id: str
    name: str
    kind: str
    count: int
    last: Any
    minimum: float | None
    maximum: float | None
    last_step: int | None


@attrs.frozen
class ExperimentRow:
    """An experiment, how many runs (top-level and children) it holds, its tags and when it was
    archived (``None``: active)."""

    name: str
    created_at: datetime
    run_count: int
    created_by: str
    archived_time: datetime | None = None
    tags: dict[str, str | None] = attrs.field(factory=dict)


@attrs.frozen
class QuarantinedEvent:
    """An event the index could not decode or apply, and so lacks.

    Attributes:
        position: its notification id in the log.
        stream_id: its stream (a run's, a run's metrics', an experiment's).
        version: its version in the stream.
        topic: its event type.
        stage: ``decode`` (the stored bytes are not an event) or ``apply`` (a read model could
            not take it).
        reason: the error.
    """

    position: int
    stream_id: str
    version: int
    topic: str
    stage: str
    reason: str


@attrs.frozen
class IndexStatus:
    """How complete the query index is (``runledger projections status``).

    Attributes:
        position: the log position every read model has reached.
        last_position: the newest position in the log.
        lag: events committed but not yet projected (``last_position - position``).
        positions: each read model's position.
        quarantined: the events the index lacks; queries answer without them.
    """

    position: int
    last_position: int
    lag: int
    positions: dict[str, int]
    quarantined: tuple[QuarantinedEvent, ...]

    @property
    def complete(self) -> bool:
        """Whether the index holds every event up to its position."""
        return not self.quarantined
