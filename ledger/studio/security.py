"""The Studio's guards: which hosts and methods are served, the security headers of every answer,
and the same-origin and CSRF checks of the one write (saving a view).

Why each exists: a page on another site can make the browser send requests to 127.0.0.1 (so
writes need a same-origin ``Origin`` and a token only our own pages carry) and can point its own
host name at 127.0.0.1 (DNS rebinding: so a ``Host`` we do not serve is refused).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
READ_METHODS = frozenset({"GET", "HEAD"})


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """Return the ``Host`` header values the Studio answers to.

    Args:
        host: the address it is bound to (``--host``).
        port: its port.

    Returns:
        The loopback names with the port, and the bound host with the port unless it is a
        wildcard address (then only the loopback names: serve other names with ``--host NAME``).
    """
    names = set(LOOPBACK_NAMES)
    if host not in ("0.0.0.0", "::", ""):
        names.add(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    return frozenset(f"{name}:{port}" for name in names) | frozenset(names if port == 80 else ())


class Guard:
    """ASGI middleware: refuse foreign hosts and unexpected methods; add security headers.

    Args:
        app: the application.
        hosts: the ``Host`` values served (``None``: any, for tests of the pages alone).
        write_paths: the paths that may be POSTed to.
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str] | None,
                 write_paths: Iterable[str]) -> None:
        self.app = app
        self.hosts = None if hosts is None else frozenset(h.lower() for h in hosts)
        self.write_paths = frozenset(write_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                present = {name.lower() for name, _value in message["headers"]}
                message["headers"] = list(message["headers"]) + [
                    pair for pair in SECURITY_HEADERS if pair[0] not in present]
            await send(message)

        host = headers.get("host", "").lower()
        if self.hosts is not None and host not in self.hosts:
            response: Any = PlainTextResponse("Unknown host: this Studio answers on "
                                              "127.0.0.1 and localhost only.\n", 421)
            await response(scope, receive, send_with_headers)
            return
        method = scope["method"]
        if method not in READ_METHODS and not (method == "POST"
                                               and scope["path"] in self.write_paths):
            response = PlainTextResponse("Method not allowed: the Studio is read-only.\n", 405,
                                         headers={"Allow": "GET, HEAD"})
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def same_origin(headers: Headers) -> bool:
    """Whether a write request comes from one of our own pages.

    Browsers send ``Origin`` with every POST (and ``Sec-Fetch-Site`` in recent ones); a request
    without ``Origin`` is refused, so that only our own form can write.

    Args:
        headers: the request's headers (its ``Host`` has already been checked).

    Returns:
        True when ``Origin`` is ``http://<Host>`` and ``Sec-Fetch-Site`` (if sent) is
        ``same-origin``.
    """
    origin = headers.get("origin")
    host = headers.get("host", "")
    if not origin or origin.lower() != f"http://{host}".lower():
        return False
    site = headers.get("sec-fetch-site")
    return site is None or site == "same-origin"


class CsrfTokens:
    """The token our forms carry: one random secret per Studio process, compared in constant
    time (a cross-origin page cannot read our pages, so it cannot know it)."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(32)

    def check(self, value: str | None) -> bool:
        """Whether a form's token is ours."""
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())
