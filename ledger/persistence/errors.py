"""The boundary where the store's errors become runledger's own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.domain.errors import StoreError


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Translate eventsourcing's persistence errors raised inside the block into ``StoreError``.

    A write conflict (``IntegrityError``: another writer appended first) is not a store failure:
    it passes through unchanged, for the caller to reload and retry.

    Args:
        what: what was being done, for the message ("Reading sqlite:///ledger.db").

    Raises:
        StoreError: the store failed inside the block.
    """
    try:
        yield
    except IntegrityError:
        raise
    except PersistenceError as error:
        raise StoreError(f"{what} failed: {error}") from error
