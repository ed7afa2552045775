"""Helpers of the Studio tests (and of benchmarks/bench_studio.py): a ledger with hostile names,
a Studio served by uvicorn in a thread, a watched browser page."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

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

    def __init__(self, store: str, *, read_only: bool = False,
                 digests: Any = ()) -> None:
        import uvicorn

        from ledger import Workspace
        from ledger.studio.app import create_app
        from ledger.studio.security import allowed_hosts

        self.port = free_port()
        self.workspace = Workspace(store=store)
        app = create_app(self.workspace, read_only=read_only,
                         hosts=allowed_hosts("127.0.0.1", self.port), digests=digests)
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

    hostile = Experiment(ws, "hostile")  # experiment names cannot hold markup (validated)
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



def missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not any(Path(p).exists() for p in CHROMIUM_PATHS) and not shutil.which("chromium"):
        return ("Debian's chromium is not installed "
                "(apt-get install -y --no-install-recommends chromium)")
    return None


