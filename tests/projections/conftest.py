"""Fixtures of the projection tests: a ledger driven through the application layer, its index."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from projection_oracle import Driver

from projections.index import RunIndex


@pytest.fixture
def driver(store_url: str) -> Iterator[Driver]:
    """A fresh ledger of the backend under test."""
    drv = Driver(store_url)
    yield drv
    drv.app.close()


@pytest.fixture
def index(driver: Driver) -> Iterator[RunIndex]:
    """The run index of the ledger (small pages, so that tests cross page boundaries)."""
    idx = RunIndex(driver.app, page_size=7)
    yield idx
    idx.close()
