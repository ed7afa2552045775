"""The record of one stored event, as an export file writes it and as the Merkle tree seals it.

One concept, one place: an event of the log is the msgpack array
``[notification_id, originator_id, originator_version, topic, state]`` --

- ``notification_id``: its position in the log (int);
- ``originator_id``: the stream's UUID as its 16 bytes (msgpack ``bin``), or the text of a stream
  id that is not a UUID (msgpack ``str``);
- ``originator_version``: its version in the stream (int, from 1);
- ``topic``: the event's type (str);
- ``state``: the stored bytes exactly as the store holds them (msgpack ``bin``).

``runledger export`` writes exactly these bytes per event, and the Merkle leaf of the event is
these bytes (``ledger.domain.merkle.leaf_hash(encode_record(...))``), so anyone can recompute the
root of a log from an export with msgpack and hashlib alone (see ``docs/audit.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import msgpack

#: Packs one record; make one per thread (msgpack's ``Packer`` is not thread-safe).
RecordPacker = Callable[[Any], bytes]


def pack_id(originator_id: UUID | str) -> bytes | str:
    """Return a stream id as a record holds it: a UUID's 16 bytes, or the text of another id.

    Args:
        originator_id: the stream id as eventsourcing gives it.

    Returns:
        Bytes for a UUID, else the id as text.
    """
    return originator_id.bytes if isinstance(originator_id, UUID) else str(originator_id)


def unpack_id(value: Any) -> UUID | str:
    """Return the stream id a record holds (the inverse of :func:`pack_id`).

    Args:
        value: the record's second item.

    Returns:
        The UUID, or the text id.

    Raises:
        ValueError: it is neither 16 bytes nor text.
    """
    if isinstance(value, bytes) and len(value) == 16:
        return UUID(bytes=value)
    if isinstance(value, str):
        return value
    raise ValueError(f"Not a stream id in a log record: {value!r}")


def new_packer() -> RecordPacker:
    """Return a function packing records (and other msgpack values) the way exports do.

    Returns:
        ``Packer(use_bin_type=True).pack`` of a new packer.
    """
    return msgpack.Packer(use_bin_type=True).pack  # type: ignore[no-any-return]


def record(notification_id: int, originator_id: UUID | str | bytes, originator_version: int,
           topic: str, state: bytes) -> list[Any]:
    """Return the record array of a stored event.

    Args:
        notification_id: its position in the log.
        originator_id: its stream (or its 16 UUID bytes, as a record holds it).
        originator_version: its version in the stream.
        topic: its topic.
        state: its stored bytes.

    Returns:
        ``[notification_id, originator_id, originator_version, topic, state]`` as a record
        holds them.
    """
    stream = originator_id if isinstance(originator_id, bytes) else pack_id(originator_id)
    return [notification_id, stream, originator_version, topic, bytes(state)]


def encode_record(notification_id: int, originator_id: UUID | str | bytes,
                  originator_version: int, topic: str, state: bytes,
                  packer: RecordPacker | None = None) -> bytes:
    """Return the msgpack bytes of an event's record: the export's bytes and the Merkle leaf.

    Args:
        notification_id: its position in the log.
        originator_id: its stream (or its 16 UUID bytes, as a record holds it).
        originator_version: its version in the stream.
        topic: its topic.
        state: its stored bytes.
        packer: a packer from :func:`new_packer` (faster in a loop); a new one by default.

    Returns:
        The encoded record.
    """
    pack = packer or new_packer()
    return pack(record(notification_id, originator_id, originator_version, topic, state))
