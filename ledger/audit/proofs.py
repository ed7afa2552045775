"""Tamper evidence: digests of the log, verification against them, inclusion and consistency
proofs (``runledger audit digest | verify | prove | check-proof | consistency``).

What is trusted and what is not:

- :func:`verify` recomputes every leaf from the stored events (the application recorder's
  ``select_notifications``, a page at a time) and compares the roots with digests the user kept;
  it never trusts the sealing tables (``projections.sealing``). They only help it *name* the
  first changed event: a sealed subtree hash is used only once it is authenticated by the digest
  (the hashes of a split must hash to the digest's root, and so on down), so a rewritten or
  dropped table can hide where a change is but never hide that there is one.
- :func:`check_proof` and :func:`check_consistency` are pure: a proof file and a digest, no
  ledger. :func:`prove` and :func:`consistency` read the sealing tables to build proofs, and check
  what they built against the digests before returning it.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs
import msgpack

from ledger.domain.digest import Digest
from ledger.domain.errors import AuditError, DigestError, RunNotFoundError, StoreError
from ledger.domain.ids import metric_stream_id, run_stream_id
from ledger.domain.log_record import encode_record, new_packer, pack_id, unpack_id
from ledger.domain.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    NodeSource,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    leaf_source,
    needed_nodes,
    node_hash,
    range_hash,
    split_point,
    verify_consistency,
    verify_inclusion,
)
from ledger.persistence.errors import store_errors
from ledger.persistence.positions import select_sqlite_log
from projections.sealing import MIN_STORED_LEVEL, TILE

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from ledger.sdk.workspace import Workspace
    from projections.dialect import Dialect

PROOF_FORMAT = "runledger-inclusion-proof"
CONSISTENCY_FORMAT = "runledger-consistency-proof"
PROOF_VERSION = 1
#: Events per page when verify reads the log.
VERIFY_PAGE = 5000
_CHUNK = 500

#: ``(notification_id, originator_id, originator_version, topic, state)`` of a stored event.
EventTuple = tuple[int, Any, int, str, bytes]


# ---------------------------------------------------------------------- the ledger's side
@attrs.define
class _Sealed:
    """The sealing tables of a ledger, read through the run index's own connection."""

    app: LedgerApplication
    dialect: Dialect
    datastore: Any

    @classmethod
    def of(cls, workspace: Workspace, *, catch_up: bool) -> _Sealed:
        session = workspace._session
        index = session.before_query() if catch_up else session.index
        projector = index._projector
        return cls(session.app, projector.dialect, projector.datastore)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with store_errors("Reading the sealing tables"), \
                self.dialect.transaction(self.datastore, commit=False) as (_wrapped, cursor):
            cursor.execute(self.dialect.sql(sql), params)
            rows: list[Any] = cursor.fetchall()
            return rows

    def latest(self) -> tuple[int, bytes, int] | None:
        rows = self.query("SELECT tree_size, root_hash, sealed_at FROM {p}rl_seal_checkpoints "
                          "ORDER BY tree_size DESC LIMIT 1")
        if not rows:
            return None
        size, root_hash, sealed_at = rows[0]
        return int(size), bytes(root_hash), int(sealed_at)

    def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Return the stored hashes of perfect subtrees (level 0: leaf hashes); missing ones
        are left out."""
        found: dict[tuple[int, int], bytes] = {}
        keys = sorted(set(keys))
        # Subtrees below MIN_STORED_LEVEL are not stored: they are recomputed from their leaves.
        low = [(level, index) for level, index in keys if 0 < level < MIN_STORED_LEVEL]
        wanted = {index for level, index in keys if level == 0}
        for level, index in low:
            wanted.update(range(index << level, (index + 1) << level))
        leaves = sorted(wanted)
        inner = [(level, index) for level, index in keys if level >= MIN_STORED_LEVEL]
        tiles = sorted({leaf // TILE for leaf in leaves})
        for start in range(0, len(tiles), _CHUNK):
            chunk = tiles[start:start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            for tile, data in self.query(
                    f"SELECT idx, hashes FROM {{p}}rl_seal_tiles WHERE idx IN ({marks})", chunk):
                data = bytes(data)
                base = int(tile) * TILE
                for leaf in range(base, base + len(data) // HASH_SIZE):
                    if leaf in wanted:
                        offset = (leaf - base) * HASH_SIZE
                        found[0, leaf] = data[offset:offset + HASH_SIZE]
        for start in range(0, len(inner), _CHUNK):
            pairs = inner[start:start + _CHUNK]
            where = " OR ".join("(level = ? AND idx = ?)" for _ in pairs)
            flat = [v for key in pairs for v in key]
            for level, index, value in self.query(
                    f"SELECT level, idx, hash FROM {{p}}rl_seal_nodes WHERE {where}", flat):
                found[int(level), int(index)] = bytes(value)
        for level, index in low:
            span = [found.get((0, i)) for i in range(index << level, (index + 1) << level)]
            if all(value is not None for value in span):
                found[level, index] = range_hash(0, len(span), leaf_source(
                    [value for value in span if value is not None]))
        return found

    def source_for(self, generate: Callable[[NodeSource], Any]) -> NodeSource:
        """Return a source holding every stored node ``generate`` reads (one query per 500)."""
        found = self.nodes(needed_nodes(generate))

        def source(level: int, index: int) -> bytes:
            value = found.get((level, index))
            if value is None:
                raise AuditError(f"The sealing tables lack the subtree at level {level}, index "
                                 f"{index}: run `runledger projections rebuild`")
            return value

        return source


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1e6, timezone.utc).isoformat()


def digest(workspace: Workspace, *, sign_key: Any = None) -> Digest:
    """Return the digest of the whole log: the newest checkpoint, after catching up.

    Args:
        workspace: the ledger.
        sign_key: an Ed25519 private key (``ledger.domain.digest.load_private_key``) to sign it.

    Returns:
        The digest (tree size 0 and the empty root for an empty ledger).

    Raises:
        StoreError: the store failed.
    """
    sealed = _Sealed.of(workspace, catch_up=True)
    latest = sealed.latest()
    store = sealed.app.store.display_url
    if latest is None:
        result = Digest(0, EMPTY_ROOT, datetime.now(timezone.utc).isoformat(), store)
    else:
        size, root_hash, sealed_at = latest
        result = Digest(size, root_hash, _iso(sealed_at), store)
    return result.signed(sign_key) if sign_key is not None else result


# ---------------------------------------------------------------------- verify
@attrs.frozen
class DigestCheck:
    """How one digest compared with the log.

    Attributes:
        tree_size: the digest's size.
        expected_root: the digest's root (hex).
        recomputed_root: the root recomputed from the events (hex), or ``None`` when the log
            holds fewer events than the digest covers.
        ok: the roots are equal.
    """

    tree_size: int
    expected_root: str
    recomputed_root: str | None
    ok: bool


@attrs.frozen
class VerifyReport:
    """What :func:`verify` found.

    Attributes:
        ok: every digest matches the events.
        events_checked: how many events were read and hashed.
        checks: one per digest, by tree size.
        first_bad_position: the leaf index (from 0) of the first event that differs from what a
            digest sealed, when that can be proven; else ``None``.
        first_bad_notification_id: the notification id of the event now stored at that
            position (``None`` if the log ends before it).
        bad_range: ``(low, high)``: the first change is at a leaf index in ``[low, high)``
            (from the digests alone, when the position cannot be named).
        sealing_authenticated: whether the sealing tables still match a failed digest (so
            they could name the position); ``None`` when no digest failed or there are no
            sealing tables (an export file).
        message: one line for people.
    """

    ok: bool
    events_checked: int
    checks: tuple[DigestCheck, ...]
    first_bad_position: int | None = None
    first_bad_notification_id: int | None = None
    bad_range: tuple[int, int] | None = None
    sealing_authenticated: bool | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        data = attrs.asdict(self)
        data["checks"] = [attrs.asdict(c) for c in self.checks]
        data["bad_range"] = list(self.bad_range) if self.bad_range else None
        return data


class _LeafHashes(Sequence[bytes]):
    """Recomputed leaf hashes held as one bytearray (32 bytes per leaf)."""

    def __init__(self, data: bytearray) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data) // HASH_SIZE

    def __getitem__(self, index: Any) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return bytes(self.data[index * HASH_SIZE:(index + 1) * HASH_SIZE])


def _recompute(events: Iterable[EventTuple], sizes: Sequence[int]) -> tuple[
        bytearray, list[int], dict[int, bytes]]:
    """Hash the events up to the largest size: (leaf hashes, notification ids, size -> root).

    The hot loop of verify: the leaf encoding (``ledger.domain.log_record.encode_record``) and
    the compact range's append (``ledger.domain.merkle.CompactRange``) are inlined here, which
    doubles its speed; a test holds the roots equal to theirs.
    """
    wanted = sorted(set(sizes))
    last = wanted[-1] if wanted else 0
    roots: dict[int, bytes] = {}
    if 0 in wanted:
        roots[0] = EMPTY_ROOT
    hashes = bytearray()
    ids: list[int] = []
    if last == 0:
        return hashes, ids, roots
    pending = iter(w for w in wanted if w > 0)
    target = next(pending, None)
    stack: list[bytes] = []
    push, pop = stack.append, stack.pop
    pack = new_packer()
    sha = hashlib.sha256
    extend, remember = hashes.extend, ids.append
    for count, (notification_id, originator_id, version, topic, state) in enumerate(events, 1):
        if originator_id.__class__ is not bytes:
            originator_id = pack_id(originator_id)
        value = sha(b"\x00" + pack([notification_id, originator_id, version, topic,
                                    state])).digest()
        extend(value)
        remember(notification_id)
        index = count - 1
        while index & 1:
            value = sha(b"\x01" + pop() + value).digest()
            index >>= 1
        push(value)
        if count == target:
            roots[target] = CompactRange(count, stack).root()
            target = next(pending, None)
        if count >= last:
            break
    return hashes, ids, roots


def _locate(size: int, expected: bytes, recomputed: _LeafHashes,
            sealed: Callable[[int, int], bytes | None]) -> int | None:
    """Return the first leaf index where the events differ from what ``expected`` sealed,
    descending through sealed subtree hashes authenticated against ``expected``; ``None`` when
    the sealed hashes do not authenticate (they were rewritten, or are missing)."""
    source = _optional_source(recomputed)
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        left, right = sealed(start, start + k), sealed(start + k, end)
        if left is None or right is None or node_hash(left, right) != expected:
            return None
        if source(start, start + k) != left:
            end, expected = start + k, left
        else:
            start, expected = start + k, right
    # ``expected`` is now the authenticated hash of the one leaf, which the event no longer
    # hashes to (or which is missing).
    return start


def _optional_source(hashes: _LeafHashes) -> Callable[[int, int], bytes | None]:
    source = leaf_source(hashes)

    def range_of(start: int, end: int) -> bytes | None:
        if end > len(hashes):
            return None
        return range_hash(start, end, source)

    return range_of


def _sealed_ranges(sealed: _Sealed) -> Callable[[int, int], bytes | None]:
    cache: dict[tuple[int, int], bytes | None] = {}

    def lookup(level: int, index: int) -> bytes:
        key = (level, index)
        if key not in cache:
            try:
                cache[key] = sealed.nodes([key]).get(key)
            except (StoreError, TypeError, ValueError):
                cache[key] = None  # dropped or rewritten tables: nothing authenticated
        value = cache[key]
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise LookupError(key)
        return value

    def range_of(start: int, end: int) -> bytes | None:
        try:
            return range_hash(start, end, lookup)
        except LookupError:
            return None

    return range_of


def _check_signatures(digests: Sequence[Digest], public_key: Any) -> None:
    if public_key is not None:
        for d in digests:
            d.check_signature(public_key)


def verify_events(events: Iterable[EventTuple], digests: Sequence[Digest], *,
                  sealed: Callable[[int, int], bytes | None] | None = None,
                  public_key: Any = None) -> VerifyReport:
    """Compare a log, given as its events in order, with digests of it.

    Args:
        events: the events, in log order (from a store or an export file).
        digests: the digests to check (at least one).
        sealed: hashes of leaf ranges from sealing tables, if any (used to name the first bad
            position once authenticated by a digest; never trusted otherwise).
        public_key: a trusted Ed25519 public key: every digest must be signed by it.

    Returns:
        The report (``ok`` False when a digest does not match).

    Raises:
        SignatureError: a digest is unsigned or its signature does not verify.
        DigestError: no digest given.
    """
    if not digests:
        raise DigestError("verify needs at least one digest (--digest FILE)")
    _check_signatures(digests, public_key)
    digests = sorted(digests, key=lambda d: d.tree_size)
    data, ids, roots = _recompute(events, [d.tree_size for d in digests])
    hashes = _LeafHashes(data)
    checks = []
    for d in digests:
        got = roots.get(d.tree_size)
        checks.append(DigestCheck(d.tree_size, d.root_hash.hex(),
                                  None if got is None else got.hex(), got == d.root_hash))
    count = len(hashes)
    if all(c.ok for c in checks):
        return VerifyReport(True, count, tuple(checks), message=(
            f"OK: the {count} events hash to the root of "
            + ", ".join(f"the digest of tree size {c.tree_size}" for c in checks)))
    good = [c.tree_size for c in checks if c.ok]
    bad = [d for d, c in zip(digests, checks, strict=True) if not c.ok]
    low = max(good, default=0)
    high = bad[0].tree_size
    position: int | None = None
    authenticated: bool | None = None
    if sealed is not None:
        authenticated = False
        for d in bad:
            found = _locate(d.tree_size, d.root_hash, hashes, sealed)
            if found is not None:
                authenticated = True
                position = found if position is None else min(position, found)
    if position is not None:
        stored = ids[position] if position < count else None
        where = (f"the event stored there now has notification id {stored}" if stored is not None
                 else f"the log ends before it: it holds {count} events")
        message = (f"TAMPERED: the event at leaf index {position} differs from what the digest "
                   f"of tree size {high} sealed ({where})")
        return VerifyReport(False, count, tuple(checks), position, stored,
                            (position, position + 1), authenticated, message)
    if count < high and count >= low:
        note = f"; the log holds {count} events, fewer than the digest covers"
    else:
        note = ""
    if authenticated is False:
        why = ("the sealing tables were also rewritten or dropped, so the position cannot be "
               "proven")
    elif sealed is None:
        why = "there are no sealing tables to name the position"
    else:  # pragma: no cover - sealed given and no bad digest: not reached
        why = ""
    message = (f"TAMPERED: the events do not hash to the digest of tree size {high}; the first "
               f"change is at a leaf index in [{low}, {high}){note}; {why}")
    return VerifyReport(False, count, tuple(checks), None, None, (low, high), authenticated,
                        message)


def store_events(app: LedgerApplication, page: int = VERIFY_PAGE) -> Iterator[EventTuple]:
    """Yield every stored event of a ledger in log order, read a page at a time through the
    application recorder's ``select_notifications``.

    Args:
        app: the ledger.
        page: events per query.

    Yields:
        ``(notification_id, originator_id, originator_version, topic, state)``.

    Raises:
        StoreError: the store failed.
    """
    position = 0
    select = app.recorder.select_notifications
    while True:
        with store_errors(f"Reading {app.store.display_url}"):
            rows = select(start=position, limit=page, inclusive_of_start=False)
        for n in rows:
            yield n.id, n.originator_id, n.originator_version, n.topic, n.state
        if len(rows) < page:
            return
        position = rows[-1].id


def _hex_id(text: Any) -> bytes | str:
    """A stream id as SQLite stores it (32 hex digits) -> its record form (UUID bytes)."""
    try:
        return bytes.fromhex(text) if len(text) == 32 else UUID(text).bytes
    except (TypeError, ValueError):
        return str(text)


def raw_store_events(app: LedgerApplication, dialect: Dialect, datastore: Any,
                     page: int = VERIFY_PAGE) -> Iterator[EventTuple]:
    """Yield every stored event in log order, read with one plain SELECT per page on the
    recorder's own table: the same rows as :func:`store_events` (a test holds them equal), at a
    fraction of the cost -- building eventsourcing's ``Notification`` objects (a ``UUID`` per row)
    was half of verify's time. Stream ids come out as their record form (UUID bytes).

    Args:
        app: the ledger.
        dialect: its SQL dialect.
        datastore: its datastore.
        page: events per query.

    Yields:
        ``(notification_id, originator_id, originator_version, topic, state)``.

    Raises:
        StoreError: the store failed.
    """
    table = getattr(app.recorder, "events_table_name", "stored_events")
    sqlite = dialect.kind == "sqlite"
    convert: Callable[[Any], Any] = _hex_id if sqlite else bytes
    sql = (f'SELECT notification_id, uuid_send(originator_id), originator_version, topic, '
           f'state FROM "{getattr(datastore, "schema", "")}"."{table}" WHERE notification_id > %s '
           "ORDER BY notification_id LIMIT %s")
    position = 0
    while True:
        if sqlite:  # the ledger's one raw reader of the SQLite log
            with store_errors(f"Reading {app.store.display_url}"):
                rows: Sequence[Any] = select_sqlite_log(app.recorder, position, page)
        else:
            with store_errors(f"Reading {app.store.display_url}"), \
                    dialect.transaction(datastore, commit=False) as (_wrapped, cursor):
                cursor.execute(sql, (position, page))
                rows = cursor.fetchall()
        try:
            if convert is _hex_id:
                fromhex = bytes.fromhex
                converted = [(n, fromhex(o), v, t, st) for n, o, v, t, st in rows]
            else:
                converted = [(n, bytes(o), v, t, st) for n, o, v, t, st in rows]
        except (TypeError, ValueError):  # an id that is not 32 hex digits: one row at a time
            converted = [(n, convert(o), v, t, st) for n, o, v, t, st in rows]
        yield from converted
        if len(rows) < page:
            return
        position = rows[-1][0]


def _events_of(sealed: _Sealed) -> Iterator[EventTuple]:
    datastore = sealed.datastore
    if sealed.dialect.kind == "sqlite" or getattr(datastore, "originator_id_type", "") == "uuid":
        return raw_store_events(sealed.app, sealed.dialect, datastore)
    return store_events(sealed.app)


def verify(workspace: Workspace, digests: Sequence[Digest], *,
           public_key: Any = None) -> VerifyReport:
    """Recompute the log's Merkle roots from its stored events and compare them with digests.

    Args:
        workspace: the ledger.
        digests: digests taken earlier (kept outside the ledger).
        public_key: a trusted Ed25519 public key: every digest must be signed by it.

    Returns:
        The report; ``ok`` is False when the events no longer hash to a digest's root (and
        then the first changed position is named when the sealing tables still authenticate
        against the digest; otherwise the range the digests narrow it to).

    Raises:
        SignatureError: a digest's signature does not verify.
        DigestError: no digest given.
        StoreError: the store failed.
    """
    sealed = _Sealed.of(workspace, catch_up=False)
    return verify_events(_events_of(sealed), digests, sealed=_sealed_ranges(sealed),
                         public_key=public_key)


# ---------------------------------------------------------------------- inclusion proofs
@attrs.frozen
class CheckedProof:
    """What :func:`check_proof` established.

    Attributes:
        run_id: the run.
        tree_size: the digest's tree size.
        events: how many of the run's events are proven included.
        streams: per stream (``run`` or ``metrics``), the versions proven (1..n, no gap).
    """

    run_id: str
    tree_size: int
    events: int
    streams: dict[str, int]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _sealed_root_matches(sealed: _Sealed, d: Digest) -> None:
    latest = sealed.latest()
    have = latest[0] if latest else 0
    if d.tree_size > have:
        raise AuditError(f"The digest covers {d.tree_size} events but this ledger has sealed "
                         f"{have}: it is from another ledger, or events were deleted")
    if d.tree_size == 0:
        return
    source = sealed.source_for(lambda s: range_hash(0, d.tree_size, s))
    if range_hash(0, d.tree_size, source) != d.root_hash:
        raise AuditError(f"This ledger's tree of {d.tree_size} events does not have the "
                         "digest's root: the ledger was changed, or the digest is from another "
                         "ledger (run `runledger audit verify`)")


def _leaves_of(sealed: _Sealed, ids: Sequence[int]) -> list[int | None]:
    """The leaf index the sealing tables give each notification id (ascending ids), or ``None``
    for an id before the first sealed one."""
    if not ids:
        return []
    # The runs of consecutive ids from the one holding the smallest id to the largest id.
    spans = [(int(first_id), int(first_leaf)) for first_id, first_leaf in sealed.query(
        "SELECT first_id, first_leaf FROM {p}rl_seal_ids WHERE first_id <= ? AND first_id >= "
        "(SELECT COALESCE(MAX(first_id), 0) FROM {p}rl_seal_ids WHERE first_id <= ?) "
        "ORDER BY first_id", [ids[-1], ids[0]])]
    starts = [first_id for first_id, _leaf in spans]
    found: list[int | None] = []
    for notification_id in ids:
        at = bisect.bisect_right(starts, notification_id) - 1
        if at < 0:
            found.append(None)
            continue
        first_id, first_leaf = spans[at]
        found.append(first_leaf + notification_id - first_id)
    return found


def prove(workspace: Workspace, run_id: str, d: Digest) -> dict[str, Any]:
    """Return inclusion proofs of every event of a run (its run stream and its metric stream)
    sealed within the digest's tree size, as a JSON-ready proof document.

    Args:
        workspace: the ledger.
        run_id: the run.
        d: the digest to prove against (its tree size must be sealed already).

    Returns:
        ``{"format", "version", "run_id", "digest", "tree_size", "events": [{"leaf_index",
        "stream", "originator_version", "topic", "leaf" (base64 record), "proof" (hex)}]}``.

    Raises:
        RunNotFoundError: the run has no event within the digest.
        AuditError: the ledger's sealed tree does not match the digest.
        StoreError: the store failed.
    """
    sealed = _Sealed.of(workspace, catch_up=True)
    _sealed_root_matches(sealed, d)
    streams = {run_stream_id(run_id): "run", metric_stream_id(run_id): "metrics"}
    # The run's events through the events table's own (stream, version) key, then their leaves
    # through the id map; every leaf is recomputed from the stored event and its path checked
    # against the digest below, so a wrong map or a changed event cannot give a passing proof.
    stored = sorted(itertools.chain.from_iterable(sealed.app.stream_rows(list(streams))),
                    key=lambda row: row[0])
    size = d.tree_size
    located = [(leaf, row) for leaf, row in zip(_leaves_of(sealed, [r[0] for r in stored]),
                                                 stored, strict=True)
               if leaf is not None and leaf < size]
    if not located:
        raise RunNotFoundError(run_id, f"within the digest's {d.tree_size} events")
    positions = [leaf for leaf, _row in located]

    def all_proofs(source: NodeSource) -> list[list[bytes]]:
        return [inclusion_proof(p, size, source) for p in positions]

    source = sealed.source_for(all_proofs)
    proofs = all_proofs(source)
    events = []
    pack = new_packer()
    for (position, (notification_id, stream, version, topic, state)), path in zip(
            located, proofs, strict=True):
        leaf = encode_record(notification_id, stream, version, topic, state, pack)
        try:
            verify_inclusion(position, size, leaf_hash(leaf), path, d.root_hash)
        except ProofError:
            raise AuditError(f"The event {stream} v{version} of run {run_id!r} (notification "
                             f"id {notification_id}) is not the one sealed at leaf index "
                             f"{position}: the ledger was changed (run `runledger audit "
                             "verify`)") from None
        events.append({"leaf_index": position, "stream": streams[stream],
                       "originator_version": version, "topic": topic,
                       "leaf": _b64(leaf), "proof": [h.hex() for h in path]})
    return {"format": PROOF_FORMAT, "version": PROOF_VERSION, "run_id": run_id,
            "digest": d.to_json(), "tree_size": size, "events": events}


def _field(doc: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DigestError(f"The proof's {key!r} is missing or malformed: {value!r}")
    return value


def _hashes(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise DigestError(f"The {what} is not a list of hex hashes")
    try:
        return [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        raise DigestError(f"The {what} holds a value that is not hex") from None


def check_proof(doc: Any, d: Digest, *, public_key: Any = None) -> CheckedProof:
    """Check a proof document from :func:`prove` against a trusted digest, with no ledger.

    Every event's leaf (its record) is hashed and its audit path checked up to the digest's
    root (RFC 9162 §2.1.3.2); each record must belong to the run's run or metric stream, and
    each stream's versions must run 1..n without a gap or a repeat.

    Args:
        doc: the parsed proof JSON.
        d: the digest the user trusts (not the one inside the document).
        public_key: a trusted Ed25519 public key the digest must be signed with.

    Returns:
        What was proven.

    Raises:
        ProofError: a proof does not lead to the digest's root, or a record is not the run's.
        DigestError: the document is not a proof document.
        SignatureError: the digest's signature does not verify.
    """
    if public_key is not None:
        d.check_signature(public_key)
    if not isinstance(doc, dict) or doc.get("format") != PROOF_FORMAT:
        raise DigestError("Not a runledger inclusion proof (no runledger-inclusion-proof "
                          "format)")
    run_id = _field(doc, "run_id", str)
    size = _field(doc, "tree_size", int)
    if size != d.tree_size:
        raise ProofError(f"The proof is for a tree of {size} events, the digest covers "
                         f"{d.tree_size}")
    events = _field(doc, "events", list)
    if not events:
        raise ProofError(f"The proof of run {run_id!r} holds no event")
    streams = {run_stream_id(run_id): "run", metric_stream_id(run_id): "metrics"}
    seen: dict[str, list[int]] = {"run": [], "metrics": []}
    indexes: set[int] = set()
    for number, event in enumerate(events):
        if not isinstance(event, dict):
            raise DigestError(f"Event {number} of the proof is not an object")
        index = _field(event, "leaf_index", int)
        try:
            leaf = base64.b64decode(_field(event, "leaf", str), validate=True)
        except ValueError:
            raise DigestError(f"Event {number} of the proof has a leaf that is not base64") \
                from None
        verify_inclusion(index, size, leaf_hash(leaf), _hashes(event.get("proof"),
                                                                 f"proof of event {number}"),
                         d.root_hash)
        try:
            record = msgpack.unpackb(leaf, raw=False)
            _nid, originator, version, _topic, _state = record
            stream = unpack_id(originator)
        except (ValueError, TypeError, msgpack.UnpackException):
            raise ProofError(f"The leaf at index {index} is not an event record") from None
        if not isinstance(stream, UUID) or stream not in streams:
            raise ProofError(f"The leaf at index {index} is an event of stream {stream}, not "
                             f"of run {run_id!r}")
        if index in indexes:
            raise ProofError(f"The proof holds the leaf at index {index} twice")
        indexes.add(index)
        seen[streams[stream]].append(int(version))
    for name, versions in seen.items():
        if sorted(versions) != list(range(1, len(versions) + 1)):
            raise ProofError(f"The proof's {name} events of run {run_id!r} have versions "
                             f"{sorted(versions)}, not 1..{len(versions)}")
    return CheckedProof(run_id, size, len(events), {k: len(v) for k, v in seen.items()})


# ---------------------------------------------------------------------- consistency
def consistency(workspace: Workspace, old: Digest, new: Digest) -> dict[str, Any]:
    """Prove that the log of the later digest extends the log of the earlier one.

    The proof is built from the sealing tables and checked against both digests before it is
    returned, so a ledger rewritten between them cannot produce one.

    Args:
        workspace: the ledger.
        old: the earlier digest.
        new: the later digest.

    Returns:
        ``{"format", "version", "old", "new", "proof": [hex]}`` (check it offline with
        :func:`check_consistency`).

    Raises:
        ProofError: the later log does not extend the earlier (or the tables were rewritten).
        AuditError: the ledger has not sealed the later digest's size.
        StoreError: the store failed.
    """
    if old.tree_size > new.tree_size:
        raise ProofError(f"The first digest ({old.tree_size} events) is larger than the "
                         f"second ({new.tree_size}): give the older digest first")
    sealed = _Sealed.of(workspace, catch_up=True)
    latest = sealed.latest()
    have = latest[0] if latest else 0
    if new.tree_size > have:
        raise AuditError(f"The digest covers {new.tree_size} events but this ledger has sealed "
                         f"{have}")
    if old.tree_size == 0:
        raise ProofError("A consistency proof from the empty tree proves nothing")

    def generate(source: NodeSource) -> list[bytes]:
        return consistency_proof(old.tree_size, new.tree_size, source)

    proof = generate(sealed.source_for(generate))
    doc = {"format": CONSISTENCY_FORMAT, "version": PROOF_VERSION, "old": old.to_json(),
           "new": new.to_json(), "proof": [h.hex() for h in proof]}
    check_consistency(doc, old, new)
    return doc


def check_consistency(doc: Any, old: Digest, new: Digest, *, public_key: Any = None) -> None:
    """Check a consistency proof document against two trusted digests, with no ledger.

    Args:
        doc: the parsed proof JSON (from :func:`consistency`).
        old: the earlier digest the user trusts.
        new: the later digest the user trusts.
        public_key: a trusted Ed25519 public key both digests must be signed with.

    Raises:
        ProofError: the proof does not show that the later log extends the earlier.
        DigestError: the document is not a consistency proof.
        SignatureError: a digest's signature does not verify.
    """
    _check_signatures([old, new], public_key)
    if not isinstance(doc, dict) or doc.get("format") != CONSISTENCY_FORMAT:
        raise DigestError("Not a runledger consistency proof (no runledger-consistency-proof "
                          "format)")
    verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash,
                       _hashes(doc.get("proof"), "consistency proof"))


def read_json(path: str) -> Any:
    """Read a JSON document (a proof or a digest file).

    Raises:
        DigestError: not JSON.
        OSError: unreadable.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (ValueError, UnicodeDecodeError) as error:
        raise DigestError(f"{path} is not JSON: {error}") from None


def verify_export(path: str | os.PathLike[str], digests: Sequence[Digest] = (), *,
                  public_key: Any = None) -> VerifyReport:
    """Check an export file offline: its events against its own trailer digest and against
    digests the user kept (a digest of the source's first N events matches the file's first N).

    Args:
        path: the export file.
        digests: digests of the source ledger, if any.
        public_key: a trusted Ed25519 public key: the trailer's digest (and every given one)
            must be signed by it.

    Returns:
        The report (the trailer's digest is one of its checks).

    Raises:
        TransferError: not an export, or damaged or truncated.
        SignatureError: a signature does not verify.
        DigestError: the file has no digest (an older runledger) and none was given.
        OSError: the file cannot be read.
    """
    from ledger.transfer import ExportReader

    with open(path, "rb") as handle:
        reader = ExportReader(handle)
        for _event in reader.events():
            pass
        trailer = reader.digest()
    if trailer is None and not digests:
        raise DigestError(f"{path} carries no digest (written by an older runledger): give "
                          "a digest of its source to check it against")
    wanted = list(digests) + ([trailer] if trailer is not None else [])
    with open(path, "rb") as handle:
        return verify_events(ExportReader(handle).events(), wanted, public_key=public_key)
