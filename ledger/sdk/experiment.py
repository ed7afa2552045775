"""``Experiment``: a named group of runs in a workspace."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload
from uuid import UUID

from ledger.domain.errors import ExperimentNotFoundError, ValidationError
from ledger.domain.experiment import ExperimentAggregate, check_experiment_name
from ledger.domain.ids import experiment_stream_id
from ledger.domain.search import refuse_with_as_of
from ledger.domain.values import current_actor
from ledger.sdk.details import iso_utc
from ledger.sdk.run import Run
from ledger.sdk.script import submit_script

if TYPE_CHECKING:
    from ledger.audit.timeline import RunAsOf
    from ledger.sdk.workspace import Workspace


class ViewType:
    """Which experiments ``Experiment.list`` gives: active ones (the default), archived ones, or
    all (the seed's ``azureml.core.experiment.ViewType``)."""

    ACTIVE_ONLY = "ActiveOnly"
    ARCHIVED_ONLY = "ArchivedOnly"
    ALL = "All"


_VIEW_TYPES = (ViewType.ACTIVE_ONLY, ViewType.ARCHIVED_ONLY, ViewType.ALL)


_outputs_paths: dict[str, Path] = {}


def _outputs_path(text: str) -> Path:
    """``Path(text)``, made once per text: ``start_logging()`` is on every run's path, and
    building a ``Path`` costs more there than the folder's stat (what ``Path.absolute()``
    gives: the current folder joined, nothing resolved)."""
    path = _outputs_paths.get(text)
    if path is None:
        if len(_outputs_paths) > 64:
            _outputs_paths.clear()
        path = _outputs_paths[text] = Path(text)
    return path


def _tags_match(tags: dict[str, str | None], wanted: str | Mapping[str, Any] | None) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return wanted in tags
    return all(key in tags and tags[key] == (None if value is None else str(value))
               for key, value in wanted.items())


class Experiment:
    """A named group of runs. Creating one that exists returns it (names are ids).

    Names follow the seed's rule: 1-256 characters of letters, digits, ``_`` and ``-``,
    starting with a letter or a digit.

    Args:
        workspace: the workspace holding it.
        name: its name.

    Raises:
        ValidationError: the name is not a valid experiment name.
    """

    def __init__(self, workspace: Workspace, name: str, **kwargs: Any) -> None:
        check_experiment_name(name)
        self._workspace = workspace
        self._name = name
        self._experiment_id: UUID = workspace._experiments.ensure(name)

    @classmethod
    def _existing(cls, workspace: Workspace, name: str, experiment_id: UUID) -> Experiment:
        """An experiment known to exist (from a run or an index row): no store read or write."""
        experiment = cls.__new__(cls)
        experiment._workspace = workspace
        experiment._name = name
        experiment._experiment_id = experiment_id
        return experiment

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self._name

    @property
    def workspace(self) -> Workspace:
        """The workspace holding the experiment."""
        return self._workspace

    @property
    def id(self) -> str:
        """The experiment's id (derived from its name)."""
        return str(self._experiment_id)

    def __repr__(self) -> str:
        return f"Experiment(Name: {self._name},\nWorkspace: {self._workspace.name})"

    def _repr_html_(self) -> str:
        """A notebook's summary table: name, workspace, a link to its runs in the Studio."""
        from ledger.sdk.portal import experiment_portal_url, html_table

        return html_table([("Name", self._name), ("Workspace", self._workspace.name)],
                          link=("Report Page", experiment_portal_url(self._name)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and other._experiment_id == self._experiment_id

    def __hash__(self) -> int:
        return hash(self._experiment_id)

    def start_logging(self, *args: Any, outputs: str | os.PathLike[str] | None = None,
                      snapshot_directory: str | os.PathLike[str] | None = None,
                      display_name: str | None = None, description: str | None = None,
                      run_id: str | None = None, tags: Mapping[str, Any] | None = None,
                      **kwargs: Any) -> Run:
        """Start an interactive run (Running) to log into from this process.

        As the seed does, the folder ``outputs`` (default ``./outputs``) is created, so code
        can save into it at once (``joblib.dump(model, "outputs/model.pkl")``). Use the run as
        a context manager: leaving the block completes it (fails it on an exception, cancels
        it on Ctrl-C).

        Args:
            outputs: the outputs folder to create (default ``./outputs``); what it holds is
                uploaded under ``outputs/`` when the run completes (see ``ledger.sdk.files``).
            snapshot_directory: a folder to snapshot as the run's source (see
                ``ledger.sdk.snapshots``); default none.
            display_name: the run's display name.
            description: the run's description.
            run_id: the run's id (default: a new UUID).
            tags: the run's initial tags.

        Raises:
            ValidationError: a bad display name, description or run id, or a snapshot folder
                that is missing or past the snapshot limit (no run is created then).
            OSError: the outputs folder cannot be created.
        """
        snapshot: dict[str, str] = {}
        if snapshot_directory is not None:
            from ledger.sdk.snapshots import take_snapshot

            snapshot = take_snapshot(self.workspace._session.app, snapshot_directory)
        run = Run._create(self, run_id=run_id, display_name=display_name,
                          description=description, tags=tags)
        if snapshot:
            run.add_properties(snapshot)
        folder = _outputs_path(os.path.join(os.getcwd(), outputs if outputs is not None
                                            else "outputs"))
        if not os.path.isdir(folder):  # a stat; mkdir of an existing folder raises and catches
            folder.mkdir(parents=True, exist_ok=True)
        run._outputs_folder = folder  # uploaded on complete() (sdk/files.py)
        return run

    def submit(self, config: Any, tags: Mapping[str, Any] | None = None, **kwargs: Any) -> Run:
        """Submit a script (a ``ScriptRunConfig``) as a run; returns at once with the run (a
        ``ScriptRun``).

        Raises:
            ValidationError: the configuration is not a ScriptRunConfig.
        """
        return self._submit(config, tags=tags, **kwargs)

    def _submit(self, config: Any, tags: Mapping[str, Any] | None = None,
                parent: Run | None = None, **kwargs: Any) -> Run:
        return submit_script(self, config, tags=tags, parent=parent, **kwargs)

    @overload
    def get_runs(self, type: str | None = None,
                 tags: str | Mapping[str, Any] | None = None,
                 properties: str | Mapping[str, Any] | None = None,
                 include_children: bool = False, *, include_archived: bool = False,
                 as_of: None = None, filter: str | None = None,
                 order_by: str | Sequence[str] | None = None,
                 max_results: int | None = None) -> Iterator[Run]: ...

    @overload
    def get_runs(self, type: str | None = None,
                 tags: str | Mapping[str, Any] | None = None,
                 properties: str | Mapping[str, Any] | None = None,
                 include_children: bool = False, *, include_archived: bool = False,
                 as_of: datetime | int) -> Iterator[RunAsOf]: ...

    def get_runs(self, type: str | None = None,
                 tags: str | Mapping[str, Any] | None = None,
                 properties: str | Mapping[str, Any] | None = None,
                 include_children: bool = False, *, include_archived: bool = False,
                 as_of: datetime | int | None = None, filter: str | None = None,
                 order_by: str | Sequence[str] | None = None,
                 max_results: int | None = None) -> Iterator[Run] | Iterator[RunAsOf]:
        """Yield the experiment's runs, newest first (top-level runs unless
        ``include_children``; archived runs only with ``include_archived``).

        A ``tags``/``properties`` string means "has this key"; a dict means "every pair equals"
        (values compared as their stored strings; ``None`` matches a tag without a value).
        With ``as_of`` (a log position or an aware datetime), the query is answered as it
        would have been then, yielding read-only views of the runs as they were
        (``ledger.audit.timeline.RunAsOf``).

        ``filter``, ``order_by`` and ``max_results`` take MLflow's search grammar (see
        ``Run.list`` and ``docs/search.md``), for example
        ``get_runs(filter="metrics.loss < 0.2 and params.lr = '0.01'",
        order_by=["metrics.loss ASC"], max_results=10)``.

        Raises:
            ValidationError: a filter of the wrong type (a list, say), or a bad ``as_of``; a
                bad ``filter`` or ``order_by`` (the message names the token and its position).
        """
        if as_of is not None:
            refuse_with_as_of(filter, order_by, max_results)
            return Run.list(self, type=type, tags=tags, properties=properties,
                            include_children=include_children,
                            include_archived=include_archived, as_of=as_of)
        return Run.list(self, type=type, tags=tags, properties=properties,
                        include_children=include_children, include_archived=include_archived,
                        filter=filter, order_by=order_by, max_results=max_results)

    def best_run(self, metric: str, mode: str = "min", *, field: str = "last",
                 filter: str | None = None, include_children: bool = False) -> Run | None:
        """Return the run with the lowest (``mode="min"``) or highest (``"max"``) value of a
        metric: its last value, or with ``field="min"``/``"max"`` its minimum/maximum (see
        ``ledger.sdk.search.best_run``).

        Returns:
            The run, or ``None`` when no run has a numeric value of the metric.

        Raises:
            ValidationError: a bad mode, field, metric name or filter.
        """
        from ledger.sdk.search import best_run

        return best_run(self, metric, mode, field=field, filter=filter,
                        include_children=include_children)

    @staticmethod
    def list(workspace: Workspace, experiment_name: str | None = None,
             view_type: str = ViewType.ACTIVE_ONLY,
             tags: str | Mapping[str, Any] | None = None) -> list[Experiment]:
        """Return the experiments of a workspace, by name.

        Args:
            workspace: the workspace.
            experiment_name: only the experiment of this name.
            view_type: ``ViewType.ACTIVE_ONLY`` (default), ``ARCHIVED_ONLY`` or ``ALL``.
            tags: a key (experiments having that tag) or a dict (every pair equal, values
                compared as their stored strings; ``None`` matches a tag without a value).

        Raises:
            ValidationError: an unknown view type, or tags that are neither a string nor a dict.
        """
        if view_type not in _VIEW_TYPES:
            raise ValidationError(
                f"Experiment.list: view_type must be one of {', '.join(_VIEW_TYPES)}, not "
                f"{view_type!r}")
        if tags is not None and not isinstance(tags, (str, Mapping)):
            raise ValidationError(
                f"Experiment.list: tags must be a key or a dict, not {type(tags).__name__}")
        index = workspace._session.before_query()
        found = []
        for row in index.experiments():
            if experiment_name is not None and row.name != experiment_name:
                continue
            archived = row.archived_time is not None
            if (view_type == ViewType.ACTIVE_ONLY and archived) or (
                    view_type == ViewType.ARCHIVED_ONLY and not archived):
                continue
            if not _tags_match(row.tags, tags):
                continue
            found.append(workspace._experiments.existing(row.name))
        return found

    # ------------------------------------------------------------------ tags and archiving
    def _state(self) -> ExperimentAggregate:
        try:
            return self._workspace._session.app.get_experiment(self._name)
        except LookupError:
            raise ExperimentNotFoundError(self._name) from None

    def _command(self, command: Any) -> None:
        actor = current_actor(self._workspace._settings.user)
        try:
            self._workspace._session.app.experiment_command(
                self._name, lambda agg: command(agg, actor))
        except LookupError:
            raise ExperimentNotFoundError(self._name) from None

    @property
    def tags(self) -> dict[str, str | None]:
        """A copy of the experiment's tags."""
        return dict(self._state().tags)

    @property
    def archived_time(self) -> str | None:
        """When the experiment was archived (ISO-8601 UTC ending in ``Z``), or ``None``."""
        moment: datetime | None = self._state().archived_time
        return iso_utc(moment)

    def tag(self, key: str, value: Any = None) -> None:
        """Set one tag of the experiment (``None``: a tag without a value).

        Raises:
            ValidationError: the key is not a non-empty string.
        """
        self._command(lambda agg, actor: agg.set_tags({key: value}, actor))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags (merged into the existing ones; values stored as strings).

        Raises:
            ValidationError: not a dict of string keys.
        """
        self._command(lambda agg, actor: agg.set_tags(tags, actor))

    def remove_tags(self, tags: Any) -> None:
        """Remove tags by key (keys it does not have are ignored).

        Raises:
            ValidationError: not a list of string keys.
        """
        self._command(lambda agg, actor: agg.remove_tags(tags, actor))

    def archive(self) -> None:
        """Archive the experiment: ``Experiment.list()`` leaves it out unless asked for
        archived ones; its runs stay readable."""
        self._command(lambda agg, actor: agg.archive(actor))

    def reactivate(self, new_name: str | None = None) -> None:
        """Make an archived experiment active again.

        Args:
            new_name: the seed's docs call it not supported any more; only the experiment's own
                name (or ``None``) is accepted.

        Raises:
            ValidationError: a ``new_name`` other than the experiment's name.
        """
        if new_name is not None and new_name != self._name:
            raise ValidationError(
                f"experiment {self._name!r}: reactivate(new_name={new_name!r}) is not supported "
                "(experiment names are their ids); reactivate it under its own name")
        self._command(lambda agg, actor: agg.reactivate(actor))


class ExperimentCache:
    """A workspace's experiment objects by name: each experiment is read or created in the store
    at most once per workspace, and those known from runs or index rows never.

    Args:
        workspace: the workspace the experiments belong to.
    """

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        self._ids: dict[str, UUID] = {}
        self._lock = threading.Lock()

    def ensure(self, name: str) -> UUID:
        """Return the id of the experiment ``name``, creating it in the store if it is new.

        Raises:
            StoreError: the store failed.
        """
        known = self._ids.get(name)
        if known is not None:
            return known
        workspace = self._workspace
        aggregate = workspace._session.app.ensure_experiment(
            name, current_actor(workspace._settings.user))
        with self._lock:
            self._ids[name] = aggregate.id
        return aggregate.id

    def existing(self, name: str, experiment_id: UUID | None = None) -> Experiment:
        """Return the experiment object of an experiment known to exist (no store access)."""
        with self._lock:
            known = self._ids.setdefault(name, experiment_id or experiment_stream_id(name))
        return Experiment._existing(self._workspace, name, known)
