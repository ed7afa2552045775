"""The run page's files, logs, source snapshot, audit timeline and verify status, over HTTP
(raw paths with http.client) and in the browser: downloads only of the run's own files,
checked and served as attachments; logs read through the store and tailed live; corrections'
reasons and archive/restore on the timeline; archived runs behind a toggle; verify against the
digests given to the Studio."""

from __future__ import annotations

import asyncio
import random
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from studio_helpers import XSS_IMG, RunningStudio, Watched
from test_studio_http import request

from ledger.persistence.blobs import CHUNK_SIZE
from ledger.studio.app import experiment_url, files_url, run_url
from ledger.studio.hooks import MAX_LOG_BYTES

LOG = "azureml-logs/70_driver_log.txt"
EVIL_FILE = f"outputs/{XSS_IMG}.txt"
EVIL_LINE = "</pre><script>alert(4)</script>" + XSS_IMG


# Larger than the blob store's chunk (1 MiB), and not a whole number of chunks.
LARGE = random.Random(7).randbytes(2 * CHUNK_SIZE + 12_345)
# Longer than the run page shows (its last MAX_LOG_BYTES), in numbered lines.
LONG_LOG = "".join(f"line {i:07d}\n" for i in range(MAX_LOG_BYTES // 13 + 20_000)).encode()


def png(width: int = 4, height: int = 3) -> bytes:
    """A valid red RGB PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def studio_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    import io

    from ledger import Experiment, Workspace
    from ledger.sdk.files import LogAppender

    folder = tmp_path_factory.mktemp("faces")
    store = f"sqlite:///{folder / 'ledger.db'}"
    ws = Workspace(store=store)
    exp = Experiment(ws, "faces")
    filed = exp.start_logging(display_name="filed")
    filed.add_properties({"algo": "adam"})
    filed.upload_file("outputs/model.bin", io.BytesIO(b"\x00weights\xff" * 100))
    filed.upload_file("plot.png", io.BytesIO(png()))
    filed.upload_file("page.html", io.BytesIO(b"<script>alert(5)</script>"))
    filed.upload_file(EVIL_FILE, io.BytesIO(b"evil"))
    source = folder / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "train.py").write_text("print('hi')\n")
    (source / "pkg" / "util.py").write_text("X = 1\n")
    filed.take_snapshot(source)
    filed.correct_property("algo", "adamw", reason="typo in the sweep config")
    filed.complete()
    running = exp.start_logging(display_name="running")
    running.flush()
    appender = LogAppender(ws.ledger.application, running.id)
    appender.append(LOG, f"first line\n{EVIL_LINE}\n".encode())
    archived = exp.start_logging(display_name="archived-one")
    archived.complete()
    archived.archive("bad data")
    restored = exp.start_logging(display_name="restored-one")
    restored.complete()
    restored.archive("by mistake")
    restored.restore()
    shelved = Experiment(ws, "shelved")
    shelved.start_logging().complete()
    shelved.archive()
    large = exp.start_logging(display_name="large")
    large.upload_file("outputs/large.bin", io.BytesIO(LARGE))
    large.flush()
    LogAppender(ws.ledger.application, large.id).append(LOG, LONG_LOG)
    large.complete()
    ids = {"filed": filed.id, "running": running.id, "archived": archived.id,
           "restored": restored.id, "large": large.id, "appender": appender, "ws": ws,
           "folder": folder}
    yield store, ids
    ws.ledger.close()


@pytest.fixture(scope="module")
def studio(studio_ledger: tuple[str, dict[str, Any]]) -> Iterator[RunningStudio]:
    running = RunningStudio(studio_ledger[0])
    yield running
    running.stop()


def get_bytes(studio: RunningStudio, path: str) -> tuple[int, dict[str, str], bytes]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", studio.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", f"127.0.0.1:{studio.port}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_files_tab_lists_each_file_with_size_sha256_and_uploader(
        studio: RunningStudio, studio_ledger: tuple[str, Any]) -> None:
    from ledger import Run

    ids = studio_ledger[1]
    status, _headers, body = request(studio, "GET", run_url(ids["filed"]))
    assert status == 200
    run = Run.get(ids["ws"], ids["filed"])
    files = {f.name: f for f in run.get_files()}
    start = body.index('id="files-table"')
    table = body[start:body.index("</table>", start)]
    for name, found in files.items():
        if name == EVIL_FILE:
            continue
        assert f">{name}</a>" in table
        assert found.sha256 is not None and found.sha256 in table
        assert f">{found.size}<" in table
    assert files["plot.png"].uploaded_by.user in table
    # The image is shown inline, from the download route.
    assert f'<img src="{files_url(ids["filed"])}?name=plot.png"' in body


def test_download_serves_the_runs_own_file_checked_as_an_attachment(
        studio: RunningStudio, studio_ledger: tuple[str, Any]) -> None:
    ids = studio_ledger[1]
    base = files_url(ids["filed"])
    status, headers, data = get_bytes(studio, base + "?name=outputs/model.bin")
    assert status == 200
    assert data == b"\x00weights\xff" * 100
    assert headers["content-disposition"] == "attachment; filename*=UTF-8''model.bin"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["x-content-type-options"] == "nosniff"
    status, headers, data = get_bytes(studio, base + "?name=plot.png")
    assert status == 200 and data == png() and headers["content-type"] == "image/png"
    # An HTML file is never served as HTML (it would run script in the Studio's origin).
    status, headers, data = get_bytes(studio, base + "?name=page.html")
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"].startswith("attachment")


def asgi_get(app: Any, path: str, query: str) -> tuple[int, dict[str, str], list[bytes]]:
    """Call the Studio's ASGI app directly: the status, the headers, and the body as the
    messages it was sent in."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "root_path": "",
             "headers": [(b"host", b"127.0.0.1:5000")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 5000)}
    started: dict[str, Any] = {}
    bodies: list[bytes] = []
    requested = False

    async def call() -> None:
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()  # a streaming answer listens for the client leaving
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    bodies.append(message["body"])
                if not message.get("more_body"):
                    done.set()

        await app(scope, receive, send)

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    failed: list[BaseException] = []
    worker = threading.Thread(target=lambda: _run_into(call, failed))
    worker.start()
    worker.join(60)
    if failed:
        raise failed[0]
    headers = {k.decode().lower(): v.decode() for k, v in started["headers"]}
    return started["status"], headers, bodies


def _run_into(coroutine: Any, failed: list[BaseException]) -> None:
    try:
        asyncio.run(coroutine())
    except BaseException as error:  # handed to the test's thread
        failed.append(error)


def test_a_file_larger_than_a_chunk_is_streamed_whole(
        studio: RunningStudio, studio_ledger: tuple[str, Any]) -> None:
    from ledger.studio.app import create_app

    ids = studio_ledger[1]
    status, headers, data = get_bytes(studio, files_url(ids["large"]) + "?name=outputs/large.bin")
    assert status == 200
    assert headers["content-length"] == str(len(LARGE))
    assert data == LARGE
    # Sent as it is read, a stored chunk at a time: never the whole file in memory at once.
    _status, _headers, bodies = asgi_get(create_app(ids["ws"]), files_url(ids["large"]),
                                         "name=outputs/large.bin")
    assert len(bodies) == 3
    assert max(len(body) for body in bodies) <= CHUNK_SIZE
    assert b"".join(bodies) == LARGE


def test_a_long_log_downloads_whole_and_its_page_shows_its_end(
        studio: RunningStudio, studio_ledger: tuple[str, Any]) -> None:
    ids = studio_ledger[1]
    status, headers, data = get_bytes(studio, "/logs?" + urlencode(
        {"run": ids["large"], "name": LOG}))
    assert status == 200 and headers["content-type"] == "text/plain; charset=utf-8"
    assert data == LONG_LOG
    _status, _headers, body = request(studio, "GET", run_url(ids["large"]))
    shown = re.search(r'<pre class="log-text">(.*?)</pre>', body, re.S)
    assert shown is not None
    assert shown.group(1) == LONG_LOG[-MAX_LOG_BYTES:].decode()
    assert f"(last {MAX_LOG_BYTES} characters)" in body


@pytest.mark.parametrize("name", [
    "../../../../etc/passwd", "/etc/passwd", "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/etc/passwd", "outputs/../../../etc/passwd", "outputs/model.bin%00",
    "outputs//model.bin", "./outputs/model.bin", "outputs%2fmodel.bin%2f..%2f..%2fplot.png",
    "missing.txt", ""])
def test_downloads_refuse_every_name_outside_the_runs_file_list(
        studio: RunningStudio, studio_ledger: tuple[str, Any], name: str) -> None:
    ids = studio_ledger[1]
    status, _headers, data = get_bytes(studio, files_url(ids["filed"]) + "?name=" + name)
    assert status == 404, name
    assert b"root:" not in data and b"weights" not in data


@pytest.mark.parametrize("path", [
    "/runs/../../../etc/passwd/files?name=x", "/runs/%2e%2e/%2e%2e/files?name=plot.png",
    "/runs/..%2f..%2f/files?name=plot.png", "/runs//etc/files?name=passwd"])
def test_download_paths_that_climb_out_of_a_run_are_refused(studio: RunningStudio,
                                                             path: str) -> None:
    status, _headers, data = get_bytes(studio, path)
    assert status in (400, 404), path
    assert b"root:" not in data and b"\x89PNG" not in data


def test_a_damaged_content_is_not_served(studio_ledger: tuple[str, Any],
                                         tmp_path: Path) -> None:
    import io
    import sqlite3

    from ledger import Experiment, Workspace

    store_file = tmp_path / "copy.db"
    ws = Workspace(store=f"sqlite:///{store_file}")
    run = Experiment(ws, "damaged").start_logging()
    run.upload_file("outputs/a.txt", io.BytesIO(b"original content"))
    run.complete()
    run_id = run.id
    with sqlite3.connect(store_file) as db:
        db.execute("UPDATE rl_blob_chunks SET data = ?", (b"tampered content",))
    db.close()
    studio = RunningStudio(f"sqlite:///{store_file}")
    try:
        status, _headers, data = get_bytes(studio, files_url(run_id) + "?name=outputs/a.txt")
    finally:
        studio.stop()
        studio.workspace.ledger.close()
    assert status == 409
    assert b"original" not in data and b"tampered" not in data


def test_a_file_name_and_a_log_line_are_shown_as_text(studio: RunningStudio,
                                                      studio_ledger: tuple[str, Any]) -> None:
    ids = studio_ledger[1]
    for run_id in (ids["filed"], ids["running"]):
        status, _headers, body = request(studio, "GET", run_url(run_id))
        assert status == 200
        assert "<img src=x" not in body and "<script>alert" not in body
    _status, _headers, body = request(studio, "GET", run_url(ids["filed"]))
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in body
    # Its download link carries the name URL-encoded, and serves that file.
    status, _headers, data = get_bytes(studio, files_url(ids["filed"]) + "?name="
                                       + quote(EVIL_FILE, safe=""))
    assert status == 200 and data == b"evil"
    _status, _headers, body = request(studio, "GET", run_url(ids["running"]))
    assert "&lt;/pre&gt;&lt;script&gt;alert(4)&lt;/script&gt;" in body


def test_logs_are_read_through_the_store_and_tailed_after_a_version(
        studio: RunningStudio, studio_ledger: tuple[str, Any]) -> None:
    import json

    ids = studio_ledger[1]
    status, _headers, body = request(studio, "GET", run_url(ids["running"]))
    assert status == 200 and "first line" in body
    data = json.loads(re.search(r'<script type="application/json" id="page-data">(.*?)</script>',
                                body, re.S).group(1))  # type: ignore[union-attr]
    (log,) = data["logs"]
    assert log["name"] == LOG
    query = urlencode({"run": ids["running"], "name": LOG, "after": log["version"]})
    status, _headers, text = request(studio, "GET", "/api/log?" + query)
    assert status == 200 and json.loads(text) == {"text": "", "version": log["version"],
                                                  "active": True}
    ids["appender"].append(LOG, b"second line\n")
    status, _headers, text = request(studio, "GET", "/api/log?" + query)
    answer = json.loads(text)
    assert answer["text"] == "second line\n" and answer["version"] == log["version"] + 1
    status, _headers, text = request(studio, "GET", "/logs?" + urlencode(
        {"run": ids["running"], "name": LOG}))
    assert status == 200 and text.endswith("second line\n") and text.startswith("first line")
    for name in ("../" + LOG, "/etc/passwd", "outputs/model.bin"):
        status, _headers, _text = request(studio, "GET", "/api/log?" + urlencode(
            {"run": ids["running"], "name": name, "after": 0}))
        assert status == 404, name


def test_the_source_snapshots_files_are_listed(studio: RunningStudio,
                                               studio_ledger: tuple[str, Any]) -> None:
    ids = studio_ledger[1]
    _status, _headers, body = request(studio, "GET", run_url(ids["filed"]))
    table = body[body.index('id="snapshot-table"'):]
    table = table[:table.index("</table>")]
    assert re.findall(r"<tr><td>([^<]+)</td>", table) == ["pkg/util.py", "train.py"]
    _status, _headers, body = request(studio, "GET", run_url(ids["running"]))
    assert 'id="no-snapshot"' in body


def test_the_timeline_shows_corrections_with_their_reason_and_archive_restore(
        studio: RunningStudio, studio_ledger: tuple[str, Any]) -> None:
    ids = studio_ledger[1]
    _status, _headers, body = request(studio, "GET", run_url(ids["filed"]))
    row = re.search(r'<tr class="event event-PropertyCorrected">(.*?)</tr>', body, re.S)
    assert row is not None
    assert "property algo: &#39;adam&#39; -&gt; &#39;adamw&#39;" in row.group(1)
    assert '<td class="reason">typo in the sweep config</td>' in row.group(1)
    _status, _headers, body = request(studio, "GET", run_url(ids["restored"]))
    archived = re.search(r'<tr class="event event-Archived">(.*?)</tr>', body, re.S)
    assert archived is not None and "by mistake" in archived.group(1)
    assert '<tr class="event event-Restored">' in body
    assert 'id="archived-badge"' not in body
    _status, _headers, body = request(studio, "GET", run_url(ids["archived"]))
    assert 'id="archived-badge"' in body


def test_the_timeline_names_each_uploaded_file_with_its_size_and_a_link(
        studio: RunningStudio, studio_ledger: tuple[str, Any]) -> None:
    ids = studio_ledger[1]
    _status, _headers, body = request(studio, "GET", run_url(ids["filed"]))
    rows = re.findall(r'<tr class="event event-FileUploaded">(.*?)</tr>', body, re.S)
    assert len(rows) == 4
    model = next(row for row in rows if "model.bin" in row)
    link = re.search(r'<a class="timeline-file" href="([^"]+)" download>outputs/model.bin</a>: '
                     r'\+ 900 bytes', model)
    assert link is not None and "(no visible change)" not in body
    status, _headers, data = get_bytes(studio, link.group(1).replace("&amp;", "&"))
    assert status == 200 and data == b"\x00weights\xff" * 100
    # A hostile file name is text there too.
    evil = next(row for row in rows if "evil" in row or "&lt;img" in row)
    assert "&lt;img src=x onerror=alert(1)&gt;.txt</a>" in evil and "<img" not in evil


def test_archived_runs_are_hidden_unless_the_toggle_is_in_the_url(
        studio: RunningStudio, studio_ledger: tuple[str, Any]) -> None:
    ids = studio_ledger[1]
    _status, _headers, body = request(studio, "GET", experiment_url("faces"))
    shown = re.findall(r'<tr class="run" data-run="([^"]+)"', body)
    assert ids["archived"] not in shown and ids["restored"] in shown and ids["filed"] in shown
    toggle = re.search(r'href="([^"]+)" id="archived-toggle"', body)
    assert toggle is not None and "archived=1" in toggle.group(1)
    _status, _headers, body = request(studio, "GET", experiment_url("faces") + "?archived=1")
    shown = re.findall(r'<tr class="run" data-run="([^"]+)"', body)
    assert ids["archived"] in shown and len(shown) == 5
    # The toggle survives sorting (it is part of the page's state in the URL).
    sort_link = re.search(r'<a class="sort" href="([^"]+)" data-column="name"', body)
    assert sort_link is not None and "archived=1" in sort_link.group(1)


def test_archived_experiments_are_hidden_unless_the_toggle_is_in_the_url(
        studio: RunningStudio) -> None:
    _status, _headers, body = request(studio, "GET", "/")
    names = re.findall(r'class="experiment-link" href="[^"]+">([^<]+)</a>', body)
    assert names == ["faces"]
    assert "(1 hidden)" in body
    toggle = re.search(r'href="([^"]+)" id="archived-toggle">Show archived', body)
    assert toggle is not None
    _status, _headers, body = request(studio, "GET", toggle.group(1))
    rows = re.findall(r'class="experiment-link" href="[^"]+">([^<]+)</a>(.*?)</td>', body)
    assert rows == [("faces", ""), ("shelved", ' <span class="badge">archived</span>')]


def test_verify_status_with_no_digest_a_good_one_and_a_changed_log(
        studio: RunningStudio, studio_ledger: tuple[str, Any], tmp_path: Path) -> None:
    import sqlite3

    from ledger import audit
    from ledger.domain.digest import Digest

    store, ids = studio_ledger
    _status, _headers, body = request(studio, "GET", run_url(ids["filed"]))
    assert '<p class="verify verify-none" id="verify">no digest given</p>' in body

    good = audit.digest(ids["ws"])
    other = Digest(good.tree_size, bytes(32), good.time, good.store)
    checked = RunningStudio(store, digests=[good])
    try:
        _status, _headers, body = request(checked, "GET", run_url(ids["filed"]))
    finally:
        checked.stop()
    assert (f'id="verify">verified against digest of {good.tree_size} events at {good.time}</p>'
            in body)
    bad = RunningStudio(store, digests=[other])
    try:
        _status, _headers, body = request(bad, "GET", run_url(ids["filed"]))
    finally:
        bad.stop()
    assert 'class="verify verify-bad" id="verify">NOT verified' in body

    # A copy of the ledger with one event's bytes changed names the first bad event by its log
    # position (as the timeline shows positions) and its leaf index.
    copy = tmp_path / "changed.db"
    with sqlite3.connect(store.removeprefix("sqlite:///")) as source, \
            sqlite3.connect(copy) as target:
        source.backup(target)
    source.close()
    with sqlite3.connect(copy) as db:
        # An event of another run than the page's (the restored run's Restored event).
        changed_row = db.execute("SELECT rowid FROM stored_events WHERE topic LIKE "
                                 "'%Restored%'").fetchone()[0]
        position = db.execute("SELECT COUNT(*) FROM stored_events WHERE rowid < ?",
                              (changed_row,)).fetchone()[0]
        state = db.execute("SELECT state FROM stored_events WHERE rowid = ?",
                           (changed_row,)).fetchone()[0]
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                   (bytes(state) + b"\x00", changed_row))
    db.close()
    changed = RunningStudio(f"sqlite:///{copy}", digests=[good])
    try:
        _status, _headers, body = request(changed, "GET", run_url(ids["filed"]))
    finally:
        changed.stop()
        changed.workspace.ledger.close()
    assert (f'id="verify">NOT verified: first bad event at log position {changed_row} '
            f'(leaf index {position})</p>') in body


# ------------------------------------------------------------------ in the browser
def shot(page: Watched, folder: Path, name: str, selector: str) -> None:
    page.page.locator(selector).scroll_into_view_if_needed()
    page.page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_run_page_tabs_in_the_browser(page: Watched, screenshots: Path,
                                      studio_ledger: tuple[str, Any]) -> None:
    ids = studio_ledger[1]
    page.goto(run_url(ids["filed"]))
    files = page.page.locator("#files-table tr.file")
    assert files.count() == 4
    assert page.page.locator("#files-table").inner_text().count("outputs/") == 2
    assert XSS_IMG + ".txt" in page.page.locator("#files-table").inner_text()
    image = page.page.locator("figure.image img")
    page.page.wait_for_function(
        "() => { const i = document.querySelector('figure.image img'); "
        "return i && i.complete && i.naturalWidth === 4; }")
    assert image.count() == 1
    assert page.page.locator("#snapshot-table").inner_text().count(".py") == 2
    shot(page, screenshots, "11-run-files", "#files")
    reason = page.page.locator("tr.event-PropertyCorrected td.reason")
    assert reason.inner_text() == "typo in the sweep config"
    assert page.page.locator("#verify").inner_text() == "no digest given"
    page.page.locator("#timeline").scroll_into_view_if_needed()
    page.page.screenshot(path=str(screenshots / "12-run-audit.png"), full_page=False)
    assert page.page.evaluate("document.querySelectorAll('img[src=x]').length") == 0


def test_the_log_tail_updates_while_the_run_runs(page: Watched, screenshots: Path,
                                                 studio_ledger: tuple[str, Any]) -> None:
    ids = studio_ledger[1]
    page.goto(run_url(ids["running"]))
    log = page.page.locator("div.log pre.log-text")
    assert EVIL_LINE in log.inner_text()
    assert page.page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
    ids["appender"].append(LOG, f"live line {XSS_IMG}\n".encode())
    page.page.wait_for_function(
        "() => document.querySelector('div.log pre.log-text').textContent.includes('live line')",
        timeout=10_000)
    assert log.inner_text().rstrip().endswith(f"live line {XSS_IMG}")
    assert page.page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
    page.page.locator("#logs").scroll_into_view_if_needed()
    page.page.screenshot(path=str(screenshots / "13-run-logs.png"), full_page=False)
