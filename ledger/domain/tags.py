"""Tags, the mutable labels of runs and experiments: their two events and two commands, written
once for both aggregates.

Each aggregate still declares its own nested ``TagsSet`` and ``TagsRemoved`` classes (the
aggregate's ``Event`` gives them their ``actor``, and their explicit ``TOPIC`` keeps stored events
decoding: ``runledger:Run.TagsSet``, ``runledger:Experiment.TagsSet``...); what they hold and how
they apply comes from :class:`TagsSetFields` and :class:`TagsRemovedFields`, and the commands
from :class:`TagsMixin`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ledger.domain.values import Actor, normalise_tag_keys, normalise_tags

T = TypeVar("T")


# Frozen dataclasses, so that eventsourcing's event dataclasses (frozen) take their field in.
@dataclasses.dataclass(frozen=True)
class TagsSetFields:
    """Tags were set or changed (a ``None`` value is a tag without a value)."""

    tags: dict[str, str | None]

    def apply(self, aggregate: Any) -> None:
        """Merge the tags into the aggregate's."""
        aggregate.tags.update(self.tags)


@dataclasses.dataclass(frozen=True)
class TagsRemovedFields:
    """Tags were removed."""

    keys: list[str]

    def apply(self, aggregate: Any) -> None:
        """Drop the keys from the aggregate's tags."""
        for key in self.keys:
            aggregate.tags.pop(key, None)


class TagsMixin:
    """``set_tags`` and ``remove_tags`` for an aggregate with a ``tags`` dict and nested
    ``TagsSet``/``TagsRemoved`` events; it names itself in errors by :meth:`_tag_check`."""

    if TYPE_CHECKING:
        tags: dict[str, str | None]
        TagsSet: type[Any]
        TagsRemoved: type[Any]

        def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None: ...

    def _tag_check(self, check: Callable[[Any, str | None], T], value: Any) -> T:
        """Apply a check of ``ledger.domain.values`` (its second argument: the run id, or
        ``None``), its error naming this aggregate.

        Raises:
            ValidationError: the value is not valid.
        """
        raise NotImplementedError

    def set_tags(self, tags: Any, actor: Actor) -> None:
        """Set (merge) tags. Unchanged tags are not recorded again.

        Raises:
            ValidationError: ``tags`` is not a dict of valid keys and values.
        """
        normalised = self._tag_check(normalise_tags, tags)
        changed = {k: v for k, v in normalised.items()
                   if k not in self.tags or self.tags[k] != v}
        if changed:
            self.trigger_event(self.TagsSet, tags=changed, actor=actor.as_dict())

    def remove_tags(self, keys: Any, actor: Actor) -> None:
        """Remove tags by key; keys the aggregate does not have are ignored.

        Raises:
            ValidationError: ``keys`` is not a list of valid keys.
        """
        present = [k for k in self._tag_check(normalise_tag_keys, keys) if k in self.tags]
        if present:
            self.trigger_event(self.TagsRemoved, keys=present, actor=actor.as_dict())
