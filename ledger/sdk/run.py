"""``Run``: one training run, as the Azure ML SDK v1 ``Run`` class shapes it.

The class is assembled from mixins, one per responsibility: metrics (``ledger.sdk.run_metrics``),
children (``ledger.sdk.children``), history (``ledger.sdk.history``) and waiting
(``ledger.sdk.waiting``); the details mapping is ``ledger.sdk.details``. This module holds the
run's identity, loading, commands, status, properties and tags.

Run types. A run's class is chosen by its run type in one place, ``Run._class_for``: subclasses
register for a type with ``@Run.register_type(name)`` (``ScriptRun`` for ``azureml.scriptrun``,
in ``ledger.sdk.script``); every run built here (created, loaded, listed) gets its type's class.
"""

from __future__ import annotations

import builtins
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from ledger.audit.timeline import RunAsOf, find_runs_as_of
from ledger.domain.errors import (
    InvalidTransitionError,
    RunNotFoundError,
    ValidationError,
)
from ledger.domain.ids import new_run, run_stream_id
from ledger.domain.metrics import MetricsLogged
from ledger.domain.names import (
    EXPERIMENT_RUN_TYPE,
    PROP_ENVIRONMENT_NAME,
    PROP_ENVIRONMENT_VERSION,
    SCRIPT_RUN_TYPE,
)
from ledger.domain.run import RunAggregate
from ledger.domain.search import check_max_results, refuse_with_as_of
from ledger.domain.status import RunStatus
from ledger.domain.text import safe_text, stringify
from ledger.domain.values import (
    Actor,
    check_description,
    check_name,
    current_actor,
    normalise_properties,
    normalise_tag,
    normalise_tag_keys,
    normalise_tags,
)
from ledger.sdk import forking
from ledger.sdk.children import ChildrenMixin
from ledger.sdk.details import details_from_aggregate, iso_utc
from ledger.sdk.environment import Environment
from ledger.sdk.files import RunFilesMixin
from ledger.sdk.history import HistoryEntry, HistoryMixin
from ledger.sdk.liveness import observed_status
from ledger.sdk.metrics import MetricBuffer
from ledger.sdk.portal import PortalMixin
from ledger.sdk.run_audit import RunAuditMixin
from ledger.sdk.run_metrics import MetricsMixin
from ledger.sdk.waiting import WaitingMixin

if TYPE_CHECKING:
    from ledger.config import LedgerSettings
    from ledger.sdk.experiment import Experiment
    from ledger.sdk.session import LedgerSession
    from ledger.sdk.workspace import Workspace
    from projections.index import RunTuple
    from projections.read_models import RunRow

__all__ = ["SCRIPT_RUN_TYPE", "UNSET", "HistoryEntry", "Run", "iso_utc"]

_T = TypeVar("_T", bound="type[Run]")


class _Unset:
    """The type of ``UNSET``: an argument that was not given (``None`` means "clear it")."""


UNSET = _Unset()


class Run(RunFilesMixin, RunAuditMixin, MetricsMixin, ChildrenMixin, HistoryMixin,
          WaitingMixin, PortalMixin):
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
        aggregate, logs, token = experiment.workspace._session.load_run_with_logs(run_id)
        if aggregate.experiment_name != experiment.name:
            raise RunNotFoundError(run_id, f"in experiment {experiment.name!r}")
        if type(self) is Run:
            # ``Run(exp, id)`` of a script run is a ScriptRun, as loading it any other way is.
            self.__class__ = Run._class_for(aggregate.run_type)
        self._setup(experiment, aggregate, published=True, token=token)
        self._log_events = (token, logs)

    # ------------------------------------------------------------------ construction
    def _setup(self, experiment: Experiment, aggregate: RunAggregate | None, *,
               published: bool, run_id: str | None = None,
               raw: RunTuple | None = None, token: Any = None) -> None:
        self._experiment = experiment
        self._session: LedgerSession = experiment.workspace._session
        self._settings: LedgerSettings = experiment.workspace._settings
        self._agg: RunAggregate | None = aggregate
        if raw is None:
            # A run built from a query's tuple has none until read (``__getattr__``).
            self._row: RunRow | None = None
        self._run_id: str = aggregate.run_id if aggregate is not None else str(run_id)
        self._published = published
        # The store's read token (``LedgerApplication.read_token``) taken before the aggregate
        # was last read from the store: while the store still gives it, the aggregate is current.
        self._token: Any = token
        # The events of the run's log stream and the read token taken before reading them.
        self._log_events: tuple[Any, builtins.list[Any]] | None = None
        self._outputs_folder: Path | None = None  # start_logging(): uploaded on complete()
        if raw is not None:
            self._raw = raw  # the query's tuple (``RunIndex.find_run_tuples``)
        else:
            self._write_state()
        # A run built from a query's tuple gets its row, lock and metric buffer on first use
        # (``__getattr__``): a query returns many runs that are only read. ``_from_tuples``
        # gives such runs the same state as this does, copied from one dict.

    def _write_state(self) -> None:
        """Give the run its lock and metric buffer, and make it known to the fork handlers."""
        self._lock: threading.RLock = threading.RLock()
        self._metrics: MetricBuffer = MetricBuffer(self._run_id)
        forking.track_run(self)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails, on a run built from a query's tuple
        # (``_setup``): its row, and its lazily made write state. The write state is made under
        # one lock for all, so two threads never make two locks; two threads reading the row
        # at once may each make one (equal rows, the last one stays).
        own = self.__dict__
        if name == "_row" and "_raw" in own:
            from projections.index import run_rows  # (imported with the index, on first query)

            row = own["_row"] = run_rows((own["_raw"],))[0]
            return row
        if name in ("_lock", "_metrics") and "_run_id" in own:
            with forking.lazy_state_lock():
                if "_lock" not in own:
                    self._write_state()
            return own[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled as its store and id, for another process (see ledger.sdk.forking).
        return forking.reduce_run(self)

    # The run class of each run type (``register_type``); ``Run`` for any other type.
    _types: ClassVar[dict[str, builtins.type[Run]]] = {}

    @staticmethod
    def register_type(run_type: str) -> Callable[[_T], _T]:
        """Class decorator: runs of ``run_type`` are built as this subclass of ``Run``."""
        def register(cls: _T) -> _T:
            Run._types[run_type] = cls
            return cls
        return register

    @staticmethod
    def _class_for(run_type: str) -> builtins.type[Run]:
        """The class of the runs of a type: the one place a run's class is chosen."""
        return Run._types.get(run_type, Run)

    @staticmethod
    def _from_aggregate(experiment: Experiment, aggregate: RunAggregate, *,
                        published: bool, token: Any = None) -> Run:
        run_class = Run._class_for(aggregate.run_type)
        run = run_class.__new__(run_class)
        run._setup(experiment, aggregate, published=published, token=token)
        return run

    @staticmethod
    def _from_tuple(experiment: Experiment, raw: RunTuple) -> Run:
        return Run._from_tuples(experiment, [raw])[0]

    @staticmethod
    def _from_tuples(experiment: Experiment, tuples: Sequence[RunTuple]) -> builtins.list[Run]:
        """The runs of a query's tuples (``RunIndex.find_run_tuples``, a page of them), each as
        ``_setup`` builds it from a tuple: its row is made only if read.

        A query builds hundreds of these, only to read a few fields of each: the state that
        ``_setup`` would set attribute by attribute is made once (by ``_setup`` itself, on a
        first run) and copied into each run's ``__dict__``.
        """
        if not tuples:
            return []
        first = tuples[0]
        model = Run._class_for(first[1]).__new__(Run._class_for(first[1]))
        model._setup(experiment, None, published=True, raw=first, run_id=first[0])
        state = model.__dict__
        types = Run._types
        new = object.__new__
        runs: builtins.list[Run] = [model]
        for raw in tuples[1:]:
            run = new(types.get(raw[1], Run))
            own = state.copy()
            own["_raw"] = raw
            own["_run_id"] = raw[0]
            run.__dict__ = own
            runs.append(run)
        return runs

    @staticmethod
    def _create(experiment: Experiment, *, parent: Run | None = None,
                run_id: str | None = None, name: str | None = None,
                display_name: str | None = None, description: str | None = None,
                run_type: str = EXPERIMENT_RUN_TYPE, target: str = "local",
                tags: Mapping[str, Any] | None = None, start: bool = True,
                status: RunStatus | None = None) -> Run:
        """Create a run (unpublished until the next flush point) and return it."""
        session = experiment.workspace._session
        actor = current_actor(experiment.workspace._settings.user)
        if run_id is None:
            run_id, stream = new_run()
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
            stream = run_stream_id(run_id)
        parent_aggregate = parent._aggregate() if parent is not None else None
        aggregate = RunAggregate.create(
            aggregate_id=stream, run_id=run_id,
            experiment_id=experiment._experiment_id, experiment_name=experiment.name,
            actor=actor, parent=parent_aggregate, name=name, display_name=display_name,
            description=description, run_type=run_type, target=target)
        if tags:
            aggregate.set_tags(tags, actor)
        if status is not None:
            aggregate.set_status(status, actor)
        if start:
            aggregate.start(actor)
        run = Run._from_aggregate(experiment, aggregate, published=False)
        session.add_unpublished(run)
        return run

    # ------------------------------------------------------------------ loading
    @classmethod
    def get(cls, workspace: Workspace, run_id: str) -> Run:
        """Load a run of a workspace by id.

        Raises:
            RunNotFoundError: no run has this id.
        """
        aggregate, logs, token = workspace._session.load_run_with_logs(run_id)
        experiment = workspace._experiments.existing(aggregate.experiment_name,
                                                     aggregate.experiment_id)
        run = Run._from_aggregate(experiment, aggregate, published=True, token=token)
        run._log_events = (token, logs)
        return run

    @overload
    @classmethod
    def list(cls, experiment: Experiment, type: str | None = None,
             tags: str | Mapping[str, Any] | None = None,
             properties: str | Mapping[str, Any] | None = None,
             status: str | None = None, include_children: bool = False,
             _rehydrate_runs: bool = True, *, include_archived: bool = False,
             as_of: None = None, filter: str | None = None,
             order_by: str | Sequence[str] | None = None,
             max_results: int | None = None) -> Iterator[Run]: ...

    @overload
    @classmethod
    def list(cls, experiment: Experiment, type: str | None = None,
             tags: str | Mapping[str, Any] | None = None,
             properties: str | Mapping[str, Any] | None = None,
             status: str | None = None, include_children: bool = False,
             _rehydrate_runs: bool = True, *, include_archived: bool = False,
             as_of: datetime | int) -> Iterator[RunAsOf]: ...

    @classmethod
    def list(cls, experiment: Experiment, type: str | None = None,
             tags: str | Mapping[str, Any] | None = None,
             properties: str | Mapping[str, Any] | None = None,
             status: str | None = None, include_children: bool = False,
             _rehydrate_runs: bool = True, *, include_archived: bool = False,
             as_of: datetime | int | None = None, filter: str | None = None,
             order_by: str | Sequence[str] | None = None,
             max_results: int | None = None) -> Iterator[Run] | Iterator[RunAsOf]:
        """Yield the runs of an experiment, newest first, filtered by type, tags, properties and
        status.

        A ``tags``/``properties`` string means "has this key"; a dict means "every pair equals"
        (values compared as their stored strings; ``None`` matches a tag without a value).
        Archived runs are left out unless ``include_archived``. With ``as_of`` (a log position
        or an aware datetime, see ``ledger.audit.timeline``), the query is answered as it would
        have been then, and yields read-only views (``RunAsOf``) of the runs as they were.

        ``filter``, ``order_by`` and ``max_results`` are MLflow's search arguments (see
        ``docs/search.md`` and ``ledger.domain.search``): ``filter="metrics.loss < 0.2 and
        params.lr = '0.01'"`` (all comparisons must hold; a metric compares on its last value,
        ``metrics.min.loss``/``metrics.max.loss`` on its minimum/maximum),
        ``order_by=["metrics.loss ASC", "attributes.start_time DESC"]`` (empty values last,
        ties newest first), ``max_results=10``.

        Raises:
            ValidationError: a filter of the wrong type (a list, say), or a bad ``as_of``; a bad
                ``filter`` or ``order_by`` (``SearchSyntaxError``: the message names the token
                and its position); ``filter``/``order_by``/``max_results`` with ``as_of``.
        """
        index = experiment.workspace.ledger.index
        limit = check_max_results(max_results)
        if as_of is not None:
            refuse_with_as_of(filter, order_by, max_results)
            return find_runs_as_of(
                experiment.workspace.ledger.application, index, as_of,
                experiment_name=experiment.name, run_type=type, tags=tags,
                properties=properties, status=status, include_children=include_children,
                include_archived=include_archived)
        pages = index.find_run_tuples(experiment_name=experiment.name, run_type=type,
                                      tags=tags, properties=properties, status=status,
                                      include_children=include_children,
                                      include_archived=include_archived, filter=filter,
                                      order_by=order_by, limit=limit)
        return Run._runs_of_pages(experiment, pages)

    @staticmethod
    def _runs_of_pages(experiment: Experiment,
                       pages: Iterator[builtins.list[RunTuple]]) -> Iterator[Run]:
        """The runs of a query's pages, built a page at a time."""
        from_tuples = Run._from_tuples
        for tuples in pages:
            yield from from_tuples(experiment, tuples)

    @classmethod
    def get_context(cls, allow_offline: bool = True, **kwargs: Any) -> Run:
        """Return the run this script was submitted as (see ``ledger.sdk.script``).

        Outside a submitted script, with ``allow_offline``, a new run is started in the
        experiment ``offline`` of the default workspace, so the same script runs anywhere.

        Raises:
            RunNotFoundError: not in a submitted script and ``allow_offline`` is False.
        """
        provider = Run._context_provider
        assert provider is not None, "ledger.sdk.context registers it when ledger.sdk loads"
        return provider(allow_offline)

    # Set by ledger.sdk.context (which needs Workspace, above this module).
    _context_provider: ClassVar[Callable[[bool], Run] | None] = None

    def _aggregate(self) -> RunAggregate:
        agg = self._agg
        if agg is None:
            with self._lock:
                if self._agg is None:
                    app = self._session.app
                    token = app.read_token()
                    self._agg = app.get_run(self._run_id)
                    self._token = token
                agg = self._agg
        return agg

    def _refreshed(self) -> RunAggregate:
        """The aggregate with every event other writers appended.

        Costs no query while the store's read token is the one taken before the aggregate was
        last read (nobody committed since, this process included).
        """
        with self._lock:
            agg = self._aggregate()
            if self._published:
                app = self._session.app
                token = app.read_token()
                if token is None or token != self._token:
                    app.fast_forward(agg)
                    self._token = token
            return agg

    def _actor(self) -> Actor:
        """Who this process records as the author of the run's changes."""
        return current_actor(self._settings.user)

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
        if self._agg is None:
            raw = self.__dict__.get("_raw")
            if raw is not None:  # a run from a query: its tuple holds the type
                return str(raw[1])
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
        actor = self._actor()
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
        if self._outputs_folder is not None:
            self._upload_outputs(self._outputs_folder)
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
        submitted script run (``ScriptRun``) becomes CancelRequested and its process is stopped,
        then Canceled (see ``ledger.sdk.script``).

        Raises:
            InvalidTransitionError: the run has already ended.
        """
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

        A run never published is published with its end in one transaction, its buffered
        metric values too (the first batch of its metric stream, appended just before the
        end event: the order a flush then the end would give, in one commit instead of three).
        """
        metrics_event = None
        with self._lock:
            if not self._published:
                aggregate = self._aggregate()
                actor = self._actor()
                before = len(aggregate.pending_events)
                # The batch is made before the end (its time, which the history sorts on, too).
                flushed_at = MetricsLogged.create_timestamp() if self._metrics.count else None
                command(aggregate, actor)  # may refuse: then nothing is taken
                if flushed_at is not None:
                    # Nobody else knows the run yet, so its metric stream is empty. The batch
                    # travels with the run's pending events: if the write fails they are put
                    # back together, and the next flush point writes them.
                    metrics_event = self._session.app.metrics_event(
                        self._run_id, self._metrics.take(), actor.as_dict(), 1, flushed_at)
                    aggregate.pending_events.insert(  # a loose event: save_all takes it as is
                        before, metrics_event)  # type: ignore[arg-type]
                ended_locally = True
            else:
                ended_locally = False
        if ended_locally:
            self._session.publish()
            if metrics_event is not None:
                self._session.app.metrics_written(self._run_id, 1)
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
        tags = normalise_tag(key, value, self._run_id)
        self._command(lambda agg, actor: agg.set_tags(tags, actor))

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
        return observed_status(self, self._refreshed()).value

    def get_environment(self) -> Environment:
        """Return the registered environment a submitted run ran with (the exact version).

        Raises:
            ValidationError: the run was not submitted (no environment is recorded on it).
            EnvironmentNotFoundError: the recorded version is not in this ledger.
        """
        properties = self.get_properties()
        name = properties.get(PROP_ENVIRONMENT_NAME)
        if not name:
            raise ValidationError(
                f"Run {self._run_id!r} records no environment: only submitted runs have one")
        return Environment.get(self._experiment.workspace, name,
                               properties.get(PROP_ENVIRONMENT_VERSION))

    def get_details(self) -> dict[str, Any]:
        """Return the run's details, as the seed SDK shapes them (keys whose value is ``None``
        are left out; times are ISO-8601 UTC strings ending in ``Z``; see ``ledger.sdk.details``).
        """
        agg = self._refreshed()
        return details_from_aggregate(agg, status=observed_status(self, agg).value,
                                      log_files=self._log_file_locations(agg))

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
