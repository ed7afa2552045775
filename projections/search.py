"""The search grammar (``ledger.domain.search``) in SQL against the read models, for SQLite (and
so ``memory://`` stores, in-process SQLite databases) and PostgreSQL.

A comparison becomes an ``EXISTS`` on the run's row ``r``: properties and tags by primary key
``(seq, key)``, a metric's last value in ``rl_metric_last`` and its minimum and maximum in
``rl_metrics``, both by primary key ``(run_id, name)``. :meth:`projections.index.RunIndex.find_runs`
adds these conditions to the ones it builds for its other arguments, so a filter without an
ordering is read newest first as every other query is.

An ordering is read in at most two parts: the runs that have a value for its first key, in the
ordering, then those without one (empty values come last whichever the direction), each part
ordered by the remaining keys and then newest first. When the first key is a metric's last value
and the query names an experiment, the first part walks the index
``rl_metric_last (experiment, name, value, seq DESC)`` (ascending) or
``rl_metric_last (experiment, name, value, seq)`` backwards (descending): its first page costs
what the page holds, not what the experiment holds. The filter's comparisons of that value bound
the index range, and when the filter requires the value (``metrics.loss < 0.2`` ordered by
``metrics.loss``) the second part is known to be empty and is not read.

Semantics shared by both stores: text compares and sorts by code point (``COLLATE "C"`` on
PostgreSQL, SQLite's binary collation); ``LIKE`` is case-sensitive (SQLite's ``LIKE`` is not, so
there it is a ``GLOB`` of the same pattern), ``ILIKE`` folds ASCII letters only (SQLite's
``LIKE``; on PostgreSQL both sides go through ``translate()``), and ``\\`` escapes the next
character of a pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ledger.domain.errors import ValidationError
from ledger.domain.search import (
    ATTRIBUTE,
    METRIC,
    PROPERTY,
    STRING_OPS,
    Comparison,
    Key,
    OrderKey,
)
from ledger.persistence.errors import store_errors
from projections.dialect import Dialect
from projections.projection import to_micros

if TYPE_CHECKING:
    from projections.index import RunIndex, RunTuple

# The run row's column for each attribute (ledger.domain.search.ATTRIBUTES' canonical names).
_ATTRIBUTE_COLUMNS = {
    "status": "r.status", "run_id": "r.run_id", "display_name": "r.display_name",
    "created_by": "r.created_by", "run_type": "r.run_type", "number": "r.number",
    "start_time": "r.started_at", "end_time": "r.ended_at", "created_time": "r.created_at",
}
# Attributes every run has (never empty, so an ordering by them is read in one part).
_NOT_NULL = frozenset({"status", "run_id", "created_by", "run_type", "number", "created_time"})
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Rows per page of an ordered query (as projections.index's).
FIRST_PAGE = 100
QUERY_PAGE = 500
_NO_LIMIT = 2 ** 62


def glob_pattern(pattern: str) -> str:
    """Return the SQLite ``GLOB`` pattern matching what a ``LIKE`` pattern matches (with case).

    Args:
        pattern: ``%`` any characters, ``_`` one, ``\\`` makes the next one literal.

    Returns:
        The ``GLOB`` pattern (``*``, ``?``; literal ``*``, ``?`` and ``[`` bracketed).
    """
    out: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
            continue
        elif char == "%":
            out.append("*")
            continue
        elif char == "_":
            out.append("?")
            continue
        out.append(f"[{char}]" if char in "*?[" else char)
    if escaped:  # a trailing backslash is itself
        out.append("\\")
    return "".join(out)


def _value_expression(key: Key, dialect: Dialect) -> tuple[str, list[Any]]:
    """A scalar SQL expression of a run's value for a key (``NULL`` when it has none)."""
    if key.entity == ATTRIBUTE:
        return _ATTRIBUTE_COLUMNS[key.name], []
    if key.entity == METRIC:
        table, column = _metric_column(key.field)
        return (f"(SELECT v.{column} FROM {{p}}{table} v WHERE v.run_id = r.run_id "
                "AND v.name = ?)"), [key.name]
    table = "rl_properties" if key.entity == PROPERTY else "rl_tags"
    return f"(SELECT v.value FROM {{p}}{table} v WHERE v.seq = r.seq AND v.key = ?)", [key.name]


def _metric_column(field: str) -> tuple[str, str]:
    if field == "last":
        return "rl_metric_last", "value"
    return "rl_metrics", "minimum" if field == "min" else "maximum"


def _text_order(expression: str, dialect: Dialect) -> str:
    # PostgreSQL sorts text by the database's locale unless told; code point order is SQLite's.
    return f'{expression} COLLATE "C"' if dialect.kind == "postgresql" else expression


def _compare(column: str, comparison: Comparison, dialect: Dialect) -> tuple[str, list[Any]]:
    """``column op value`` in the store's spelling, with its parameters."""
    op, value = comparison.op, comparison.value
    if isinstance(value, datetime):
        value = to_micros(value)
    if op in ("IN", "NOT IN"):
        assert isinstance(value, tuple)
        return f"{column} {op} ({', '.join('?' * len(value))})", list(value)
    if op == "LIKE":
        if dialect.kind == "sqlite":
            return f"{column} GLOB ?", [glob_pattern(str(value))]
        return f"{column} LIKE ? ESCAPE '\\'", [value]
    if op == "ILIKE":
        if dialect.kind == "sqlite":
            return f"{column} LIKE ? ESCAPE '\\'", [value]
        fold = f"'{_UPPER}', '{_UPPER.lower()}'"
        return (f"translate({column}, {fold}) LIKE translate(?, {fold}) ESCAPE '\\'",
                [value])
    if comparison.key.kind == "text" or comparison.key.kind == "status":
        assert op in STRING_OPS
    return f"{column} {op} ?", [value]


def filter_conditions(comparisons: Sequence[Comparison],
                      dialect: Dialect) -> tuple[list[str], list[Any]]:
    """Return the SQL conditions on the run row ``r`` of a parsed filter, and their parameters.

    Args:
        comparisons: what :func:`ledger.domain.search.parse_filter` returned.
        dialect: the store's dialect.

    Returns:
        ``(conditions, params)``; every condition must hold.
    """
    conditions: list[str] = []
    params: list[Any] = []
    for comparison in comparisons:
        key = comparison.key
        if key.entity == ATTRIBUTE:
            text, values = _compare(_ATTRIBUTE_COLUMNS[key.name], comparison, dialect)
            conditions.append(text)
            params += values
            continue
        if key.entity == METRIC:
            table, column = _metric_column(key.field)
            head = (f"EXISTS (SELECT 1 FROM {{p}}{table} x WHERE x.run_id = r.run_id "
                    "AND x.name = ? AND ")
            text, values = _compare(f"x.{column}", comparison, dialect)
        else:
            table = "rl_properties" if key.entity == PROPERTY else "rl_tags"
            head = f"EXISTS (SELECT 1 FROM {{p}}{table} x WHERE x.seq = r.seq AND x.key = ? AND "
            text, values = _compare("x.value", comparison, dialect)
        conditions.append(head + text + ")")
        params += [key.name, *values]
    return conditions, params


@attrs.frozen
class _Part:
    """One part of an ordered query: where its rows come from, which, and in what order."""

    source: str
    where: list[str]
    params: list[Any]
    order: str
    order_params: list[Any]


def _order_terms(keys: Sequence[OrderKey], dialect: Dialect) -> tuple[list[str], list[Any]]:
    """``(value IS NULL), value DIR`` per key: empty values last whichever the direction."""
    terms: list[str] = []
    params: list[Any] = []
    for order_key in keys:
        expression, values = _value_expression(order_key.key, dialect)
        direction = "DESC" if order_key.descending else "ASC"
        if order_key.key.kind in ("text", "status"):
            shown = _text_order(expression, dialect)
        else:
            shown = expression
        terms += [f"({expression} IS NULL)", f"{shown} {direction}"]
        params += values + values
    return terms, params


def ordered_pages(index: RunIndex, keys: Sequence[OrderKey], comparisons: Sequence[Comparison],
                  experiment: str | None, conditions: list[str],
                  params: list[Any]) -> Callable[[int | None], Iterator[list[RunTuple]]]:
    """Return the page reader of an ordered query (see the module's docstring).

    Args:
        index: the run index (its dialect, read transactions and row builder).
        keys: the ordering, most significant first (at least one).
        comparisons: the parsed filter (to know whether it requires the first key's value).
        experiment: the query's experiment, if it names one (the first key's index walks it).
        conditions: every condition on ``r`` (experiment first when it names one), but the
            filter's.
        params: their parameters.

    Returns:
        A function of the rows still wanted (``None``: all) yielding pages of runs in order.
    """
    dialect = index._dialect
    filtered, filter_params = filter_conditions(comparisons, dialect)
    first = keys[0]
    rest_terms, rest_params = _order_terms(keys[1:], dialect)
    tail = [*rest_terms, "r.seq DESC"]
    key = first.key
    direction = "DESC" if first.descending else "ASC"
    nullable = not (key.entity == ATTRIBUTE and key.name in _NOT_NULL)
    parts: list[_Part] = []
    expression, values = _value_expression(key, dialect)
    shown = _text_order(expression, dialect) if key.kind in ("text", "status") else expression
    if key.entity == METRIC and key.field == "last" and experiment is not None:
        # Walk (experiment, name, value, seq); the run's own experiment condition is implied
        # (a second one made PostgreSQL's prepared plan scan every run, see projections.index).
        assert conditions[0] == "r.experiment = ?"
        # The filter's comparisons of the same value bound the index range too (so that
        # "metrics.loss < 0.2" ordered DESC starts at 0.2, not at the highest loss).
        # They replace their EXISTS: PostgreSQL misjudged the redundant one and hash-joined
        # every run instead of walking the index (21 ms instead of 2 at 20,000 runs).
        bounds: list[str] = []
        bound_params: list[Any] = []
        for comparison in comparisons:
            if comparison.key == key:
                text, values = _compare("s.value", comparison, dialect)
                bounds.append(text)
                bound_params += values
        others, other_params = filter_conditions(
            [c for c in comparisons if c.key != key], dialect)
        parts.append(_Part(
            "{p}rl_metric_last s CROSS JOIN {p}rl_runs r",
            ["s.experiment = ?", "s.name = ?", "s.value IS NOT NULL", *bounds, "r.seq = s.seq",
             *conditions[1:], *others],
            [experiment, key.name, *bound_params, *params[1:], *other_params],
            # s.seq (not r.seq): the planners then see the order of the index they walk.
            ", ".join([f"s.value {direction}", *rest_terms, "s.seq DESC"]), rest_params))
        missing = ("NOT EXISTS (SELECT 1 FROM {p}rl_metric_last s WHERE s.run_id = r.run_id "
                   "AND s.name = ? AND s.value IS NOT NULL AND s.seq = r.seq "
                   "AND s.experiment = r.experiment)")
        missing_params: list[Any] = [key.name]
    elif nullable:
        parts.append(_Part("{p}rl_runs r",
                           [*conditions, *filtered, f"{expression} IS NOT NULL"],
                           [*params, *filter_params, *values],
                           ", ".join([f"{shown} {direction}", *tail]), [*values, *rest_params]))
        missing, missing_params = f"{expression} IS NULL", values
    else:
        parts.append(_Part("{p}rl_runs r", [*conditions, *filtered], [*params, *filter_params],
                           ", ".join([f"{shown} {direction}", *tail]),
                           [*values, *rest_params]))
    # Runs without a value for the first key, unless the filter requires one.
    required = any(c.key == key for c in comparisons)
    if nullable and not required:
        parts.append(_Part("{p}rl_runs r", [*conditions, *filtered, missing],
                           [*params, *filter_params, *missing_params], ", ".join(tail),
                           rest_params))

    def pages(remaining: int | None) -> Iterator[list[RunTuple]]:
        seen: set[int] = set()
        for part in parts:
            for rows in _part_pages(index, part, remaining, seen):
                yield rows
                if remaining is not None:
                    remaining -= len(rows)
                    if remaining <= 0:
                        return

    return pages


def _part_pages(index: RunIndex, part: _Part, remaining: int | None,
                seen: set[int]) -> Iterator[list[RunTuple]]:
    """A part's rows: a first page read whole, then the keys of the rest in one query and their
    rows a page at a time (each page its own read transaction; a run met twice, because it
    changed between two pages, is given once)."""
    from projections.index import _RUN_SELECT

    sql = index._dialect.sql
    where = " AND ".join(part.where)
    select = f"FROM {part.source} WHERE {where} ORDER BY {part.order}"
    size = FIRST_PAGE if remaining is None else min(FIRST_PAGE, remaining)
    with store_errors("Querying runs"), index._read() as cursor:
        cursor.execute(sql(f"SELECT {_RUN_SELECT} {select} LIMIT ?"),
                       [*part.params, *part.order_params, size])
        fetched = cursor.fetchall()
        rows = [row for row in fetched if row[-1] not in seen]
    seen.update(row[-1] for row in rows)
    if rows:
        yield rows
    if len(fetched) < size or (remaining is not None and remaining <= len(rows)):
        return
    left = _NO_LIMIT if remaining is None else remaining - len(rows)
    with store_errors("Querying runs"), index._read() as cursor:
        cursor.execute(sql(f"SELECT r.seq {select} LIMIT ? OFFSET ?"),
                       [*part.params, *part.order_params, left, size])
        seqs = [int(row[0]) for row in cursor.fetchall()]
    seqs = [seq for seq in seqs if seq not in seen]
    for start in range(0, len(seqs), QUERY_PAGE):
        chunk = seqs[start:start + QUERY_PAGE]
        with store_errors("Querying runs"), index._read() as cursor:
            cursor.execute(sql(f"SELECT {_RUN_SELECT} FROM {{p}}rl_runs r WHERE r.seq IN ("
                               + ", ".join("?" * len(chunk)) + ")"), chunk)
            by_seq = {row[-1]: row for row in cursor.fetchall()}
            rows = [by_seq[seq] for seq in chunk if seq in by_seq]
        seen.update(chunk)
        if rows:
            yield rows


def check_search(keys: Sequence[OrderKey], recursive: bool) -> None:
    """Refuse the combinations the index does not answer.

    Args:
        keys: the parsed ordering.
        recursive: whether the query reads every descendant of a run.

    Raises:
        ValidationError: an ordering of every descendant of a run (``recursive``).
    """
    if keys and recursive:
        raise ValidationError("order_by is not supported with recursive=True (every "
                              "descendant of a run); order the direct children, or sort them")


__all__ = ["check_search", "filter_conditions", "glob_pattern", "ordered_pages"]
