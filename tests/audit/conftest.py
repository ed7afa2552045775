"""Fixtures of the tamper-evidence tests (helpers in ``audit_helpers``)."""

from __future__ import annotations

import pytest
from audit_helpers import RawLog

from ledger import Workspace


@pytest.fixture
def ws(store_url: str) -> Workspace:
    """A workspace on a fresh store of the backend under test."""
    return Workspace(store=store_url)


@pytest.fixture
def raw(ws: Workspace) -> RawLog:
    """SQL access to the workspace's tables."""
    return RawLog(ws)
