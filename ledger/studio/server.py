"""Serving the Studio with uvicorn until Ctrl-C."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ledger.sdk.workspace import Workspace
from ledger.studio.app import create_app
from ledger.studio.security import allowed_hosts

if TYPE_CHECKING:
    from ledger.domain.digest import Digest


def studio_url(host: str, port: int) -> str:
    """The URL to open for a Studio bound to ``host``:``port`` (loopback for a wildcard)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def serve(workspace: Workspace, *, host: str = "127.0.0.1", port: int = 5000,
          read_only: bool = False, announce: Callable[[str], None] = print,
          digests: Sequence[Digest] = ()) -> None:
    """Serve the Studio until interrupted.

    Args:
        workspace: the ledger to show.
        host: the address to bind (loopback by default: nothing else can reach it).
        port: the port.
        read_only: refuse saving views too.
        announce: called with the URL once the server listens.
        digests: digests to verify the ledger against (shown on run pages).
    """
    import uvicorn

    app = create_app(workspace, read_only=read_only, hosts=allowed_hosts(host, port),
                     digests=digests)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", server_header=False, proxy_headers=False)
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets: object = None) -> None:
        await original_startup(sockets=sockets)  # type: ignore[arg-type]
        if server.started:
            announce(f"runledger Studio: {studio_url(host, port)}  (Ctrl-C to stop)")

    server.startup = startup  # type: ignore[method-assign]
    server.run()
