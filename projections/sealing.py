"""The sealing projection: an RFC 9162 Merkle tree over the whole log, and its checkpoints.

Every event of the log, whatever its topic, is a leaf, in log (notification) order: leaf ``i``
(from 0) is the ``i``-th stored event, and its bytes are the event's record
(``ledger.domain.log_record.encode_record``, exactly what an export writes for it). Tables:

- ``rl_seal_leaves``: per leaf index, the event's notification id, stream (UUID bytes, or the
  UTF-8 of a text id), version and leaf hash. ``prove`` finds a run's leaves by stream.
- ``rl_seal_nodes``: the hash of every perfect subtree of ``2**level`` leaves from leaf
  ``index * 2**level``, by ``(level, index)``, for levels from :data:`MIN_STORED_LEVEL` (16
  leaves) up: one row per 16 events instead of one per event, since a lower node is recomputed
  from at most 8 leaf hashes when a proof needs it. An append-only log never changes a perfect
  subtree, so a node is written once; with the leaves they give any proof with ``O(log n)``
  reads, whatever the size of the log (``ledger.domain.merkle``).
- ``rl_seal_checkpoints``: per tree size sealed, its root, the last notification id it covers,
  when it was sealed (microseconds since the epoch) and the tree's right edge (the hashes of its
  perfect subtrees, concatenated) from which the next page goes on.

Checkpoint policy: one checkpoint at the end of every page the projector applies, in the same
transaction as the page's leaves, nodes and tracking position. A page is at most the projector's
page size (500 events; 1000 in a rebuild), and catching up reads pages until the log has no more,
so after any catch-up the newest checkpoint covers every event committed before it: that is what
``runledger audit digest`` prints.

Sealing runs in the projector's catch-up (queries and ``audit`` commands catch up), never on the
write path: writers pay nothing for it. The tables are a convenience for proofs and digests, and
are trusted by nothing that checks: ``ledger.audit.verify`` recomputes every leaf from the stored
events, and a proof is checked against a digest the user kept.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from ledger.domain.log_record import new_packer, pack_id
from ledger.domain.merkle import HASH_SIZE, CompactRange
from projections.dialect import DbCursor
from projections.projection import LoggedEvent, Projection

#: The lowest level of subtree stored in ``rl_seal_nodes`` (lower ones are recomputed).
MIN_STORED_LEVEL = 4

LEAVES = "rl_seal_leaves"
NODES = "rl_seal_nodes"
CHECKPOINTS = "rl_seal_checkpoints"

_LAST_CHECKPOINT = ("SELECT tree_size, frontier FROM {p}rl_seal_checkpoints "
                    "ORDER BY tree_size DESC LIMIT 1")
_INSERT_LEAF = ("INSERT INTO {p}rl_seal_leaves (position, notification_id, stream, version, "
                "leaf_hash) VALUES (?, ?, ?, ?, ?)")
_INSERT_NODE = "INSERT INTO {p}rl_seal_nodes (level, idx, hash) VALUES (?, ?, ?)"
_INSERT_CHECKPOINT = ("INSERT INTO {p}rl_seal_checkpoints (tree_size, root_hash, last_position, "
                      "sealed_at, frontier) VALUES (?, ?, ?, ?, ?)")


def stream_key(originator_id: Any) -> bytes:
    """Return how ``rl_seal_leaves.stream`` holds a stream id (UUID bytes, or UTF-8 text).

    Args:
        originator_id: the stream id.

    Returns:
        The column value.
    """
    packed = pack_id(originator_id)
    return packed if isinstance(packed, bytes) else packed.encode()


def split_frontier(data: bytes) -> list[bytes]:
    """Return the hashes of a stored right edge (concatenated 32-byte hashes).

    Args:
        data: the column value.

    Returns:
        The hashes, left to right.
    """
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


class SealingProjection(Projection):
    """Appends every event of the log to the Merkle tree and writes a checkpoint per page."""

    name = "runledger.sealing.v1"
    topics = frozenset[str]()
    raw = True
    tables = {
        LEAVES: (
            "CREATE TABLE IF NOT EXISTS {p}rl_seal_leaves ("
            "position {int_pk}, notification_id {bigint} NOT NULL, stream {blob} NOT NULL, "
            "version {bigint} NOT NULL, leaf_hash {blob} NOT NULL)"
        ),
        NODES: (
            "CREATE TABLE IF NOT EXISTS {p}rl_seal_nodes ("
            "level {bigint} NOT NULL, idx {bigint} NOT NULL, hash {blob} NOT NULL, "
            "PRIMARY KEY (level, idx)){without_rowid}"
        ),
        CHECKPOINTS: (
            "CREATE TABLE IF NOT EXISTS {p}rl_seal_checkpoints ("
            "tree_size {int_pk}, root_hash {blob} NOT NULL, last_position {bigint} NOT NULL, "
            "sealed_at {bigint} NOT NULL, frontier {blob} NOT NULL)"
        ),
    }
    indexes = {
        "rl_seal_leaves_stream": "CREATE INDEX IF NOT EXISTS rl_seal_leaves_stream "
                                 "ON {p}rl_seal_leaves (stream, version)",
    }

    def apply(self, cursor: DbCursor, events: Sequence[LoggedEvent]) -> None:
        """Append a page of notifications to the tree and write the page's checkpoint.

        Args:
            cursor: a tuple-row cursor in the projector's transaction.
            events: ``(notification id, topic, Notification)`` for every event of the page
                not sealed yet, in log order.
        """
        sql = self.dialect.sql
        cursor.execute(sql(_LAST_CHECKPOINT))
        row = cursor.fetchone()
        compact = CompactRange() if row is None else CompactRange(
            int(row[0]), split_frontier(bytes(row[1])))
        if not events:
            return
        pack = new_packer()
        sha = hashlib.sha256
        # Column by column, in comprehensions: the page loop is the cost of sealing, paid once
        # per event in every catch-up (a Python loop with a call per step cost twice as much).
        ids = [n.originator_id for _position, _topic, n in events]
        streams = [i.bytes if isinstance(i, UUID) else stream_key(i) for i in ids]
        versions = [n.originator_version for _position, _topic, n in events]
        positions = [position for position, _topic, _n in events]
        # The record of ledger.domain.log_record.encode_record, packed in place (the UUID as its
        # 16 bytes, as pack_id gives it; another id as its text).
        values = [sha(b"\x00" + pack([position, stream if isinstance(i, UUID) else str(i),
                                       version, topic, n.state])).digest()
                  for (position, topic, n), i, stream, version
                  in zip(events, ids, streams, versions, strict=True)]
        first = compact.size
        nodes = compact.extend(values, MIN_STORED_LEVEL)
        leaves = list(zip(range(first, compact.size), positions, streams, versions, values,
                          strict=True))
        cursor.executemany(sql(_INSERT_LEAF), leaves)
        if nodes:
            cursor.executemany(sql(_INSERT_NODE), nodes)
        cursor.execute(sql(_INSERT_CHECKPOINT), (
            compact.size, compact.root(), leaves[-1][1], time.time_ns() // 1000,
            b"".join(compact.hashes)))
