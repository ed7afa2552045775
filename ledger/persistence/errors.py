"""The boundary where the store's errors become runledger's own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from eventsourcing.persistence import PersistenceError

from ledger.domain.errors import StoreError


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Translate eventsourcing's persistence errors raised inside the block into ``StoreError``.

    Args:
        what: what was being done, for the message ("Reading sqlite:///ledger.db").

    Raises:
        StoreError: the store failed inside the block.
    """
    try:
        yield
    except PersistenceError as error:
        raise StoreError(f"{what} failed: {error}") from error
