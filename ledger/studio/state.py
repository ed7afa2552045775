"""The runs table's view state, all of it in the URL: parsed from a query string into a
``RunsQuery`` plus the picked columns, and written back into links (sort, pages, folding).

Parameters: ``status`` (repeated), ``tag`` / ``prop`` (``key`` or ``key=value``, repeated),
``metric`` (``loss < 0.2``, repeated), ``q`` (free text over names and descriptions), ``sort``
(``column`` or ``-column``), ``col`` (``tag:KEY``, ``prop:KEY``, ``metric:NAME.last|min|max``,
repeated), ``open`` (runs whose children are shown, repeated), ``after`` (page cursor),
``limit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

import attrs
from starlette.datastructures import QueryParams

from ledger.domain.errors import ValidationError
from ledger.domain.status import RunStatus
from projections.studio_queries import (
    FIELDS,
    MAX_PAGE,
    MetricCondition,
    PairFilter,
    RunsQuery,
    SortKey,
)

STATUSES = tuple(status.value for status in RunStatus)
PAGE_SIZE = 50
STATE_KEYS = ("status", "tag", "prop", "metric", "q", "sort", "col", "open", "limit", "archived")


@attrs.frozen
class Column:
    """A picked column: ``tag:KEY``, ``prop:KEY`` or ``metric:NAME.FIELD``."""

    spec: str
    kind: str
    key: str
    field: str = ""

    @classmethod
    def parse(cls, spec: str) -> Column:
        """Parse a column spec.

        Raises:
            ValidationError: not one of the three forms.
        """
        kind, _sep, key = spec.partition(":")
        if kind in ("tag", "prop") and key:
            return cls(spec=spec, kind=kind, key=key)
        if kind == "metric" and key:
            name, _dot, field = key.rpartition(".")
            if not name or field not in FIELDS:
                name, field = key, "last"
            return cls(spec=f"metric:{name}.{field}", kind=kind, key=name, field=field)
        raise ValidationError(f"A column is tag:KEY, prop:KEY or metric:NAME[.last|.min|.max], "
                              f"not {spec!r}")

    @property
    def label(self) -> str:
        """The column's heading."""
        if self.kind == "metric":
            return self.key if self.field == "last" else f"{self.key} ({self.field})"
        return self.key

    @property
    def sort(self) -> str:
        """The sort column of this column."""
        return self.spec if self.kind != "metric" else f"metric:{self.key}.{self.field}"


@attrs.frozen
class RunsState:
    """Everything the runs page shows, as read from its URL."""

    query: RunsQuery
    columns: tuple[Column, ...]
    opened: tuple[str, ...]
    params: tuple[tuple[str, str], ...]  # the state parameters (no cursor), in URL order

    def url(self, path: str, **changes: str | Sequence[str] | None) -> str:
        """Return ``path`` with this state's query string, some parameters replaced.

        Args:
            path: the page's path.
            changes: parameters to replace (``None`` or ``[]`` removes them).
        """
        kept = [(k, v) for k, v in self.params if k not in changes]
        for key, value in changes.items():
            if value is None:
                continue
            if isinstance(value, str):
                kept.append((key, value))
            else:
                kept.extend((key, item) for item in value)
        text = urlencode(kept)
        return f"{path}?{text}" if text else path

    def query_string(self) -> str:
        """The state's query string (what a saved view records): no cursor."""
        return urlencode(list(self.params))

    def sort_url(self, path: str, column: str) -> str:
        """The link of a column heading: sort by it, or flip the direction if it is the sort."""
        current = self.query.sort
        if current.column == column:
            target = column if current.descending else f"-{column}"
        else:
            target = column if column in ("name", "status", "submitted") else f"-{column}"
        return self.url(path, sort=target, after=None)

    def toggle_open_url(self, path: str, run_id: str) -> str:
        """The link that shows or hides a run's children."""
        opened = [r for r in self.opened if r != run_id]
        if run_id not in self.opened:
            opened.append(run_id)
        return self.url(path, open=opened)


def parse_state(experiment: str, params: QueryParams) -> RunsState:
    """Read the runs page's state from its query parameters.

    Args:
        experiment: the experiment's name.
        params: the request's query parameters.

    Returns:
        The state.

    Raises:
        ValidationError: a parameter is malformed (the page says which).
    """
    def values(key: str) -> list[str]:
        return [v for v in params.getlist(key) if v.strip()]

    statuses = tuple(values("status"))
    for status in statuses:
        if status not in STATUSES:
            raise ValidationError(f"Unknown status {status!r}: one of {', '.join(STATUSES)}")
    limit_text = params.get("limit", "") or str(PAGE_SIZE)
    try:
        limit = int(limit_text)
    except ValueError:
        raise ValidationError(f"limit must be a whole number, not {limit_text!r}") from None
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit is 1 to {MAX_PAGE}, not {limit}")
    query = RunsQuery(
        experiment=experiment,
        statuses=statuses,
        tags=tuple(PairFilter.parse(v) for v in values("tag")),
        properties=tuple(PairFilter.parse(v) for v in values("prop")),
        metrics=tuple(MetricCondition.parse(v) for v in values("metric")),
        text=params.get("q", "").strip(),
        sort=SortKey.parse(params.get("sort") or None),
        after=params.get("after") or None,
        limit=limit,
    )
    columns: list[Column] = []
    for spec in values("col"):
        column = Column.parse(spec)
        if column not in columns:
            columns.append(column)
    kept = tuple((k, v) for k, v in params.multi_items() if k in STATE_KEYS and v.strip())
    return RunsState(query=query, columns=tuple(columns), opened=tuple(values("open")),
                     params=kept)
