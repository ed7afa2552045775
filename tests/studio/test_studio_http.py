"""The Studio over HTTP, as an attacker or a careless proxy would talk to it: hosts, methods,
headers, traversal, cross-origin writes, escaping, and a ledger left as it was by browsing."""

from __future__ import annotations

import hashlib
import http.client
import re
import sqlite3
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from studio_helpers import XSS_IMG, XSS_SCRIPT, RunningStudio

from ledger.studio.app import experiment_url, run_url


def request(studio: RunningStudio, method: str, path: str, body: str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """Send a raw request (the path as given: no normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", studio.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        all_headers = {"Host": f"127.0.0.1:{studio.port}", **(headers or {})}
        if body is not None:
            all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            all_headers["Content-Length"] = str(len(body.encode()))
        for key, value in all_headers.items():
            connection.putheader(key, value)
        connection.endheaders(body.encode() if body is not None else None)
        response = connection.getresponse()
        text = response.read().decode("utf-8", errors="replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text
    finally:
        connection.close()


def pages(studio: RunningStudio, ids: dict[str, Any]) -> list[str]:
    evil, big = ids["evil"], ids["big"]
    return ["/", experiment_url("demo"), experiment_url(ids["hostile"]),
            experiment_url("demo") + "?sort=-metric:loss.last&col=metric:loss.min&col=tag:lr",
            run_url(ids["with_children"]), run_url(evil), run_url(ids["running"]),
            f"/compare?run={quote(evil)}&run={quote(big)}", f"/api/metrics?run={quote(evil)}",
            f"/api/run?run={quote(evil)}", f"/api/status?run={quote(evil)}",
            "/static/studio.js", "/static/vendor/uplot/uPlot.iife.min.js", "/no/such/page"]


def test_every_answer_carries_the_security_headers(studio: RunningStudio,
                                                    studio_ledger: tuple[str, Any]) -> None:
    for path in pages(studio, studio_ledger[1]):
        status, headers, _body = request(studio, "GET", path)
        assert status in (200, 404), path
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff", path


def test_a_foreign_host_is_refused(studio: RunningStudio) -> None:
    for host in ("evil.example", f"evil.example:{studio.port}", "127.0.0.1.evil.example",
                 "localhost:1"):
        status, _headers, body = request(studio, "GET", "/", headers={"Host": host})
        assert status == 421, host
        assert "Experiments" not in body
    assert request(studio, "GET", "/", headers={"Host": f"localhost:{studio.port}"})[0] == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_methods_other_than_get_are_refused_outside_the_view_endpoint(
        studio: RunningStudio, method: str) -> None:
    status, headers, _body = request(studio, method, experiment_url("demo"), body="")
    assert status == 405
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    if method != "POST":
        assert request(studio, method, "/views", body="")[0] == 405


TRAVERSALS = [
    "/static/../../../../etc/passwd", "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static//etc/passwd",
    "//etc/passwd", "/static/%2e%2e%2f%2e%2e%2fapp.py", "/static/../app.py",
    "/static/studio.js%00.html", "/static/..\\..\\app.py",
]


def test_traversal_on_static_files_and_logs_is_refused(studio: RunningStudio,
                                                        studio_ledger: tuple[str, Any]) -> None:
    for path in TRAVERSALS:
        status, _headers, body = request(studio, "GET", path)
        assert status in (400, 404), path
        assert "root:" not in body and "create_app" not in body, path
    run = studio_ledger[1]["running"]
    for name in ("../../../../etc/passwd", "/etc/passwd", "..%2f..%2fetc%2fpasswd",
                 "azureml-logs/../../../etc/passwd", "%00"):
        status, _headers, body = request(studio, "GET", "/logs?" + urlencode(
            {"run": run, "name": name}))
        assert status == 404, name
        assert "root:" not in body


def test_values_are_rendered_as_text_and_embedded_json_is_escaped(
        studio: RunningStudio, studio_ledger: tuple[str, Any]) -> None:
    ids = studio_ledger[1]
    for path in (run_url(ids["evil"]), experiment_url(ids["hostile"]) + "?" + urlencode(
            [("col", "tag:" + XSS_IMG), ("col", "prop:p"), ("col", f"metric:{XSS_SCRIPT}.last")]),
            f"/compare?run={quote(ids['evil'])}", "/"):
        status, _headers, body = request(studio, "GET", path)
        assert status == 200
        assert "<img src=x" not in body, path
        assert "<script>alert" not in body, path
        if path != "/":  # the experiments page shows names only: experiment names hold no markup
            assert "&lt;img src=x onerror=alert(1)&gt;" in body, path
        for data in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', body,
                               re.S):
            assert "<" not in data and ">" not in data


def test_cross_origin_and_tokenless_writes_are_refused(studio: RunningStudio) -> None:
    status, _headers, body = request(studio, "GET", experiment_url("demo"))
    token = re.search(r'name="csrf" value="([^"]+)"', body)
    assert token is not None
    form = urlencode({"csrf": token[1], "experiment": "demo", "name": "v", "query": "q=x"})
    origin = f"http://127.0.0.1:{studio.port}"
    assert request(studio, "POST", "/views", form,
                   {"Origin": "http://evil.example"})[0] == 403
    assert request(studio, "POST", "/views", form)[0] == 403  # no Origin at all
    assert request(studio, "POST", "/views", form,
                   {"Origin": origin, "Sec-Fetch-Site": "cross-site"})[0] == 403
    bad = urlencode({"csrf": "guess", "experiment": "demo", "name": "v", "query": "q=x"})
    assert request(studio, "POST", "/views", bad, {"Origin": origin})[0] == 403
    status, headers, _ = request(studio, "POST", "/views", form, {"Origin": origin})
    assert status == 303
    status, headers, _ = request(studio, "GET", headers["location"])
    assert status == 303 and "q=x" in headers["location"]


def stored_events(database: str) -> tuple[str, set[str]]:
    """A hash of every stored event except saved views, and the topics of all of them."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events "
            "ORDER BY rowid").fetchall()
    digest = hashlib.sha256()
    for row in rows:
        if not str(row[2]).startswith("runledger:SavedView"):
            digest.update(repr(row).encode())
    return digest.hexdigest(), {str(row[2]) for row in rows}


def test_browsing_leaves_the_event_log_unchanged(studio: RunningStudio,
                                                  studio_ledger: tuple[str, Any]) -> None:
    store, ids = studio_ledger
    database = store.removeprefix("sqlite:///")
    before, _topics = stored_events(database)
    for path in pages(studio, ids):
        request(studio, "GET", path)
        request(studio, "HEAD", path)
    after, topics = stored_events(database)
    assert after == before
    assert any(topic.startswith("runledger:Run") for topic in topics)


def test_a_read_only_studio_refuses_even_saved_views(studio_ledger: tuple[str, Any]) -> None:
    running = RunningStudio(studio_ledger[0], read_only=True)
    try:
        status, _headers, body = request(running, "GET", experiment_url("demo"))
        assert status == 200 and 'action="/views"' not in body
        form = urlencode({"csrf": "x", "experiment": "demo", "name": "v", "query": ""})
        status, _headers, _body = request(running, "POST", "/views", form,
                                          {"Origin": running.url})
        assert status == 403
    finally:
        running.stop()


def test_bad_view_state_is_reported_not_a_server_error(studio: RunningStudio) -> None:
    for query in ("metric=loss%20%3C", "sort=bogus", "limit=0", "status=Nope", "after=zzz",
                  "col=nonsense"):
        status, _headers, body = request(studio, "GET", experiment_url("demo") + "?" + query)
        assert status in (200, 400), query
        assert "error" in body, query


def test_every_page_names_an_icon_the_studio_serves(studio: RunningStudio,
                                                    studio_ledger: tuple[str, Any]) -> None:
    # Without one a browser asks for /favicon.ico, a 404 in its console on every page.
    for path in pages(studio, studio_ledger[1]):
        if path.startswith(("/api/", "/static/")):
            continue
        _status, _headers, body = request(studio, "GET", path)
        assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in body, path
    status, headers, body = request(studio, "GET", "/static/favicon.svg")
    assert status == 200 and headers["content-type"].startswith("image/svg+xml")
    assert "<script" not in body
