"""Fixtures of the scale tests (many writers, crashes, export/import)."""

from __future__ import annotations

import pytest


@pytest.fixture
def shared_backend(backend: str) -> str:
    """Backends several processes can open (an in-memory store lives in one process)."""
    if backend == "memory":
        pytest.skip("a memory:// store cannot be shared between processes")
    return backend
