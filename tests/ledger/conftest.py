"""Fixtures of the SDK contract suite (``tests/ledger``).

Every fixture builds on the shared ``store_url`` fixture (``tests/conftest.py``), so each contract
test runs once per backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from ledger_contract import open_reader

from ledger import Experiment, Workspace
from ledger.application import LedgerApplication


@pytest.fixture
def ws(store_url: str) -> Workspace:
    """A workspace on a fresh, empty store of the backend under test."""
    return Workspace(store=store_url)


@pytest.fixture
def exp(ws: Workspace) -> Experiment:
    """An experiment of the fresh workspace."""
    return Experiment(workspace=ws, name="contract")


@pytest.fixture
def reader(ws: Workspace) -> Iterator[Callable[[], LedgerApplication]]:
    """A factory of independent applications on the workspace's store (closed at teardown)."""
    opened: list[LedgerApplication] = []

    def open_one() -> LedgerApplication:
        ws.flush()
        app = open_reader(ws)
        opened.append(app)
        return app

    yield open_one
    for app in opened:
        app.close()


@pytest.fixture
def no_leftover_supervisors() -> Iterator[None]:
    """After the test, every script supervisor this process started must have exited (those
    still running after 15 s are killed, and the test fails)."""
    import os
    import signal
    import time

    from ledger.sdk.script import running_supervisors

    yield
    deadline = time.monotonic() + 15
    while running_supervisors() and time.monotonic() < deadline:
        time.sleep(0.05)
    leftover = running_supervisors()
    for pid in leftover.values():
        os.killpg(pid, signal.SIGKILL)
    assert not leftover, f"supervisors still running after the test: {leftover}"
