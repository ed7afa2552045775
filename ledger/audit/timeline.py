"""Any run as it was at any moment: views as of a moment, differences, the change history, list
queries as of a moment, and a copy of the ledger as it stood then.

What a moment is (``when``):

- an ``int`` **position** P: the ledger as it stood after the event at log position P (the
  notification id; ``0`` is the empty ledger). Positions are the order in which the store
  committed events, the same for every process and host: as of P is exact and reproducible.
- an aware ``datetime`` T: every stream as its own events recorded it up to T. An event's time is
  its eventsourcing timestamp, taken by the process that made the call (``run.tag(...)``) from its
  own clock. A stream's events are read in order and the view stops at the first one recorded
  after T, so a view as of a time is always a state the stream really had. Times recorded by
  different processes or hosts are not ordered: clocks drift (skew), and a call made at 10:00:00
  may be committed after one made at 10:00:01. So "as of T" is per stream, not a cut of the whole
  log; use positions when order across runs matters. A naive datetime is refused.

Cost: a view of one run reads only that run's two streams (its run stream and its metric stream)
through their primary key, up to the moment (``ledger.persistence.positions``): O(its events),
not O(the log). A list query as of a moment selects its candidates from the run index by what
never changes after creation (experiment, parent, type, creation position or time), then folds
each candidate's own events, 500 runs to a query.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs
from eventsourcing.persistence import Notification

from ledger.domain.errors import RunNotFoundError, ValidationError
from ledger.domain.ids import metric_stream_id, run_stream_id
from ledger.domain.metrics import TABLE, MetricsLogged, shape_metrics
from ledger.domain.run import RunAggregate
from ledger.domain.values import Actor
from ledger.persistence.positions import StreamRow

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from projections.index import RunIndex

#: A moment: a log position (int) or an aware datetime.
When = datetime | int

# Candidate runs folded per query in a list query as of a moment.
LIST_CHUNK = 500

# The properties a script run's log files are recorded under, and their names in
# ``get_details()["logFiles"]`` (as ``ledger.sdk.run`` shapes them).
_LOG_PROPERTIES = (("runledger.control_log_file", "azureml-logs/60_control_log.txt"),
                   ("runledger.log_file", "azureml-logs/70_driver_log.txt"))


# ---------------------------------------------------------------------- moments
def check_when(when: Any, what: str = "when") -> When:
    """Validate a moment.

    Args:
        when: an int position (>= 0) or an aware datetime.
        what: the argument's name, for the error message.

    Returns:
        The moment.

    Raises:
        ValidationError: a naive datetime, a negative position, or another type.
    """
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValidationError(
                f"{what} must be an aware datetime (with a time zone, e.g. "
                f"datetime(..., tzinfo=timezone.utc)), not the naive {when.isoformat()}: "
                "times are recorded in UTC and a naive one is ambiguous")
        return when
    if isinstance(when, int) and not isinstance(when, bool):
        if when < 0:
            raise ValidationError(f"{what} as a log position must be >= 0, not {when}")
        return when
    raise ValidationError(
        f"{what} must be a log position (int) or an aware datetime, not "
        f"{type(when).__name__}: {when!r}")


def parse_when(text: str, what: str = "moment") -> When:
    """Parse a moment as the CLI takes it: an integer position, or ISO-8601 with a zone.

    Args:
        text: ``"42"``, ``"2026-11-27T10:00:00Z"``, ``"2026-11-27T11:00:00+01:00"``...
        what: the option's name, for the error message.

    Returns:
        The moment.

    Raises:
        ValidationError: neither, or a time without a zone.
    """
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{what} {text!r} is neither a log position (an integer) nor an ISO-8601 time "
            "(2026-11-27T10:00:00Z)") from None
    if moment.tzinfo is None:
        raise ValidationError(
            f"{what} {text!r} has no time zone: add Z (UTC) or an offset such as +01:00")
    return moment


def describe_when(when: When) -> str:
    """Return a moment as text (``position 42``, ``2026-11-27T10:00:00Z``)."""
    if isinstance(when, datetime):
        return iso(when) or ""
    return f"position {when}"


def iso(moment: datetime | None) -> str | None:
    """Format a time as ISO-8601 UTC ending in ``Z`` (``None`` stays ``None``)."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# One event of a stream with its log position.
Positioned = tuple[int, Any]


def _prefix(events: Sequence[Positioned], when: When) -> Sequence[Positioned]:
    """The events of ONE stream as of ``when`` (in order): up to the position, or up to the
    first event recorded after the time."""
    if isinstance(when, int):
        if not events or events[-1][0] <= when:
            return events
        return [pair for pair in events if pair[0] <= when]
    return list(itertools.takewhile(lambda pair: pair[1].timestamp <= when, events))


# ---------------------------------------------------------------------- state and changes
@attrs.frozen
class FieldChange:
    """One thing that changed.

    Attributes:
        field: ``status``, ``display_name``, ``description``, ``property``, ``tag``,
            ``archived``, ``error``, ``metric`` (a count of values), ``file`` (a file
            uploaded: ``new`` is its ``size``, ``sha256`` and ``media_type``) or ``run`` (it
            came to be).
        key: the property, tag, metric or file name (``None`` for the other fields).
        old: the value before (``None`` when ``change`` is ``added``).
        new: the value after (``None`` when ``change`` is ``removed``).
        change: ``added``, ``changed`` or ``removed``.
    """

    field: str
    key: str | None
    old: Any
    new: Any
    change: str

    def as_dict(self) -> dict[str, Any]:
        """Return the change as JSON-ready data."""
        return {"field": self.field, "key": self.key, "old": self.old, "new": self.new,
                "change": self.change}

    def text(self) -> str:
        """Return the change as one line: ``tag quality: 'good' -> 'bad'``."""
        name = self.field.replace("_", " ") + (f" {self.key}" if self.key is not None else "")
        if self.field == "file" and self.change == "added":
            return f"{name}: + {self.new['size']} bytes (sha256 {self.new['sha256'][:12]})"
        if self.change == "added":
            return f"{name}: + {self.new!r}"
        if self.change == "removed":
            return f"{name}: {self.old!r} -> (removed)"
        return f"{name}: {self.old!r} -> {self.new!r}"


@attrs.frozen
class RunState:
    """What can change about a run, at one moment (``exists`` is false before its creation)."""

    exists: bool
    status: str | None = None
    display_name: str | None = None
    description: str | None = None
    properties: Mapping[str, str | None] = attrs.field(factory=dict)
    tags: Mapping[str, str | None] = attrs.field(factory=dict)
    archived: bool = False
    error: Mapping[str, str] | None = None
    metric_counts: Mapping[str, int] = attrs.field(factory=dict)
    files: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)

    @classmethod
    def of(cls, run: RunAggregate | None, metric_counts: Mapping[str, int]) -> RunState:
        """The state of a folded run (``None``: not created yet)."""
        if run is None:
            return cls(exists=False, metric_counts=dict(metric_counts))
        return cls(exists=True, status=run.status.value, display_name=run.display_name,
                   description=run.description, properties=dict(run.properties),
                   tags=dict(run.tags), archived=run.archived,
                   error=dict(run.error) if run.error else None,
                   metric_counts=dict(metric_counts),
                   files={name: {"size": entry["size"], "sha256": entry["sha256"],
                                 "media_type": entry["media_type"]}
                          for name, entry in (getattr(run, "files", None) or {}).items()})


def _pairs(field: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    changes = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            changes.append(FieldChange(field, key, None, after[key], "added"))
        elif key not in after:
            changes.append(FieldChange(field, key, before[key], None, "removed"))
        elif before[key] != after[key]:
            changes.append(FieldChange(field, key, before[key], after[key], "changed"))
    return changes


def state_changes(before: RunState, after: RunState) -> tuple[FieldChange, ...]:
    """Return what changed from one state of a run to another.

    Args:
        before: the earlier state.
        after: the later state.

    Returns:
        The changes: the run's creation, status, display name, description, error, archived,
        then properties, tags, metric counts and files by key (old -> new).
    """
    changes: list[FieldChange] = []
    if before.exists != after.exists:
        changes.append(FieldChange("run", None, before.exists, after.exists,
                                   "added" if after.exists else "removed"))
    for field in ("status", "display_name", "description", "error"):
        old, new = getattr(before, field), getattr(after, field)
        if old != new:
            kind = "added" if old is None else "removed" if new is None else "changed"
            changes.append(FieldChange(field, None, old, new, kind))
    if before.archived != after.archived:
        changes.append(FieldChange("archived", None, before.archived, after.archived,
                                   "changed"))
    changes += _pairs("property", before.properties, after.properties)
    changes += _pairs("tag", before.tags, after.tags)
    changes += _pairs("metric", before.metric_counts, after.metric_counts)
    changes += _pairs("file", before.files, after.files)
    return tuple(changes)


def _count_values(counts: dict[str, int], series: Sequence[list[Any]]) -> None:
    for name, kind, _description, values, _steps, _times in series:
        if kind == TABLE:
            added = sum(max((len(c) for c in table.values()), default=0) for table in values)
        else:
            added = len(values)
        counts[name] = counts.get(name, 0) + added


def _fold_rows(app: LedgerApplication, rows: Sequence[StreamRow],
               when: When) -> tuple[RunAggregate | None, int]:
    """Fold a run stream's stored rows (in version order) as of ``when``, with the domain's own
    ``apply`` methods, decoding each event only when it is folded.

    For a position the rows are already cut by the query; for a time the fold stops at the
    first event recorded after it, and the rows after that one are never decoded.

    ``Created`` builds the aggregate with eventsourcing's ``mutate``; the others are applied
    directly: the rows come from the stream's primary key in version order, so the checks
    ``mutate`` makes per event (same stream, next version) hold by construction, and skipping
    them halves the cost of a long run.

    Returns:
        The run (``None``: no run stream or not created by then) and the log position of the
        newest event folded (0 for ``None``).
    """
    if not rows:
        return None, 0
    events = app.iter_decode_rows(rows)
    first = next(events)
    timed = isinstance(when, datetime)
    if timed and first.timestamp > when:
        return None, 0
    run: Any = first.mutate(None)
    if not isinstance(run, RunAggregate):
        return None, 0
    last = first
    if timed:
        folded = 1
        for event in events:
            if event.timestamp > when:
                break
            event.apply(run)
            last = event
            folded += 1
    else:
        for event in events:
            event.apply(run)
            last = event
        folded = len(rows)
    run.version = last.originator_version
    run.modified_on = last.timestamp
    return run, rows[folded - 1][0]


def _metrics_rows(app: LedgerApplication, rows: Sequence[StreamRow],
                  when: When) -> tuple[list[list[list[Any]]], int]:
    """The metric batches of a metric stream's rows as of ``when`` (cut as :func:`_fold_rows`
    cuts), and the log position of the newest one (0: none)."""
    batches: list[list[list[Any]]] = []
    position = 0
    timed = isinstance(when, datetime)
    for row, event in zip(rows, app.iter_decode_rows(rows), strict=True):
        if timed and event.timestamp > when:
            break
        batches.append(event.series)
        position = row[0]
    return batches, position


# ---------------------------------------------------------------------- one run
class RunAsOf:
    """A read-only view of a run as it was at a moment (see the module docstring).

    Built by :func:`run_as_of` (``run.as_of(when)``) and by list queries as of a moment. It has
    the reading methods of ``Run`` (``get_status``, ``get_details``, ``get_properties``,
    ``get_tags``, ``get_metrics``) and no writing ones.

    Attributes:
        id: the run's id.
        when: the moment asked for.
        position: the log position of the newest event of the run (its own stream or its
            metric stream) the view includes.
        archived: whether the run was archived then.
        number: the run's number in its experiment, when the view came from a list query.
    """

    def __init__(self, run: RunAggregate, when: When, run_position: int,
                 metrics: Callable[[], tuple[list[list[list[Any]]], int]],
                 number: int | None = None, position: int | None = None) -> None:
        # metrics() returns the metric batches as of the moment and the position of the newest;
        # it is called once, when the metrics (or, if not given, the position) are asked for.
        self._run = run
        self._metrics = metrics
        self._batches: list[list[list[Any]]] | None = None
        self._metric_position = 0
        self._run_position = run_position
        self._position = position
        self.id = run.run_id
        self.when = when
        self.archived = run.archived
        self.number = number

    @property
    def position(self) -> int:
        """The log position of the newest event of the run (its own stream or its metric
        stream) that the view includes."""
        if self._position is None:
            self._metric_batches()
            self._position = max(self._run_position, self._metric_position)
        return self._position

    def __repr__(self) -> str:
        return (f"RunAsOf(Id: {self.id}, Status: {self.get_status()}, "
                f"as of {describe_when(self.when)})")

    @property
    def experiment_name(self) -> str:
        """The name of the run's experiment."""
        return self._run.experiment_name

    @property
    def parent_run_id(self) -> str | None:
        """The id of the run's parent (``None`` for a top-level run)."""
        return self._run.parent_run_id

    def get_status(self) -> str:
        """Return the run's status then."""
        return self._run.status.value

    def get_properties(self) -> dict[str, str | None]:
        """Return a copy of the run's properties then (corrections up to then applied)."""
        return dict(self._run.properties)

    def get_tags(self) -> dict[str, str | None]:
        """Return a copy of the run's tags then."""
        return dict(self._run.tags)

    def get_details(self) -> dict[str, Any]:
        """Return the run's details then, as ``Run.get_details()`` shapes them."""
        run = self._run
        details: dict[str, Any] = {
            "runId": run.run_id,
            "experimentName": run.experiment_name,
            "runType": run.run_type,
            "target": run.target,
            "status": run.status.value,
            "parentRunId": run.parent_run_id,
            "displayName": run.display_name,
            "description": run.description,
            "createdTimeUtc": iso(run.created_at),
            "startTimeUtc": iso(run.started_at),
            "endTimeUtc": iso(run.ended_at),
            "properties": dict(run.properties),
            "tags": dict(run.tags),
            "inputDatasets": [],
            "outputDatasets": [],
            "logFiles": {name: str(run.properties[key]) for key, name in _LOG_PROPERTIES
                         if run.properties.get(key)},
            "submittedBy": run.created_by.get("user"),
            "error": dict(run.error) if run.error else None,
        }
        return {k: v for k, v in details.items() if v is not None}

    def get_metrics(self, name: str | None = None) -> dict[str, Any]:
        """Return the metrics the ledger had recorded for the run then, in ``get_metrics()``'s
        shapes (values still buffered in a process then were not recorded yet).

        Args:
            name: only this metric.
        """
        return shape_metrics(self._metric_batches(), name)

    def state(self) -> RunState:
        """Return the run's state then (what :func:`run_diff` compares)."""
        counts: dict[str, int] = {}
        for series in self._metric_batches():
            _count_values(counts, series)
        return RunState.of(self._run, counts)

    def _metric_batches(self) -> list[list[list[Any]]]:
        if self._batches is None:
            self._batches, self._metric_position = self._metrics()
        return self._batches


def _load(app: LedgerApplication, streams: Sequence[UUID],
          until: int | None) -> dict[UUID, list[Positioned]]:
    """The events of some streams, decoded, with their positions, by stream."""
    rows = app.stream_notifications(streams, until=until)
    by_stream: dict[UUID, list[Positioned]] = {stream: [] for stream in streams}
    for row, event in zip(rows, app.decode_rows(rows), strict=True):
        by_stream[row[1]].append((row[0], event))
    return by_stream


def run_as_of(app: LedgerApplication, run_id: str, when: Any) -> RunAsOf:
    """Return a run as it was at a moment.

    Args:
        app: the ledger.
        run_id: the run's id.
        when: a log position (int) or an aware datetime (see the module docstring).

    Returns:
        The read-only view.

    Raises:
        ValidationError: ``when`` is not a position or an aware datetime.
        RunNotFoundError: the run did not exist then (or does not exist at all).
        StoreError: the store failed.
    """
    when = check_when(when)
    if not isinstance(run_id, str):
        raise ValidationError(f"A run id must be a string, not {type(run_id).__name__}")
    run_rows, metric_rows = app.stream_rows([run_stream_id(run_id), metric_stream_id(run_id)],
                                            until=when if isinstance(when, int) else None)
    run, run_position = _fold_rows(app, run_rows, when)
    if run is None or run.run_id != run_id:
        created = ""
        # Does the run exist now? Then say when it came to be, so a moment too early is plain
        # (by position the query stopped before it; this read is on the error path only).
        later = run_rows or app.stream_rows([run_stream_id(run_id)])[0]
        if later and run is None:
            first = app.decode_rows(later[:1])[0]
            if getattr(first, "run_id", None) == run_id:
                created = (f": it was created later, at position {later[0][0]} "
                           f"({iso(first.timestamp)})")
        raise RunNotFoundError(run_id, f"as of {describe_when(when)}{created}")
    # The metric batches are decoded only if asked for; by position the query has cut them
    # already, so the view's position is known without decoding them.
    known = max(run_position, metric_rows[-1][0] if metric_rows else 0) if isinstance(
        when, int) else None
    return RunAsOf(run, when, run_position, lambda: _metrics_rows(app, metric_rows, when),
                   position=known)


@attrs.frozen
class RunDiff:
    """What changed in a run between two moments.

    Attributes:
        run_id: the run.
        since: the earlier moment.
        until: the later moment.
        changes: every change, old -> new (see :func:`state_changes`).
    """

    run_id: str
    since: When
    until: When
    changes: tuple[FieldChange, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the difference as JSON-ready data."""
        return {"runId": self.run_id, "from": _moment_data(self.since),
                "to": _moment_data(self.until),
                "changes": [change.as_dict() for change in self.changes]}


def _moment_data(when: When) -> int | str:
    return when if isinstance(when, int) else str(iso(when))


def _state_as_of(app: LedgerApplication, run_id: str, when: When) -> RunState:
    try:
        return run_as_of(app, run_id, when).state()
    except RunNotFoundError:
        return RunState(exists=False)


def run_diff(app: LedgerApplication, run_id: str, since: Any, until: Any) -> RunDiff:
    """Return what changed in a run from one moment to another.

    Args:
        app: the ledger.
        run_id: the run's id.
        since: the earlier moment (before the run's creation: everything is new).
        until: the later moment.

    Returns:
        The changes (an earlier ``until`` than ``since`` gives the changes backwards).

    Raises:
        ValidationError: a moment is neither a position nor an aware datetime.
        RunNotFoundError: the run does not exist at either moment.
        StoreError: the store failed.
    """
    since = check_when(since, "since")
    until = check_when(until, "until")
    before = _state_as_of(app, run_id, since)
    after = _state_as_of(app, run_id, until)
    if not before.exists and not after.exists:
        raise RunNotFoundError(
            run_id, f"as of {describe_when(since)}, nor as of {describe_when(until)}")
    return RunDiff(run_id=run_id, since=since, until=until,
                   changes=state_changes(before, after))


# ---------------------------------------------------------------------- history
@attrs.frozen
class ChangeEntry:
    """One recorded change of a run, with its log position.

    Attributes:
        position: the event's log position (notification id).
        stream: ``run`` (the run's own stream) or ``metrics`` (its metric stream).
        version: the event's version in its stream.
        time: when it was recorded (by the recording process's clock, UTC).
        actor: who recorded it.
        kind: the event's name (``TagsSet``, ``PropertyCorrected``, ``MetricsLogged``...).
        changes: what it changed, old -> new.
        reason: the reason given, for a correction or an archive.
    """

    position: int
    stream: str
    version: int
    time: datetime
    actor: Actor
    kind: str
    changes: tuple[FieldChange, ...]
    reason: str | None = None

    @property
    def what(self) -> str:
        """The changes as one line of text."""
        text = "; ".join(change.text() for change in self.changes) or "(no visible change)"
        return f"{text} (reason: {self.reason})" if self.reason else text

    def as_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-ready data."""
        return {"position": self.position, "time": iso(self.time),
                "actor": self.actor.as_dict(), "kind": self.kind, "stream": self.stream,
                "version": self.version, "what": self.what, "reason": self.reason,
                "changes": [change.as_dict() for change in self.changes]}


def run_history(app: LedgerApplication, run_id: str, since: Any = None,
                until: Any = None) -> list[ChangeEntry]:
    """Return every recorded change of a run in log order, with what it changed (old -> new).

    With ``since``/``until``, only the changes after the view as of ``since`` and up to the
    view as of ``until`` (the same cut as :func:`run_as_of`: for times, per stream).

    Args:
        app: the ledger.
        run_id: the run's id.
        since: leave out what the run held as of this moment.
        until: leave out what was recorded after this moment.

    Returns:
        The entries, oldest first.

    Raises:
        ValidationError: a moment is neither a position nor an aware datetime.
        RunNotFoundError: no run has this id.
        StoreError: the store failed.
    """
    since = None if since is None else check_when(since, "since")
    until = None if until is None else check_when(until, "until")
    stream, metrics = run_stream_id(run_id), metric_stream_id(run_id)
    by_stream = _load(app, [stream, metrics], None)
    run_events, metric_events = by_stream[stream], by_stream[metrics]
    if not run_events or getattr(run_events[0][1], "run_id", None) != run_id:
        raise RunNotFoundError(run_id)
    found = sorted(run_events + metric_events, key=lambda pair: pair[0])

    def cut(when: When | None) -> set[int]:
        if when is None:
            return set()
        return {p for p, _e in itertools.chain(_prefix(run_events, when),
                                               _prefix(metric_events, when))}

    excluded = cut(since)
    included = None if until is None else cut(until)
    entries: list[ChangeEntry] = []
    run: Any = None
    counts: dict[str, int] = {}
    before = RunState(exists=False)
    for position, event in found:
        if isinstance(event, MetricsLogged):
            _count_values(counts, event.series)
            stream_name = "metrics"
        else:
            run = event.mutate(run)
            stream_name = "run"
        after = RunState.of(run, counts)
        if position not in excluded and (included is None or position in included):
            entries.append(ChangeEntry(
                position=position, stream=stream_name, version=event.originator_version,
                time=event.timestamp, actor=Actor.from_dict(getattr(event, "actor", {}) or {}),
                kind=type(event).__name__, changes=state_changes(before, after),
                reason=getattr(event, "reason", None)))
        before = after
    return entries


# ---------------------------------------------------------------------- list queries
def _matches(pairs: Mapping[str, str | None], filters: Sequence[tuple[str, str, bool,
                                                                      str | None]]) -> bool:
    return all(key in pairs and (not has_value or pairs[key] == value)
               for _kind, key, has_value, value in filters)


def find_runs_as_of(app: LedgerApplication, index: RunIndex, when: Any, *,
                    experiment_name: str | None = None, parent_run_id: str | None = None,
                    recursive: bool = False, run_type: str | None = None,
                    tags: str | Mapping[str, Any] | None = None,
                    properties: str | Mapping[str, Any] | None = None,
                    status: str | None = None, include_children: bool = False,
                    include_archived: bool = False,
                    limit: int | None = None) -> Iterator[RunAsOf]:
    """Answer a run query as it would have been answered at a moment.

    The arguments are :meth:`projections.index.RunIndex.find_runs`'s; each run is compared as
    it was then (its status, tags, properties, archived), and only runs created by then count.

    Args:
        app: the ledger.
        index: its run index, caught up (it gives the candidates and their numbers).
        when: a log position or an aware datetime.

    Returns:
        A generator of views as of the moment, newest first (arguments are checked at once).

    Raises:
        ValidationError: a bad moment or filter.
        StoreError: the store failed (when iterating).
    """
    from projections.index import parse_filter

    when = check_when(when)
    filters = [*parse_filter(tags, "tags"), *parse_filter(properties, "properties")]
    for value, what in ((experiment_name, "experiment_name"), (parent_run_id, "parent_run_id"),
                        (run_type, "run_type"), (status, "status")):
        if value is not None and not isinstance(value, str):
            raise ValidationError(f"{what} must be a string, not {type(value).__name__}")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise ValidationError(f"limit must be an int, not {type(limit).__name__}")
    tag_filters = [f for f in filters if f[0] == "tags"]
    property_filters = [f for f in filters if f[0] == "properties"]

    def generate() -> Iterator[RunAsOf]:
        if limit is not None and limit <= 0:
            return
        candidates = index.created_runs(
            experiment_name=experiment_name, parent_run_id=parent_run_id, recursive=recursive,
            run_type=run_type, include_children=include_children,
            until_position=when if isinstance(when, int) else None,
            until_created=when if isinstance(when, datetime) else None)
        produced = 0
        for start in range(0, len(candidates), LIST_CHUNK):
            chunk = candidates[start:start + LIST_CHUNK]
            streams = [run_stream_id(run_id) for run_id, _seq, _number in chunk]
            by_stream: dict[UUID, list[StreamRow]] = {stream: [] for stream in streams}
            for row in app.stream_notifications(
                    streams, until=when if isinstance(when, int) else None):
                by_stream[row[1]].append(row)
            for (run_id, _seq, number), stream in zip(chunk, streams, strict=True):
                run, run_position = _fold_rows(app, by_stream[stream], when)
                if run is None or run.run_id != run_id:
                    continue
                if (not include_archived and run.archived) or (
                        status is not None and run.status.value != status) or not (
                        _matches(run.tags, tag_filters)
                        and _matches(run.properties, property_filters)):
                    continue
                yield RunAsOf(run, when, run_position, _metric_loader(app, run_id, when),
                              number=number)
                produced += 1
                if limit is not None and produced >= limit:
                    return

    return generate()


def _metric_loader(app: LedgerApplication, run_id: str,
                   when: When) -> Callable[[], tuple[list[list[list[Any]]], int]]:
    def load() -> tuple[list[list[list[Any]]], int]:
        (rows,) = app.stream_rows([metric_stream_id(run_id)],
                                  until=when if isinstance(when, int) else None)
        return _metrics_rows(app, rows, when)

    return load


# ---------------------------------------------------------------------- replay
@attrs.frozen
class ReplaySummary:
    """What a replay copied.

    Attributes:
        until: the moment.
        events: how many events the copy holds.
        last_position: the source position the copy reaches.
        target: the target store (password masked).
    """

    until: When
    events: int
    last_position: int
    target: str


def stream_cut(app: LedgerApplication, until: datetime) -> Callable[[Notification], bool]:
    """Return a filter of the log, read in order, keeping each stream's events up to the first
    one recorded after ``until`` (the events a view as of ``until`` folds)."""
    cut: set[UUID | str] = set()

    def keep(notification: Notification) -> bool:
        stream = notification.originator_id
        if stream in cut:
            return False
        event: Any = app.decode(notification)
        if event.timestamp > until:
            cut.add(stream)
            return False
        return True

    return keep


def replay(app: LedgerApplication, target: LedgerApplication, until: Any) -> ReplaySummary:
    """Write into an empty ledger the source's events as of a moment: its state (every run's
    details, tags, properties, metrics) then equals the source's as of that moment.

    The events are copied unchanged (same streams, versions, times and actors) with the export
    and import machinery of ``ledger.transfer``; positions in the copy are its own (a copy as
    of a time leaves out the events after it, so positions close up).

    Args:
        app: the source ledger.
        target: the ledger to write to; it must hold no event.
        until: a log position or an aware datetime.

    Returns:
        What was copied.

    Raises:
        ValidationError: a bad moment, or a target that is not empty.
        TransferError: the copy failed half way (the target then holds a consistent prefix).
        StoreError: either store failed.
    """
    from ledger.transfer import export_ledger, import_ledger

    until = check_when(until, "until")
    if target.max_position():
        raise ValidationError(
            f"audit replay writes into an empty ledger; {target.store.display_url} already "
            "holds events")
    with tempfile.TemporaryFile() as file:
        if isinstance(until, int):
            exported = export_ledger(app, file, until=until)
        else:
            exported = export_ledger(app, file, keep=stream_cut(app, until))
        file.seek(0)
        imported = import_ledger(target, file)
    return ReplaySummary(until=until, events=imported.added,
                         last_position=exported.last_position, target=target.store.display_url)
