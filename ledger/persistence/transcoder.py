"""A msgpack transcoder for eventsourcing.

msgpack has no UUID, Decimal or datetime types of its own: UUIDs and Decimals travel as ext types,
timezone-aware datetimes as msgpack timestamps (decoded as UTC datetimes), naive datetimes as an
ext type holding their ISO text. Tuples come back as lists. Floats keep NaN and infinities.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, SafeUUID

import msgpack
from eventsourcing.persistence import Transcoder

EXT_UUID = 1
EXT_DECIMAL = 2
EXT_NAIVE_DATETIME = 3


def _default(obj: Any) -> Any:
    if isinstance(obj, UUID):
        return msgpack.ExtType(EXT_UUID, obj.bytes)
    if isinstance(obj, datetime):
        if obj.tzinfo is None:
            return msgpack.ExtType(EXT_NAIVE_DATETIME, obj.isoformat().encode())
        return msgpack.Timestamp.from_datetime(obj)
    if isinstance(obj, Decimal):
        return msgpack.ExtType(EXT_DECIMAL, str(obj).encode())
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    # numpy scalars and other number-likes: store the Python number they stand for.
    item = getattr(obj, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"runledger cannot store a value of type {type(obj).__name__}: {obj!r}")


_new = object.__new__
_set = object.__setattr__
_UNKNOWN = SafeUUID.unknown
_from_bytes = int.from_bytes


def uuid_from_bytes(data: bytes) -> UUID:
    """Return ``UUID(bytes=data)``, made in a third of the time (no argument checks).

    Raises:
        ValueError: ``data`` is not 16 bytes.
    """
    if len(data) != 16:
        return UUID(bytes=data)  # raises
    uuid = _new(UUID)
    _set(uuid, "int", _from_bytes(data, "big"))
    _set(uuid, "is_safe", _UNKNOWN)
    return uuid


def uuid_from_text(text: str) -> UUID:
    """Return ``UUID(text)`` in half the time for the text of a UUID as stores hold it (32 hex
    digits, as eventsourcing's SQLite table does, or ``str(UUID)``'s); any other text goes
    through ``UUID`` itself.

    Raises:
        ValueError: ``text`` is not a UUID.
    """
    digits = text if len(text) == 32 else text.replace("-", "")
    if len(digits) != 32 or not digits.isalnum():
        return UUID(text)
    uuid = _new(UUID)
    _set(uuid, "int", int(digits, 16))
    _set(uuid, "is_safe", _UNKNOWN)
    return uuid


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_UUID:
        return uuid_from_bytes(data)
    if code == EXT_DECIMAL:
        return Decimal(data.decode())
    if code == EXT_NAIVE_DATETIME:
        return datetime.fromisoformat(data.decode())
    return msgpack.ExtType(code, data)


class MsgpackTranscoder(Transcoder):
    """Encodes event state as msgpack bytes, and decodes it back."""

    def __init__(self) -> None:
        # A packer per thread, made once: msgpack.packb builds one per call, which costs more
        # than packing an event's state. Not shared between threads: ``default`` is Python
        # code, during which another thread could run and pack into the same buffer.
        # ``datetime=True`` packs aware datetimes as timestamps in C, the very bytes
        # ``_default`` gives (naive ones still reach ``_default``).
        self._local = threading.local()

    def encode(self, obj: Any) -> bytes:
        """Encode ``obj`` (an event's state dict) as msgpack bytes.

        Raises:
            TypeError: a value has a type msgpack cannot carry.
        """
        return self.packer().pack(obj)  # type: ignore[no-any-return]  # (a failed pack resets it)

    def packer(self) -> msgpack.Packer:
        """Return this thread's packer: its ``pack(obj)`` is :meth:`encode` (cheaper than an
        ``encode`` per state when encoding several). Use it in this thread only."""
        try:
            packer: msgpack.Packer = self._local.packer
        except AttributeError:
            packer = self._local.packer = msgpack.Packer(default=_default, use_bin_type=True,
                                                         datetime=True)
        return packer

    def decode(self, data: bytes) -> Any:
        """Decode msgpack bytes written by :meth:`encode`."""
        return msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, timestamp=3,
                               strict_map_key=False)

    def unpacker(self) -> msgpack.Unpacker:
        """Return a streaming unpacker decoding as :meth:`decode` does: ``feed()`` it states
        one after the other and ``unpack()`` each (cheaper than a ``decode`` per state when
        decoding many)."""
        return msgpack.Unpacker(raw=False, ext_hook=_ext_hook, timestamp=3,
                                strict_map_key=False, max_buffer_size=0)


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime (naive datetimes are taken as UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)
