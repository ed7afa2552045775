"""A run's details, as the seed SDK's ``Run.get_details()`` shapes them: the one mapping from what
runledger records to the camelCase keys every face shows (SDK, CLI, the coming web viewer).

Two sources give the same keys: a run's aggregate (``details_from_aggregate``: everything, as
``get_details()`` returns it) and a query index row (``details_from_row``: no events loaded, as
``runledger run list`` answers; it adds ``number`` and lacks ``logFiles``, ``inputDatasets``,
``outputDatasets`` and the error's ``exceptionType``). Keys whose value is ``None`` are left out;
times are ISO-8601 UTC strings ending in ``Z``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.domain.run import RunAggregate
    from projections.read_models import RunRow


def iso_utc(moment: datetime | None) -> str | None:
    """Format a time as ISO-8601 UTC ending in ``Z`` (``None`` stays ``None``)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _compact(details: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in details.items() if v is not None}


def details_from_aggregate(agg: RunAggregate, *, status: str | None = None,
                           log_files: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return ``Run.get_details()`` of a run's aggregate (see the module docstring).

    Args:
        agg: the run's aggregate.
        status: the status as observed (a script run whose supervisor stopped answering is
            NotResponding: ``ledger.sdk.liveness``); default the recorded one.
        log_files: the run's log files by name (``RunFilesMixin._log_file_locations``).
    """
    return _compact({
        "runId": agg.run_id,
        "experimentName": agg.experiment_name,
        "runType": agg.run_type,
        "target": agg.target,
        "status": status or agg.status.value,
        "parentRunId": agg.parent_run_id,
        "displayName": agg.display_name,
        "description": agg.description,
        "createdTimeUtc": iso_utc(agg.created_at),
        "startTimeUtc": iso_utc(agg.started_at),
        "endTimeUtc": iso_utc(agg.ended_at),
        "properties": dict(agg.properties),
        "tags": dict(agg.tags),
        "inputDatasets": [],
        "outputDatasets": [],
        "logFiles": dict(log_files or {}),
        "submittedBy": agg.created_by.get("user"),
        "error": dict(agg.error) if agg.error else None,
    })


def details_from_row(row: RunRow) -> dict[str, Any]:
    """Return a run's details from its query index row, plus its ``number`` (see the module
    docstring)."""
    error = None
    if row.error_code is not None or row.error_message is not None:
        error = _compact({"code": row.error_code, "message": row.error_message})
    return _compact({
        "runId": row.run_id,
        "experimentName": row.experiment_name,
        "number": row.number,
        "displayName": row.display_name,
        "status": row.status,
        "runType": row.run_type,
        "target": row.target,
        "parentRunId": row.parent_run_id,
        "description": row.description,
        "createdTimeUtc": iso_utc(row.created_at),
        "startTimeUtc": iso_utc(row.started_at),
        "endTimeUtc": iso_utc(row.ended_at),
        "submittedBy": row.created_by,
        "properties": dict(row.properties),
        "tags": dict(row.tags),
        "error": error,
    })
