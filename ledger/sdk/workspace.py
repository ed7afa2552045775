"""``Workspace``: one ledger, found from configuration or given by a store URL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ledger.config import load_config
from ledger.persistence.store import StoreConfig, parse_store_url
from ledger.sdk.session import LedgerSession, open_session


class _ComputeTargets(dict[str, str]):
    """``ws.compute_targets[name]``: every target runs scripts locally here, so any name is
    accepted and recorded as the run's target."""

    def __missing__(self, key: str) -> str:
        return key


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
        StoreConfigError: the store URL is not understood.
        StoreError: the store cannot be opened.
    """

    def __init__(self, subscription_id: str | None = None, resource_group: str | None = None,
                 workspace_name: str | None = None, *, store: str | StoreConfig | None = None,
                 name: str | None = None, **kwargs: Any) -> None:
        config: StoreConfig
        self._config_file: Path | None = None
        if isinstance(store, StoreConfig):
            config, default_name = store, "default"
        elif store is not None:
            config = parse_store_url(store)
            default_name = "default"
        else:
            loaded = load_config()
            config, default_name = loaded.store, loaded.name
            self._config_file = loaded.source
        self._name = workspace_name or name or default_name
        self._store = config
        self._session: LedgerSession = open_session(config)
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
        loaded = load_config(path)
        workspace = cls(workspace_name=loaded.name, store=loaded.store)
        workspace._config_file = loaded.source
        return workspace

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
    def experiments(self) -> dict[str, Any]:
        """The workspace's experiments by name."""
        from ledger.sdk.experiment import Experiment

        return {e.name: e for e in Experiment.list(self)}

    def flush(self) -> None:
        """Append everything buffered in this process for this ledger; returns when durable."""
        self._session.flush_all()

    @property
    def config_file(self) -> Path | None:
        """The configuration file the workspace was found from (``None``: none was used)."""
        return self._config_file

    def __repr__(self) -> str:
        config = f", config='{self._config_file}'" if self._config_file is not None else ""
        return (f"Workspace.create(name='{self._name}', store='{self._store.display_url}'"
                f"{config})")
