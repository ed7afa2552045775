"""``Workspace``: one ledger, found from configuration or given by a store URL."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.config import LedgerSettings, resolve_settings
from ledger.domain.ids import LEDGER_NAMESPACE
from ledger.domain.names import LOCAL_IDENTITY
from ledger.persistence.store import StoreConfig
from ledger.sdk.compute import ComputeTargets
from ledger.sdk.details import iso_utc
from ledger.sdk.environment import Environment
from ledger.sdk.experiment import Experiment, ExperimentCache
from ledger.sdk.run import Run
from ledger.sdk.session import LedgerSession, open_session

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from projections.index import RunIndex


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
    ``postgresql://...``). The Azure ML identity (subscription, resource group, location) is
    kept as given or configured (an Azure ML ``config.json``) and shown by ``get_details()``; it
    selects nothing (``"local"`` when not given).

    Args:
        subscription_id: the Azure ML subscription id (identity only).
        resource_group: the Azure ML resource group (identity only).
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
        settings = _settings or resolve_settings(
            store, name=workspace_name or name, subscription_id=subscription_id,
            resource_group=resource_group, location=kwargs.get("location"))
        self._settings = settings
        self._name = settings.name
        self._store = settings.store
        self._session: LedgerSession = open_session(settings)
        self._experiments = ExperimentCache(self)
        self._compute_targets = ComputeTargets()

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
        if path is not None and _file_name is not None:
            path = Path(path) / _file_name
        return cls(_settings=resolve_settings(config_path=path))

    @classmethod
    def get(cls, name: str, auth: Any = None, subscription_id: str | None = None,
            resource_group: str | None = None, location: str | None = None,
            cloud: str = "AzureCloud", id: str | None = None, *,
            store: str | StoreConfig | None = None) -> Workspace:
        """Open the configured ledger as the workspace ``name`` (the seed's signature).

        Every name opens the same ledger (``store``, else ``RUNLEDGER_STORE``, else the
        configuration file, else the embedded default); the name and the identity arguments are
        kept for ``get_details()``. ``auth``, ``cloud`` and ``id`` are accepted and ignored.

        Raises:
            StoreConfigError: the store or configuration is not understood.
            StoreError: the store cannot be opened.
        """
        return cls(subscription_id, resource_group, name, store=store, location=location)

    @classmethod
    def create(cls, name: str, auth: Any = None, subscription_id: str | None = None,
               resource_group: str | None = None, location: str | None = None,
               create_resource_group: bool = True, sku: str = "basic",
               tags: dict[str, Any] | None = None, friendly_name: str | None = None,
               storage_account: str | None = None, key_vault: str | None = None,
               app_insights: str | None = None, container_registry: str | None = None,
               exist_ok: bool = False, show_output: bool = True, *,
               store: str | StoreConfig | None = None, **kwargs: Any) -> Workspace:
        """Open (creating the store if needed) the ledger as the workspace ``name`` (the seed's
        signature).

        A ledger has no separate workspace resource to create: the store is created when first
        opened, so ``exist_ok`` never fails and the Azure resource arguments (``sku``,
        ``key_vault``...) are accepted and ignored. The name, subscription, resource group and
        location are kept for ``get_details()`` (``write_config()`` saves them).

        Raises:
            StoreConfigError: the store or configuration is not understood.
            StoreError: the store cannot be opened.
        """
        return cls(subscription_id, resource_group, name, store=store, location=location)

    def write_config(self, path: str | os.PathLike[str] | None = None,
                     file_name: str | None = None) -> Path:
        """Write the workspace's Azure ML identity and store to ``<path>/.azureml/config.json``
        (default path: the current folder), which ``Workspace.from_config()`` reads back.

        Returns:
            The file written.

        Raises:
            OSError: the file cannot be written.
        """
        folder = Path(path if path is not None else ".") / ".azureml"
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / (file_name or "config.json")
        file.write_text(json.dumps({
            "subscription_id": self.subscription_id, "resource_group": self.resource_group,
            "workspace_name": self._name, "location": self.location,
            "store": self._store.url,
        }, indent=2) + "\n", encoding="utf-8")
        return file

    @property
    def name(self) -> str:
        """The workspace's name."""
        return self._name

    @property
    def subscription_id(self) -> str:
        """The Azure ML subscription id given or configured (``"local"`` when none)."""
        return self._settings.subscription_id or LOCAL_IDENTITY

    @property
    def resource_group(self) -> str:
        """The Azure ML resource group given or configured (``"local"`` when none)."""
        return self._settings.resource_group or LOCAL_IDENTITY

    @property
    def location(self) -> str:
        """The Azure ML location given or configured (``"local"`` when none)."""
        return self._settings.location or LOCAL_IDENTITY

    @property
    def compute_targets(self) -> ComputeTargets:
        """Every compute target name is present here (see ``ledger.sdk.compute``): scripts run
        on this machine whatever their target, whose name is recorded as the run's target."""
        return self._compute_targets

    def get_details(self) -> dict[str, str]:
        """Return the workspace's details with the seed SDK's keys, every value a string.

        ``id`` is the Azure resource id built from the identity, ``workspaceid`` a UUID derived
        from the store and the name, ``storageAccount`` the store URL (password masked),
        ``creationTime`` the time of the ledger's first event (``""`` while it is empty); the
        Azure resources a ledger does not have (``keyVault``, ``containerRegistry``...) are
        ``""``.

        Raises:
            StoreError: the store failed.
        """
        app = self._session.app
        first = app.read_log(0, 1)
        created = ""
        if first:
            timestamp = getattr(app.decode(first[0]), "timestamp", None)
            created = iso_utc(timestamp) or ""
        resource_id = (f"/subscriptions/{self.subscription_id}/resourceGroups/"
                       f"{self.resource_group}/providers/Microsoft.MachineLearningServices/"
                       f"workspaces/{self._name}")
        return {
            "id": resource_id,
            "name": self._name,
            "identityPrincipalId": "",
            "identityTenantId": "",
            "identityType": "",
            "location": self.location,
            "type": "Microsoft.MachineLearningServices/workspaces",
            "tags": "{}",
            "sku": "Basic",
            "workspaceid": str(uuid.uuid5(LEDGER_NAMESPACE,
                                          f"workspace:{self._store.url}:{self._name}")),
            "sdkTelemetryAppInsightsKey": "",
            "description": "",
            "friendlyName": self._name,
            "creationTime": created,
            "containerRegistry": "",
            "keyVault": "",
            "applicationInsights": "",
            "storageAccount": self._store.display_url,
            "hbiWorkspace": "False",
            "imageBuildCompute": "",
            "allowPublicAccessWhenBehindVnet": "False",
            "discoveryUrl": "",
            "notebookInfo": "",
        }

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
        """The workspace's active (not archived) experiments by name."""
        return {e.name: e for e in Experiment.list(self)}

    @property
    def environments(self) -> dict[str, Environment]:
        """The registered environments by name, each at its latest version."""
        return Environment.list(self)

    def get_run(self, run_id: str) -> Run:
        """Return a run of the workspace by id, whatever its experiment.

        Raises:
            RunNotFoundError: no run has this id.
        """
        return Run.get(self, run_id)

    def flush(self) -> None:
        """Append everything buffered in this process for this ledger; returns when durable."""
        self._session.flush_all()

    def __repr__(self) -> str:
        config = f", config_file='{self.config_file}'" if self.config_file else ""
        return f"Workspace.create(name='{self._name}', store='{self._store.display_url}'{config})"

