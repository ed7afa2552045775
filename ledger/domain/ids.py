"""Run ids and the UUIDs of their event streams.

Users see run ids as strings (a UUID for ``start_logging()``, ``<experiment>_<seconds>_<hex>`` for a
submitted script, or any string given to ``child_run(run_id=...)``). Event streams need UUIDs: an
id that is a UUID is used as it is, any other id is mapped by ``uuid5``.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid

# Fixed forever: changing it would orphan every stored run and experiment.
LEDGER_NAMESPACE = uuid.UUID("6f1c1f5e-0c3b-4d0e-9a51-7d1e2a6c4b90")


def new_run_id() -> str:
    """Return a new random, time-ordered run id (a UUIDv7 string).

    Time order keeps index inserts local as the ledger grows; the format is a plain UUID, as the
    seed SDK's run ids are.
    """
    return new_run()[0]


_new = object.__new__
_set = object.__setattr__
_SAFE_UNKNOWN = uuid.SafeUUID.unknown


def new_run() -> tuple[str, uuid.UUID]:
    """Return a new run id (as :func:`new_run_id` makes it) and the UUID of its stream (the
    UUID the id spells, what ``run_stream_id`` of the id returns), without parsing the text
    back: ``start_logging()`` makes one per run."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    # uuid.UUID(int=value) without its argument checks (value is a 128-bit int by construction).
    stream = _new(uuid.UUID)
    _set(stream, "int", value)
    _set(stream, "is_safe", _SAFE_UNKNOWN)
    digits = f"{value:032x}"  # str(stream), as uuid.UUID.__str__ spells it
    run_id = f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
    return run_id, stream


def new_script_run_id(experiment_name: str) -> str:
    """Return a run id in the seed SDK's style for submitted scripts."""
    return f"{experiment_name}_{int(time.time())}_{secrets.token_hex(4)}"


def run_stream_id(run_id: str) -> uuid.UUID:
    """Return the UUID of the event stream of the run with this id."""
    try:
        parsed = uuid.UUID(run_id)
    except ValueError:
        return uuid.uuid5(LEDGER_NAMESPACE, "run:" + run_id)
    # Only the canonical spelling is taken as is, so that two spellings never name two streams.
    if str(parsed) == run_id:
        return parsed
    return uuid.uuid5(LEDGER_NAMESPACE, "run:" + run_id)


def metric_stream_id(run_id: str) -> uuid.UUID:
    """Return the UUID of the stream that holds the metrics of the run with this id."""
    return uuid.uuid5(LEDGER_NAMESPACE, "metrics:" + run_id)


def experiment_stream_id(name: str) -> uuid.UUID:
    """Return the deterministic UUID of an experiment, so that two processes creating the same
    experiment at once end with one."""
    return uuid.uuid5(LEDGER_NAMESPACE, "experiment:" + name)
