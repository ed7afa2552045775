"""``Experiment``: a named group of runs in a workspace."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload
from uuid import UUID

from ledger.domain.ids import experiment_stream_id
from ledger.domain.values import check_name, current_actor
from ledger.sdk.run import Run
from ledger.sdk.script import submit_script

if TYPE_CHECKING:
    from ledger.audit.timeline import RunAsOf
    from ledger.sdk.workspace import Workspace


class Experiment:
    """A named group of runs. Creating one that exists returns it (names are ids).

    Args:
        workspace: the workspace holding it.
        name: its name.

    Raises:
        ValidationError: the name is not a valid name.
    """

    def __init__(self, workspace: Workspace, name: str, **kwargs: Any) -> None:
        check_name(name, "experiment name")
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

    def start_logging(self, *args: Any, display_name: str | None = None,
                      description: str | None = None, run_id: str | None = None,
                      tags: Mapping[str, Any] | None = None, **kwargs: Any) -> Run:
        """Start an interactive run (Running) to log into from this process.

        Use it as a context manager: leaving the block completes it (fails it on an exception,
        cancels it on Ctrl-C).

        ``snapshot_directory=PATH`` snapshots that folder as the run's source (see
        ``ledger.sdk.snapshots``); ``./outputs`` is uploaded when the run completes (see
        ``ledger.sdk.files``).

        Raises:
            ValidationError: a bad display name, description or run id, or a snapshot folder
                that is missing or past the snapshot limit (no run is created then).
        """
        snapshot_directory = kwargs.pop("snapshot_directory", None)
        snapshot: dict[str, str] = {}
        if snapshot_directory is not None:
            from ledger.sdk.snapshots import take_snapshot

            snapshot = take_snapshot(self.workspace._session.app, snapshot_directory)
        run = Run._create(self, run_id=run_id, display_name=display_name,
                          description=description, tags=tags)
        if snapshot:
            run.add_properties(snapshot)
        run._outputs_folder = Path.cwd() / "outputs"  # uploaded on complete() (sdk/files.py)
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
                 as_of: None = None) -> Iterator[Run]: ...

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
                 as_of: datetime | int | None = None) -> Iterator[Run] | Iterator[RunAsOf]:
        """Yield the experiment's runs, newest first (top-level runs unless
        ``include_children``; archived runs only with ``include_archived``).

        A ``tags``/``properties`` string means "has this key"; a dict means "every pair equals"
        (values compared as their stored strings; ``None`` matches a tag without a value).
        With ``as_of`` (a log position or an aware datetime), the query is answered as it
        would have been then, yielding read-only views of the runs as they were
        (``ledger.audit.timeline.RunAsOf``).

        Raises:
            ValidationError: a filter of the wrong type (a list, say), or a bad ``as_of``.
        """
        if as_of is not None:
            return Run.list(self, type=type, tags=tags, properties=properties,
                            include_children=include_children,
                            include_archived=include_archived, as_of=as_of)
        return Run.list(self, type=type, tags=tags, properties=properties,
                        include_children=include_children, include_archived=include_archived)

    @staticmethod
    def list(workspace: Workspace, experiment_name: str | None = None,
             **kwargs: Any) -> list[Experiment]:
        """Return the experiments of a workspace (only the named one with ``experiment_name``)."""
        index = workspace._session.before_query()
        return [workspace._experiments.existing(row.name) for row in index.experiments()
                if experiment_name is None or row.name == experiment_name]


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
