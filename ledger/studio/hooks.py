"""What the Studio's run page reads from the other faces of the ledger: run files and their
downloads, logs through the store (with a live tail), the source snapshot's file list, the audit
timeline, and the ledger's verify status against the digests given to ``runledger studio``.

No function here opens a filesystem path read from the ledger: files and logs are contents of
the blob store (``app.blobs``), found by a name that must be in the run's own file list.
"""

from __future__ import annotations

import collections
import io
import itertools
import zipfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from ledger.audit.timeline import ChangeEntry, run_history
from ledger.domain.errors import BlobError, FileDamagedError, RunFileNotFoundError
from ledger.domain.files import is_log_name
from ledger.sdk.files import LogTail, RunFile, log_parts
from ledger.sdk.snapshots import find_snapshot

if TYPE_CHECKING:
    from ledger.domain.digest import Digest
    from ledger.sdk.run import Run
    from ledger.sdk.workspace import Workspace
    from projections.read_models import RunRow

MAX_LOG_BYTES = 2_000_000
MAX_SNAPSHOT_BYTES = 300 * 1024 * 1024
MAX_SNAPSHOT_ENTRIES = 2000
# Media types a browser may show for a download: raster images only (an SVG or HTML file could
# run script in our origin; everything else is an opaque octet stream, always an attachment).
SAFE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp",
                              "image/bmp"})


@attrs.frozen
class FileEntry:
    """A file shown on a run's page.

    Attributes:
        name: its name in the run.
        size: its length in bytes (``None``: unknown).
        sha256: its SHA-256 (``None`` for a log still growing).
        media_type: the type it was recorded with.
        uploaded_at: when it was recorded.
        uploaded_by: who recorded it (``user@host``).
    """

    name: str
    size: int | None
    sha256: str | None = None
    media_type: str = "application/octet-stream"
    uploaded_at: datetime | None = None
    uploaded_by: str = ""

    @property
    def is_image(self) -> bool:
        """Whether the page may show it inline as an ``<img>``."""
        return self.media_type in SAFE_IMAGE_TYPES


@attrs.frozen
class LogView:
    """A log on the run page: its name, its last :data:`MAX_LOG_BYTES` as text, and the log
    stream version its live tail continues from."""

    name: str
    text: str
    version: int
    truncated: bool


@attrs.frozen
class VerifyStatus:
    """Whether the ledger verifies against the latest digest given to the Studio.

    Attributes:
        available: digests were given (``runledger studio --digest FILE``).
        ok: they all verify (``None`` when none was given).
        message: one line for the page.
    """

    available: bool
    ok: bool | None
    message: str


def _run(workspace: Workspace, row: RunRow) -> Run:
    from ledger.sdk.run import Run

    return Run.get(workspace, row.run_id)


def _entry(found: RunFile) -> FileEntry:
    actor = found.uploaded_by
    who = actor.user + (f"@{actor.host}" if actor.host else "")
    return FileEntry(name=found.name, size=found.size, sha256=found.sha256,
                     media_type=found.media_type, uploaded_at=found.uploaded_at,
                     uploaded_by=who)


def run_files(workspace: Workspace, row: RunRow) -> list[FileEntry]:
    """Return a run's files (its logs included), sorted by name, from ``run.get_files()``."""
    return [_entry(f) for f in _run(workspace, row).get_files()]


def run_logs(workspace: Workspace, row: RunRow) -> list[FileEntry]:
    """Return a run's log files (``azureml-logs/...``, ``logs/...``), growing ones included."""
    return [f for f in run_files(workspace, row) if is_log_name(f.name)]


def open_file(workspace: Workspace, row: RunRow, name: str) -> tuple[FileEntry, Iterator[bytes]]:
    """Return one of a run's files and its content as checked chunks, to stream.

    The first chunk is read here, so that a missing or damaged start is an error before any
    answer is sent; a chunk damaged further on raises while streaming (the download is then
    cut short of its ``Content-Length``).

    Args:
        workspace: the ledger.
        row: the run.
        name: the file's name; it must be one of the run's own file names (anything else, a
            path or ``..``, matches nothing).

    Returns:
        The file's entry and an iterator over its bytes (``run.iter_file``).

    Raises:
        RunFileNotFoundError: the run has no file of that name.
        FileDamagedError: the stored content is missing or damaged.
    """
    run = _run(workspace, row)
    found = {f.name: f for f in run.get_files()}.get(name)
    if found is None:
        raise RunFileNotFoundError(row.run_id, name)
    chunks = run.iter_file(name)
    first = next(chunks, b"")
    return _entry(found), itertools.chain((first,), chunks)


def _log_tail(workspace: Workspace, row: RunRow, name: str) -> tuple[bytes, bool]:
    """The last :data:`MAX_LOG_BYTES` of a log, read a chunk at a time (memory stays bounded
    whatever the log's length), and whether there was more before them."""
    kept: collections.deque[bytes] = collections.deque()
    held = 0
    dropped = False
    for chunk in _run(workspace, row).iter_file(name):
        kept.append(chunk)
        held += len(chunk)
        while kept and held - len(kept[0]) >= MAX_LOG_BYTES:
            held -= len(kept.popleft())
            dropped = True
    data = b"".join(kept)
    if len(data) > MAX_LOG_BYTES:
        return data[-MAX_LOG_BYTES:], True
    return data, dropped


def read_log(workspace: Workspace, row: RunRow, name: str) -> LogView | None:
    """Return the end of a run's log, read through the store, and where its tail goes on.

    Args:
        workspace: the ledger.
        row: the run.
        name: the log's name as :func:`run_logs` lists it; anything else matches nothing.

    Returns:
        The view, or ``None`` when the run has no log of that name.

    Raises:
        FileDamagedError: a part's content is missing or damaged.
    """
    if not is_log_name(name) or name not in {f.name for f in run_logs(workspace, row)}:
        return None
    app = workspace.ledger.application
    parts = log_parts(app, row.run_id)
    version = parts[-1].originator_version if parts else 0
    data, truncated = _log_tail(workspace, row, name)
    text = data.decode("utf-8", errors="replace")
    return LogView(name=name, text=text, version=version, truncated=truncated)


def tail_log(workspace: Workspace, row: RunRow, name: str, after: int) -> tuple[str, int]:
    """Return the text appended to a run's log after log stream version ``after``.

    Args:
        workspace: the ledger.
        row: the run.
        name: the log's name (one of the run's logs, else nothing is returned).
        after: the version the page has read up to (:attr:`LogView.version`).

    Returns:
        ``(text, version)``: the new text and the version to ask from next time.

    Raises:
        FileDamagedError: a part's content is missing or damaged.
    """
    if not is_log_name(name):
        return "", after
    tail = LogTail(workspace.ledger.application, row.run_id, [name])
    tail.version = max(0, after)
    # A part may split a UTF-8 character: the tail's decoder starts afresh at ``after``, so a
    # broken character at a part boundary is shown replaced, never an error.
    text = "".join(piece for _name, piece in tail.read_new())
    return text, tail.version


def snapshot_files(workspace: Workspace, row: RunRow) -> tuple[str | None, list[FileEntry]]:
    """Return the id of a run's source snapshot and the files it holds (from its stored zip).

    Returns:
        ``(None, [])`` when the run has no snapshot.

    Raises:
        FileDamagedError: the stored zip is missing or damaged.
    """
    found = find_snapshot(dict(row.properties))
    if found is None:
        return None, []
    snapshot_id, sha256 = found
    blobs = workspace.ledger.application.blobs
    try:
        if blobs.info(sha256).size > MAX_SNAPSHOT_BYTES:
            return snapshot_id, []
        data = b"".join(blobs.read(sha256))
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = [FileEntry(name=info.filename, size=info.file_size)
                       for info in archive.infolist()[:MAX_SNAPSHOT_ENTRIES]
                       if not info.is_dir()]
    except (BlobError, zipfile.BadZipFile) as error:
        raise FileDamagedError(row.run_id, f"snapshot {snapshot_id}", str(error)) from error
    return snapshot_id, entries


def audit_timeline(workspace: Workspace, row: RunRow) -> list[ChangeEntry]:
    """Return every recorded change of a run in log order (``ledger.audit.timeline``), with
    corrections' and archiving's reasons."""
    return run_history(workspace.ledger.application, row.run_id)


def verify_status(workspace: Workspace, digests: Sequence[Digest]) -> VerifyStatus:
    """Verify the whole log against the digests given (it reads every event: cache it).

    Args:
        workspace: the ledger.
        digests: the digests from ``runledger studio --digest FILE`` (none: not available).

    Returns:
        The status: against the latest digest (the largest tree size) when it verifies, the
        first changed position when it can be named.
    """
    if not digests:
        return VerifyStatus(available=False, ok=None, message="no digest given")
    from ledger import audit as ledger_audit
    from ledger.domain.errors import LedgerError

    latest = max(digests, key=lambda d: d.tree_size)
    try:
        report = ledger_audit.verify(workspace, list(digests))
    except LedgerError as error:
        return VerifyStatus(available=True, ok=False, message=f"NOT verified: {error}")
    if report.ok:
        when = f" at {latest.time}" if latest.time else ""
        return VerifyStatus(available=True, ok=True, message=(
            f"verified against digest of {latest.tree_size} events{when}"))
    if report.first_bad_position is not None:
        # The timeline beside it shows log positions (notification ids); a leaf index counts
        # from 0 and skips nothing, so name the log position the page's timeline uses.
        where = (f"log position {report.first_bad_notification_id} (leaf index "
                 f"{report.first_bad_position})" if report.first_bad_notification_id is not None
                 else f"leaf index {report.first_bad_position}")
        return VerifyStatus(available=True, ok=False, message=(
            f"NOT verified: first bad event at {where}"))
    return VerifyStatus(available=True, ok=False, message=f"NOT verified: {report.message}")


__all__ = ["FileEntry", "LogView", "VerifyStatus", "audit_timeline",
           "open_file", "read_log", "run_files", "run_logs", "snapshot_files",
           "tail_log", "verify_status"]

