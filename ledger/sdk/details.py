"""A run's details, as the seed SDK's ``Run.get_details()`` shapes them: the one mapping from what
runledger records to the camelCase keys every face shows (SDK, CLI, the coming web viewer).

Two sources give the same keys: a run's aggregate (``details_from_aggregate``: everything, as
``get_details()`` returns it) and a query index row (``details_from_row``: no events loaded, as
``runledger run list`` answers; it adds ``number`` and lacks ``logFiles``, ``inputDatasets``,
``outputDatasets`` and the error's ``exceptionType``). Keys whose value is
``None`` are left out; times are ISO-8601 UTC strings ending in ``Z``.

A failed run's ``error`` is the seed's error response: ``{"error": {"code", "message",
"exceptionType"?}, "time": <end time>}``. A submitted run's ``runDefinition`` is
``{"script", "arguments", "target", "environment": {"name", "version"}, ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ledger.domain.names import PROP_RUN_DEFINITION

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


def run_definition(properties: Mapping[str, str | None]) -> dict[str, Any] | None:
    """The run definition a submitted run recorded (``None`` for other runs)."""
    raw = properties.get(PROP_RUN_DEFINITION)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else None


def error_response(error: Mapping[str, str] | None, ended: str | None) -> dict[str, Any] | None:
    """The seed's error response around a run's recorded error (``None`` when it has none)."""
    if not error:
        return None
    return _compact({"error": dict(error), "time": ended})


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
        "runDefinition": run_definition(agg.properties),
        "logFiles": dict(log_files or {}),
        "submittedBy": agg.created_by.get("user"),
        "error": error_response(agg.error, iso_utc(agg.ended_at)),
    })


def details_from_row(row: RunRow) -> dict[str, Any]:
    """Return a run's details from its query index row, plus its ``number`` (see the module
    docstring)."""
    error = None
    if row.error_code is not None or row.error_message is not None:
        error = error_response(_compact({"code": row.error_code, "message": row.error_message}),
                               iso_utc(row.ended_at))
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
        "runDefinition": run_definition(row.properties),
        "error": error,
    })


# The seed CLI's (``az ml run list/show``) snake_case keys, by the camelCase key they come from.
AZ_KEYS = (
    ("runId", "run_id"), ("number", "run_number"), ("experimentName", "experiment_name"),
    ("displayName", "display_name"), ("status", "status"), ("runType", "run_type"),
    ("target", "target"), ("parentRunId", "parent_run_id"), ("description", "description"),
    ("createdTimeUtc", "created_utc"), ("startTimeUtc", "start_time_utc"),
    ("endTimeUtc", "end_time_utc"), ("submittedBy", "submitted_by"), ("tags", "tags"),
    ("properties", "properties"), ("runDefinition", "run_definition"), ("logFiles", "log_files"),
)


def az_record(details: Mapping[str, Any]) -> dict[str, Any]:
    """A run's details as the seed CLI's record: snake_case keys (``run_id``, ``run_number``,
    ``start_time_utc``...); a failed run's ``error`` is the inner ``{"code", "message"}``.

    Args:
        details: ``get_details()`` (with ``number``) or ``details_from_row()``.
    """
    record = {snake: details[camel] for camel, snake in AZ_KEYS if camel in details}
    error = details.get("error")
    if isinstance(error, Mapping):
        record["error"] = dict(error.get("error") or {})
    return record
