"""The SDK calls behind the commands: opening the workspace, finding runs, shaping run rows.

The CLI reaches the ledger through the SDK's public accessor ``Workspace.ledger`` (its application
and query index); the one SDK internal it reads is a listed run's index row (``Run._row``).

Run rows. ``run list`` answers from the query index: each row is built from the index's
``RunRow`` without loading the run's events, by ``ledger.sdk.details.details_from_row`` (the
keys of ``Run.get_details()`` plus ``number``; see that module for what a row lacks).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ledger.cli.logs import log_workspace
from ledger.cli.options import state
from ledger.domain.errors import ExperimentNotFoundError, RunNotFoundError, ValidationError
from ledger.domain.ids import experiment_stream_id
from ledger.sdk.details import details_from_row, iso_utc
from ledger.sdk.experiment import Experiment
from ledger.sdk.run import Run
from ledger.sdk.workspace import Workspace

if TYPE_CHECKING:
    from projections.index import RunIndex
    from projections.read_models import RunRow

TagFilter = str | dict[str, str | None] | None

# The keys of a run's minimal form (``run list --minimal``).
MINIMAL_KEYS = ("runId", "experimentName", "number", "status", "parentRunId", "startTimeUtc",
                "endTimeUtc")


def open_workspace() -> Workspace:
    """Open the workspace the shared options name (see ``ledger.cli.options``).

    Raises:
        StoreConfigError: the store URL or configuration file is not understood.
        StoreError: the store cannot be opened.
    """
    options = state()
    workspace = Workspace(workspace_name=options.workspace_name, store=options.store)
    log_workspace(workspace.store_url, workspace.name, options.store, workspace.config_file)
    return workspace


def query_index(workspace: Workspace) -> RunIndex:
    """The workspace's query index, caught up with the log."""
    return workspace.ledger.index


def raw_index(workspace: Workspace) -> RunIndex:
    """The workspace's query index, as it is (for maintenance)."""
    return workspace.ledger.raw_index


def get_run(workspace: Workspace, run_id: str, experiment_name: str | None = None) -> Run:
    """Load a run by id; with an experiment name, the run must belong to it.

    Raises:
        RunNotFoundError: no such run (in that experiment).
    """
    run = Run.get(workspace, run_id)
    if experiment_name is not None and run.experiment.name != experiment_name:
        raise RunNotFoundError(run_id, f"in experiment {experiment_name!r}")
    return run


def existing_experiment(workspace: Workspace, name: str) -> Experiment:
    """Return an experiment that exists (``Experiment(ws, name)`` would create it).

    Raises:
        ExperimentNotFoundError: no experiment has this name.
    """
    found = Experiment.list(workspace, experiment_name=name)
    if not found:
        raise ExperimentNotFoundError(name)
    return found[0]


def run_details(run: Run) -> dict[str, Any]:
    """``run.get_details()`` plus the run's ``number``."""
    details = run.get_details()
    details["number"] = run.number
    return details


def listed_details(run: Run) -> dict[str, Any]:
    """A listed run's details: from its index row when it has one, else loaded."""
    row: RunRow | None = getattr(run, "_row", None)
    return details_from_row(row) if row is not None else run_details(run)


def minimal(details: Mapping[str, Any]) -> dict[str, Any]:
    """The minimal form of a run's details (``MINIMAL_KEYS``)."""
    return {k: details[k] for k in MINIMAL_KEYS if k in details}


def split_filter(pairs: Iterable[tuple[str, str | None]],
                 option: str) -> tuple[TagFilter, list[str]]:
    """Turn ``--tags``/``--properties`` arguments into the SDK's filter and the extra keys.

    The SDK takes one filter: a dict ("every pair equals") or one key ("has this key"). Pairs
    become the dict; bare keys the SDK cannot take as well are returned to check here.

    Raises:
        ValidationError: the same key given twice.
    """
    values: dict[str, str | None] = {}
    keys: list[str] = []
    for key, value in pairs:
        if key in values or key in keys:
            raise ValidationError(f"{option}: key {key!r} given more than once")
        if value is None:
            keys.append(key)
        else:
            values[key] = value
    if values:
        return values, keys
    if keys:
        return keys[0], keys[1:]
    return None, []


def _newest_first_key(details: Mapping[str, Any]) -> datetime:
    moment = details.get("createdTimeUtc")
    if not moment:
        return datetime.min.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(str(moment).replace("Z", "+00:00"))  # 3.10 reads no "Z"


def list_runs(workspace: Workspace, *, experiment_name: str | None,
              parent_run_id: str | None, include_children: bool, status: str | None,
              tags: list[tuple[str, str | None]], properties: list[tuple[str, str | None]],
              last: int | None, include_archived: bool = False, search: str | None = None,
              order_by: list[str] | None = None) -> list[dict[str, Any]]:
    """The details of the runs ``run list`` selects, newest first (latest created first; the
    runs of several experiments are merged by creation time), or in ``order_by``'s order.

    ``search`` and ``order_by`` are ``get_runs(filter=, order_by=)``'s; the caller checks that
    ``order_by`` comes with an experiment and neither with a parent run.

    Raises:
        ExperimentNotFoundError: the experiment does not exist.
        RunNotFoundError: the parent run does not exist (in the experiment).
        ValidationError: a filter key given twice; a bad search filter or ordering.
    """
    tag_filter, tag_keys = split_filter(tags, "--tags")
    property_filter, property_keys = split_filter(properties, "--properties")
    runs: Iterator[Run]
    if search is not None or order_by:
        # The keys --tags/--properties require are checked after the query, so the limit is
        # applied here only when there are none.
        limit = last if not (tag_keys or property_keys) else None
        experiments = ([existing_experiment(workspace, experiment_name)]
                       if experiment_name is not None else Experiment.list(workspace))
        per_experiment = [
            (listed_details(r) for r in Run.list(
                e, tags=tag_filter, properties=property_filter, status=status,
                include_children=include_children, include_archived=include_archived,
                filter=search, order_by=order_by or None, max_results=limit))
            for e in experiments]
        if len(per_experiment) == 1:
            return _select(per_experiment[0], tag_keys, property_keys, last)
        return _select(heapq.merge(*per_experiment, key=_newest_first_key, reverse=True),
                       tag_keys, property_keys, last)
    if parent_run_id is not None:
        parent = get_run(workspace, parent_run_id, experiment_name)
        runs = parent.get_children(recursive=include_children, tags=tag_filter,
                                   properties=property_filter, status=status,
                                   include_archived=include_archived)
    elif experiment_name is not None:
        experiment = existing_experiment(workspace, experiment_name)
        runs = Run.list(experiment, tags=tag_filter, properties=property_filter, status=status,
                        include_children=include_children, include_archived=include_archived)
    else:
        per_experiment = [
            (listed_details(r) for r in Run.list(e, tags=tag_filter, properties=property_filter,
                                                 status=status, include_children=include_children,
                                                 include_archived=include_archived))
            for e in Experiment.list(workspace)]
        details: Iterator[dict[str, Any]] = heapq.merge(*per_experiment, key=_newest_first_key,
                                                        reverse=True)
        return _select(details, tag_keys, property_keys, last)
    return _select((listed_details(r) for r in runs), tag_keys, property_keys, last)


def _select(details: Iterable[dict[str, Any]], tag_keys: list[str], property_keys: list[str],
            last: int | None) -> list[dict[str, Any]]:
    chosen = (d for d in details
              if all(k in d.get("tags", {}) for k in tag_keys)
              and all(k in d.get("properties", {}) for k in property_keys))
    return list(itertools.islice(chosen, last) if last else chosen)


def experiment_rows(workspace: Workspace) -> list[dict[str, Any]]:
    """The workspace's experiments (archived ones too, with ``archivedTime``), with their run
    counts and tags, by name."""
    rows = []
    for row in query_index(workspace).experiments():
        shown: dict[str, Any] = {
            "name": row.name, "id": str(experiment_stream_id(row.name)),
            "createdTimeUtc": iso_utc(row.created_at), "createdBy": row.created_by,
            "runCount": row.run_count, "tags": dict(row.tags)}
        if row.archived_time is not None:
            shown["archivedTime"] = iso_utc(row.archived_time)
        rows.append(shown)
    return sorted(rows, key=lambda r: str(r["name"]))
