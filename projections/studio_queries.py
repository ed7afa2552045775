"""The Studio's queries: experiment summaries, one page of an experiment's runs table (filters,
sort by any column, keyset pagination), child counts, picked metric columns, saved views.

Every answer comes from the read models (``rl_runs``, ``rl_tags``, ``rl_properties``,
``rl_metrics``, ``rl_metric_last``, ``rl_saved_views``); nothing replays events. A page is one
query ordered by ``(sort value IS NULL, sort value, seq)`` with a keyset condition after the last
row of the previous page, so page N costs what page 1 costs; empty values sort last whichever the
direction. Kept apart from ``projections/index.py`` so that its own query growth merges easily.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import re
import time
from collections.abc import Sequence
from typing import Any

import attrs

from ledger.domain.errors import ValidationError
from ledger.domain.status import RunStatus
from ledger.persistence.errors import store_errors
from projections.index import _RUN_SELECT, RunIndex, run_rows
from projections.metrics import decode_last
from projections.projection import from_micros, micros_to_datetime
from projections.read_models import MetricSummaryRow, RunRow

TERMINAL = frozenset({RunStatus.COMPLETED.value, RunStatus.FAILED.value,
                      RunStatus.CANCELED.value})
MAX_PAGE = 500
# Runs a metric filter keeps below which the page starts from them rather than from its order.
FEW_RUNS = 2000
ACTIVITY_SAMPLE = 200
FIELDS = ("last", "min", "max")
OPERATORS = ("<=", ">=", "!=", "<", ">", "=")
# Columns of the run row a page can be sorted by, and their SQL expressions. ``duration`` is
# ended_at - started_at, or now - started_at while a run runs (``StudioQueries._sort`` reads
# the two apart, each from its index).
BUILTIN_SORTS = {
    "number": "r.seq",
    "status": "r.status",
    "name": "COALESCE(r.display_name, r.name)",
    "start": "COALESCE(r.started_at, r.created_at)",
    "duration": "",
    "submitted": "r.created_by",
}
_METRIC_CONDITION = re.compile(
    r"^\s*(?P<name>.+?)(?:\.(?P<field>last|min|max))?\s*(?P<op><=|>=|!=|<|>|=)\s*"
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@attrs.frozen
class MetricCondition:
    """``name[.last|.min|.max] op number``, e.g. ``loss < 0.2`` (the last value by default)."""

    name: str
    field: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> MetricCondition:
        """Parse a metric comparison.

        Args:
            text: e.g. ``loss < 0.2``, ``accuracy.max >= 0.9``.

        Returns:
            The condition.

        Raises:
            ValidationError: the text is not ``name[.field] op number``.
        """
        found = _METRIC_CONDITION.match(text)
        if found is None:
            raise ValidationError(
                f"A metric filter is 'name op number' (op one of {', '.join(OPERATORS)}; "
                f"name.min / name.max compare the minimum / maximum), not {text!r}")
        return cls(name=found["name"].strip(), field=found["field"] or "last", op=found["op"],
                   value=float(found["value"]))

    def __str__(self) -> str:
        field = "" if self.field == "last" else f".{self.field}"
        return f"{self.name}{field} {self.op} {self.value:g}"


@attrs.frozen
class PairFilter:
    """A tag or property that must exist (``has_value`` false) or equal ``value``."""

    key: str
    has_value: bool = False
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> PairFilter:
        """Parse ``key`` or ``key=value``.

        Raises:
            ValidationError: the key is empty.
        """
        key, sep, value = text.partition("=")
        key = key.strip()
        if not key:
            raise ValidationError(f"A tag or property filter is 'key' or 'key=value', not {text!r}")
        return cls(key=key, has_value=bool(sep), value=value if sep else None)


@attrs.frozen
class SortKey:
    """What a page is sorted by: a builtin column (``number``, ``status``, ``name``, ``start``,
    ``duration``, ``submitted``), ``tag:KEY``, ``prop:KEY`` or ``metric:NAME[.last|.min|.max]``."""

    column: str = "number"
    descending: bool = True

    @classmethod
    def parse(cls, text: str | None) -> SortKey:
        """Parse ``column`` (ascending) or ``-column`` (descending); empty: newest first.

        Raises:
            ValidationError: an unknown column.
        """
        if not text:
            return cls()
        descending = text.startswith("-")
        column = text[1:] if descending else text
        if column in BUILTIN_SORTS or (
                column.partition(":")[0] in ("tag", "prop", "metric") and column.partition(":")[2]):
            return cls(column=column, descending=descending)
        raise ValidationError(
            f"Unknown sort column {column!r}: one of {', '.join(BUILTIN_SORTS)}, tag:KEY, "
            "prop:KEY, metric:NAME")

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.column


@attrs.frozen
class RunsQuery:
    """One page of an experiment's runs table: its top-level runs, filtered and sorted."""

    experiment: str
    statuses: tuple[str, ...] = ()
    tags: tuple[PairFilter, ...] = ()
    properties: tuple[PairFilter, ...] = ()
    metrics: tuple[MetricCondition, ...] = ()
    text: str = ""
    sort: SortKey = SortKey()
    after: str | None = None
    limit: int = 50
    include_archived: bool = False


@attrs.frozen
class RunsPage:
    """A page of runs, and the cursor of the next page (``None`` on the last one)."""

    rows: list[RunRow]
    next_cursor: str | None


@attrs.frozen
class ExperimentSummary:
    """An experiment with its runs (children included) counted by status, and when it was
    archived (``None``: active)."""

    name: str
    created_at: Any
    created_by: str
    run_count: int
    by_status: dict[str, int]
    active: int
    last_activity: Any
    archived_time: Any = None


@attrs.frozen
class SavedViewRow:
    """A saved view: its id, experiment, name and the runs page query string it restores."""

    view_id: str
    experiment: str
    name: str
    query: str
    created_at: Any
    updated_at: Any
    created_by: str


def encode_cursor(values: Sequence[Any]) -> str:
    """Encode a keyset position as an opaque URL-safe string."""
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> list[Any]:
    """Decode :func:`encode_cursor`'s string.

    Raises:
        ValidationError: not a cursor this module made.
    """
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        values = json.loads(raw)
    except (ValueError, TypeError) as error:
        raise ValidationError(f"Not a page cursor: {text!r}") from error
    if (not isinstance(values, list) or len(values) != 3 or values[0] not in (0, 1)
            or not isinstance(values[2], int)
            or not isinstance(values[1], (int, float, str, type(None)))):
        raise ValidationError(f"Not a page cursor: {text!r}")
    return values


@attrs.frozen
class _Part:
    """Runs of a page that have a sort value, read in value order from one index.

    ``key`` is the expression the part is ordered and paged by (default: the value itself); it
    is the value plus ``shift``. Only the duration of running runs needs it: ``now -
    started_at`` changes with ``now``, so no index holds it, but ``-started_at`` (the duration
    minus ``now``) orders them the same way and is indexed.
    """

    value: str
    value_params: list[Any] = attrs.field(factory=list)
    join: str = ""
    join_params: list[Any] = attrs.field(factory=list)
    where: tuple[str, ...] = ()
    key: str | None = None
    shift: int = 0
    # The run's seq as the joined table holds it (so the order is that of its index).
    seq: str = "r.seq"

    @property
    def order_key(self) -> str:
        """The expression the part is ordered by."""
        return self.value if self.key is None else self.key


@attrs.frozen
class _Sort:
    """A sort column's SQL: the parts that find runs with a value (merged in value order),
    and, when a value may be missing, how the runs without one are found."""

    parts: tuple[_Part, ...]
    nullable: bool
    # The join that keeps the runs without a value, its parameters, and what those runs
    # satisfy (without a value nothing is compared: they come newest first).
    outer_join: str = ""
    outer_params: list[Any] = attrs.field(factory=list)
    missing: str = ""


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class StudioQueries:
    """The Studio's queries over a run index's read models.

    Args:
        index: the run index (caught up by the caller when it needs to be current).
    """

    def __init__(self, index: RunIndex) -> None:
        self.index = index
        # The index's own dialect, connection and row builder: same package, same read models.
        self._dialect = index._dialect
        self._transcoder = index._transcoder

    # ------------------------------------------------------------------ experiments
    def experiment_summaries(self) -> list[ExperimentSummary]:
        """Return every experiment with its runs counted by status, by name.

        Returns:
            Summaries. ``last_activity`` is the latest creation, start or end among the
            experiment's :data:`ACTIVITY_SAMPLE` newest runs (runs are created in time order, so
            only an old run ending late is missed; counting every run's times would read every
            row).

        Raises:
            StoreError: the store failed.
        """
        sql = self._dialect.sql
        counts: dict[str, dict[str, int]] = {}
        latest: dict[str, int] = {}
        with store_errors("Reading experiments"), self.index._read() as cursor:
            cursor.execute(sql("SELECT experiment, status, COUNT(*) FROM {p}rl_runs "
                               "GROUP BY experiment, status"))
            for experiment, status, count in cursor.fetchall():
                counts.setdefault(experiment, {})[status] = int(count)
            for experiment in counts:
                cursor.execute(sql(
                    "SELECT MAX(created_at), MAX(started_at), MAX(ended_at) FROM (SELECT "
                    "created_at, started_at, ended_at FROM {p}rl_runs WHERE experiment = ? "
                    "ORDER BY seq DESC LIMIT ?) newest"), (experiment, ACTIVITY_SAMPLE))
                moments = [v for v in cursor.fetchone() if v is not None]
                if moments:
                    latest[experiment] = max(moments)
        summaries = []
        for row in self.index.experiments():
            by_status = counts.get(row.name, {})
            summaries.append(ExperimentSummary(
                name=row.name, created_at=row.created_at, created_by=row.created_by,
                run_count=row.run_count, by_status=dict(sorted(by_status.items())),
                active=sum(n for s, n in by_status.items() if s not in TERMINAL),
                last_activity=micros_to_datetime(latest[row.name]) if row.name in latest
                else None, archived_time=row.archived_time))
        return summaries

    def status_counts(self, experiment: str) -> dict[str, int]:
        """Return how many top-level runs of an experiment are in each status.

        Raises:
            StoreError: the store failed.
        """
        with store_errors("Counting runs"), self.index._read() as cursor:
            cursor.execute(self._dialect.sql(
                "SELECT status, COUNT(*) FROM {p}rl_runs WHERE experiment = ? "
                "AND parent_run_id IS NULL GROUP BY status ORDER BY status"), (experiment,))
            return {status: int(count) for status, count in cursor.fetchall()}

    # ------------------------------------------------------------------ the runs table
    def runs_page(self, query: RunsQuery, now: float | None = None) -> RunsPage:
        """Return one page of an experiment's top-level runs.

        A sort column that may be empty (a tag, a property, a metric, the duration of a run not
        started) is read in two parts: the runs with a value, in value order (from the value's
        index where there is one), then the runs without, newest first; the cursor says which
        part the next page starts in.

        Args:
            query: the filters, the sort, the cursor after which the page starts, the page size.
            now: the time (seconds since the epoch) a running run's duration is measured to
                (default: now).

        Returns:
            The page, each row with its properties and tags.

        Raises:
            ValidationError: a bad cursor or page size.
            StoreError: the store failed.
        """
        if not 1 <= query.limit <= MAX_PAGE:
            raise ValidationError(f"A page holds 1 to {MAX_PAGE} runs, not {query.limit}")
        now_micros = int((time.time() if now is None else now) * 1e6)
        where = ["r.experiment = ?", "r.parent_run_id IS NULL"]
        if not query.include_archived:
            where.append("r.archived = 0")
        params: list[Any] = [query.experiment]
        if query.statuses:
            where.append(f"r.status IN ({', '.join('?' * len(query.statuses))})")
            params += list(query.statuses)
        for kind, filters in (("tags", query.tags), ("properties", query.properties)):
            for pair in filters:
                text = f"EXISTS (SELECT 1 FROM {{p}}rl_{kind} x WHERE x.seq = r.seq AND x.key = ?"
                params.append(pair.key)
                if pair.has_value:
                    text += " AND x.value = ?"
                    params.append(pair.value)
                where.append(text + ")")
        metric_filters = []
        for condition in query.metrics:
            column = self._metric_column(condition.field)
            metric_filters.append((f"FROM {{p}}rl_metric_last x WHERE x.experiment = ? AND "
                                   f"x.name = ? AND x.{column} {condition.op} ?",
                                   [query.experiment, condition.name, condition.value]))
        if query.text.strip():
            pattern = _like(query.text.strip())
            where.append("(LOWER(r.name) LIKE ? ESCAPE '\\' OR LOWER(r.display_name) LIKE ? "
                         "ESCAPE '\\' OR LOWER(r.description) LIKE ? ESCAPE '\\')")
            params += [pattern] * 3
        sort = self._sort(query.sort, query.experiment, now_micros)
        descending = query.sort.descending
        after_op = "<" if descending else ">"
        direction = "DESC" if descending else "ASC"
        cursor_null, cursor_value, cursor_seq = (decode_cursor(query.after)
                                                 if query.after is not None else (0, None, None))
        found: list[tuple[Sequence[Any], int]] = []  # (row, 1 if it has no sort value)
        limit = query.limit
        with store_errors("Querying runs"), self.index._read() as cursor:
            for matching, matching_params in metric_filters:
                # A filter that keeps few runs is read from the value's index (a lookup per
                # run would read every run of the experiment to find none); one that keeps
                # many is checked run by run as the page's order goes (the index would give
                # thousands of runs to sort).
                cursor.execute(self._dialect.sql(
                    f"SELECT COUNT(*) FROM (SELECT 1 {matching} LIMIT ?) few"),
                    [*matching_params, FEW_RUNS + 1])
                if cursor.fetchone()[0] <= FEW_RUNS:
                    where.append(f"r.seq IN (SELECT x.seq {matching})")
                else:
                    where.append(f"EXISTS (SELECT 1 {matching} AND x.run_id = r.run_id)")
                params += matching_params
            if not cursor_null:
                # Each part in value order from its index; merged, the page's first rows.
                merged = heapq.merge(*(
                    self._part_rows(cursor, part, where, params, after_op, direction,
                                    cursor_value, cursor_seq, limit + 1)
                    for part in sort.parts), key=lambda row: (row[-1], row[-2]),
                    reverse=descending)
                found += [(row, 0) for row in itertools.islice(merged, limit + 1)]
            if sort.nullable and len(found) <= limit:
                part_where = [*where, sort.missing]
                part_params = list(params)
                if cursor_null:
                    part_where.append(f"r.seq {after_op} ?")
                    part_params.append(cursor_seq)
                rows = self._select(cursor, "NULL", [], sort.outer_join, sort.outer_params,
                                    "r.seq", part_where, part_params, f"r.seq {direction}",
                                    limit + 1 - len(found))
                found += [(row, 1) for row in rows]
            more = len(found) > limit
            found = found[:limit]
            page_rows = run_rows([row[:-2] for row, _null in found])
        next_cursor = None
        if more and found:
            last, is_null = found[-1]
            next_cursor = encode_cursor([is_null, None if is_null else last[-1], int(last[-2])])
        return RunsPage(rows=page_rows, next_cursor=next_cursor)

    def _part_rows(self, cursor: Any, part: _Part, where: list[str], params: list[Any],
                   after_op: str, direction: str, cursor_value: Any, cursor_seq: int | None,
                   limit: int) -> list[Sequence[Any]]:
        """A part's first ``limit`` runs after the cursor, in value order."""
        part_where = [*where, *part.where]
        part_params = list(params)
        key = part.order_key
        if cursor_seq is not None:
            # Not ``(key, seq) > (?, ?)``: SQLite walks an index on an expression from the
            # start for a row value, but from the bound for ``key >= ?``; page N then costs
            # what page 1 costs.
            part_where.append(f"{key} {after_op}= ? AND ({key} {after_op} ? "
                              f"OR {part.seq} {after_op} ?)")
            bound = cursor_value
            if part.shift:
                if isinstance(cursor_value, bool) or not isinstance(cursor_value, (int, float)):
                    raise ValidationError(f"Not a page cursor of this sort: {cursor_value!r}")
                bound = cursor_value + part.shift
            part_params += [bound, bound, cursor_seq]
        return self._select(cursor, part.value, part.value_params, part.join, part.join_params,
                            part.seq, part_where, part_params,
                            f"{key} {direction}, {part.seq} {direction}", limit)

    def _select(self, cursor: Any, value: str, value_params: list[Any], join: str,
                join_params: list[Any], seq: str, where: list[str], params: list[Any],
                order: str, limit: int) -> list[Sequence[Any]]:
        # The page's own seq and sort value come last, whatever _RUN_SELECT holds.
        text = (f"SELECT {_RUN_SELECT}, {seq}, {value} FROM {{p}}rl_runs r {join} "
                f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?")
        cursor.execute(self._dialect.sql(text), [*value_params, *join_params, *params, limit])
        return list(cursor.fetchall())

    def _sort(self, sort: SortKey, experiment: str, now_micros: int) -> _Sort:
        """The SQL of a sort column: the parts that read runs with a value, and how the runs
        without one are found."""
        column = sort.column
        if column == "duration":
            # Ended runs by their stored duration, running ones by their start (newest is
            # shortest); runs not started have none. Both parts walk a partial index.
            ended = "(r.ended_at - r.started_at)"
            return _Sort(parts=(
                _Part(ended, where=("r.ended_at IS NOT NULL", "r.started_at IS NOT NULL")),
                _Part("(? - r.started_at)", [now_micros],
                      where=("r.ended_at IS NULL", "r.started_at IS NOT NULL"),
                      key="(-r.started_at)", shift=-now_micros),
            ), nullable=True, missing="r.started_at IS NULL")
        if column in BUILTIN_SORTS:
            return _Sort(parts=(_Part(BUILTIN_SORTS[column]),), nullable=False)
        kind, _sep, key = column.partition(":")
        if kind in ("tag", "prop"):
            table = "rl_tags" if kind == "tag" else "rl_properties"
            # The pair rows carry the experiment: the join can walk their value index.
            on = f"{{p}}{table} s ON s.seq = r.seq AND s.experiment = ? AND s.key = ?"
            return _Sort(parts=(_Part("s.value", join=f"JOIN {on}", join_params=[experiment, key],
                                      where=("s.value IS NOT NULL",), seq="s.seq"),),
                         nullable=True, outer_join=f"LEFT JOIN {on}",
                         outer_params=[experiment, key], missing="s.value IS NULL")
        name, _dot, field = key.rpartition(".")
        if not name or field not in FIELDS:
            name, field = key, "last"
        # rl_metric_last carries the run's experiment and seq: walk the index of the value.
        value = f"s.{self._metric_column(field)}"
        on = "{p}rl_metric_last s ON s.seq = r.seq AND s.experiment = ? AND s.name = ?"
        return _Sort(
            parts=(_Part(value, join=f"JOIN {on}", join_params=[experiment, name],
                         where=(f"{value} IS NOT NULL",), seq="s.seq"),),
            nullable=True, outer_join="LEFT JOIN {p}rl_metric_last s ON s.run_id = r.run_id "
                                      "AND s.name = ?", outer_params=[name],
            missing=f"({value} IS NULL OR s.seq IS NULL OR s.experiment <> r.experiment)")

    @staticmethod
    def _metric_column(field: str) -> str:
        """The column of ``rl_metric_last`` holding a metric's ``last``, ``min`` or ``max``."""
        return {"last": "value", "min": "minimum"}.get(field, "maximum")

    def child_counts(self, run_ids: Sequence[str]) -> dict[str, int]:
        """Return how many children each of these runs has (runs without any are left out).

        Raises:
            StoreError: the store failed.
        """
        if not run_ids:
            return {}
        with store_errors("Counting children"), self.index._read() as cursor:
            cursor.execute(self._dialect.sql(
                "SELECT parent_run_id, COUNT(*) FROM {p}rl_runs WHERE parent_run_id IN ("
                + ", ".join("?" * len(run_ids)) + ") GROUP BY parent_run_id"), list(run_ids))
            return {parent: int(count) for parent, count in cursor.fetchall()}

    def metric_columns(self, run_ids: Sequence[str],
                       names: Sequence[str]) -> dict[str, dict[str, MetricSummaryRow]]:
        """Return the summaries of some metrics of some runs: ``{run_id: {name: summary}}``.

        Raises:
            StoreError: the store failed.
        """
        if not run_ids or not names:
            return {}
        found: dict[str, dict[str, MetricSummaryRow]] = {}
        with store_errors("Reading metric summaries"), self.index._read() as cursor:
            cursor.execute(self._dialect.sql(
                "SELECT run_id, name, kind, count, last, minimum, maximum, last_step "
                "FROM {p}rl_metrics WHERE run_id IN (" + ", ".join("?" * len(run_ids))
                + ") AND name IN (" + ", ".join("?" * len(names)) + ")"),
                [*run_ids, *names])
            for row in cursor.fetchall():
                found.setdefault(row[0], {})[row[1]] = MetricSummaryRow(
                    run_id=row[0], name=row[1], kind=row[2], count=int(row[3]),
                    last=decode_last(self._transcoder, row[4]), minimum=row[5],
                    maximum=row[6], last_step=row[7])
        return found

    def column_choices(self, experiment: str, sample: int = 500) -> dict[str, list[str]]:
        """Return the tag keys, property keys and metric names seen among an experiment's
        newest ``sample`` runs (the columns the user may pick), each sorted.

        Raises:
            StoreError: the store failed.
        """
        sql = self._dialect.sql
        choices: dict[str, list[str]] = {}
        with store_errors("Reading column names"), self.index._read() as cursor:
            for kind in ("tags", "properties"):
                # Newest runs first, then their pairs by primary key (SQLite keeps a CROSS
                # JOIN's order; walking the pairs' experiment index would read every run's).
                cursor.execute(sql(
                    "SELECT DISTINCT x.key FROM (SELECT seq FROM {p}rl_runs WHERE experiment = ? "
                    f"ORDER BY seq DESC LIMIT ?) n CROSS JOIN {{p}}rl_{kind} x "
                    "WHERE x.seq = n.seq ORDER BY x.key"), (experiment, sample))
                choices[kind] = [row[0] for row in cursor.fetchall()]
            cursor.execute(sql(
                "SELECT DISTINCT name FROM {p}rl_metrics WHERE run_id IN (SELECT run_id FROM "
                "{p}rl_runs WHERE experiment = ? ORDER BY seq DESC LIMIT ?) ORDER BY name"),
                (experiment, sample))
            choices["metrics"] = [row[0] for row in cursor.fetchall()]
        return choices

    # ------------------------------------------------------------------ saved views
    def saved_views(self, experiment: str) -> list[SavedViewRow]:
        """Return an experiment's saved views, by name.

        Raises:
            StoreError: the store failed.
        """
        return self._views("WHERE experiment = ? ORDER BY name, view_id", (experiment,))

    def saved_view(self, view_id: str) -> SavedViewRow | None:
        """Return one saved view (``None`` if there is none with this id).

        Raises:
            StoreError: the store failed.
        """
        found = self._views("WHERE view_id = ?", (view_id,))
        return found[0] if found else None

    def _views(self, condition: str, params: Sequence[Any]) -> list[SavedViewRow]:
        with store_errors("Reading saved views"), self.index._read() as cursor:
            cursor.execute(self._dialect.sql(
                "SELECT view_id, experiment, name, query, created_at, updated_at, created_by "
                "FROM {p}rl_saved_views " + condition), list(params))
            return [SavedViewRow(view_id=row[0], experiment=row[1], name=row[2], query=row[3],
                                 created_at=from_micros(row[4]), updated_at=from_micros(row[5]),
                                 created_by=row[6]) for row in cursor.fetchall()]
