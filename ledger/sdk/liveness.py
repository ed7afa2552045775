"""Whether a submitted script's supervisor still answers: Running, or NotResponding.

A supervisor beats every few seconds (``ledger.sdk.supervisor``, in a row outside the event log:
``ledger.persistence.heartbeats``). Whoever reads the status of a Running script run checks the
beat; one three intervals old (plus slack) means the supervisor died or is stuck, and the reader
records ``StatusChanged`` to NotResponding (an event: the audit trail shows who noticed, when). A
supervisor that was only paused records Running again at its next look. A run with no beat at all
(supervised by an older runledger) is left as it is.

Queries across runs (``get_runs``, ``runledger run list``, the index) answer from read models that
know nothing of heartbeats, so before each one the session sweeps (:func:`record_lapsed`): every
run whose beat has lapsed and that the index shows Running gets the same NotResponding event, and
the index catches up with it. A listing and ``get_status()`` thus agree, and the change stays an
event of the log (a rebuilt index shows it too). Rows of runs that have ended are deleted then,
so the sweep reads only the rows of live or dead-but-unnoticed supervisors.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ledger.domain.errors import LedgerError
from ledger.domain.status import RunStatus
from ledger.domain.values import current_actor

if TYPE_CHECKING:
    from ledger.domain.run import RunAggregate
    from ledger.domain.values import Actor
    from ledger.sdk.run import Run
    from ledger.sdk.session import LedgerSession
    from projections.index import RunIndex

logger = logging.getLogger("runledger")

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

    try:
        run._command(_mark_not_responding)
    except LedgerError:
        return agg.status
    return run._refreshed().status


def _mark_not_responding(aggregate: RunAggregate, actor: Actor) -> None:
    # Judged again on the stored aggregate: another reader may have recorded it first, or the
    # supervisor may have finished the run meanwhile.
    if aggregate.status is RunStatus.RUNNING:
        aggregate.set_status(RunStatus.NOT_RESPONDING, actor)


def record_lapsed(session: LedgerSession, index: RunIndex) -> int:
    """Record NotResponding for every script run the index shows Running whose supervisor has
    stopped beating, and forget the heartbeats of runs that have ended.

    Args:
        session: the open ledger.
        index: its query index, caught up.

    Returns:
        The position of the last event written (0 if none was).

    Raises:
        StoreError: the index could not be read (a failure to read the heartbeats or to record
            an event is logged, and the query answers with the statuses recorded).
    """
    app = session.app
    try:
        lapsed = app.heartbeats.lapsed()
    except LedgerError as error:
        # A store this process may only read (no heartbeat table, no right to create it): the
        # query answers with the statuses recorded.
        logger.debug("runledger: cannot read the heartbeats: %s", error)
        return 0
    if not lapsed:
        return 0
    actor = current_actor(session.settings.user)
    position = 0
    for run_id in lapsed:
        row = index.get(run_id)
        if row is None:
            continue  # not in the index yet (or quarantined): judged at the next query
        status = RunStatus(row.status)
        if status.is_terminal:
            try:
                app.heartbeats.forget(run_id)
            except LedgerError as error:  # only tidying: the next query tries again
                logger.debug("runledger: cannot forget the heartbeat of %s: %s", run_id, error)
        elif status is RunStatus.RUNNING and row.run_type == SCRIPT_RUN_TYPE:
            try:
                _agg, _result, written = app.run_command(
                    None, run_id, lambda agg: _mark_not_responding(agg, actor))
            except LedgerError as error:
                # The query still answers, with the status recorded; the next one tries again.
                logger.warning("runledger: cannot record run %s as NotResponding: %s",
                               run_id, error)
                continue
            position = max(position, written)
    return position
