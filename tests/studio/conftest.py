"""Fixtures of the Studio tests: a ledger with hostile names, a real server (uvicorn in a thread)
per module, and one headless Chromium per session.

The browser tests need Debian's Chromium and Playwright; without them they skip with the reason,
except under CI=true, where they fail (as the PostgreSQL tests do).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the studio extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the studio extra (uvicorn) is not installed")

CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS_ENV = "RUNLEDGER_STUDIO_SCREENSHOTS"

XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SCRIPT = "</script><script>alert(2)</script>"


def under_ci() -> bool:
    """True under CI, where the browser tests may not skip."""
    return os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningStudio:
    """A Studio served by uvicorn in a thread of this process."""

    def __init__(self, store: str, *, read_only: bool = False) -> None:
        import uvicorn

        from ledger import Workspace
        from ledger.studio.app import create_app
        from ledger.studio.security import allowed_hosts

        self.port = free_port()
        self.workspace = Workspace(store=store)
        app = create_app(self.workspace, read_only=read_only,
                         hosts=allowed_hosts("127.0.0.1", self.port))
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the Studio did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def build_ledger(store: str) -> dict[str, Any]:
    """A small ledger: an experiment with runs to filter and sort, children, metrics, a running
    run, and names, tags, properties and metric names that try to inject markup."""
    from ledger import Experiment, Workspace

    ws = Workspace(store=store)
    exp = Experiment(ws, "demo")
    ids: dict[str, Any] = {"runs": []}
    for i in range(12):
        run = exp.start_logging(display_name=f"train-{i:02d}", description=f"lr sweep {i}")
        run.tag("lr", ["0.1", "0.01", "0.001"][i % 3])
        if i % 4 == 0:
            run.tag("best")
        run.add_properties({"algo": "adam" if i % 2 else "sgd"})
        for step in range(20):
            run.log("loss", 1.0 / (1 + step) + i * 0.01, step=step)
            run.log("accuracy", 0.5 + step * 0.02, step=step)
        if i == 3:
            for c in range(2):
                child = run.child_run(name=f"fold-{c}")
                child.log("loss", 0.3 + c)
                child.complete()
        if i % 5 == 4:
            run.fail(error_details="diverged")
        elif i != 11:
            run.complete()
        ids["runs"].append(run.id)
    run.log_row("confusion", tp=5, fp=1)
    run.log_table("per_class", {"class": ["a", "b"], "f1": [0.8, 0.9]})
    ids["running"] = ids["runs"][-1]
    ids["with_children"] = ids["runs"][3]

    hostile = Experiment(ws, "hostile " + XSS_IMG)
    evil = hostile.start_logging(display_name=XSS_IMG + XSS_SCRIPT,
                                 description=XSS_SCRIPT)
    evil.tag(XSS_IMG, XSS_SCRIPT)
    evil.tag("note", XSS_IMG)
    evil.add_properties({"p": XSS_SCRIPT + XSS_IMG})
    evil.log(XSS_SCRIPT, 1.0)
    evil.log(XSS_SCRIPT, 2.0)
    evil.log(XSS_IMG, 0.5)
    evil.complete()
    ids["evil"] = evil.id
    ids["hostile"] = hostile.name

    big = Experiment(ws, "big-chart").start_logging(display_name="100k points")
    big.log_list("series", [float(i % 1000) for i in range(100_000)])
    big.complete()
    ids["big"] = big.id
    ws.flush()
    return ids


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


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not any(Path(p).exists() for p in CHROMIUM_PATHS) and not shutil.which("chromium"):
        return ("Debian's chromium is not installed "
                "(apt-get install -y --no-install-recommends chromium)")
    return None


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the whole session (skips, or fails under CI, without it)."""
    reason = _missing_browser()
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


GUARD_SCRIPT = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


class Watched:
    """A page with everything a test must see empty at its end: dialogs, CSP violations,
    requests to anywhere but 127.0.0.1, console errors and page errors."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.dialogs: list[str] = []
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.base = base

        def route(route: Any) -> None:
            url = route.request.url
            if url.startswith(("http://127.0.0.1:", "data:", "about:")):
                route.continue_()
            else:
                self.outside.append(url)
                route.abort()

        self.context.route("**/*", route)
        self.context.add_init_script(GUARD_SCRIPT)
        self.page = self.context.new_page()
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message),
                                               dialog.dismiss()))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: self.errors.append(message.text)
                     if message.type == "error" else None)

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def violations(self) -> list[str]:
        return list(self.page.evaluate("window.__violations || []"))

    def assert_clean(self) -> None:
        assert self.dialogs == []
        assert self.outside == []
        assert self.violations() == []
        assert self.errors == []

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(chromium: Any, studio: RunningStudio) -> Iterator[Watched]:
    """A fresh browser page on the module's Studio; it must end clean."""
    watched = Watched(chromium, studio.url)
    yield watched
    try:
        watched.assert_clean()
    finally:
        watched.close()
