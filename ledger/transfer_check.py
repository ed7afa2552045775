"""Checking an export before importing any of it: every event must decode, and hold only text
every store can keep (see ``ledger.domain.text``). One that does not refuses the whole file, with
its position and the reason, and nothing is appended.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

import msgpack
from eventsourcing.persistence import StoredEvent

from ledger.domain.text import find_unstorable

if TYPE_CHECKING:
    from ledger.application import LedgerApplication


@contextmanager
def rereadable(handle: IO[bytes]) -> Iterator[IO[bytes]]:
    """Yield a file that can be read twice: ``handle`` if it can seek, else a temporary copy."""
    if handle.seekable():
        yield handle
        return
    with tempfile.TemporaryFile() as copy:
        shutil.copyfileobj(handle, copy)
        copy.seek(0)
        yield copy


def first_undecodable(app: LedgerApplication, handle: IO[bytes],
                      unpack_id: Any) -> tuple[int, str] | None:
    """Decode every event of an export (after its header) without appending anything.

    Leaves ``handle`` where it was. Damage of the file's framing itself (truncation, a bad
    record) is left to the import, which reports it.

    Args:
        app: the target ledger (its mapper decodes).
        handle: the export, seekable.
        unpack_id: turns a stored stream id into a UUID or string.

    Returns:
        ``(position, reason)`` of the first event that cannot be decoded or holds text that
        cannot be stored, or ``None`` when every event is sound.
    """
    start = handle.tell()
    try:
        unpacker = msgpack.Unpacker(handle, raw=False, strict_map_key=False,
                                    max_buffer_size=256 * 1024 * 1024)
        try:
            next(unpacker)  # the header, checked by the import
            for item in unpacker:
                if isinstance(item, dict):
                    if "chunk" in item or "blob" in item:
                        continue  # run file contents (format 2), checked by their hashes
                    return None  # the trailer
                try:
                    position, stream, version, topic, state = item
                    stored = StoredEvent(originator_id=unpack_id(stream),
                                         originator_version=int(version), topic=str(topic),
                                         state=bytes(state))
                except (TypeError, ValueError):
                    return None  # a damaged record: the import reports it
                try:
                    event = app.mapper.to_domain_event(stored)
                    found = find_unstorable(dict(vars(event)))
                except Exception as error:
                    return int(position), f"it cannot be decoded ({type(error).__name__}: " \
                        f"{str(error)[:200]})"
                if found is not None:
                    return int(position), f"its {found[0]} {found[1]}"
        except (StopIteration, ValueError, msgpack.UnpackException):
            return None  # damaged framing: the import reports it
        return None
    finally:
        handle.seek(start)
