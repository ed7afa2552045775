"""Fixtures of the Studio tests: a ledger with hostile names, a real server (uvicorn in a thread)
per module, and one headless Chromium per session.

The browser tests need Debian's Chromium and Playwright; without them they skip with the reason,
except under CI=true, where they fail (as the PostgreSQL tests do).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the studio extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the studio extra (uvicorn) is not installed")

from studio_helpers import (
    CHROMIUM_ARGS,
    CHROMIUM_PATHS,
    SCREENSHOTS_ENV,
    RunningStudio,
    Watched,
    build_ledger,
    missing_browser,
    under_ci,
)


@pytest.fixture(scope="module")
def studio_ledger(tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[tuple[str, dict[str, Any]]]:
    """A SQLite ledger built once per module, and the ids of its interesting runs (the
    process's session on it is closed at the end of the module)."""
    from ledger import Workspace

    folder = tmp_path_factory.mktemp("studio")
    store = f"sqlite:///{folder / 'ledger.db'}"
    yield store, build_ledger(store)
    Workspace(store=store).ledger.close()


@pytest.fixture(scope="module")
def studio(studio_ledger: tuple[str, dict[str, Any]]) -> Iterator[RunningStudio]:
    """The Studio over the module's ledger, on a free port of 127.0.0.1."""
    running = RunningStudio(studio_ledger[0])
    yield running
    running.stop()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where page screenshots go: $RUNLEDGER_STUDIO_SCREENSHOTS, else a temporary folder."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the whole session (skips, or fails under CI, without it)."""
    reason = missing_browser()
    if reason is not None:
        if under_ci():
            pytest.fail(f"CI=true and the browser tests cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    executable = next((p for p in CHROMIUM_PATHS if Path(p).exists()), shutil.which("chromium"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, studio: RunningStudio) -> Iterator[Watched]:
    """A fresh browser page on the module's Studio; it must end clean."""
    watched = Watched(chromium, studio.url)
    yield watched
    try:
        watched.assert_clean()
    finally:
        watched.close()
