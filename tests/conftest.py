"""Shared fixtures: every contract test runs once per backend.

``store_url`` is parametrised over the backends: ``memory`` (an in-process SQLite database),
``sqlite`` (a file in a temporary folder) and ``postgresql`` (a fresh schema ``t_<hex>`` of the
database ``test`` on the server at 127.0.0.1:5432, dropped after the test). When that server is not
reachable the ``postgresql`` cases skip, saying why; under CI (``CI=true``) they fail instead.
``RUNLEDGER_TEST_POSTGRES`` names another server/database (a ``postgresql://`` URL without
``?schema=``).

A test that needs a store several processes can open (a CLI command, a second process, a crash)
requests ``shared_store_url`` instead of ``store_url``: it is then generated for ``sqlite`` and
``postgresql`` only, not generated for ``memory`` only to be skipped.
"""

from __future__ import annotations

import contextlib
import gc
import os
import uuid
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

BACKENDS = ["memory", "sqlite", "postgresql"]
# The stores that outlive a process and that several processes open at once.
SHARED_BACKENDS = ["sqlite", "postgresql"]
POSTGRES_ENV = "RUNLEDGER_TEST_POSTGRES"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"

# Schemas made by make_store_url() in this process: dropped when their test ends (store_url) or,
# for URLs made directly, at the end of the session.
_created_schemas: set[str] = set()


def under_ci() -> bool:
    """True when running under CI, where no PostgreSQL test may skip."""
    return os.environ.get("CI", "").lower() == "true"


def postgres_base_url() -> str:
    """The URL of the test database (no schema)."""
    return os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES


def _admin_connection(autocommit: bool = True) -> object:
    import psycopg

    return psycopg.connect(postgres_base_url(), autocommit=autocommit, connect_timeout=3)


@lru_cache(maxsize=1)
def postgres_unavailable() -> str | None:
    """Return why the PostgreSQL tests cannot run, or ``None`` when they can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]')"
    try:
        conn = _admin_connection()
    except Exception as error:
        return (f"PostgreSQL at {postgres_base_url()} is not reachable ({error}); start it with "
                "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
    conn.close()  # type: ignore[attr-defined]
    return None


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is unavailable (fail it under CI)."""
    reason = postgres_unavailable()
    if reason is None:
        return
    if under_ci():
        pytest.fail(f"CI=true and the PostgreSQL tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def make_store_url(backend: str, tmp_path: Path) -> str:
    """Return a fresh, empty store URL of the given backend.

    For ``postgresql`` a new schema is named (created by the first process opening the store) and
    dropped at the end of the test session at the latest (``store_url`` drops it at the end of
    its test).
    """
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    if backend == "postgresql":
        require_postgres()
        schema = "t_" + uuid.uuid4().hex[:16]
        _created_schemas.add(schema)
        return f"{postgres_base_url()}?schema={schema}"
    raise ValueError(backend)


def schema_of(url: str) -> str | None:
    """Return the ``?schema=`` of a PostgreSQL store URL (``None`` for other stores)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        return None
    return parse_qs(parts.query).get("schema", [None])[-1]


def close_sessions(url: str) -> None:
    """Close this process's open ledger sessions on ``url`` (their pools and threads)."""
    from ledger.sdk import session as session_module

    for session in list(session_module._live_sessions):
        if session.store.url == url:
            with contextlib.suppress(Exception):
                session.close()
    with session_module._sessions_lock:
        for key in [k for k, s in session_module._sessions.items() if s.store.url == url]:
            del session_module._sessions[key]


def drop_postgres_schema(schema: str, app_name: str | None = None) -> None:
    """Drop a test schema; first end the connections a test left open (``app_name``)."""
    conn = _admin_connection()
    try:
        if app_name:
            conn.execute(  # type: ignore[attr-defined]
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()", (app_name,))
        conn.execute(  # type: ignore[attr-defined]
            'DROP SCHEMA IF EXISTS "{}" CASCADE'.format(schema.replace('"', '""')))
    finally:
        conn.close()  # type: ignore[attr-defined]
    _created_schemas.discard(schema)


def backend_params(names: list[str]) -> list[object]:
    """The ``backend`` parameters of ``names``, the PostgreSQL one marked ``postgres``."""
    return [pytest.param(b, marks=[pytest.mark.postgres]) if b == "postgresql" else b
            for b in names]


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Generate a test requesting ``shared_store_url`` for the ``SHARED_BACKENDS`` only.

    A ``parametrize`` mark naming ``backend`` takes precedence over the fixture's own params; it
    is added before pytest's own hooks (``tryfirst``) read the marks.
    """
    if "shared_store_url" in metafunc.fixturenames and "backend" in metafunc.fixturenames:
        metafunc.definition.add_marker(pytest.mark.parametrize(
            "backend", backend_params(SHARED_BACKENDS), indirect=True))


@pytest.fixture(params=backend_params(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    name = str(request.param)
    if name == "postgresql":
        require_postgres()
    return name


@pytest.fixture
def store_url(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty store of the backend under test.

    On PostgreSQL every connection the test opens (in this process or the processes it starts)
    carries the application name ``rl_<schema>``; when the test ends its sessions are closed,
    connections it left open are ended and its schema is dropped.
    """
    url = make_store_url(backend, tmp_path)
    schema = schema_of(url)
    if schema is None:
        yield url
        return
    app_name = "rl_" + schema
    monkeypatch.setenv("PGAPPNAME", app_name)
    try:
        yield url
    finally:
        close_sessions(url)
        gc.collect()
        drop_postgres_schema(schema, app_name)


@pytest.fixture
def shared_store_url(store_url: str) -> str:
    """A fresh store several processes can open: a SQLite file or a PostgreSQL schema.

    Requesting it (directly or through another fixture) keeps the test from being generated for
    ``memory://``, whose database lives and dies in one process (``pytest_generate_tests``).
    """
    assert not store_url.startswith("memory"), "pytest_generate_tests left out memory://"
    return store_url


@pytest.fixture
def store_factory(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A maker of further fresh stores, of any backend, for tests needing two (export/import).

    ``store_factory("postgresql")`` skips (fails under CI) when PostgreSQL is unavailable. Each
    store's sessions are closed and its schema dropped when the test ends.
    """
    made: list[str] = []

    def make(backend: str) -> str:
        folder = tmp_path / f"store{len(made)}"
        folder.mkdir()
        url = make_store_url(backend, folder)
        made.append(url)
        return url

    yield make
    for url in made:
        close_sessions(url)
        schema = schema_of(url)
        if schema is not None:
            drop_postgres_schema(schema)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run each test in its own folder with no ledger configuration from the environment."""
    for name in ("RUNLEDGER_STORE", "RUNLEDGER_CONFIG", "RUNLEDGER_USER"):
        monkeypatch.delenv(name, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield


@pytest.fixture(scope="session", autouse=True)
def _drop_leftover_schemas() -> Iterator[None]:
    """Drop the PostgreSQL schemas of URLs made directly by ``make_store_url``."""
    yield
    for schema in sorted(_created_schemas):
        with contextlib.suppress(Exception):
            drop_postgres_schema(schema)
