"""Fixtures of the scale tests (many writers, crashes, export/import)."""

from __future__ import annotations

import pytest


@pytest.fixture
def shared_backend(backend: str, shared_store_url: str) -> str:
    """The name of a backend several processes can open (never ``memory``: through
    ``shared_store_url`` the test is generated for SQLite and PostgreSQL only)."""
    return backend
