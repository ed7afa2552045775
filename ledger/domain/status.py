"""Run statuses and the one table of allowed transitions between them."""

from __future__ import annotations

import enum


class RunStatus(str, enum.Enum):
    """The status of a run, spelled as the Azure ML SDK v1 spells it.

    A ``RunStatus`` compares equal to its string, so ``run.get_status() == "Completed"`` holds.
    """

    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    PREPARING = "Preparing"
    STARTING = "Starting"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    CANCEL_REQUESTED = "CancelRequested"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"
    NOT_RESPONDING = "NotResponding"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True for Completed, Failed and Canceled: no status follows these."""
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """True while a run may still log metrics (it is neither ended nor being canceled)."""
        return self not in TERMINAL_STATUSES and self is not RunStatus.CANCEL_REQUESTED


S = RunStatus

TERMINAL_STATUSES = frozenset({S.COMPLETED, S.FAILED, S.CANCELED})

# The one table of allowed status transitions: ``TRANSITIONS[a]`` is every status that may follow
# ``a``. Failed and Canceled are reachable from every non-terminal status, because a run may crash
# or be canceled at any stage; Completed only from the stages where work has been done.
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    S.NOT_STARTED: frozenset(
        {S.QUEUED, S.PREPARING, S.STARTING, S.RUNNING, S.CANCEL_REQUESTED, S.CANCELED, S.FAILED}
    ),
    S.QUEUED: frozenset(
        {S.PREPARING, S.STARTING, S.RUNNING, S.CANCEL_REQUESTED, S.CANCELED, S.FAILED}
    ),
    S.PREPARING: frozenset({S.STARTING, S.RUNNING, S.CANCEL_REQUESTED, S.CANCELED, S.FAILED}),
    S.STARTING: frozenset({S.RUNNING, S.CANCEL_REQUESTED, S.CANCELED, S.FAILED}),
    S.RUNNING: frozenset(
        {S.FINALIZING, S.NOT_RESPONDING, S.COMPLETED, S.CANCEL_REQUESTED, S.CANCELED, S.FAILED}
    ),
    S.NOT_RESPONDING: frozenset(
        {S.RUNNING, S.FINALIZING, S.COMPLETED, S.CANCEL_REQUESTED, S.CANCELED, S.FAILED}
    ),
    S.FINALIZING: frozenset({S.COMPLETED, S.CANCEL_REQUESTED, S.CANCELED, S.FAILED}),
    S.CANCEL_REQUESTED: frozenset({S.CANCELED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
}


def can_transition(current: RunStatus, new: RunStatus) -> bool:
    """Return whether a run in status ``current`` may move to status ``new``."""
    return new in TRANSITIONS[current]
