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

    def __init__(self, run_id: str, detail: str | None = None) -> None:
        # detail: where it was looked for ("as of position 3", "in experiment 'e'"); run_id
        # stays the bare id, for callers that read it.
        self.run_id = run_id
        where = f" {detail}" if detail else ""
        super().__init__(f"Run {run_id!r} was not found in this ledger{where}")


class ExperimentNotFoundError(LedgerError, LookupError):
    """No experiment with this name exists in the ledger."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Experiment {name!r} was not found in this ledger")


class EnvironmentNotFoundError(LedgerError, LookupError):
    """No environment (or no such version of it) is registered in the ledger."""

    def __init__(self, name: str, version: str | None = None) -> None:
        which = f"{name!r} version {version!r}" if version is not None else repr(name)
        super().__init__(f"No environment {which} is registered")
        self.name = name
        self.version = version


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

    Properties are a permanent record: once set, a key keeps its value; the governed way to
    change one is ``run.correct_property(key, value, reason)``, which records the correction.
    """

    def __init__(self, run_id: str, key: str, recorded: Any, attempted: Any) -> None:
        self.run_id = run_id
        self.key = key
        self.recorded = recorded
        self.attempted = attempted
        super().__init__(
            f"Property {key!r} of run {run_id!r} is immutable: it is recorded as {recorded!r}, "
            f"cannot set it to {attempted!r} (to correct it, use "
            f"run.correct_property(key, value, reason): the correction is recorded)"
        )


class PropertyNotFoundError(LedgerError, LookupError):
    """A correction named a property the run does not have."""

    def __init__(self, run_id: str, key: str) -> None:
        self.run_id = run_id
        self.key = key
        super().__init__(
            f"Run {run_id!r} has no property {key!r} to correct (add it with "
            "add_properties)")


class ConcurrencyError(LedgerError):
    """A command kept conflicting with other writers of the same run after every retry."""


class StoreError(LedgerError):
    """The store failed (cannot be opened, is locked too long, is corrupt...)."""


class StoreConfigError(LedgerError, ValueError):
    """A store URL or configuration file is not understood."""


class RunFailedError(LedgerError):
    """``wait_for_completion(raise_on_error=True)`` found the run Failed."""

    def __init__(self, run_id: str, error: dict[str, Any]) -> None:
        """Args:
            run_id: the run.
            error: ``get_details()["error"]`` (``{"error": {"code", "message"...}, "time"}``,
                the seed's shape) or its inner ``{"code", "message"}``; ``self.error`` is the
                inner one.
        """
        import json

        inner = error.get("error") if isinstance(error, dict) else None
        response = error if isinstance(inner, dict) else {"error": error}
        self.run_id = run_id
        self.error: dict[str, Any] = inner if isinstance(inner, dict) else error
        super().__init__(f"Run {run_id!r} failed:\n{json.dumps(response, indent=4)}")


class RunFileNotFoundError(LedgerError, LookupError):
    """A run has no file of that name (``download_file``, ``run download``)."""

    def __init__(self, run_id: str, name: str) -> None:
        self.run_id = run_id
        self.name = name
        super().__init__(f"Run {run_id!r} has no file named {name!r}")


class FileExistsInRunError(ValidationError):
    """A file of that name was already uploaded to the run (names are write-once, as in the
    seed SDK)."""

    def __init__(self, run_id: str, name: str) -> None:
        self.run_id = run_id
        self.name = name
        super().__init__(f"Run {run_id!r} already has a file named {name!r}; "
                         "file names are write-once: upload under another name")


class BlobError(LedgerError):
    """Stored file content is missing or does not match its SHA-256 (the store is damaged)."""


class FileDamagedError(BlobError):
    """A file of a run cannot be read back intact: its content is missing from the store or
    does not hash to the SHA-256 its upload recorded. Nothing was written to the target."""

    def __init__(self, run_id: str, name: str, detail: str) -> None:
        self.run_id = run_id
        self.name = name
        super().__init__(f"File {name!r} of run {run_id!r} is damaged: {detail}")


class AuditError(LedgerError):
    """Base class of the tamper-evidence errors (``ledger.audit``, ``runledger audit ...``)."""


class DigestError(AuditError, ValueError):
    """A digest (or a proof file) is not understood: not JSON, a field missing or malformed."""


class SignatureError(AuditError):
    """A digest's Ed25519 signature is missing or does not verify with the trusted public key."""


class ImportSourceError(LedgerError):
    """The source of an import (an MLflow tracking store...) cannot be read: its client is not
    installed, the store is not reachable, or an experiment named for import does not exist."""
