"""Fixtures of the importer tests: real MLflow tracking stores, written by MLflow itself.

Creating an MLflow SQLite store runs MLflow's schema migrations (tens of seconds on a busy
machine), so each kind of store is populated once per session and copied for every test.
MLflow is an optional dependency: without it these tests skip, saying why; under CI
(``CI=true``, where ``.[dev]`` installs it) they fail instead.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import under_ci
from tests.importers.mlflow_stores import populate

STORE_KINDS = ["sqlite", "file"]


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


def tracking_uri(kind: str, folder: Path) -> str:
    """The tracking URI of an MLflow store of ``kind`` kept in ``folder``."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'mlflow.db'}"
    return (folder / "mlruns").as_uri()


def mlflow_client(uri: str) -> Any:
    """MLflow's client on a store (its file store needs opting in since MLflow 3)."""
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def dispose_engines() -> None:
    """Close the SQLAlchemy engines MLflow caches per URI (else: unclosed database warnings)."""
    with contextlib.suppress(Exception):
        from mlflow.store.db import utils

        for engine in getattr(utils, "_engine_cache", {}).values():
            engine.dispose()
    gc.collect()


@pytest.fixture(scope="session")
def mlflow_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[
        str, str]]]:
    """One populated store folder per kind (made on first use), with its runs' MLflow ids."""
    return {}


@pytest.fixture(params=STORE_KINDS)
def mlflow_store(request: pytest.FixtureRequest, mlflow_templates: dict[str, Any],
                 tmp_path_factory: pytest.TempPathFactory,
                 tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh copy of a populated MLflow store: ``(tracking URI, MLflow run ids by name)``."""
    require_mlflow()
    kind = str(request.param)
    if kind not in mlflow_templates:
        folder = tmp_path_factory.mktemp(f"mlflow-{kind}")
        previous = Path.cwd()
        os.chdir(folder)  # MLflow puts a SQLite store's default artifact root in the cwd
        try:
            ids = populate(mlflow_client(tracking_uri(kind, folder)))
        finally:
            os.chdir(previous)
        dispose_engines()
        mlflow_templates[kind] = (folder, ids)
    template, ids = mlflow_templates[kind]
    copy = tmp_path / f"mlflow-{kind}"
    shutil.copytree(template, copy)
    yield tracking_uri(kind, copy), dict(ids)
    dispose_engines()
