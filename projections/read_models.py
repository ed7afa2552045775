"""Read models: the rows the query indexes answer with. Frozen ``attrs`` classes.

They are built by the projections in this package from the ledger's events and never written by
anything else, so each can be dropped and rebuilt from the log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


class PackedRunRow(RunRow):
    """A ``RunRow`` read from the index, its fields unpacked on first access of one beyond its
    id, type and experiment (``projections.runs.pack_run`` holds every field in one blob).

    A query returns many rows of which callers read a few fields (``Run`` objects built from
    rows read their id and type). Equal to the ``RunRow`` of the same values, pickled as one,
    and usable wherever a ``RunRow`` is.
    """

    __slots__ = ("_raw",)

    @staticmethod
    def from_raw(run_id: str, run_type: str, experiment_name: str, packed: Any) -> RunRow:
        """Wrap one run of the index: the columns read with it and its packed fields."""
        row = _new(PackedRunRow)
        _set_run_id(row, run_id)
        _set_run_type(row, run_type)
        _set_experiment(row, experiment_name)
        _set_raw(row, packed)
        return row

    def __getattr__(self, name: str) -> Any:
        # Reached only while a field's slot is empty: unpack and set every field at once.
        if name not in _FIELD_SET or not _UNPACK:
            raise AttributeError(f"'PackedRunRow' object has no attribute {name!r}")
        for field, value in zip(RUN_ROW_FIELDS, _UNPACK[0](_get_raw(self)), strict=True):
            _setattr(self, field, value)
        return _getattribute(self, name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunRow):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in RUN_ROW_FIELDS)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = RunRow.__hash__

    def __repr__(self) -> str:
        return RunRow.__repr__(self).replace("PackedRunRow(", "RunRow(", 1)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled (and copied) as the plain RunRow it stands for.
        return RunRow, tuple(getattr(self, f) for f in RUN_ROW_FIELDS)


#: RunRow's field names, in order.
RUN_ROW_FIELDS = tuple(field.name for field in attrs.fields(RunRow))
_FIELD_SET = frozenset(RUN_ROW_FIELDS)
_new = object.__new__
_setattr = object.__setattr__
_getattribute = object.__getattribute__
_set_raw = PackedRunRow._raw.__set__  # type: ignore[attr-defined]
_get_raw = PackedRunRow._raw.__get__  # type: ignore[attr-defined]
_set_run_id = RunRow.run_id.__set__  # type: ignore[attr-defined]
_set_run_type = RunRow.run_type.__set__  # type: ignore[attr-defined]
_set_experiment = RunRow.experiment_name.__set__  # type: ignore[attr-defined]
_UNPACK: list[Callable[[Any], Sequence[Any]]] = []


def register_unpacker(unpack: Callable[[Any], Sequence[Any]]) -> None:
    """Set how a ``PackedRunRow``'s blob becomes its field values (by the index, which knows
    the packing).

    Args:
        unpack: the blob -> every ``RunRow`` field's value, in ``RUN_ROW_FIELDS`` order.
    """
    _UNPACK[:] = [unpack]


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
