"""A run's children: ``child_run``, ``create_children``, ``get_children``, ``submit_child``."""

from __future__ import annotations

import builtins
import itertools
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from ledger.domain.errors import ValidationError
from ledger.domain.names import BATCH_CHILD_NUMBER_TAG
from ledger.domain.text import quote
from ledger.domain.values import check_name, normalise_tag_value_sets

if TYPE_CHECKING:
    from ledger.domain.run import RunAggregate
    from ledger.sdk.experiment import Experiment
    from ledger.sdk.run import Run
    from ledger.sdk.session import LedgerSession
    from projections.index import RunTuple

#: The most children one ``create_children()`` call creates (docs/limits.md).
MAX_CHILDREN_PER_CALL = 10_000


def _check_children_count(count: int, run_id: str) -> None:
    if count > MAX_CHILDREN_PER_CALL:
        raise ValidationError(
            f"create_children() of run {run_id!r}: at most {MAX_CHILDREN_PER_CALL:,} children "
            f"per call (one atomic write), not {count:,} or more; call it again for more")


class ChildrenMixin:
    """The child-run methods of ``Run``."""

    if TYPE_CHECKING:
        _run_id: str
        _session: LedgerSession
        _experiment: Experiment
        _lock: threading.RLock

        def _aggregate(self) -> RunAggregate: ...

        @staticmethod
        def _create(experiment: Experiment, *, parent: Any = None,
                    run_id: str | None = None, name: str | None = None,
                    tags: Mapping[str, Any] | None = None) -> Run: ...

        @staticmethod
        def _from_tuple(experiment: Experiment, raw: RunTuple) -> Run: ...

        @staticmethod
        def _from_tuples(experiment: Experiment,
                         tuples: Sequence[RunTuple]) -> builtins.list[Run]: ...

    def child_run(self, name: str | None = None, run_id: str | None = None,
                  outputs: Any = None) -> Run:
        """Start a child run (Running). Use it as a context manager to end it.

        Raises:
            RunFinishedError: this run has ended.
            ValidationError: a bad name or run id.
        """
        self._aggregate().check_active("create a child run")
        if name is not None:
            check_name(name, "name of a child run", self._run_id)
        return self._create(self._experiment, parent=self, run_id=run_id, name=name)

    def create_children(self, count: int | None = None, tag_key: str | None = None,
                        tag_values: Iterable[Any] | None = None) -> builtins.list[Run]:
        """Create many child runs at once, in one atomic write; returns them Running.

        Give ``count`` (each child is tagged ``azureml.batch_child_number`` = "0", "1"...) or
        ``tag_key`` with ``tag_values`` (one child per value, tagged ``{tag_key: value}``).

        At most ``MAX_CHILDREN_PER_CALL`` (10,000) children per call.

        Raises:
            ValidationError: neither or both ways given, a key without values, a bad count, more
                than 10,000 children.
            RunFinishedError: this run has ended.
        """
        if count is not None and (tag_key is not None or tag_values is not None):
            raise ValidationError(
                f"create_children() of run {self._run_id!r}: give count, or tag_key with "
                "tag_values, not both")
        if count is None and tag_key is None and tag_values is None:
            raise ValidationError(
                f"create_children() of run {self._run_id!r}: give count, or tag_key with "
                "tag_values")
        if count is not None:
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValidationError(
                    f"create_children() of run {self._run_id!r}: count must be a positive int, "
                    f"not {quote(count)}")
            _check_children_count(count, self._run_id)
            tag_sets: builtins.list[dict[str, str | None]] = [
                {BATCH_CHILD_NUMBER_TAG: str(i)} for i in range(count)]
        else:
            if tag_key is None:
                raise ValidationError(
                    f"create_children() of run {self._run_id!r}: tag_values needs a tag_key")
            if tag_values is None:
                raise ValidationError(
                    f"create_children() of run {self._run_id!r}: tag_key {tag_key!r} needs "
                    "tag_values")
            if isinstance(tag_values, (str, bytes, Mapping)) or not isinstance(tag_values,
                                                                             Iterable):
                raise ValidationError(
                    f"create_children() of run {self._run_id!r}: tag_values must be a list, "
                    f"not {type(tag_values).__name__}")
            # Validated up front, against this run: a bad tag refuses the whole batch. At most
            # one more than the limit is read, so a huge (or endless) iterable costs nothing.
            tag_sets = normalise_tag_value_sets(
                tag_key, itertools.islice(tag_values, MAX_CHILDREN_PER_CALL + 1), self._run_id)
            _check_children_count(len(tag_sets), self._run_id)
            if not tag_sets:
                raise ValidationError(
                    f"create_children() of run {self._run_id!r}: tag_values is empty")
        self._aggregate().check_active("create child runs")
        # The publish lock keeps the background flusher from storing part of the batch.
        with self._session._publish_lock:
            children = [self._create(self._experiment, parent=self, tags=tags)
                        for tags in tag_sets]
            self._session.publish()
        return children

    def get_children(self, recursive: bool = False,
                     tags: str | Mapping[str, Any] | None = None,
                     properties: str | Mapping[str, Any] | None = None,
                     type: str | None = None,
                     status: str | None = None, _rehydrate_runs: bool = True, *,
                     include_archived: bool = False) -> Iterator[Run]:
        """Yield the run's children (all descendants with ``recursive``), newest first
        (archived ones only with ``include_archived``).

        Raises:
            ValidationError: a filter of the wrong type.
        """
        index = self._session.before_query()
        workspace = self._experiment.workspace
        own = self._experiment
        name = own.name
        for tuples in index.find_run_tuples(parent_run_id=self._run_id, recursive=recursive,
                                            tags=tags, properties=properties, run_type=type,
                                            status=status, include_archived=include_archived):
            if all(raw[2] == name for raw in tuples):  # the usual page
                yield from self._from_tuples(own, tuples)
                continue
            for raw in tuples:
                experiment = own if raw[2] == name \
                    else workspace._experiments.existing(raw[2])
                yield self._from_tuple(experiment, raw)

    def submit_child(self, config: Any, tags: Mapping[str, Any] | None = None,
                     **kwargs: Any) -> Run:
        """Submit a script (a ``ScriptRunConfig``) as a child run of this run."""
        self._aggregate().check_active("submit a child run")
        return self._experiment._submit(config, tags=tags, parent=cast("Run", self), **kwargs)
