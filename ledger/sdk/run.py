"""``Run``: one training run, as the Azure ML SDK v1 ``Run`` class shapes it."""

from __future__ import annotations

import builtins
import itertools
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import attrs

from ledger.domain.errors import (
    InvalidTransitionError,
    RunNotFoundError,
    ValidationError,
)
from ledger.domain.ids import metric_stream_id, new_run_id, run_stream_id
from ledger.domain.metrics import SCALAR, MetricsLogged
from ledger.domain.run import RunAggregate
from ledger.domain.status import RunStatus
from ledger.domain.text import quote, safe_text, stringify
from ledger.domain.values import (
    Actor,
    check_description,
    check_key,
    check_name,
    current_actor,
    normalise_properties,
    normalise_tag_keys,
    normalise_tags,
)
from ledger.sdk import forking
from ledger.sdk.metrics import MAX_INT, MetricBuffer, check_step, coerce_scalar, shape_metrics

if TYPE_CHECKING:
    from ledger.sdk.experiment import Experiment
    from ledger.sdk.session import LedgerSession
    from ledger.sdk.workspace import Workspace
    from projections.read_models import RunRow

DEFAULT_METRIC_BATCH = 10_000
#: The most children one ``create_children()`` call creates (docs/limits.md).
MAX_CHILDREN_PER_CALL = 10_000
SCRIPT_RUN_TYPE = "azureml.scriptrun"  # the seed SDK's type of submitted script runs
_RUNNING = RunStatus.RUNNING
_now = time.time

# Statuses wait_for_completion() keeps waiting through.
_WAIT_STATUSES = frozenset({
    RunStatus.NOT_STARTED, RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.STARTING,
    RunStatus.RUNNING, RunStatus.NOT_RESPONDING,
})
_POST_PROCESSING_STATUSES = frozenset({RunStatus.FINALIZING, RunStatus.CANCEL_REQUESTED})


class _Unset:
    """The type of ``UNSET``: an argument that was not given (``None`` means "clear it")."""


UNSET = _Unset()


def iso_utc(moment: datetime | None) -> str | None:
    """Format a time as ISO-8601 UTC ending in ``Z`` (``None`` stays ``None``)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class _LogFollower:
    """Prints what a log file gained since the last look (for ``show_output``)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.offset = 0

    def print_new(self) -> None:
        if not self.path:
            return
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                data = file.read()
        except OSError:
            return
        if data:
            self.offset += len(data)
            sys.stdout.write(data.decode("utf-8", errors="replace"))
            sys.stdout.flush()


@attrs.frozen
class HistoryEntry:
    """One recorded change of a run: when, by whom, what kind, and what.

    Attributes:
        version: the event's position in its stream (runs and their metric batches each count
            from 1).
        time: when it was recorded (UTC).
        actor: who recorded it: ``user``, ``host``, ``pid`` as the writing process declared them,
            and ``server_role``, the role the PostgreSQL server authenticated for the write
            (``None`` on SQLite and for writes made before the server recorded roles).
        kind: the event's name (``Created``, ``TagsSet``, ``MetricsLogged``...).
        payload: what the event recorded.
    """

    version: int
    time: datetime
    actor: Actor
    kind: str
    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-ready data."""
        return {"version": self.version, "time": iso_utc(self.time),
                "actor": {**self.actor.as_dict(), "server_role": self.actor.server_role},
                "kind": self.kind, "payload": self.payload}


class Run:
    """A run of an experiment: it logs metrics, carries properties and tags, has children.

    ``Run(experiment, run_id)`` loads an existing run; new runs come from
    ``Experiment.start_logging()``, ``Experiment.submit()``, ``Run.child_run()`` and
    ``Run.create_children()``.

    Args:
        experiment: the experiment holding the run.
        run_id: the run's id.

    Raises:
        RunNotFoundError: no run has this id in the experiment's workspace.
    """

    def __init__(self, experiment: Experiment, run_id: str, outputs: Any = None,
                 **kwargs: Any) -> None:
        aggregate = experiment.workspace._session.load_run(run_id)
        if aggregate.experiment_name != experiment.name:
            raise RunNotFoundError(f"{run_id} (in experiment {experiment.name!r})")
        self._setup(experiment, aggregate, published=True)

    # ------------------------------------------------------------------ construction
    def _setup(self, experiment: Experiment, aggregate: RunAggregate | None, *,
               published: bool, row: RunRow | None = None, run_id: str | None = None) -> None:
        self._experiment = experiment
        self._session: LedgerSession = experiment.workspace._session
        self._agg: RunAggregate | None = aggregate
        self._row = row
        self._run_id: str = aggregate.run_id if aggregate is not None else str(run_id)
        self._published = published
        self._lock = threading.RLock()
        self._metrics = MetricBuffer(self._run_id)
        self._metric_batch = DEFAULT_METRIC_BATCH  # read from the environment at first log
        forking.track_run(self)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled as its store and id, for another process (see ledger.sdk.forking).
        return forking.reduce_run(self)

    @classmethod
    def _from_aggregate(cls, experiment: Experiment, aggregate: RunAggregate, *,
                        published: bool) -> Run:
        run = cls.__new__(cls)
        run._setup(experiment, aggregate, published=published)
        return run

    @classmethod
    def _from_row(cls, experiment: Experiment, row: RunRow) -> Run:
        run = cls.__new__(cls)
        run._setup(experiment, None, published=True, row=row, run_id=row.run_id)
        return run

    @classmethod
    def _create(cls, experiment: Experiment, *, parent: Run | None = None,
                run_id: str | None = None, name: str | None = None,
                display_name: str | None = None, description: str | None = None,
                run_type: str = "experiment_run", target: str = "local",
                tags: Mapping[str, Any] | None = None, start: bool = True,
                status: RunStatus | None = None) -> Run:
        """Create a run (unpublished until the next flush point) and return it."""
        session = experiment.workspace._session
        actor = current_actor()
        if run_id is None:
            run_id = new_run_id()
        else:
            check_name(run_id, "run_id")
            if any(r._run_id == run_id for r in list(session._unpublished)):
                raise ValidationError(f"run_id {run_id!r} is already the id of a run")
            try:
                session.app.get_run(run_id)
            except RunNotFoundError:
                pass
            else:
                raise ValidationError(f"run_id {run_id!r} is already the id of a run")
        parent_aggregate = parent._aggregate() if parent is not None else None
        aggregate = RunAggregate.create(
            aggregate_id=run_stream_id(run_id), run_id=run_id,
            experiment_id=experiment._experiment_id, experiment_name=experiment.name,
            actor=actor, parent=parent_aggregate, name=name, display_name=display_name,
            description=description, run_type=run_type, target=target)
        if tags:
            aggregate.set_tags(tags, actor)
        if status is not None:
            aggregate.set_status(status, actor)
        if start:
            aggregate.start(actor)
        run = cls._from_aggregate(experiment, aggregate, published=False)
        session.add_unpublished(run)
        return run

    # ------------------------------------------------------------------ loading
    @classmethod
    def get(cls, workspace: Workspace, run_id: str) -> Run:
        """Load a run of a workspace by id.

        Raises:
            RunNotFoundError: no run has this id.
        """
        from ledger.sdk.experiment import Experiment

        aggregate = workspace._session.load_run(run_id)
        experiment = Experiment._existing(workspace, aggregate.experiment_name,
                                          aggregate.experiment_id)
        return cls._from_aggregate(experiment, aggregate, published=True)

    @classmethod
    def list(cls, experiment: Experiment, type: str | None = None,
             tags: str | Mapping[str, Any] | None = None,
             properties: str | Mapping[str, Any] | None = None,
             status: str | None = None, include_children: bool = False,
             _rehydrate_runs: bool = True) -> Iterator[Run]:
        """Yield the runs of an experiment, newest first, filtered by type, tags, properties and
        status.

        A ``tags``/``properties`` string means "has this key"; a dict means "every pair equals"
        (values compared as their stored strings; ``None`` matches a tag without a value).

        Raises:
            ValidationError: a filter of the wrong type (a list, say).
        """
        index = experiment.workspace._session.before_query()
        for row in index.find_runs(experiment_name=experiment.name, run_type=type, tags=tags,
                                   properties=properties, status=status,
                                   include_children=include_children):
            yield cls._from_row(experiment, row)

    @classmethod
    def get_context(cls, allow_offline: bool = True, **kwargs: Any) -> Run:
        """Return the run this script was submitted as (see ``ledger.sdk.script``).

        Outside a submitted script, with ``allow_offline``, a new run is started in the
        experiment ``offline`` of the default workspace, so the same script runs anywhere.

        Raises:
            RunNotFoundError: not in a submitted script and ``allow_offline`` is False.
        """
        from ledger.sdk.script import context_run

        run: Run = context_run(allow_offline=allow_offline)
        return run

    def _aggregate(self) -> RunAggregate:
        agg = self._agg
        if agg is None:
            with self._lock:
                if self._agg is None:
                    self._agg = self._session.app.get_run(self._run_id)
                agg = self._agg
        return agg

    def _refreshed(self) -> RunAggregate:
        """The aggregate with every event other writers appended."""
        with self._lock:
            agg = self._aggregate()
            if self._published:
                self._session.app.fast_forward(agg)
            return agg

    # ------------------------------------------------------------------ identity
    @property
    def id(self) -> str:
        """The run's id."""
        return self._run_id

    @property
    def experiment(self) -> Experiment:
        """The experiment holding the run."""
        return self._experiment

    @property
    def name(self) -> str:
        """The run's name (``run_<id>`` unless one was given)."""
        if self._agg is None and self._row is not None:
            return self._row.name
        return self._aggregate().name

    @property
    def type(self) -> str:
        """The run's type (``experiment_run`` for ``start_logging()`` and child runs)."""
        if self._agg is None and self._row is not None:
            return self._row.run_type
        return self._aggregate().run_type

    @property
    def display_name(self) -> str | None:
        """The run's display name (settable; ``None`` until one is set)."""
        return self._refreshed().display_name

    @display_name.setter
    def display_name(self, value: str | None) -> None:
        self._command(lambda agg, actor: agg.set_display_name(value, actor))

    @property
    def description(self) -> str | None:
        """The run's description (settable)."""
        return self._refreshed().description

    @description.setter
    def description(self, value: str | None) -> None:
        self._command(lambda agg, actor: agg.set_description(value, actor))

    @property
    def number(self) -> int:
        """The run's number in its experiment (1 for the first run created, and so on)."""
        index = self._session.before_query()
        row = index.get(self._run_id)
        if row is None:
            raise RunNotFoundError(self._run_id)
        number: int = row.number
        return number

    @property
    def parent(self) -> Run | None:
        """The parent run, or ``None`` for a top-level run."""
        parent_id = self._aggregate().parent_run_id
        if parent_id is None:
            return None
        return Run._from_aggregate(self._experiment, self._session.load_run(parent_id),
                                   published=True)

    @property
    def properties(self) -> dict[str, str | None]:
        """A copy of the run's properties."""
        return self.get_properties()

    @property
    def tags(self) -> dict[str, str | None]:
        """A copy of the run's tags."""
        return self.get_tags()

    @property
    def status(self) -> str:
        """The run's current status."""
        return self.get_status()

    def __repr__(self) -> str:
        return (f"Run(Experiment: {self._experiment.name},\nId: {self._run_id},\n"
                f"Type: {self.type},\nStatus: {self.get_status()})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other._run_id == self._run_id and (
            other._session is self._session)

    def __hash__(self) -> int:
        return hash(self._run_id)

    # ------------------------------------------------------------------ commands
    def _command(self, command: Any, *, publish_first: bool = False) -> Any:
        """Apply a command to the run: at once to an unpublished run (its events follow at the
        next flush point), else appended now, retried if another writer changed the run first.
        """
        if publish_first and not self._published:
            self._session.publish()
        actor = current_actor()
        with self._lock:
            if not self._published:
                return command(self._aggregate(), actor)
            try:
                agg, result, _position = self._session.app.run_command(
                    self._agg, self._run_id, lambda agg: command(agg, actor))
            except BaseException:
                self._agg = None  # may be behind the store now: reload on next use
                raise
            self._agg = agg
            return result

    def start(self) -> None:
        """Mark a NotStarted (or queued) run Running.

        Raises:
            InvalidTransitionError: the run cannot start from its status.
        """
        self._command(lambda agg, actor: agg.start(actor))

    def set_status(self, status: RunStatus | str) -> None:
        """Move the run to a non-terminal status (Queued, Preparing, Finalizing...).

        Raises:
            ValueError: not a status.
            InvalidTransitionError: the transition table forbids it.
        """
        self._command(lambda agg, actor: agg.set_status(status, actor))

    def complete(self, _set_status: bool = True) -> None:
        """Mark the run Completed, after appending every buffered value. Returns when durable.

        Raises:
            InvalidTransitionError: the run has ended or is being canceled.
        """
        self._end(lambda agg, actor: agg.complete(actor))

    def fail(self, error_details: str | BaseException | None = None,
             error_code: str | None = None, _set_status: bool = True) -> None:
        """Mark the run Failed with an error. Returns when durable.

        Args:
            error_details: a message, or an exception (recorded as "User program failed with
                <Type>: <message>").
            error_code: the error's code (default ``UserError``).

        Raises:
            ValidationError: a message or code that cannot be stored (NUL, a lone surrogate,
                longer than the limits of docs/limits.md); nothing is recorded.
            InvalidTransitionError: the run has already ended.
        """
        exception_type = None
        if isinstance(error_details, BaseException):
            # Recorded on the user's behalf: made safe (and marked so), never refused.
            exception_type = safe_text(type(error_details).__name__, "name")
            message = safe_text(
                f"User program failed with {exception_type}: {safe_text(error_details)}")
        elif error_details is None:
            message = "The run was marked as failed."
        else:
            message = stringify(error_details, "error message", self._run_id)
        code = stringify(error_code, "error_code", self._run_id) if error_code else "UserError"
        self._end(lambda agg, actor: agg.fail(code, message, exception_type, actor))

    def cancel(self) -> None:
        """Cancel the run. Returns when durable.

        A run started in this process (``start_logging()``, ``child_run()``) becomes Canceled. A
        submitted script run becomes CancelRequested and its process is stopped, then Canceled
        (see ``ledger.sdk.script``).

        Raises:
            InvalidTransitionError: the run has already ended.
        """
        if self.type == SCRIPT_RUN_TYPE:
            from ledger.sdk.script import cancel_script_run

            cancel_script_run(self)
            return
        self._end(lambda agg, actor: agg.cancel(actor))

    def request_cancel(self) -> None:
        """Mark the run CancelRequested: whatever executes it must stop it, then cancel it.

        Raises:
            InvalidTransitionError: the run has already ended.
        """
        self.flush()
        self._command(lambda agg, actor: agg.request_cancel(actor))

    def _end(self, command: Any) -> None:
        """Apply a command that ends the run, after everything buffered; durable on return.

        A run never published and with no buffered metrics is published with its end in one
        transaction.
        """
        with self._lock:
            if not self._published and not self._metrics.count:
                command(self._aggregate(), current_actor())
                ended_locally = True
            else:
                ended_locally = False
        if ended_locally:
            self._session.publish()
            return
        self.flush()
        self._command(command)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        """Add immutable properties. Re-adding a key with the same value does nothing.

        Raises:
            ValidationError: not a dict of string keys.
            PropertyImmutableError: a key is already recorded with another value; nothing of the
                call is recorded.
        """
        self._command(lambda agg, actor: agg.add_properties(properties, actor))

    def get_properties(self) -> dict[str, str | None]:
        """Return a copy of the run's properties."""
        return dict(self._refreshed().properties)

    def tag(self, key: str, value: Any = None) -> None:
        """Set one tag; without a value it is a tag with value ``None``.

        Raises:
            ValidationError: the key is not a non-empty string.
        """
        key = check_key(key, "tag", self._run_id)  # an unhashable key cannot make a dict
        self._command(lambda agg, actor: agg.set_tags({key: value}, actor))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags (merged into the existing ones).

        Raises:
            ValidationError: not a dict of string keys.
        """
        self._command(lambda agg, actor: agg.set_tags(tags, actor))

    def remove_tags(self, tags: Iterable[str] | str) -> None:
        """Remove tags by key (keys the run does not have are ignored).

        Raises:
            ValidationError: not a list of string keys.
        """
        self._command(lambda agg, actor: agg.remove_tags(tags, actor))

    def update(self, *, tags: Mapping[str, Any] | None = None,
               remove_tags: Iterable[str] | None = None,
               properties: Mapping[str, Any] | None = None,
               display_name: str | _Unset | None = UNSET,
               description: str | _Unset | None = UNSET) -> None:
        """Apply several changes at once, atomically: every change is checked first, and then
        all are recorded in one write, or none.

        Raises:
            ValidationError: a bad key, value or name, or a tag both set and removed.
            PropertyImmutableError: a property would change value (nothing is recorded).
        """
        removing = normalise_tag_keys(remove_tags, self._run_id) if remove_tags else []
        setting = normalise_tags(tags, self._run_id) if tags else {}
        both = sorted(set(setting) & set(removing))
        if both:
            raise ValidationError(
                f"update() of run {self._run_id!r}: tag {both[0]!r} is both set and removed")
        if properties:
            normalise_properties(properties, self._run_id)
        if isinstance(display_name, str):
            check_name(display_name, "display_name", self._run_id)
        if isinstance(description, str):
            check_description(description, self._run_id)

        def command(agg: RunAggregate, actor: Actor) -> None:
            if properties:  # the only change that can still be refused: first
                agg.add_properties(properties, actor)
            if setting:
                agg.set_tags(setting, actor)
            if removing:
                agg.remove_tags(removing, actor)
            if not isinstance(display_name, _Unset):
                agg.set_display_name(display_name, actor)
            if not isinstance(description, _Unset):
                agg.set_description(description, actor)

        self._command(command)

    def get_tags(self) -> dict[str, str | None]:
        """Return a copy of the run's tags."""
        return dict(self._refreshed().tags)

    # ------------------------------------------------------------------ status and details
    def get_status(self) -> str:
        """Return the run's current status, as other processes may have changed it."""
        return self._refreshed().status.value

    def get_details(self) -> dict[str, Any]:
        """Return the run's details, as the seed SDK shapes them (keys whose value is ``None``
        are left out; times are ISO-8601 UTC strings ending in ``Z``)."""
        agg = self._refreshed()
        details: dict[str, Any] = {
            "runId": agg.run_id,
            "experimentName": agg.experiment_name,
            "runType": agg.run_type,
            "target": agg.target,
            "status": agg.status.value,
            "parentRunId": agg.parent_run_id,
            "displayName": agg.display_name,
            "description": agg.description,
            "createdTimeUtc": iso_utc(agg.created_at),
            "startTimeUtc": iso_utc(agg.started_at),
            "endTimeUtc": iso_utc(agg.ended_at),
            "properties": dict(agg.properties),
            "tags": dict(agg.tags),
            "inputDatasets": [],
            "outputDatasets": [],
            "logFiles": _log_files(agg.properties),
            "submittedBy": agg.created_by.get("user"),
            "error": dict(agg.error) if agg.error else None,
        }
        return {k: v for k, v in details.items() if v is not None}

    def wait_for_completion(self, show_output: bool = False,
                            wait_post_processing: bool = False,
                            raise_on_error: bool = True) -> dict[str, Any]:
        """Wait until the run has ended, then return its details.

        Args:
            show_output: print the run id, then a summary when it ends.
            wait_post_processing: also wait through Finalizing and CancelRequested.
            raise_on_error: raise if the run Failed.

        Raises:
            RunFailedError: the run Failed and ``raise_on_error`` is set.
        """
        from ledger.domain.errors import RunFailedError

        if show_output:
            print(f"RunId: {self._run_id}")
        waiting = set(_WAIT_STATUSES)
        if wait_post_processing:
            waiting |= _POST_PROCESSING_STATUSES
        log = _LogFollower(self.get_properties().get("runledger.log_file")) if show_output \
            else None
        delay = 0.02
        while RunStatus(self.get_status()) in waiting:
            if log is not None:
                log.print_new()
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        if log is not None:
            log.print_new()
        details = self.get_details()
        if show_output:
            print("\nExecution Summary\n=================")
            print(f"RunId: {self._run_id}")
            print(f"Status: {details['status']}\n")
        if raise_on_error and details["status"] == RunStatus.FAILED.value:
            raise RunFailedError(self._run_id, details.get("error", {}))
        return details

    def get_history(self, include_metrics: bool = True) -> builtins.list[HistoryEntry]:
        """Return every recorded change of the run, oldest first: the audit trail.

        Args:
            include_metrics: also list the metric batches (with their names and value counts).
        """
        self.flush()
        app = self._session.app
        stream = run_stream_id(self._run_id)
        roles = app.server_roles(stream)
        entries = [_history_entry(event, roles) for event in app.stream_events(stream)]
        if include_metrics:
            roles = app.server_roles(metric_stream_id(self._run_id))
            entries.extend(_history_entry(event, roles)
                           for event in app.metric_events(self._run_id))
            entries.sort(key=lambda e: e.time)
        return entries

    # ------------------------------------------------------------------ metrics
    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log one value of a metric. Buffered: durable after ``flush()`` or the run's end.

        Args:
            name: the metric's name.
            value: an int, float (NaN and infinities too), bool, string or numpy scalar.
            description: what the metric is.
            step: the value's step (a non-negative int), if any.

        Raises:
            ValidationError: a list or other non-scalar value, a bad name or step, or a string
                that cannot be stored.
            RunFinishedError: the run has ended.
        """
        if type(value) is not float and (type(value) is not int
                                         or not -MAX_INT <= value < MAX_INT):
            value = coerce_scalar(value, name, self._run_id)
        if step is not None and (type(step) is not int or step < 0 or step >= MAX_INT):
            step = check_step(step, name, self._run_id)
        with self._lock:
            agg = self._agg
            if agg is None or agg.status is not _RUNNING:
                self._aggregate().check_active("log metrics")
            buffer = self._metrics
            try:
                series = buffer.scalars.get(name) or buffer.scalar_series(name, description)
            except TypeError:  # an unhashable name
                buffer.scalar_series(name, description)
                raise
            series.values.append(value)
            series.steps.append(step)
            series.times.append(_now())
            buffer.count += 1
            count = buffer.count
        if count == 1:
            # Read per batch, not per run: a query builds a Run for every row it returns.
            self._metric_batch = _metric_batch_size()
            self._session.add_unflushed_metrics(self)
        if count >= self._metric_batch:
            self._flush_metrics()

    def log_list(self, name: str, value: Iterable[Any], description: str = "") -> None:
        """Log a list of values of a metric.

        Raises:
            ValidationError: not a list of scalars.
            RunFinishedError: the run has ended.
        """
        self._buffer(lambda: self._metrics.add_list(name, value, description))

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Log one row of a table metric: ``run.log_row("accuracy", x=1, y=0.9)``.

        Raises:
            ValidationError: no columns, or a non-scalar value.
            RunFinishedError: the run has ended.
        """
        self._buffer(lambda: self._metrics.add_row(name, kwargs, description))

    def log_table(self, name: str, value: Mapping[str, Iterable[Any]],
                  description: str = "") -> None:
        """Log a table metric as a dict of equally long columns.

        Raises:
            ValidationError: not a dict of equally long lists of scalars.
            RunFinishedError: the run has ended.
        """
        self._buffer(lambda: self._metrics.add_table(name, value, description))

    def _buffer(self, add: Any) -> None:
        with self._lock:
            self._aggregate().check_active("log metrics")
            add()
            count = self._metrics.count
        self._metric_batch = _metric_batch_size()
        self._session.add_unflushed_metrics(self)
        if count >= self._metric_batch:
            self._flush_metrics()

    def _flush_metrics(self) -> int:
        """Append the buffered metric values as one event. Returns the write's position."""
        if not self._published:
            self._session.publish()
        with self._lock:
            if not self._metrics.count:
                return 0
            series = self._metrics.series
            stored = self._metrics.take()
            try:
                return self._session.app.append_metrics(self._run_id, stored, current_actor())
            except BaseException:
                self._metrics.series = series  # keep the values for the next flush
                self._metrics.scalars = {k[0]: v for k, v in series.items() if k[1] == SCALAR}
                self._metrics.count = sum(len(s.values) for s in series.values())
                self._session.add_unflushed_metrics(self)
                raise

    def flush(self) -> None:
        """Append everything buffered for this run; returns once it is durable.

        Raises:
            StoreError: the store failed (the values stay buffered).
        """
        if not self._published:
            self._session.publish()
        self._flush_metrics()

    def get_metrics(self, name: str | None = None, recursive: bool = False,
                    run_type: str | None = None, populate: bool = False) -> dict[str, Any]:
        """Return the run's metrics in the seed SDK's shapes.

        Args:
            name: only this metric (``{name: value}``, or ``{}`` if never logged).
            recursive: ``{run_id: metrics}`` for this run and every descendant that has metrics.

        Returns:
            A scalar logged once is its value, several times a list; ``log_row`` once gives
            ``{col: value}``, several ``{col: [...]}``; ``log_table`` gives ``{col: [...]}``.
        """
        if recursive:
            index = self._session.before_query()
            result: dict[str, Any] = {}
            for run_id in [self._run_id, *index.descendant_ids(self._run_id)]:
                metrics = shape_metrics((e.series for e in self._session.app.metric_events(
                    run_id)), name)
                if metrics:
                    result[run_id] = metrics
            return result
        self.flush()
        return shape_metrics((e.series for e in self._session.app.metric_events(self._run_id)),
                             name)

    # ------------------------------------------------------------------ children
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
        return Run._create(self._experiment, parent=self, run_id=run_id, name=name)

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
                {"azureml.batch_child_number": str(i)} for i in range(count)]
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
            # Validated up front, against this run: a bad tag refuses the whole batch.
            # At most one more than the limit is read, so a huge iterable costs nothing.
            tag_sets = [normalise_tags({tag_key: value}, self._run_id) for value in
                        itertools.islice(tag_values, MAX_CHILDREN_PER_CALL + 1)]
            _check_children_count(len(tag_sets), self._run_id)
            if not tag_sets:
                raise ValidationError(
                    f"create_children() of run {self._run_id!r}: tag_values is empty")
        self._aggregate().check_active("create child runs")
        # The publish lock keeps the background flusher from storing part of the batch.
        with self._session._publish_lock:
            children = [Run._create(self._experiment, parent=self, tags=tags)
                        for tags in tag_sets]
            self._session.publish()
        return children

    def get_children(self, recursive: bool = False,
                     tags: str | Mapping[str, Any] | None = None,
                     properties: str | Mapping[str, Any] | None = None,
                     type: str | None = None,
                     status: str | None = None, _rehydrate_runs: bool = True) -> Iterator[Run]:
        """Yield the run's children (all descendants with ``recursive``), newest first.

        Raises:
            ValidationError: a filter of the wrong type.
        """
        index = self._session.before_query()
        experiments: dict[str, Experiment] = {self._experiment.name: self._experiment}
        for row in index.find_runs(parent_run_id=self._run_id, recursive=recursive, tags=tags,
                                   properties=properties, run_type=type, status=status):
            experiment = experiments.get(row.experiment_name)
            if experiment is None:
                from ledger.sdk.experiment import Experiment

                experiment = experiments[row.experiment_name] = Experiment(
                    self._experiment.workspace, row.experiment_name)
            yield Run._from_row(experiment, row)

    def submit_child(self, config: Any, tags: Mapping[str, Any] | None = None,
                     **kwargs: Any) -> Run:
        """Submit a script (a ``ScriptRunConfig``) as a child run of this run."""
        from ledger.sdk.script import submit_script

        self._aggregate().check_active("submit a child run")
        child: Run = submit_script(self._experiment, config, tags=tags, parent=self, **kwargs)
        return child

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: builtins.type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        status = RunStatus(self.get_status())
        if status.is_terminal:
            return
        if exc_type is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            if status is RunStatus.CANCEL_REQUESTED:
                self.cancel()
            else:
                self.complete()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.cancel()
        else:
            assert exc is not None
            try:
                self.fail(exc)
            except InvalidTransitionError:
                print(f"runledger: could not mark run {self._run_id} Failed", file=sys.stderr)


# The properties a submitted script's supervisor records its log files under, and the names the
# seed SDK gives those logs in get_details()["logFiles"].
_LOG_PROPERTIES = (("runledger.control_log_file", "azureml-logs/60_control_log.txt"),
                   ("runledger.log_file", "azureml-logs/70_driver_log.txt"))


def _check_children_count(count: int, run_id: str) -> None:
    if count > MAX_CHILDREN_PER_CALL:
        raise ValidationError(
            f"create_children() of run {run_id!r}: at most {MAX_CHILDREN_PER_CALL:,} children "
            f"per call (one atomic write), not {count:,} or more; call it again for more")


def _log_files(properties: Mapping[str, str | None]) -> dict[str, str]:
    return {name: str(properties[key]) for key, name in _LOG_PROPERTIES if properties.get(key)}


def _metric_batch_size() -> int:
    return int(os.environ.get("RUNLEDGER_METRIC_BATCH", DEFAULT_METRIC_BATCH))


def _history_entry(event: Any, server_roles: Mapping[int, str]) -> HistoryEntry:
    state = dict(vars(event))
    version = state.pop("originator_version")
    state.pop("originator_id", None)
    state.pop("originator_topic", None)
    moment = state.pop("timestamp")
    actor = attrs.evolve(Actor.from_dict(state.pop("actor", {}) or {}),
                         server_role=server_roles.get(version))
    kind = type(event).__name__
    if isinstance(event, MetricsLogged):
        state = {"series": [{"name": s[0], "kind": s[1], "count": len(s[3])}
                            for s in event.series]}
    else:
        state.pop("run_id", None) if kind != "Created" else None
    payload = {k: (str(v) if not isinstance(v, (str, int, float, bool, list, dict, type(None)))
                   else v) for k, v in state.items()}
    return HistoryEntry(version=version, time=moment, actor=actor, kind=kind, payload=payload)
