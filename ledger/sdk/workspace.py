"""``Workspace``: one ledger, found from configuration or given by a store URL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.config import LedgerSettings, resolve_settings
from ledger.persistence.store import StoreConfig
from ledger.sdk.experiment import Experiment, ExperimentCache
from ledger.sdk.session import LedgerSession, open_session

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from projections.index import RunIndex


class _ComputeTargets(dict[str, str]):
    """``ws.compute_targets[name]``: every target runs scripts locally here, so any name is
    accepted and recorded as the run's target."""

    def __missing__(self, key: str) -> str:
        return key


class LedgerAccess:
    """The public handle on a workspace's open ledger, for tools built on the SDK (the CLI, the
    web viewer, importers, tests): ``ws.ledger``.

    Args:
        session: the workspace's session.
    """

    def __init__(self, session: LedgerSession) -> None:
        self._session = session

    @property
    def application(self) -> LedgerApplication:
        """The event-sourced application (``ledger.application.LedgerApplication``)."""
        return self._session.app

    @property
    def index(self) -> RunIndex:
        """The query index, after this process's buffered writes are appended and the index
        has caught up with the log (what every SDK query reads).

        Raises:
            StoreError: the store failed.
        """
        return self._session.before_query()

    @property
    def raw_index(self) -> RunIndex:
        """The query index as it is, not caught up (for maintenance: rebuilds, status)."""
        return self._session.index

    def flush(self) -> None:
        """Append everything buffered in this process for this ledger; returns when durable."""
        self._session.flush_all()

    def close(self) -> None:
        """Flush, stop the background flusher and close the store's connections."""
        self._session.close()


class Workspace:
    """A ledger of experiments and runs.

    ``Workspace.from_config()`` finds the ledger from a configuration file (see
    ``ledger.config``) or uses the embedded default ``./.runledger/ledger.db``;
    ``Workspace(store=URL)`` opens the given store (``sqlite:///path.db``, ``memory://``,
    ``postgresql://...``). The Azure ML arguments (subscription, resource group) are accepted and
    ignored, so ported code keeps working.

    Args:
        subscription_id: ignored.
        resource_group: ignored.
        workspace_name: the workspace's name (for display).
        store: the store URL, or a parsed ``StoreConfig`` (default: ``RUNLEDGER_STORE``, then
            configuration, then embedded).

    Raises:
        StoreConfigError: the store URL, configuration file or an environment setting is not
            understood.
        StoreError: the store cannot be opened.
    """

    def __init__(self, subscription_id: str | None = None, resource_group: str | None = None,
                 workspace_name: str | None = None, *, store: str | StoreConfig | None = None,
                 name: str | None = None, _settings: LedgerSettings | None = None,
                 **kwargs: Any) -> None:
        settings = _settings or resolve_settings(store, name=workspace_name or name)
        self._settings = settings
        self._name = settings.name
        self._store = settings.store
        self._session: LedgerSession = open_session(settings)
        self._experiments = ExperimentCache(self)
        self.compute_targets: dict[str, str] = _ComputeTargets()

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, auth: Any = None,
                    _logger: Any = None, _file_name: str | None = None) -> Workspace:
        """Open the workspace a configuration file names, or the embedded default.

        Args:
            path: a configuration file, or a folder holding one (see ``ledger.config`` for the
                format and the search order when omitted).

        Raises:
            StoreConfigError: the file is missing (when ``path`` is given) or not understood.
            StoreError: the store cannot be opened.
        """
        return cls(_settings=resolve_settings(config_path=path))

    @classmethod
    def get(cls, name: str, **kwargs: Any) -> Workspace:
        """Open the configured workspace under this name (all names share the configuration)."""
        return cls(workspace_name=name, **kwargs)

    @property
    def name(self) -> str:
        """The workspace's name."""
        return self._name

    @property
    def store_url(self) -> str:
        """The store URL (password masked)."""
        return self._store.display_url

    @property
    def config_file(self) -> Path | None:
        """The configuration file the workspace's settings came from (``None``: none was
        read)."""
        return self._settings.config_file

    @property
    def settings(self) -> LedgerSettings:
        """The workspace's settings, resolved once when it was opened (``ledger.config``)."""
        return self._settings

    @property
    def ledger(self) -> LedgerAccess:
        """The open ledger behind the workspace: its application and query index."""
        return LedgerAccess(self._session)

    @property
    def experiments(self) -> dict[str, Experiment]:
        """The workspace's experiments by name."""
        return {e.name: e for e in Experiment.list(self)}

    def flush(self) -> None:
        """Append everything buffered in this process for this ledger; returns when durable."""
        self._session.flush_all()

    def __repr__(self) -> str:
        config = f", config_file='{self.config_file}'" if self.config_file else ""
        return f"Workspace.create(name='{self._name}', store='{self._store.display_url}'{config})"

