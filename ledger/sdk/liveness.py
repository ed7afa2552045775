"""Whether a submitted script's supervisor still answers: Running, or NotResponding.

A supervisor beats every few seconds (``ledger.sdk.supervisor``, in a row outside the event log:
``ledger.persistence.heartbeats``). Whoever reads the status of a Running script run checks the
beat; one three intervals old (plus slack) means the supervisor died or is stuck, and the reader
records ``StatusChanged`` to NotResponding (an event: the audit trail shows who noticed, when). A
supervisor that was only paused records Running again at its next look. A run with no beat at all
(supervised by an older runledger) is left as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger.domain.errors import LedgerError
from ledger.domain.status import RunStatus

if TYPE_CHECKING:
    from ledger.domain.run import RunAggregate
    from ledger.domain.values import Actor
    from ledger.sdk.run import Run

SCRIPT_RUN_TYPE = "azureml.scriptrun"


def observed_status(run: Run, agg: RunAggregate) -> RunStatus:
    """Return the run's status, recording NotResponding first if its supervisor stopped
    beating.

    Args:
        run: the run.
        agg: its up-to-date aggregate.

    Returns:
        The status to show.
    """
    if agg.status is not RunStatus.RUNNING or agg.run_type != SCRIPT_RUN_TYPE:
        return agg.status
    try:
        beat = run._session.app.heartbeats.last(run.id)
    except LedgerError:
        return agg.status  # cannot tell: show what is recorded
    if beat is None or not beat.is_stale():
        return agg.status

    def mark(aggregate: RunAggregate, actor: Actor) -> None:
        if aggregate.status is RunStatus.RUNNING:
            aggregate.set_status(RunStatus.NOT_RESPONDING, actor)

    try:
        run._command(mark)
    except LedgerError:
        return agg.status
    return run._refreshed().status
