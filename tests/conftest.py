"""Shared fixtures: every contract test runs once per backend.

``store_url`` is parametrised over the backends: ``memory`` (an in-process SQLite database) and
``sqlite`` (a file in a temporary folder). PostgreSQL joins them in ``tests/postgres.py``'s
fixture when the server at 127.0.0.1:5432 is reachable; under CI (``CI=true``) it must be.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

BACKENDS = ["memory", "sqlite"]


def make_store_url(backend: str, tmp_path: Path) -> str:
    """Return a fresh, empty store URL of the given backend."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    raise ValueError(backend)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> str:
    """A fresh, empty store of the backend under test."""
    return make_store_url(backend, tmp_path)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run each test in its own folder with no ledger configuration from the environment."""
    for name in ("RUNLEDGER_STORE", "RUNLEDGER_CONFIG", "RUNLEDGER_USER"):
        monkeypatch.delenv(name, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield


def under_ci() -> bool:
    """True when running under CI, where no PostgreSQL test may skip."""
    return os.environ.get("CI", "").lower() == "true"
