"""Settings: where a ledger's store is and how this process uses it, resolved once per workspace.

``LedgerSettings`` is built here from three sources -- the store URL given in code, a
configuration file, and the environment -- and passed down to the session, the application and
the store; no module below the SDK reads the environment. Bad values (``RUNLEDGER_FLUSH_INTERVAL
=abc``) raise ``StoreConfigError`` naming the variable.

Configuration file. ``Workspace.from_config(path=None)`` looks for, in this order:

1. ``path`` if given: a configuration file, or a folder holding ``runledger.json`` or
   ``.runledger/config.json``;
2. the ``RUNLEDGER_CONFIG`` environment variable (a file);
3. ``runledger.json``, then ``.runledger/config.json``, in the current folder and then in each of
   its parents -- up to the user's home folder (searched, its parents not) and never across a
   filesystem boundary (a parent on another device is not searched), as git stops its search for
   a repository.

In each folder runledger's own files come first, then the Azure ML SDK's ``config.json`` and
``.azureml/config.json`` (what ``az ml folder attach`` and ``Workspace.write_config()`` write) --
these two only when they hold a JSON object with one of ``subscription_id``, ``resource_group`` or
``workspace_name``, so an unrelated ``config.json`` is passed over.

A configuration file is JSON: ``{"store": "<store URL>", "name": "<workspace name>"}`` and the Azure
ML keys ``subscription_id``, ``resource_group``, ``workspace_name`` (the name, when ``name`` is
absent) and ``location``, kept as the workspace's identity; every key is optional, and a
relative SQLite path in it is relative to the file's own folder (for
``.runledger/config.json`` and ``.azureml/config.json``, relative to the folder holding
``.runledger/`` or ``.azureml/``). When no file is found
the embedded default ``./.runledger/ledger.db`` is used. ``RUNLEDGER_STORE`` overrides the store of
any file. The file found is ``Workspace.config_file``.

Environment:

- ``RUNLEDGER_STORE``: the store URL (over any configuration file).
- ``RUNLEDGER_CONFIG``: the configuration file.
- ``RUNLEDGER_USER``: the user recorded as the actor of every change (default: the OS user).
- ``RUNLEDGER_FLUSH_INTERVAL``: seconds between background flushes (default 1).
- ``RUNLEDGER_METRIC_BATCH``: buffered metric values that trigger an append (default 10,000).
- ``RUNLEDGER_SQLITE_SYNCHRONOUS``: SQLite's ``synchronous`` when the URL does not set it
  (``NORMAL``, or ``FULL`` to survive power loss).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ledger.domain.errors import StoreConfigError
from ledger.domain.names import (
    AZURE_CONFIG_FILE_NAMES,
    AZURE_CONFIG_KEYS,
    CONFIG_ENV,
    CONFIG_FILE_NAMES,
    FLUSH_INTERVAL_ENV,
    METRIC_BATCH_ENV,
    SQLITE_SYNCHRONOUS_ENV,
    STORE_ENV,
    USER_ENV,
)
from ledger.persistence.store import StoreConfig, default_store_url, parse_store_url

DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_METRIC_BATCH = 10_000


@attrs.frozen
class LedgerSettings:
    """Everything a workspace needs to know, resolved once (see the module docstring).

    Attributes:
        name: the workspace's name.
        store: the parsed store URL.
        config_file: the configuration file it came from, if any.
        user: the user recorded on every change (``None``: the OS user).
        flush_interval: seconds between background flushes.
        metric_batch: buffered metric values that trigger an append.
        subscription_id: the Azure ML subscription id given or configured (``None``: none).
        resource_group: the Azure ML resource group given or configured.
        location: the Azure ML location given or configured.
    """

    name: str
    store: StoreConfig
    config_file: Path | None = None
    user: str | None = None
    flush_interval: float = DEFAULT_FLUSH_INTERVAL
    metric_batch: int = DEFAULT_METRIC_BATCH
    subscription_id: str | None = None
    resource_group: str | None = None
    location: str | None = None


def _is_azure_config(path: Path) -> bool:
    """Whether a ``config.json`` is the Azure ML SDK's (a JSON object with one of its keys)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and any(key in data for key in AZURE_CONFIG_KEYS)


def _find_in(directory: Path) -> Path | None:
    for candidate in CONFIG_FILE_NAMES:
        path = directory / candidate
        if path.is_file():
            return path
    for candidate in AZURE_CONFIG_FILE_NAMES:
        path = directory / candidate
        if path.is_file() and _is_azure_config(path):
            return path
    return None


def _search_path(start: Path) -> list[Path]:
    """``start`` and its parents, up to the home folder and not across a filesystem boundary."""
    home = Path.home().resolve()
    folders = []
    device = None
    for directory in (start, *start.parents):
        current = _device(directory)
        if current is None:
            break
        if device is not None and current != device:
            break
        device = current
        folders.append(directory)
        if directory == home:
            break
    return folders


def _device(directory: Path) -> int | None:
    """The device a folder is on (``None``: it cannot be read)."""
    try:
        return directory.stat().st_dev
    except OSError:
        return None


def find_config_file(path: str | os.PathLike[str] | None = None,
                     environ: Mapping[str, str] | None = None) -> Path | None:
    """Return the configuration file the search order above finds, or ``None``.

    Args:
        path: a file or folder to use instead of searching.
        environ: the environment (default ``os.environ``).

    Raises:
        StoreConfigError: ``path`` (or ``RUNLEDGER_CONFIG``) was given and holds no
            configuration file.
    """
    env = os.environ if environ is None else environ
    if path is not None:
        given = Path(path)
        if given.is_file():
            return given
        if given.is_dir():
            found = _find_in(given)
            if found:
                return found
        raise StoreConfigError(
            f"No runledger configuration file at {str(given)!r} "
            f"(looked for {', '.join(CONFIG_FILE_NAMES + AZURE_CONFIG_FILE_NAMES)})")
    env_path = env.get(CONFIG_ENV)
    if env_path:
        return find_config_file(env_path, env)
    for directory in _search_path(Path.cwd().resolve()):
        found = _find_in(directory)
        if found:
            return found
    return None


def _read_file(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8") or "{}")
    except (OSError, json.JSONDecodeError) as error:
        raise StoreConfigError(f"Cannot read configuration file {str(file)!r}: {error}") \
            from error
    if not isinstance(data, dict):
        raise StoreConfigError(f"Configuration file {str(file)!r} must hold a JSON object")
    return data


def _positive(env: Mapping[str, str], name: str, default: float, kind: type) -> Any:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        word = "a positive whole number" if kind is int else "a positive number of seconds"
        raise StoreConfigError(f"{name} must be {word}, not {raw!r}")
    return value


def _text(data: Mapping[str, Any], key: str, file: Path | None) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise StoreConfigError(
            f"Configuration file {str(file)!r}: {key} must be a string, not {value!r}")
    return value


def resolve_settings(store: str | StoreConfig | None = None, *, name: str | None = None,
                     config_path: str | os.PathLike[str] | None = None, search: bool = True,
                     environ: Mapping[str, str] | None = None,
                     subscription_id: str | None = None, resource_group: str | None = None,
                     location: str | None = None) -> LedgerSettings:
    """Resolve a workspace's settings (see the module docstring for the sources and order).

    Args:
        store: a store URL or parsed store; when given, no configuration file is read.
        name: the workspace's name (default: the file's, else ``"default"``).
        config_path: a configuration file or folder (``Workspace.from_config(path)``).
        search: look for a configuration file when neither ``store`` nor ``config_path`` is
            given.
        environ: the environment (default ``os.environ``).
        subscription_id: the Azure ML subscription id (over the file's).
        resource_group: the Azure ML resource group (over the file's).
        location: the Azure ML location (over the file's).

    Raises:
        StoreConfigError: a bad store URL, configuration file or environment variable.
    """
    env = os.environ if environ is None else environ
    synchronous = env.get(SQLITE_SYNCHRONOUS_ENV) or None
    file: Path | None = None
    data: dict[str, Any] = {}
    if isinstance(store, StoreConfig):
        parsed = store
    elif store is not None:
        parsed = parse_store_url(store, synchronous=synchronous)
    else:
        if config_path is not None or search:
            file = find_config_file(config_path, env)
        base = Path.cwd()
        if file is not None:
            data = _read_file(file)
            base = (file.parent.parent if file.parent.name in (".runledger", ".azureml")
                    else file.parent)
        url = env.get(STORE_ENV) or data.get("store") or default_store_url(base)
        parsed = parse_store_url(url, relative_to=base, synchronous=synchronous)
    return LedgerSettings(
        name=name or str(data.get("name") or data.get("workspace_name") or "default"),
        store=parsed, config_file=file, user=env.get(USER_ENV) or None,
        flush_interval=float(_positive(env, FLUSH_INTERVAL_ENV, DEFAULT_FLUSH_INTERVAL, float)),
        metric_batch=int(_positive(env, METRIC_BATCH_ENV, DEFAULT_METRIC_BATCH, int)),
        subscription_id=subscription_id or _text(data, "subscription_id", file),
        resource_group=resource_group or _text(data, "resource_group", file),
        location=location or _text(data, "location", file))
