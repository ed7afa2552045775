"""The exceptions runledger raises. Every one derives from :class:`LedgerError`.

Errors raised for bad input name the run and the key involved, and are raised before anything is
written: a rejected call appends no event.
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Base class of every error runledger raises on purpose."""


class ValidationError(LedgerError, ValueError):
    """An argument has the wrong type or value (an empty name, a list given to ``log()``...)."""


class RunNotFoundError(LedgerError, LookupError):
    """No run with this id exists in the ledger."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"Run {run_id!r} was not found in this ledger")


class ExperimentNotFoundError(LedgerError, LookupError):
    """No experiment with this name exists in the ledger."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Experiment {name!r} was not found in this ledger")


class InvalidTransitionError(LedgerError):
    """A call asked for a status change the transition table does not allow."""

    def __init__(self, run_id: str, current: str, requested: str, action: str = "") -> None:
        self.run_id = run_id
        self.current = current
        self.requested = requested
        what = f"{action}: " if action else ""
        super().__init__(
            f"{what}run {run_id!r} cannot move from status {current} to {requested}"
        )


class RunFinishedError(LedgerError):
    """A call that needs an active run (``log()``, ``child_run()``...) was made on an ended run."""

    def __init__(self, run_id: str, status: str, action: str) -> None:
        self.run_id = run_id
        self.status = status
        self.action = action
        super().__init__(f"Cannot {action}: run {run_id!r} is {status}")


class PropertyImmutableError(LedgerError):
    """A property already recorded on a run was given a different value.

    Properties are a permanent record: once set, a key keeps its first value.
    """

    def __init__(self, run_id: str, key: str, recorded: Any, attempted: Any) -> None:
        self.run_id = run_id
        self.key = key
        self.recorded = recorded
        self.attempted = attempted
        super().__init__(
            f"Property {key!r} of run {run_id!r} is immutable: it is recorded as {recorded!r}, "
            f"cannot set it to {attempted!r}"
        )


class ConcurrencyError(LedgerError):
    """A command kept conflicting with other writers of the same run after every retry."""


class StoreError(LedgerError):
    """The store failed (cannot be opened, is locked too long, is corrupt...)."""


class StoreConfigError(LedgerError, ValueError):
    """A store URL or configuration file is not understood."""


class RunFailedError(LedgerError):
    """``wait_for_completion(raise_on_error=True)`` found the run Failed."""

    def __init__(self, run_id: str, error: dict[str, Any]) -> None:
        import json

        self.run_id = run_id
        self.error = error
        super().__init__(f"Run {run_id!r} failed:\n{json.dumps({'error': error}, indent=4)}")


class ImportSourceError(LedgerError):
    """The source of an import (an MLflow tracking store...) cannot be read: its client is not
    installed, the store is not reachable, or an experiment named for import does not exist."""
