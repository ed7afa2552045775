"""Fixtures of the importer tests: real MLflow tracking stores, written by MLflow itself.

Creating an MLflow SQL store runs MLflow's schema migrations (tens of seconds on a busy
machine), so each kind of store is populated once per session and copied for every test: an
MLflow SQLite store and ``mlruns`` folder as folders, an MLflow store on PostgreSQL as a
database of its own (``mlflow_t_<hex>`` on the test server, copied with ``CREATE DATABASE ...
TEMPLATE``, every one dropped at the end). MLflow is an optional dependency: without it these
tests skip, saying why, and so do the PostgreSQL stores when the server is unreachable; under
CI (``CI=true``, where ``.[dev]`` installs it and a server runs) they fail instead.

Artifacts: every copy of a store shares the template's artifact folder (MLflow records absolute
artifact URIs), so a test that logs artifacts logs them to a run it creates itself.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _admin_connection, postgres_base_url, require_postgres, under_ci
from tests.importers.mlflow_stores import populate

STORE_KINDS = ["sqlite", "file", "postgresql"]


def require_mlflow() -> None:
    """Skip the calling test when MLflow's client is not installed (fail it under CI)."""
    try:
        import alembic  # noqa: F401
        import mlflow  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as error:
        reason = (f"MLflow's client is not installed ({error}): "
                  "pip install -e '.[mlflow]' (the dev extra includes it)")
        if under_ci():
            pytest.fail(f"CI=true and the MLflow importer tests cannot run: {reason}",
                        pytrace=False)
        pytest.skip(reason)


def tracking_uri(kind: str, folder: Path, database: str | None = None) -> str:
    """The tracking URI of an MLflow store of ``kind`` kept in ``folder`` (or, on PostgreSQL,
    in ``database``: as a user writes it, ``postgresql://``, without naming a driver)."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'mlflow.db'}"
    if kind == "postgresql":
        assert database is not None
        base = postgres_base_url()
        return base[:base.rindex("/") + 1] + database
    return (folder / "mlruns").as_uri()


def mlflow_client(uri: str) -> Any:
    """MLflow's client on a store (its file store needs opting in since MLflow 3; on
    PostgreSQL, the driver the importer picks)."""
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    from ledger.importers.mlflow import client_uri

    return MlflowClient(tracking_uri=client_uri(uri))


def _admin(sql: str) -> None:
    conn: Any = _admin_connection()
    try:
        conn.execute(sql)
    finally:
        conn.close()


def create_database(template: str | None = None) -> str:
    """Create an empty database (or a copy of ``template``) on the test server; its name."""
    name = "mlflow_t_" + uuid.uuid4().hex[:16]
    if template is None:
        _admin(f'CREATE DATABASE "{name}"')
    else:
        # A copy needs the template free of sessions: MLflow's pool may keep one open.
        _admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               f"WHERE datname = '{template}' AND pid <> pg_backend_pid()")
        _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def drop_database(name: str) -> None:
    """Drop a database of these tests, closing any session still on it."""
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dispose_engines() -> None:
    """Close the SQLAlchemy engines MLflow caches per URI (else: unclosed database warnings)."""
    with contextlib.suppress(Exception):
        from mlflow.store.db import utils

        for engine in getattr(utils, "_engine_cache", {}).values():
            engine.dispose()
    gc.collect()


@pytest.fixture(scope="session")
def mlflow_templates() -> Iterator[dict[str, tuple[Path, dict[str, str], str | None]]]:
    """One populated store per kind (made on first use): its folder, its runs' MLflow ids and,
    on PostgreSQL, its database (dropped at the end of the session)."""
    templates: dict[str, tuple[Path, dict[str, str], str | None]] = {}
    yield templates
    dispose_engines()
    for _folder, _ids, database in templates.values():
        if database is not None:
            drop_database(database)


@pytest.fixture(params=STORE_KINDS)
def mlflow_store(request: pytest.FixtureRequest, mlflow_templates: dict[str, Any],
                 tmp_path_factory: pytest.TempPathFactory,
                 tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh copy of a populated MLflow store: ``(tracking URI, MLflow run ids by name)``."""
    require_mlflow()
    kind = str(request.param)
    if kind == "postgresql":
        require_postgres()
    if kind not in mlflow_templates:
        folder = tmp_path_factory.mktemp(f"mlflow-{kind}")
        database = create_database() if kind == "postgresql" else None
        previous = Path.cwd()
        os.chdir(folder)  # MLflow puts a SQL store's default artifact root in the cwd
        try:
            ids = populate(mlflow_client(tracking_uri(kind, folder, database)))
        except BaseException:
            if database is not None:
                dispose_engines()
                drop_database(database)
            raise
        finally:
            os.chdir(previous)
            dispose_engines()
        mlflow_templates[kind] = (folder, ids, database)
    template, ids, database = mlflow_templates[kind]
    if database is not None:
        copy_db = create_database(template=database)
        try:
            yield tracking_uri(kind, template, copy_db), dict(ids)
        finally:
            dispose_engines()
            drop_database(copy_db)
        return
    copy = tmp_path / f"mlflow-{kind}"
    shutil.copytree(template, copy)
    yield tracking_uri(kind, copy), dict(ids)
    dispose_engines()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Pair the two axes instead of crossing them: every MLflow source on the SQLite ledger, and
    every ledger backend from the MLflow SQLite source.

    The importer reads only through MLflow's client and writes only through the SDK, so a source
    and a backend do not meet below that line; the full cross product (9 stores per test) tripled
    the importer tests' time for no case the pairs miss.
    """
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        source, backend = params.get("mlflow_store"), params.get("backend")
        if source not in (None, "sqlite") and backend not in (None, "sqlite"):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
