"""Content-addressed file storage in the ledger's own database (SQLite or PostgreSQL).

Two tables sit next to eventsourcing's, both append-only (rows are inserted, never updated):

- ``rl_blob_chunks(sha256, data)``: a chunk of at most :data:`CHUNK_SIZE` bytes, keyed by the
  SHA-256 of its own bytes (so equal chunks are stored once);
- ``rl_blobs(sha256, size, chunks)``: a complete content, keyed by the SHA-256 of all its bytes,
  with its size and the 32-byte digests of its chunks in order (its manifest).

Writing streams: :meth:`BlobStore.write` reads the source one chunk at a time (memory stays
flat for a file of many GB), hashing as it goes, and commits every :data:`CHUNKS_PER_COMMIT`
chunks, then the manifest. Nothing refers to a content until the caller appends the event that
names it (``FileUploaded``), after ``write`` returned: a process killed during an upload leaves at
most chunks nobody refers to, never a half-visible file. Identical content uploaded twice (by any
run) is stored once: the second write inserts nothing new.

Reading (:meth:`BlobStore.read`) checks each chunk against its digest and the whole against the
content's SHA-256, raising :class:`ledger.domain.errors.BlobError` on a missing or damaged row.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from typing import IO, Any

import attrs

from ledger.domain.errors import BlobError
from ledger.persistence.sidetables import SideTables

CHUNK_SIZE = 1024 * 1024
CHUNKS_PER_COMMIT = 8
DIGEST_SIZE = 32

_TABLES = (
    "CREATE TABLE IF NOT EXISTS {p}rl_blob_chunks (sha256 TEXT PRIMARY KEY, data {blob} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {p}rl_blobs (sha256 TEXT PRIMARY KEY, size {bigint} NOT NULL, "
    "chunks {blob} NOT NULL)",
)
_INSERT_CHUNK = ("INSERT INTO {p}rl_blob_chunks (sha256, data) VALUES (?, ?) "
                 "ON CONFLICT (sha256) DO NOTHING")
_INSERT_BLOB = ("INSERT INTO {p}rl_blobs (sha256, size, chunks) VALUES (?, ?, ?) "
                "ON CONFLICT (sha256) DO NOTHING")
_SELECT_BLOB = "SELECT size, chunks FROM {p}rl_blobs WHERE sha256 = ?"
_SELECT_CHUNK = "SELECT data FROM {p}rl_blob_chunks WHERE sha256 = ?"
_HAS_CHUNKS = "SELECT sha256 FROM {p}rl_blob_chunks WHERE sha256 IN ({marks})"
_LIST_BLOBS = ("SELECT sha256, size, chunks FROM {p}rl_blobs WHERE sha256 > ? "
               "ORDER BY sha256 LIMIT ?")

@attrs.frozen
class BlobInfo:
    """A stored content.

    Attributes:
        sha256: the hex SHA-256 of its bytes.
        size: its length in bytes.
        chunks: the hex digests of its chunks, in order.
    """

    sha256: str
    size: int
    chunks: tuple[str, ...] = ()


def _split_manifest(raw: bytes) -> tuple[str, ...]:
    return tuple(raw[i:i + DIGEST_SIZE].hex() for i in range(0, len(raw), DIGEST_SIZE))


def _chunks_of(source: IO[bytes] | Iterable[bytes], size: int) -> Iterator[bytes]:
    """Yield the bytes of a binary stream or an iterable of bytes as chunks of ``size`` bytes
    at most (the last may be shorter; an empty source yields nothing)."""
    read = getattr(source, "read", None)
    if read is not None:
        while True:
            data = read(size)
            if not data:
                return
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"the stream gave {type(data).__name__}, not bytes: open it "
                                "in binary mode ('rb')")
            yield bytes(data)
    else:
        pending = bytearray()
        for piece in source:
            pending += piece
            while len(pending) >= size:
                yield bytes(pending[:size])
                del pending[:size]
        if pending:
            yield bytes(pending)


class BlobStore:
    """Stored file contents: the logic, over a backend's five primitives (subclasses give
    them: :class:`SQLBlobStore` in the ledger's database, :class:`FsspecBlobStore` in a folder
    or object store)."""

    what: str

    # ------------------------------------------------------------------ primitives
    def _held_chunks(self, digests: list[str]) -> set[str]:
        raise NotImplementedError

    def _put_chunks(self, chunks: list[tuple[str, bytes]]) -> None:
        raise NotImplementedError

    def _put_manifest(self, sha256: str, size: int, manifest: bytes) -> None:
        raise NotImplementedError

    def _get_manifest(self, sha256: str) -> tuple[int, bytes] | None:
        raise NotImplementedError

    def _get_chunk(self, digest: str) -> bytes | None:
        raise NotImplementedError

    def _list_manifests(self, after: str, page: int) -> list[tuple[str, int, bytes]]:
        raise NotImplementedError

    # ------------------------------------------------------------------ writing
    def write(self, source: IO[bytes] | Iterable[bytes], *,
              chunk_size: int = CHUNK_SIZE) -> BlobInfo:
        """Store a content, streamed, and return its digest and size.

        Chunks are committed as they are read (a few MB per transaction); the content's manifest
        is committed last. Content already stored is not stored again.

        Args:
            source: a binary stream (a file open in ``rb``, ``io.BytesIO``) or an iterable of
                bytes.
            chunk_size: the largest chunk.

        Returns:
            The stored content.

        Raises:
            StoreError: the store failed (chunks committed so far stay, referenced by nothing).
            TypeError: the stream is not binary.
        """
        # A content of one chunk (most files) is its chunk: its SHA-256 is the chunk's, so the
        # whole is hashed only from the second chunk on (hashing is most of a small upload).
        whole: Any = None
        first = b""
        size = 0
        digests: list[bytes] = []
        pending: list[tuple[str, bytes]] = []
        for chunk in _chunks_of(source, chunk_size):
            if not digests:
                first = chunk
            else:
                if whole is None:
                    whole = hashlib.sha256(first)
                whole.update(chunk)
            size += len(chunk)
            digest = hashlib.sha256(chunk).digest()
            digests.append(digest)
            pending.append((digest.hex(), chunk))
            if len(pending) >= CHUNKS_PER_COMMIT:
                self._insert_chunks(pending)
                pending = []
        if pending:
            self._insert_chunks(pending)
        if whole is not None:
            sha256 = whole.hexdigest()
        else:
            sha256 = digests[0].hex() if digests else hashlib.sha256(b"").hexdigest()
        info = BlobInfo(sha256=sha256, size=size, chunks=tuple(d.hex() for d in digests))
        self._insert_manifest(info)
        return info

    def write_bytes(self, data: bytes) -> BlobInfo:
        """Store a small content held in memory (see :meth:`write`)."""
        return self.write([data])

    def concatenate(self, parts: Iterable[str]) -> BlobInfo:
        """Store the content made of stored contents one after the other, without copying
        their chunks (a finished log made of its parts).

        Args:
            parts: the SHA-256 of each stored part, in order.

        Returns:
            The stored whole.

        Raises:
            BlobError: a part is missing or damaged.
            StoreError: the store failed.
        """
        whole = hashlib.sha256()
        size = 0
        chunks: list[str] = []
        for part in parts:
            info = self.info(part)
            for data in self.read(part):
                whole.update(data)
                size += len(data)
            chunks.extend(info.chunks)
        info = BlobInfo(sha256=whole.hexdigest(), size=size, chunks=tuple(chunks))
        self._insert_manifest(info)
        return info

    def _insert_chunks(self, chunks: list[tuple[str, bytes]]) -> None:
        held = self._held_chunks([c[0] for c in chunks])
        fresh = [c for c in chunks if c[0] not in held]
        if fresh:
            self._put_chunks(fresh)

    def _insert_manifest(self, info: BlobInfo) -> None:
        self._put_manifest(info.sha256, info.size,
                           b"".join(bytes.fromhex(c) for c in info.chunks))

    # ------------------------------------------------------------------ reading
    def info(self, sha256: str) -> BlobInfo:
        """Return a stored content's size and chunk digests.

        Raises:
            BlobError: no content has this digest.
            StoreError: the store failed.
        """
        row = self._get_manifest(sha256)
        if row is None:
            raise BlobError(f"the content sha256:{sha256} is missing from {self.what}")
        return BlobInfo(sha256=sha256, size=row[0], chunks=_split_manifest(row[1]))

    def exists(self, sha256: str) -> bool:
        """Whether a complete content with this digest is stored."""
        try:
            self.info(sha256)
        except BlobError:
            return False
        return True

    def read(self, sha256: str) -> Iterator[bytes]:
        """Yield a stored content's bytes, chunk by chunk, each checked against its digest.

        After the last chunk the whole is checked against ``sha256`` and its recorded size:
        a caller writing the chunks somewhere must not trust them before the generator ends.

        Raises:
            BlobError: the content or a chunk is missing, or does not match its digest.
            StoreError: the store failed.
        """
        info = self.info(sha256)
        whole = hashlib.sha256()
        size = 0
        for digest in info.chunks:
            data = self._get_chunk(digest)
            if data is None:
                raise BlobError(f"a chunk (sha256:{digest}) of sha256:{sha256} is missing "
                                f"from {self.what}")
            if hashlib.sha256(data).hexdigest() != digest:
                raise BlobError(f"a chunk (sha256:{digest}) of sha256:{sha256} does not match "
                                "its digest")
            whole.update(data)
            size += len(data)
            yield data
        if whole.hexdigest() != sha256 or size != info.size:
            raise BlobError(f"the content read back ({size} bytes, sha256:{whole.hexdigest()}) "
                            f"does not match sha256:{sha256} ({info.size} bytes)")

    # ------------------------------------------------------------------ export and import
    def iter_manifests(self, page: int = 500) -> Iterator[BlobInfo]:
        """Yield every stored content (its manifest), ordered by digest, a page per query."""
        after = ""
        while True:
            rows = self._list_manifests(after, page)
            for sha256, size, chunks in rows:
                yield BlobInfo(sha256=str(sha256), size=int(size),
                               chunks=_split_manifest(bytes(chunks)))
            if len(rows) < page:
                return
            after = str(rows[-1][0])

    def chunk(self, digest: str) -> bytes:
        """Return one chunk's bytes, checked against its digest.

        Raises:
            BlobError: missing or damaged.
        """
        data = self._get_chunk(digest)
        if data is None:
            raise BlobError(f"the chunk sha256:{digest} is missing from {self.what}")
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobError(f"the chunk sha256:{digest} does not match its digest")
        return data

    def import_chunk(self, digest: str, data: bytes) -> bool:
        """Store a chunk read from an export (idempotent).

        Returns:
            Whether it was new.

        Raises:
            BlobError: the bytes do not match the digest.
        """
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobError(f"the exported chunk sha256:{digest} does not match its bytes")
        if self._held_chunks([digest]):
            return False
        self._put_chunks([(digest, data)])
        return True

    def import_manifest(self, info: BlobInfo) -> bool:
        """Store a content's manifest read from an export, once its chunks are stored
        (idempotent).

        Returns:
            Whether it was new.

        Raises:
            BlobError: a chunk it lists is not stored.
        """
        if self.exists(info.sha256):
            return False
        for start in range(0, len(info.chunks), 500):
            wanted = info.chunks[start:start + 500]
            held = self._held_chunks(list(wanted))
            missing = [c for c in wanted if c not in held]
            if missing:
                raise BlobError(f"the exported content sha256:{info.sha256} lists a chunk "
                                f"(sha256:{missing[0]}) the export does not hold")
        self._insert_manifest(info)
        return True


class SQLBlobStore(SideTables, BlobStore):
    """Contents in the ledger's own database: ``rl_blob_chunks`` and ``rl_blobs`` (see the
    module docstring; :class:`SideTables` for the arguments).

    Raises:
        StoreError: the tables cannot be created.
    """

    TABLES = _TABLES
    TABLE_NAMES = ("rl_blobs", "rl_blob_chunks")

    def _held_chunks(self, digests: list[str]) -> set[str]:
        with self._cursor(commit=False) as cursor:
            cursor.execute(self._sql(_HAS_CHUNKS, len(digests)), digests)
            return {str(row[0]) for row in cursor.fetchall()}

    def _put_chunks(self, chunks: list[tuple[str, bytes]]) -> None:
        with self._cursor(commit=True) as cursor:
            cursor.executemany(self._sql(_INSERT_CHUNK), chunks)

    def _put_manifest(self, sha256: str, size: int, manifest: bytes) -> None:
        with self._cursor(commit=True) as cursor:
            cursor.execute(self._sql(_INSERT_BLOB), (sha256, size, manifest))

    def _get_manifest(self, sha256: str) -> tuple[int, bytes] | None:
        with self._cursor(commit=False) as cursor:
            cursor.execute(self._sql(_SELECT_BLOB), (sha256,))
            row = cursor.fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def _get_chunk(self, digest: str) -> bytes | None:
        with self._cursor(commit=False) as cursor:
            cursor.execute(self._sql(_SELECT_CHUNK), (digest,))
            row = cursor.fetchone()
        return None if row is None else bytes(row[0])

    def _list_manifests(self, after: str, page: int) -> list[tuple[str, int, bytes]]:
        with self._cursor(commit=False) as cursor:
            cursor.execute(self._sql(_LIST_BLOBS), (after, page))
            return [(str(a), int(b), bytes(c)) for a, b, c in cursor.fetchall()]


class FsspecBlobStore(BlobStore):
    """Contents in a folder or object store, through ``fsspec`` (the ``files`` extra): chunks as
    ``<root>/chunks/<2 hex>/<sha256>``, manifests as ``<root>/blobs/<2 hex>/<sha256>`` (8 bytes
    of size, then the chunk digests). Chunks are written before the manifest and each object is
    written under a temporary name and moved into place, so a reader never sees half an object.

    Args:
        url: the root (``/data/runledger-files``, ``file:///...``, ``s3://bucket/prefix``...).

    Raises:
        StoreConfigError: fsspec is not installed, or it does not know the URL's protocol.
    """

    def __init__(self, url: str) -> None:
        from ledger.domain.errors import StoreConfigError

        try:
            import fsspec
        except ImportError:
            raise StoreConfigError(
                f"files={url!r} needs fsspec: pip install 'runledger-ml[files]'") from None
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as error:
            raise StoreConfigError(f"files={url!r}: {error}") from error
        self.root = str(root).rstrip("/")
        self.what = url

    def _path(self, kind: str, digest: str) -> str:
        return f"{self.root}/{kind}/{digest[:2]}/{digest}"

    def _put(self, path: str, data: bytes) -> None:
        from ledger.domain.errors import StoreError

        partial = f"{path}.partial-{os.getpid()}-{threading.get_ident()}"
        try:
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(partial, data)
            self.fs.mv(partial, path)
        except OSError as error:
            raise StoreError(f"Writing {path} in {self.what} failed: {error}") from error

    def _get(self, path: str) -> bytes | None:
        from ledger.domain.errors import StoreError

        try:
            return bytes(self.fs.cat_file(path))
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"Reading {path} in {self.what} failed: {error}") from error

    def _held_chunks(self, digests: list[str]) -> set[str]:
        return {d for d in digests if self.fs.exists(self._path("chunks", d))}

    def _put_chunks(self, chunks: list[tuple[str, bytes]]) -> None:
        for digest, data in chunks:
            self._put(self._path("chunks", digest), data)

    def _put_manifest(self, sha256: str, size: int, manifest: bytes) -> None:
        path = self._path("blobs", sha256)
        if not self.fs.exists(path):
            self._put(path, size.to_bytes(8, "big") + manifest)

    def _get_manifest(self, sha256: str) -> tuple[int, bytes] | None:
        raw = self._get(self._path("blobs", sha256))
        return None if raw is None else (int.from_bytes(raw[:8], "big"), raw[8:])

    def _get_chunk(self, digest: str) -> bytes | None:
        return self._get(self._path("chunks", digest))

    def _list_manifests(self, after: str, page: int) -> list[tuple[str, int, bytes]]:
        try:
            paths = self.fs.find(f"{self.root}/blobs")
        except FileNotFoundError:
            return []
        names = sorted(p.rsplit("/", 1)[-1] for p in paths if ".partial-" not in p)
        rows = []
        for sha256 in [n for n in names if n > after][:page]:
            found = self._get_manifest(sha256)
            if found is not None:
                rows.append((sha256, found[0], found[1]))
        return rows
