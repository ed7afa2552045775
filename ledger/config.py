"""Workspace configuration files: where a ledger's store is, written down once for a project.

``Workspace.from_config(path=None)`` looks for, in this order:

1. ``path`` if given: a configuration file, or a folder holding ``runledger.json`` or
   ``.runledger/config.json``;
2. the ``RUNLEDGER_CONFIG`` environment variable (a file);
3. ``runledger.json``, then ``.runledger/config.json``, in the current folder and then in each of
   its parents -- stopping, as git's discovery does, after the user's home folder (a file above
   home, in ``/tmp`` or ``/``, is never picked up from a folder inside home) and at a filesystem
   boundary (a parent on another device is not searched).

The file found is named by ``Workspace.__repr__`` and, with ``--verbose``, on the CLI's standard
error: a file found in a parent folder is never used silently.

A configuration file is JSON: ``{"store": "<store URL>", "name": "<workspace name>"}``; both keys
are optional, and a relative SQLite path in it is relative to the file's own folder (for
``.runledger/config.json``, relative to the folder holding ``.runledger/``). When no file is found
the embedded default ``./.runledger/ledger.db`` is used. ``RUNLEDGER_STORE`` overrides the store of
any file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from ledger.domain.errors import StoreConfigError
from ledger.persistence.store import STORE_ENV, StoreConfig, default_store_url, parse_store_url

CONFIG_FILE_NAMES = ("runledger.json", ".runledger/config.json")
CONFIG_ENV = "RUNLEDGER_CONFIG"


@attrs.frozen
class WorkspaceConfig:
    """The name and store of a workspace, and the file they came from (if any)."""

    name: str
    store: StoreConfig
    source: Path | None


def _find_in(directory: Path) -> Path | None:
    for candidate in CONFIG_FILE_NAMES:
        path = directory / candidate
        if path.is_file():
            return path
    return None


def find_config_file(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the configuration file the search order above finds, or ``None``.

    Raises:
        StoreConfigError: ``path`` was given and holds no configuration file.
    """
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
            f"(looked for {' and '.join(CONFIG_FILE_NAMES)})")
    env_path = os.environ.get(CONFIG_ENV)
    if env_path:
        return find_config_file(env_path)
    here = Path.cwd().resolve()
    home = _home()
    device = _device(here)
    for directory in (here, *here.parents):
        if _device(directory) != device:
            break  # a filesystem boundary
        found = _find_in(directory)
        if found:
            return found
        if directory == home:
            break
    return None


def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (KeyError, RuntimeError, OSError):
        return None


def _device(directory: Path) -> int | None:
    try:
        return directory.stat().st_dev
    except OSError:
        return None


def load_config(path: str | os.PathLike[str] | None = None) -> WorkspaceConfig:
    """Load the workspace configuration (see the module docstring for the search order).

    Raises:
        StoreConfigError: the file is not valid JSON or its store URL is not understood.
    """
    file = find_config_file(path)
    data: dict[str, Any] = {}
    base = Path.cwd()
    if file is not None:
        try:
            data = json.loads(file.read_text(encoding="utf-8") or "{}")
        except (OSError, json.JSONDecodeError) as error:
            raise StoreConfigError(f"Cannot read configuration file {str(file)!r}: {error}") \
                from error
        if not isinstance(data, dict):
            raise StoreConfigError(f"Configuration file {str(file)!r} must hold a JSON object")
        base = file.parent.parent if file.parent.name == ".runledger" else file.parent
    url = os.environ.get(STORE_ENV) or data.get("store") or default_store_url(base)
    store = parse_store_url(url, relative_to=base)
    name = str(data.get("name") or data.get("workspace_name") or "default")
    return WorkspaceConfig(name=name, store=store, source=file)
