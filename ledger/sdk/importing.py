"""Bringing runs from another tracking system into a ledger: the SDK side of the importers in
``ledger/importers/`` (MLflow first).

An importer reads its source and describes each run as a ``SourceRun`` and the run's metric
values the ledger does not hold yet; ``sync_run`` makes the ledger's run agree with it, through
the run's own commands (so every imported change is a validated event with an actor), and ends
with one ``Imported`` event recording the source, the source's run id and its business times.
A sync that changes nothing appends nothing: re-importing a source is free and idempotent.

Files. An importer that copies the source's files (MLflow's artifacts) lists them as
``SourceFile``s and gives ``sync_run`` a ``fetch`` that brings one to a local path; the files the
run lacks, by name, are fetched one at a time, their contents stored as the run-files API stores
an upload (``ledger.sdk.files.store_content``), and recorded as ``FileUploaded`` events in the
same write as the run's other imported changes, before its ``Imported`` event. Run file names
are write-once: a file the run already has is never fetched again (so a re-import copies
nothing), and one whose size differs in the source is left as it is and reported.

Business time. Every event keeps its recorded ``timestamp`` (when the import wrote it) and the
importer's ``actor``; the source's times (created, started, ended) and author travel in the
``Imported`` event and replace the recorded ones in ``get_details()`` and the query index, and
each metric value keeps its own source time (``MetricsLogged`` holds a time per value).
"""

from __future__ import annotations

import builtins
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ledger.domain.errors import RunNotFoundError
from ledger.domain.files import check_file_name
from ledger.domain.metrics import SCALAR
from ledger.domain.status import RunStatus
from ledger.domain.values import Actor
from ledger.sdk.experiment import Experiment
from ledger.sdk.files import store_content
from ledger.sdk.run import Run

if TYPE_CHECKING:
    from ledger.domain.run import RunAggregate
    from ledger.sdk.workspace import Workspace

# A metric value as compared between a source and the ledger: (name, step, time in ms, value).
MetricPoint = tuple[str, int | None, int, Any]

# Brings one source file to a local path: (its name, an empty temporary folder to put it in).
FileFetcher = Callable[[str, Path], Path]
# A stored file as ``RunAggregate.add_files`` takes it: (name, size, sha256, media type).
_FileEntry = tuple[str, int, str, str]

_FAILED_MESSAGE = "The run ended with status FAILED in {source} (no error message recorded there)."


@attrs.frozen
class SourceRun:
    """What a source says about one run, already in the ledger's terms.

    Attributes:
        source: the kind of source (``"mlflow"``).
        source_uri: where it was read (password masked).
        source_run_id: the run's id in the source.
        run_id: the ledger's id for it (deterministic: the same source run always maps to it).
        experiment_name: the ledger experiment holding it.
        parent_run_id: the ledger id of its parent, if any (imported before it).
        display_name, description: as the source names and describes it.
        submitted_by: the source's user who ran it.
        status: the ledger status it maps to.
        created_at, started_at, ended_at: the source's times (UTC).
        properties: immutable facts (parameters, source code, ids in the source).
        tags: mutable tags.
        artifacts: the paths of the run's artifacts in the source.
    """

    source: str
    source_uri: str
    source_run_id: str
    run_id: str
    experiment_name: str
    parent_run_id: str | None
    display_name: str | None
    description: str | None
    submitted_by: str | None
    status: RunStatus
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    properties: Mapping[str, str | None]
    tags: Mapping[str, str | None]
    artifacts: tuple[str, ...] = ()


@attrs.frozen
class SourceFile:
    """One file of a source run (an MLflow artifact) to copy into the ledger run's files.

    Attributes:
        name: its path in the source, relative (``model/MLmodel``): also its name in the run.
        size: its length in bytes as the source reports it (``None``: not reported).
    """

    name: str
    size: int | None = None


@attrs.frozen
class SyncResult:
    """What ``sync_run`` did to one run.

    Attributes:
        run_id: the ledger's run.
        created: the run was new to the ledger.
        changed: any event was appended (run, files or metrics).
        metric_values: how many metric values were appended.
        files: how many files were copied.
        differing: the names of files the run already holds with another size than the
            source's (not replaced: run file names are write-once).
    """

    run_id: str
    created: bool
    changed: bool
    metric_values: int
    files: int = 0
    differing: tuple[str, ...] = ()


def metric_point(name: str, step: int | None, time_s: float, value: Any) -> MetricPoint:
    """The comparable form of one metric value (NaN equals NaN here; times to the millisecond,
    the resolution sources such as MLflow record)."""
    if isinstance(value, float) and value != value:
        value = "NaN"
    return (name, step, round(time_s * 1000), value)


def ledger_metric_points(workspace: Workspace, run_id: str) -> Counter[MetricPoint]:
    """Count the scalar metric values the ledger holds for a run, by ``metric_point``.

    A Counter rather than a set: a source may hold the same value twice, and a later import
    must add only what is missing, value by value.
    """
    points: Counter[MetricPoint] = Counter()
    for event in workspace.ledger.application.metric_events(run_id):
        for name, kind, _description, values, steps, times in event.series:
            if kind != SCALAR:
                continue
            points.update(metric_point(name, s, t, v) for v, s, t in
                          zip(values, steps, times, strict=True))
    return points


def _apply(agg: RunAggregate, actor: Actor, source: SourceRun, metric_values: int,
           tags: Mapping[str, str | None], files: Sequence[_FileEntry]) -> bool:
    """Bring a run's aggregate in line with the source; all its events or none."""
    agg.add_properties(dict(source.properties), actor)
    agg.set_tags(dict(tags), actor)
    if source.display_name is not None:
        agg.set_display_name(source.display_name, actor)
    if source.description is not None:
        agg.set_description(source.description, actor)
    _move_to(agg, source.status, actor, source.source)
    known = getattr(agg, "files", None) or {}
    # A writer that recorded one of them meanwhile (another import of the same source) wins.
    new_files = [entry for entry in files if entry[0] not in known]
    if new_files:
        agg.add_files(new_files, actor)
    return agg.record_import(
        source=source.source, source_uri=source.source_uri, source_run_id=source.source_run_id,
        created_at=source.created_at, started_at=source.started_at, ended_at=source.ended_at,
        submitted_by=source.submitted_by, metric_values=metric_values,
        artifacts=list(source.artifacts), actor=actor)


def _move_to(agg: RunAggregate, target: RunStatus, actor: Actor, source: str) -> None:
    """Take the run to the source's status along the allowed transitions.

    A run already ended here stays as it is (a source reopening an ended run is not followed),
    and a Running run is not moved back to Queued.
    """
    current = agg.status
    if current is target or current.is_terminal:
        return
    if target is RunStatus.QUEUED:
        if current is RunStatus.NOT_STARTED:
            agg.set_status(RunStatus.QUEUED, actor)
        return
    if current is not RunStatus.RUNNING:
        agg.start(actor)
    if target is RunStatus.COMPLETED:
        agg.complete(actor)
    elif target is RunStatus.FAILED:
        agg.fail("UserError", _FAILED_MESSAGE.format(source=source), None, actor)
    elif target is RunStatus.CANCELED:
        agg.cancel(actor)


def sync_run(workspace: Workspace, source: SourceRun,
             new_metrics: Sequence[tuple[str, Sequence[float], Sequence[int], Sequence[float]]],
             *, batch: int | None = None, files: Sequence[SourceFile] = (),
             fetch: FileFetcher | None = None) -> SyncResult:
    """Make the ledger's run agree with the source's, appending only the difference.

    A new run is created (with its parent, properties, tags, status and files) and published in
    one transaction; a known one gets only what changed (properties it lacks, changed tags, a
    newer status, display name or description, files it lacks), all in one write, retried if
    another writer changed the run meanwhile. An ``Imported`` event ends every sync that
    changed something. Then the new metric values are appended, up to ``batch`` values to an
    event.

    Args:
        workspace: the ledger.
        source: the source's run.
        new_metrics: the values the ledger lacks, per metric: ``(name, values, steps, times)``
            with times in seconds since the epoch (see ``ledger_metric_points``).
        batch: values per ``MetricsLogged`` event (default: the workspace's metric batch).
        files: the source run's files to copy into the run (those it lacks, by name).
        fetch: brings one of ``files`` to a local path (needed when ``files`` is given); its
            errors propagate, and nothing of the run is written then.

    Returns:
        What was done.

    Raises:
        RunNotFoundError: the parent run is not in the ledger.
        PropertyImmutableError: the ledger's run holds a property with another value (nothing
            of this run is written).
        ValidationError: a key, value, name or file name the ledger does not accept (nothing
            is written).
        StoreError: the store failed.
    """
    count = sum(len(values) for _name, values, _steps, _times in new_metrics)
    # Every name is checked before any content is fetched: a bad one writes nothing.
    wanted = [attrs.evolve(f, name=check_file_name(f.name, source.run_id, "artifact name"))
              for f in files]
    if wanted and fetch is None:
        raise TypeError("sync_run: files given without a fetch")
    experiment = Experiment(workspace, source.experiment_name)
    try:
        run = Run.get(workspace, source.run_id)
    except RunNotFoundError:
        run = None
    created = run is None
    known: Mapping[str, Any] = {}
    if run is not None and wanted:
        known = getattr(run._refreshed(), "files", None) or {}
    differing = tuple(f.name for f in wanted if f.name in known and f.size is not None
                      and known[f.name]["size"] != f.size)
    entries = _store_files(workspace, source.run_id,
                           [f for f in wanted if f.name not in known], fetch)
    if run is None:
        parent = Run.get(workspace, source.parent_run_id) if source.parent_run_id else None
        run = Run._create(experiment, parent=parent, run_id=source.run_id,
                          display_name=source.display_name, description=source.description,
                          start=False)
        changed = bool(run._command(
            lambda agg, actor: _apply(agg, actor, source, count, source.tags, entries)))
        run.flush()
    else:
        changed = bool(run._command(
            lambda agg, actor: _apply(agg, actor, source, count, source.tags, entries)))
    if count:
        _append_metrics(workspace, source.run_id, new_metrics, run._actor(),
                        batch or workspace.settings.metric_batch)
    return SyncResult(run_id=source.run_id, created=created, changed=changed or bool(count),
                      metric_values=count, files=len(entries), differing=differing)


def _store_files(workspace: Workspace, run_id: str, files: Sequence[SourceFile],
                 fetch: FileFetcher | None) -> builtins.list[_FileEntry]:
    """Fetch and store the contents of ``files``, one at a time (disk holds one file of the
    source at a time, memory none), before the events that will name them."""
    entries: builtins.list[_FileEntry] = []
    if not files or fetch is None:
        return entries
    app = workspace.ledger.application
    for file in files:
        with tempfile.TemporaryDirectory(prefix="runledger-import-") as folder:
            local = fetch(file.name, Path(folder))
            entries.append(store_content(app, run_id, file.name, local))
    return entries


def _append_metrics(workspace: Workspace, run_id: str,
                    new_metrics: Iterable[tuple[str, Sequence[float], Sequence[int],
                                                Sequence[float]]],
                    actor: Actor, batch: int) -> None:
    """Append imported values, ``batch`` to an event, whatever the run's status: they are
    history the source recorded while it ran (``log()`` refuses values on an ended run)."""
    app = workspace.ledger.application
    pending: builtins.list[builtins.list[Any]] = []
    size = 0
    for name, values, steps, times in new_metrics:
        for start in range(0, len(values), batch):
            chunk = slice(start, start + batch)
            part = [name, SCALAR, "", list(values[chunk]), list(steps[chunk]), list(times[chunk])]
            pending.append(part)
            size += len(part[3])
            if size >= batch:
                app.append_metrics(run_id, pending, actor)
                pending, size = [], 0
    if pending:
        app.append_metrics(run_id, pending, actor)
