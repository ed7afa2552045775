"""Store selection: which database holds a ledger, from a URL.

Store URLs:

- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` -- an embedded SQLite file (the
  default is ``./.runledger/ledger.db``). Query options: ``synchronous=NORMAL|FULL``
  (durability, see ``ledger.persistence.sqlite``), ``timeout=SECONDS`` (how long a writer waits
  for another's lock; default 60).
- ``memory://`` -- an in-process SQLite database that vanishes with the process (tests, notebooks).
- ``postgresql://user[:password]@host[:port]/dbname[?schema=NAME]`` -- a PostgreSQL database shared
  by many processes or hosts (needs the ``postgres`` extra). Query options: ``schema``,
  ``pool_size``, ``max_overflow``, ``connect_timeout``, ``statement_timeout=SECONDS`` (default
  300) and ``lock_timeout=SECONDS`` (default 60): no statement runs, or waits for a lock, longer
  (``0``: no limit).

Every store takes ``files=FOLDER_OR_URL`` (URL-encoded): run file contents then go to that folder
or object store through fsspec (the ``files`` extra) instead of the database; the events naming
the files stay in the database.

The URL is taken, in this order, from: the ``store=`` argument, the ``RUNLEDGER_STORE`` environment
variable, a configuration file, else the embedded default (resolved by ``ledger.config``; this
module reads no environment).
"""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

from ledger.domain.errors import StoreConfigError
from ledger.domain.names import DEFAULT_DB_NAME, DEFAULT_STORE_DIR

POSTGRES_INSTALL_HINT = "pip install 'runledger-ml[postgres]'"


@attrs.frozen
class StoreConfig:
    """A parsed store URL and the eventsourcing environment it stands for.

    Attributes:
        url: the URL as given (passwords included; use ``display_url`` to show it).
        kind: ``"sqlite"``, ``"memory"`` or ``"postgresql"``.
        env: the eventsourcing environment (``PERSISTENCE_MODULE``, ``SQLITE_DBNAME``...).
        path: the SQLite file, for ``sqlite``.
        files: where run file contents go when not in the database (the ``files=`` option: a
            folder or an fsspec URL such as ``s3://bucket/prefix``; the ``files`` extra).
    """

    url: str
    kind: str
    env: dict[str, str]
    path: Path | None = None
    files: str | None = None

    @property
    def display_url(self) -> str:
        """The URL with any password masked."""
        parts = urlsplit(self.url)
        if parts.password:
            return self.url.replace(f":{parts.password}@", ":***@", 1)
        return self.url

    @property
    def lock_timeout(self) -> float:
        """Seconds any call may wait, in total, for another process's lock before ``StoreError``
        (SQLite's ``?timeout=``, PostgreSQL's ``?lock_timeout=``; 60 by default)."""
        text = self.env.get("SQLITE_LOCK_TIMEOUT") or self.env.get("POSTGRES_LOCK_TIMEOUT")
        return float(text) if text else 60.0

    @property
    def is_sql_file(self) -> bool:
        """True for an SQLite file (not in memory)."""
        return self.kind == "sqlite"


def default_store_url(base: Path | None = None) -> str:
    """Return the URL of the embedded default store, in ``./.runledger/`` of ``base`` or cwd."""
    directory = (base or Path.cwd()) / DEFAULT_STORE_DIR
    return f"sqlite:///{directory / DEFAULT_DB_NAME}"


def parse_store_url(url: str, relative_to: Path | None = None,
                    synchronous: str | None = None) -> StoreConfig:
    """Parse a store URL.

    Args:
        url: the URL (see the module docstring).
        relative_to: the folder relative SQLite paths are resolved against (default: cwd).
        synchronous: SQLite's ``synchronous`` when the URL does not set it (default ``NORMAL``;
            ``ledger.config`` passes ``RUNLEDGER_SQLITE_SYNCHRONOUS``).

    Returns:
        The store configuration.

    Raises:
        StoreConfigError: the URL's scheme or options are not understood.
    """
    if not isinstance(url, str) or not url.strip():
        raise StoreConfigError(f"A store URL must be a non-empty string, not {url!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    files = options.pop("files", None) or None
    if files is not None and "://" not in files and not Path(files).is_absolute():
        files = str((relative_to or Path.cwd()) / files)
    config = _parse(url, parts, scheme, options, relative_to, synchronous)
    return attrs.evolve(config, files=files) if files else config


def _parse(url: str, parts: Any, scheme: str, options: dict[str, str],
           relative_to: Path | None, synchronous: str | None) -> StoreConfig:
    if scheme == "memory":
        name = f"file:runledger-{uuid.uuid4().hex}?mode=memory&cache=shared"
        return StoreConfig(url=url, kind="memory", env={
            "PERSISTENCE_MODULE": "ledger.persistence.sqlite:LedgerSQLiteFactory",
            "SQLITE_DBNAME": name,
        })
    if scheme == "sqlite":
        raw = unquote(parts.path)
        if parts.netloc:
            raise StoreConfigError(
                f"SQLite URLs have three slashes then a path (sqlite:///ledger.db), not {url!r}")
        if raw.startswith("//"):
            path = Path(raw[1:])
        else:
            path = Path(raw[1:] if raw.startswith("/") else raw)
            if not path.is_absolute():
                path = (relative_to or Path.cwd()) / path
        if not raw.strip("/"):
            raise StoreConfigError(f"SQLite URL {url!r} names no file")
        synchronous = options.pop("synchronous", None) or synchronous or "NORMAL"
        timeout = options.pop("timeout", "60")
        if options:
            raise StoreConfigError(
                f"Unknown SQLite store option(s) {sorted(options)} in {url!r}; "
                "known: synchronous, timeout")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreConfigError(
                f"synchronous must be NORMAL or FULL (or OFF, EXTRA), not {synchronous!r}")
        if not timeout.isdigit():
            raise StoreConfigError(f"timeout must be a whole number of seconds, not {timeout!r}")
        return StoreConfig(url=url, kind="sqlite", path=path.resolve(), env={
            "PERSISTENCE_MODULE": "ledger.persistence.sqlite:LedgerSQLiteFactory",
            "SQLITE_DBNAME": str(path.resolve()),
            "SQLITE_SYNCHRONOUS": synchronous.upper(),
            "SQLITE_LOCK_TIMEOUT": timeout,
        })
    if scheme in ("postgresql", "postgres"):
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise StoreConfigError(f"PostgreSQL URL {url!r} names no database")
        if importlib.util.find_spec("psycopg") is None:
            raise StoreConfigError(
                f"PostgreSQL store {parts.scheme}://{parts.hostname or ''}/{dbname} needs the "
                f"postgres extra: {POSTGRES_INSTALL_HINT}")
        env = {
            "PERSISTENCE_MODULE": "ledger.persistence.postgres:LedgerPostgresFactory",
            "POSTGRES_DBNAME": dbname,
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
        }
        schema = options.pop("schema", None)
        if schema:
            env["POSTGRES_SCHEMA"] = schema
        for key in list(options):
            if key in ("pool_size", "max_overflow", "connect_timeout", "lock_timeout",
                       "statement_timeout"):
                if key.endswith("timeout") and not options[key].isdigit():
                    raise StoreConfigError(
                        f"{key} must be a whole number of seconds, not {options[key]!r}")
                env["POSTGRES_" + key.upper()] = options.pop(key)
        if options:
            raise StoreConfigError(
                f"Unknown PostgreSQL store option(s) {sorted(options)} in {url!r}")
        return StoreConfig(url=url, kind="postgresql", env=env)
    raise StoreConfigError(
        f"Unknown store URL {url!r}: use sqlite:///path.db, memory:// or "
        "postgresql://user@host:port/db")
