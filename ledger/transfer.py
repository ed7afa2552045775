"""Export and import of a whole ledger: its event log as a msgpack stream.

An export is a file of consecutive msgpack objects:

1. a header map: ``{"format": "runledger-export", "version": 2, "source": <store URL, password
   masked>, "application": "runledger", "transcoder": "msgpack", "last_position": <the source's
   last notification id>, "exported_at": <ISO-8601 UTC>, "digest": "rfc9162-sha256"}`` (the
   ``digest`` key promises a digest in the trailer: such a file is checked whole before import);
2. one array per stored event, in log order:
   ``[notification_id, originator_id, originator_version, topic, state]`` -- ``originator_id`` is
   the stream's UUID as 16 bytes (or a string for a text id), ``state`` the stored bytes exactly
   as the source holds them (msgpack-encoded event state);
3. a trailer map: ``{"end": true, "events": <count>, "last_position": ..., "digest": {...}}``,
   which tells a complete file from a truncated one. ``digest`` (since runledger 0.2; older files
   have none and import as before) is the RFC 9162 root of the file's events -- each event's
   leaf is exactly its record's bytes above (``ledger.domain.log_record``) -- as a
   ``ledger.domain.digest.Digest`` JSON object (``tree_size``, ``root_hash``, ``time``,
   ``store``, and ``signature``/``public_key`` when exported with a signing key). Importing
   checks it before appending anything; ``runledger audit verify FILE`` checks it offline.

Version 2 adds the run files' contents (``ledger.persistence.blobs``), between the header and the
first event: per stored content, the chunks not yet written (``{"chunk": <hex sha256>, "data":
<bytes>}``) then its manifest (``{"blob": <hex sha256>, "size": <bytes>, "chunks": <the 32-byte
chunk digests>}``); the trailer then also counts ``"blobs"``. Contents come before the events, so
an import killed midway leaves at most contents nothing refers to, and every event it appended
finds its files. Importing checks every chunk against its digest and skips what the target holds.
Version 1 files (no contents) import as before.

Both directions stream: memory stays bounded by one page of events (``PAGE_SIZE``), whatever the
size of the ledger. Importing appends the events into another store (SQLite, PostgreSQL or an
in-memory ledger) in their log order, in batches of ``BATCH_SIZE`` per transaction, and skips
every event whose ``(originator_id, originator_version)`` the target already holds: importing the
same file twice adds nothing, and importing a newer export of the same ledger adds only what is
new. An event the target holds with *different* content (the two ledgers diverged on that
stream) is not overwritten: it is counted in ``ImportSummary.conflicts`` and the rest of that
stream is skipped. Notification ids are the target's own (an import appends at the end of its
log); the projections catch up on the next query.

For the CLI (``runledger export FILE`` / ``runledger import FILE``)::

    summary = export_ledger(app, path, progress=lambda done, total: bar.update(done, total))
    summary = import_ledger(app, path, progress=...)

``progress(done, total)`` is called after each page or batch with positions in the *source*
log: ``done`` is the notification id reached, ``total`` the source's last one (ids may have gaps,
so they are positions, not event counts; ``done == total`` at the end).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from uuid import UUID

import attrs
import msgpack
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent

from ledger.domain.digest import Digest
from ledger.domain.errors import BlobError, LedgerError, StoreError
from ledger.domain.log_record import encode_record, new_packer, unpack_id
from ledger.domain.merkle import CompactRange, leaf_hash
from ledger.persistence.errors import store_errors
from ledger.persistence.retry import RETRY

if TYPE_CHECKING:
    from ledger.application import LedgerApplication

FORMAT = "runledger-export"
FORMAT_VERSION = 2
#: The header's promise that the trailer carries the RFC 9162 digest of the events.
DIGEST_KIND = "rfc9162-sha256"
PAGE_SIZE = 1000
BATCH_SIZE = 500

#: ``progress(done, total)``: positions in the source log (see the module docstring).
Progress = Callable[[int, int], None]
FileArg = str | os.PathLike[str] | IO[bytes]


class TransferError(LedgerError, ValueError):
    """The file is not a runledger export, is of a newer format, or is truncated or damaged."""


class ExportDigestError(TransferError):
    """The export's events do not hash to the root its trailer records: the file was changed."""


@attrs.frozen
class ExportSummary:
    """What an export wrote.

    Attributes:
        events: how many events.
        last_position: the source's last notification id covered.
        source: the source store (password masked).
    """

    events: int
    last_position: int
    source: str
    blobs: int = 0


@attrs.frozen
class ImportSummary:
    """What an import did.

    Attributes:
        events: events read from the file.
        added: events appended to the target.
        skipped: events the target already held, identical.
        conflicts: events the target holds with different content, and later events of the
            same streams (none of them appended).
        conflicting_streams: the ids of the streams that diverged (at most 100 listed).
        source: the source store named in the file's header.
    """

    events: int
    added: int
    skipped: int
    conflicts: int
    conflicting_streams: tuple[str, ...]
    source: str
    blobs_added: int = 0


def _unpack_id(value: Any) -> UUID | str:
    try:
        return unpack_id(value)
    except ValueError:
        raise TransferError(f"Not a stream id in the export: {value!r}") from None


# ---------------------------------------------------------------------- export
def export_ledger(app: LedgerApplication, file: FileArg,
                  progress: Progress | None = None, *, until: int | None = None,
                  keep: Callable[[Notification], bool] | None = None,
                  sign_key: Any = None) -> ExportSummary:
    """Write the whole event log of ``app`` to ``file`` as a msgpack stream.

    Events appended while the export runs are left out: the export is the log up to its last
    notification id when the export began (a consistent prefix, since ids commit in order). A
    path is written to a temporary file beside it, renamed into place when complete.

    Args:
        app: the ledger to export.
        file: a path, or a binary file object open for writing.
        progress: called with (position reached, last position) after each page.
        until: stop at this position (the log as it stood after that event; ``audit replay``).
        keep: called with each event in log order; only those it returns true for are
            written (``audit replay`` to a time keeps each stream's events up to it).
        sign_key: an Ed25519 private key (``ledger.domain.digest.load_private_key``): the
            trailer's digest is signed with it.

    Returns:
        What was written.

    Raises:
        StoreError: reading the ledger failed.
        OSError: writing the file failed.
    """
    if isinstance(file, (str, os.PathLike)):
        path = Path(file)
        partial = path.with_name(path.name + ".partial")
        try:
            with open(partial, "wb") as handle:
                summary = export_ledger(app, handle, progress, until=until, keep=keep,
                                        sign_key=sign_key)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return summary
    packer = msgpack.Packer(use_bin_type=True)
    last = app.max_position()
    if until is not None:
        last = min(last, until)
    source = app.store.display_url
    exported_at = datetime.now(timezone.utc).isoformat()
    file.write(packer.pack({
        "format": FORMAT, "version": FORMAT_VERSION, "source": source,
        "application": app.name, "transcoder": "msgpack", "last_position": last,
        "exported_at": exported_at, "digest": DIGEST_KIND,
    }))
    tree = CompactRange()
    if progress is not None:
        progress(0, last)
    blob_count = _export_blobs(app, file, packer)
    count = 0
    position = 0
    while position < last:
        with store_errors(f"Reading {app.store.display_url}"):
            page = app.recorder.select_notifications(
                start=position, limit=PAGE_SIZE, stop=last, inclusive_of_start=False)
        if not page:
            break
        for n in page:
            if keep is not None and not keep(n):
                continue
            leaf = encode_record(n.id, n.originator_id, n.originator_version, n.topic, n.state,
                                 packer.pack)
            file.write(leaf)
            tree.append(leaf_hash(leaf))
            count += 1
        position = page[-1].id
        if progress is not None:
            progress(position, last)
    digest = Digest(count, tree.root(), exported_at, source)
    if sign_key is not None:
        digest = digest.signed(sign_key)
    file.write(packer.pack({"end": True, "events": count, "last_position": last,
                            "blobs": blob_count, "digest": digest.to_json()}))
    if progress is not None and position < last:
        progress(last, last)
    return ExportSummary(events=count, last_position=last, source=source, blobs=blob_count)


def _export_blobs(app: LedgerApplication, file: IO[bytes], packer: msgpack.Packer) -> int:
    """Write every stored file content (chunks first, each once, then its manifest)."""
    blobs = app.blobs
    written: set[str] = set()
    count = 0
    try:
        for info in blobs.iter_manifests():
            for digest in info.chunks:
                if digest not in written:
                    file.write(packer.pack({"chunk": digest, "data": blobs.chunk(digest)}))
                    written.add(digest)
            file.write(packer.pack({"blob": info.sha256, "size": info.size,
                                    "chunks": b"".join(bytes.fromhex(c) for c in info.chunks)}))
            count += 1
    except BlobError as error:
        raise StoreError(f"Exporting {app.store.display_url}: {error}") from error
    return count


# ---------------------------------------------------------------------- import
@attrs.define
class _Importer:
    app: LedgerApplication
    added: int = 0
    skipped: int = 0
    conflicts: int = 0
    diverged: set[UUID | str] = attrs.field(factory=set)

    def batch(self, records: Sequence[tuple[UUID | str, int, str, bytes]]) -> None:
        """Append the events of ``records`` the target lacks, in order, in one transaction;
        again from the start if another writer appended to one of the streams meanwhile."""
        for _attempt in RETRY.attempts():
            inserts, skipped, conflicts, diverged = self._plan(records)
            try:
                with store_errors(f"Writing to {self.app.store.display_url}"):
                    if inserts:
                        self.app.recorder.insert_events(inserts)
            except IntegrityError:
                continue
            self.added += len(inserts)
            self.skipped += skipped
            self.conflicts += conflicts
            self.diverged |= diverged
            return
        raise StoreError(f"Importing into {self.app.store.display_url}: other writers kept "
                         "appending to the same streams")

    def _plan(self, records: Sequence[tuple[UUID | str, int, str, bytes]]) -> tuple[
            list[StoredEvent], int, int, set[UUID | str]]:
        ranges: dict[UUID | str, tuple[int, int]] = {}
        for stream, version, _topic, _state in records:
            low, high = ranges.get(stream, (version, version))
            ranges[stream] = (min(low, version), max(high, version))
        held: dict[UUID | str, dict[int, tuple[str, bytes]]] = {}
        with store_errors(f"Reading {self.app.store.display_url}"):
            for stream, (low, high) in ranges.items():
                if stream in self.diverged:
                    continue
                held[stream] = {e.originator_version: (e.topic, bytes(e.state))
                                for e in self.app.recorder.select_events(
                                    stream, gt=low - 1, lte=high)}
        inserts: list[StoredEvent] = []
        skipped = conflicts = 0
        diverged: set[UUID | str] = set()
        for stream, version, topic, state in records:
            if stream in self.diverged or stream in diverged:
                conflicts += 1
                continue
            existing = held[stream].get(version)
            if existing is None:
                inserts.append(StoredEvent(originator_id=stream, originator_version=version,
                                           topic=topic, state=state))
            elif existing == (topic, state):
                skipped += 1
            else:
                conflicts += 1
                diverged.add(stream)
        return inserts, skipped, conflicts, diverged


def _header(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise TransferError("Not a runledger export (no runledger-export header)")
    version = obj.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise TransferError(
            f"This export has format version {version!r}; this runledger reads version "
            f"{FORMAT_VERSION} at most: upgrade runledger to import it")
    return obj


def _unpacker(file: IO[bytes]) -> Any:
    return msgpack.Unpacker(file, raw=False, strict_map_key=False,
                            max_buffer_size=256 * 1024 * 1024)


@attrs.define
class ExportReader:
    """Reads an export file's events in order, then its trailer (for verifying it offline).

    Args:
        file: a binary file object open for reading, at the start of the export.

    Raises:
        TransferError: not a runledger export, or a newer format.
    """

    file: IO[bytes]
    header: dict[str, Any] = attrs.field(init=False)
    trailer: dict[str, Any] | None = attrs.field(init=False, default=None)
    _unpacker: Any = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._unpacker = _unpacker(self.file)
        try:
            self.header = _header(next(self._unpacker))
        except StopIteration:
            raise TransferError("Not a runledger export (the file is empty)") from None
        except (ValueError, msgpack.UnpackException) as error:
            raise TransferError(f"Not a runledger export ({error})") from error

    def events(self) -> Iterator[tuple[int, UUID | str, int, str, bytes]]:
        """Yield ``(notification_id, originator_id, originator_version, topic, state)`` per
        event; afterwards :attr:`trailer` holds the trailer.

        Raises:
            TransferError: the file is damaged or truncated (after the events before it).
        """
        position = read = 0
        try:
            for item in self._unpacker:
                if isinstance(item, dict):
                    if "chunk" in item or "blob" in item:
                        # Run file contents: not leaves of the digest; each chunk is named by
                        # its own SHA-256 and checked against it on import.
                        continue
                    self.trailer = item
                    break
                try:
                    notification_id, stream, version, topic, state = item
                    record = (int(notification_id), _unpack_id(stream), int(version),
                              str(topic), bytes(state))
                except (TypeError, ValueError) as error:
                    raise TransferError(f"Damaged event record after position {position}: "
                                        f"{error}") from error
                position = record[0]
                read += 1
                yield record
        except (ValueError, msgpack.UnpackException) as error:
            raise TransferError(f"The export is damaged after position {position} "
                                f"({error})") from error
        if self.trailer is None or not self.trailer.get("end"):
            raise TransferError(f"The export is truncated after position {position}")
        if self.trailer.get("events") != read:
            raise TransferError(f"The export's trailer counts {self.trailer.get('events')} "
                                f"events, but {read} were read")

    def digest(self) -> Digest | None:
        """Return the trailer's digest (``None`` for a file of an older runledger).

        Raises:
            TransferError: read before the events, or the digest is malformed.
        """
        if self.trailer is None:
            raise TransferError("The export's trailer is read after its events")
        data = self.trailer.get("digest")
        if data is None:
            return None
        try:
            return Digest.from_json(data)
        except ValueError as error:
            raise TransferError(f"The export's trailer digest is malformed: {error}") from None


def check_export(file: FileArg, public_key: Any = None) -> Digest | None:
    """Recompute the root of an export's events and compare it with its trailer's digest.

    Args:
        file: a path, or a seekable binary file object (read from where it stands).
        public_key: a trusted Ed25519 public key: the trailer's digest must be signed by it.

    Returns:
        The trailer's digest, or ``None`` for a file of an older runledger (nothing to check).

    Raises:
        ExportDigestError: the events do not hash to the trailer's root (or their count
            differs from its tree size).
        SignatureError: ``public_key`` given and the digest is unsigned or not signed by it.
        TransferError: not an export, or a damaged or truncated file.
        OSError: reading the file failed.
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as handle:
            return check_export(handle, public_key)
    reader = ExportReader(file)
    tree = CompactRange()
    pack = new_packer()
    for record in reader.events():
        tree.append(leaf_hash(encode_record(*record, packer=pack)))
    digest = reader.digest()
    if digest is None:
        if public_key is not None:
            from ledger.domain.errors import SignatureError

            raise SignatureError("The export carries no digest to check a signature of "
                                 "(it was written by an older runledger)")
        return None
    if digest.tree_size != tree.size or digest.root_hash != tree.root():
        raise ExportDigestError(
            f"The export's {tree.size} events hash to {tree.root().hex()}, but its trailer "
            f"records {digest.tree_size} events with root {digest.root_hash.hex()}: the file "
            "was changed after it was written")
    if public_key is not None:
        digest.check_signature(public_key)
    return digest


def import_ledger(app: LedgerApplication, file: FileArg, progress: Progress | None = None, *,
                  batch_size: int = BATCH_SIZE, public_key: Any = None) -> ImportSummary:
    """Append the events of an export into the ledger of ``app``, skipping those it holds.

    Args:
        app: the target ledger (any store).
        file: a path, or a binary file object open for reading.
        progress: called with (source position reached, source's last position) after each
            batch.
        batch_size: events per transaction.
        public_key: a trusted Ed25519 public key: the file's digest must be signed by it.

    Returns:
        What was added, skipped and found in conflict.

    Every event is decoded first: a file holding one that cannot be decoded, or that holds text
    no store can keep (NUL, a lone surrogate), is refused whole, before anything is appended.

    Raises:
        ExportDigestError: the file's events do not hash to the root its trailer records
            (nothing is appended: the file is checked first).
        SignatureError: ``public_key`` given and the file's digest is not signed by it.
        TransferError: not an export, a newer format, an event that cannot be decoded or stored
            (nothing imported), or a damaged or truncated file (the events before the damage are
            imported: a consistent prefix; import the complete file again to finish).
        StoreError: the target store failed.
        OSError: reading the file failed.
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as handle:
            return import_ledger(app, handle, progress, batch_size=batch_size,
                                 public_key=public_key)
    if not file.seekable():
        # The digest is checked before anything is appended, which reads the file twice.
        with tempfile.TemporaryFile() as spool:
            shutil.copyfileobj(file, spool)
            spool.seek(0)
            return import_ledger(app, spool, progress, batch_size=batch_size,
                                 public_key=public_key)
    start = file.tell()
    try:
        check_export(file, public_key)
    except ExportDigestError:
        raise
    except TransferError as error:
        # A damaged or truncated file. One whose header promises a digest is refused whole:
        # its events cannot be checked, and a forger could cut a file short right after the
        # event they changed. A file of an older runledger imports up to the damage, as before.
        file.seek(start)
        try:
            promised = _header(next(_unpacker(file))).get("digest") is not None
        except (StopIteration, ValueError, msgpack.UnpackException):
            promised = False
        if promised:
            raise TransferError(f"{error}; nothing was imported: the digest of this export "
                                "cannot be checked on a damaged or truncated file") from error
    file.seek(start)
    from ledger.transfer_check import first_undecodable

    bad = first_undecodable(app, file, _unpack_id)
    if bad is not None:
        raise TransferError(f"The export holds an event at position {bad[0]} that this "
                            f"ledger cannot store: {bad[1]}; nothing was imported")
    file.seek(start)
    unpacker = _unpacker(file)
    try:
        header = _header(next(unpacker))
    except StopIteration:
        raise TransferError("Not a runledger export (the file is empty)") from None
    except (ValueError, msgpack.UnpackException) as error:
        raise TransferError(f"Not a runledger export ({error})") from error
    last = int(header.get("last_position") or 0)
    importer = _Importer(app)
    records: list[tuple[UUID | str, int, str, bytes]] = []
    read = position = 0
    trailer: dict[str, Any] | None = None
    if progress is not None:
        progress(0, last)

    def flush() -> None:
        importer.batch(records)
        records.clear()
        if progress is not None:
            progress(position, last)

    blobs_added = 0
    try:
        for item in unpacker:
            if isinstance(item, dict):
                if "chunk" in item or "blob" in item:
                    blobs_added += _import_blob_record(app, item, position)
                    continue
                trailer = item
                break
            try:
                notification_id, stream, version, topic, state = item
                records.append((_unpack_id(stream), int(version), str(topic), bytes(state)))
            except (TypeError, ValueError) as error:
                raise TransferError(f"Damaged event record after position {position}: "
                                    f"{error}") from error
            read += 1
            position = int(notification_id)
            if len(records) >= batch_size:
                flush()
    except (ValueError, msgpack.UnpackException) as error:
        if records:
            flush()
        raise TransferError(f"The export is damaged after position {position} ({error}); "
                            f"the {read} events before it were imported") from error
    if records:
        flush()
    if trailer is None or not trailer.get("end"):
        raise TransferError(f"The export is truncated after position {position}: the {read} "
                            "events before it were imported; import the complete file again")
    if trailer.get("events") != read:
        raise TransferError(f"The export's trailer counts {trailer.get('events')} events, but "
                            f"{read} were read")
    if progress is not None and position < last:
        progress(last, last)
    return ImportSummary(
        events=read, added=importer.added, skipped=importer.skipped,
        conflicts=importer.conflicts,
        conflicting_streams=tuple(sorted(str(s) for s in importer.diverged))[:100],
        source=str(header.get("source", "")), blobs_added=blobs_added)


def _import_blob_record(app: LedgerApplication, item: dict[str, Any], position: int) -> int:
    """Store one chunk or manifest of an export (idempotent); 1 for a new content."""
    from ledger.persistence.blobs import DIGEST_SIZE, BlobInfo

    try:
        if "chunk" in item:
            app.blobs.import_chunk(str(item["chunk"]), bytes(item["data"]))
            return 0
        raw = bytes(item["chunks"])
        chunks = tuple(raw[i:i + DIGEST_SIZE].hex() for i in range(0, len(raw), DIGEST_SIZE))
        info = BlobInfo(sha256=str(item["blob"]), size=int(item["size"]), chunks=chunks)
        return 1 if app.blobs.import_manifest(info) else 0
    except (KeyError, TypeError, ValueError) as error:
        raise TransferError(f"Damaged file record after position {position}: {error}") \
            from error
    except BlobError as error:
        raise TransferError(f"Damaged file record after position {position}: {error}") \
            from error
