"""The sealing projection: an RFC 9162 Merkle tree over the whole log, and its checkpoints.

Every event of the log, whatever its topic, is a leaf, in log (notification) order: leaf ``i``
(from 0) is the ``i``-th stored event, and its bytes are the event's record
(``ledger.domain.log_record.encode_record``, exactly what an export writes for it). Tables:

- ``rl_seal_tiles``: the leaf hashes, 16 to a row: row ``idx`` holds the hashes of leaves
  ``16 * idx`` to ``16 * idx + 15``, concatenated (the newest row may hold fewer, and is
  rewritten as the next page fills it). One row per 16 events, not one per event: a row per
  event with its stream index was most of what sealing cost in a catch-up.
- ``rl_seal_ids``: where leaves and notification ids part: one row per run of consecutive ids,
  ``(first_id, first_leaf)``: leaf ``first_leaf + k`` is the event with notification id
  ``first_id + k`` up to the next row. SQLite's ids have no gaps (one row in all); PostgreSQL's
  sequence skips the ids of rolled-back inserts (a row per gap). ``prove`` finds a run's events
  through the events table's own ``(stream, version)`` key and their leaves through this table.
- ``rl_seal_nodes``: the hash of every perfect subtree of ``2**level`` leaves from leaf
  ``index * 2**level``, by ``(level, index)``, for levels from :data:`MIN_STORED_LEVEL` (16
  leaves, a tile) up; a lower node is recomputed from at most 8 leaf hashes of its tile when a
  proof needs it. An append-only log never changes a perfect subtree, so a node is written once;
  with the tiles they give any proof with ``O(log n)`` reads, whatever the size of the log
  (``ledger.domain.merkle``).
- ``rl_seal_checkpoints``: per tree size sealed, its root, the last notification id it covers,
  when it was sealed (microseconds since the epoch) and the tree's right edge (the hashes of its
  perfect subtrees, concatenated) from which the next page goes on.

Checkpoint policy: one checkpoint at the end of every page the projector applies, in the same
transaction as the page's tiles, nodes and tracking position. A page is at most the projector's
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
import itertools
import time
from collections.abc import Sequence

from ledger.domain.log_record import new_packer, pack_id
from ledger.domain.merkle import HASH_SIZE, CompactRange
from projections.dialect import DbCursor
from projections.projection import LoggedEvent, Projection

#: The lowest level of subtree stored in ``rl_seal_nodes`` (lower ones are recomputed).
MIN_STORED_LEVEL = 4
#: Leaf hashes per ``rl_seal_tiles`` row: a stored node of the lowest level is one tile.
TILE = 1 << MIN_STORED_LEVEL

TILES = "rl_seal_tiles"
IDS = "rl_seal_ids"
NODES = "rl_seal_nodes"
CHECKPOINTS = "rl_seal_checkpoints"

_LAST_CHECKPOINT = ("SELECT tree_size, frontier, last_position FROM {p}rl_seal_checkpoints "
                    "ORDER BY tree_size DESC LIMIT 1")
_SELECT_TILE = "SELECT hashes FROM {p}rl_seal_tiles WHERE idx = ?"
_UPSERT_TILE = ("INSERT INTO {p}rl_seal_tiles (idx, hashes) VALUES (?, ?) "
                "ON CONFLICT (idx) DO UPDATE SET hashes = excluded.hashes")
_INSERT_IDS = "INSERT INTO {p}rl_seal_ids (first_id, first_leaf) VALUES (?, ?)"
_INSERT_NODE = "INSERT INTO {p}rl_seal_nodes (level, idx, hash) VALUES (?, ?, ?)"
_INSERT_CHECKPOINT = ("INSERT INTO {p}rl_seal_checkpoints (tree_size, root_hash, last_position, "
                      "sealed_at, frontier) VALUES (?, ?, ?, ?, ?)")


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

    # v2: leaf hashes in tiles and an id map (v1 had a row per leaf): a ledger sealed by v1
    # seals again into the v2 tables on its next catch-up.
    name = "runledger.sealing.v2"
    topics = frozenset[str]()
    raw = True
    tables = {
        TILES: (
            "CREATE TABLE IF NOT EXISTS {p}rl_seal_tiles ("
            "idx {int_pk}, hashes {blob} NOT NULL)"
        ),
        IDS: (
            "CREATE TABLE IF NOT EXISTS {p}rl_seal_ids ("
            "first_id {int_pk}, first_leaf {bigint} NOT NULL)"
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

    def apply(self, cursor: DbCursor, events: Sequence[LoggedEvent]) -> None:
        """Append a page of notifications to the tree and write the page's checkpoint.

        Args:
            cursor: a tuple-row cursor in the projector's transaction.
            events: ``(notification id, topic, row)`` for every event of the page not sealed
                yet, in log order; ``row`` is the stored event (``app.read_log_rows``:
                ``(position, stream, version, topic, state)``).
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
        # In comprehensions: the page loop is the cost of sealing, paid once per event in every
        # catch-up (a Python loop with a call per step cost twice as much). The record is the
        # one of ledger.domain.log_record.encode_record, packed in place (pack_id's values).
        values = [sha(b"\x00" + pack([position, pack_id(row[1]), row[2], topic, row[4]])).digest()
                  for position, topic, row in events]
        first = compact.size
        nodes = compact.extend(values, MIN_STORED_LEVEL)
        # The tiles the page fills: the newest stored one (if partial) goes on with this page.
        start = first // TILE
        head = b""
        if first % TILE:
            cursor.execute(sql(_SELECT_TILE), (start,))
            found = cursor.fetchone()
            head = bytes(found[0]) if found is not None else b""
        data = head + b"".join(values)
        width = TILE * HASH_SIZE
        cursor.executemany(sql(_UPSERT_TILE), [
            (start + offset // width, data[offset:offset + width])
            for offset in range(0, len(data), width)])
        ids = [position for position, _topic, _row in events]
        runs = [] if row is not None and ids[0] == int(row[2]) + 1 else [(ids[0], first)]
        if ids[-1] - ids[0] != len(ids) - 1:  # ids only grow: a gap somewhere in the page
            runs += [(later, first + k) for k, (earlier, later)
                     in enumerate(itertools.pairwise(ids), 1) if later != earlier + 1]
        if runs:
            cursor.executemany(sql(_INSERT_IDS), runs)
        if nodes:
            cursor.executemany(sql(_INSERT_NODE), nodes)
        cursor.execute(sql(_INSERT_CHECKPOINT), (
            compact.size, compact.root(), ids[-1], time.time_ns() // 1000,
            b"".join(compact.hashes)))
