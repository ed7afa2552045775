"""``RunIndex``: the queries across runs, answered from the read models, never by replaying events.

The SDK calls :meth:`RunIndex.catch_up` (with the position its last write returned, for
read-your-writes) and then queries. Queries are generators reading pages of rows in creation order,
newest first; each page is one indexed query in one read transaction. A run's row carries the
whole run packed (``rl_runs.packed``, properties and tags included), unpacked only when a field
beyond its id, type and experiment is read (``PackedRunRow``).

How a filtered query stays proportional to its matches: tag and property rows carry their run's
experiment and creation position, indexed as ``(experiment, key, value, seq)`` and
``(experiment, key, seq)``; the most selective filter (found by counting at most
:data:`PROBE_LIMIT` index entries of each) drives the query in index order, and the other filters
are checked by primary-key lookups. Without an experiment or a parent, a filtered query walks all
runs newest first (the SDK always names one or the other).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ledger.application import LedgerApplication
from ledger.domain.errors import ValidationError
from ledger.domain.ids import run_stream_id
from ledger.domain.search import Comparison, OrderKey, parse_order_by
from ledger.domain.search import parse_filter as parse_search
from ledger.persistence.errors import store_errors
from projections.dialect import DbCursor
from projections.metrics import decode_last
from projections.projection import Projection, from_micros, micros_to_datetime, to_micros
from projections.projector import Projector
from projections.read_models import (
    ExperimentRow,
    IndexStatus,
    MetricSummaryRow,
    PackedRunRow,
    QuarantinedEvent,
    RunRow,
    register_unpacker,
)
from projections.registry import PROJECTIONS
from projections.runs import unpack_run
from projections.search import check_search, filter_conditions, ordered_pages

logger = logging.getLogger("runledger")

# Rows per page of a query (and per IN (...) list); the first page is smaller, so that the first
# run comes back quickly however many match, except when a filter's probe counted fewer than
# PROBE_LIMIT entries: then the whole result (at most that many runs) is one page.
QUERY_PAGE = 500
FIRST_PAGE = 100
# Events per transaction when rebuilding.
REBUILD_PAGE = 1000
# The garbage collector's first threshold while a rebuild loads (see ``_fewer_collections``).
REBUILD_GC_THRESHOLD = 50_000
# How many index entries a filter's selectivity probe counts at most.
PROBE_LIMIT = 1000

# A run as a query reads it: what building a Run reads (id, type, experiment), its packed fields
# (``projections.runs.pack_run``: the rest is unpacked when first read) and its creation
# position, always last (keyset paging and callers that append columns rely on that).
_RUN_SELECT = "r.run_id, r.run_type, r.experiment, r.packed, r.seq"
#: One run as a query reads it (``_RUN_SELECT``): run id, run type, experiment name, packed
#: fields, creation position (``run_rows`` makes ``RunRow``s of them).
RunTuple = tuple[Any, ...]
_DESCENDANTS = (
    "WITH RECURSIVE d(run_id, seq) AS ("
    "SELECT run_id, seq FROM {p}rl_runs WHERE parent_run_id = ? "
    "UNION SELECT r.run_id, r.seq FROM {p}rl_runs r JOIN d ON r.parent_run_id = d.run_id) "
    "SELECT run_id, seq FROM d ORDER BY seq DESC"
)
_METRICS = ("SELECT run_id, name, kind, count, last, minimum, maximum, last_step "
            "FROM {p}rl_metrics WHERE run_id = ? ORDER BY name")
_EXPERIMENTS = ("SELECT e.name, e.created_at, e.run_count, e.created_by, s.archived_at, "
                "s.stream_id FROM {p}rl_experiments e "
                "LEFT JOIN {p}rl_experiment_state s ON s.name = e.name")


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the block with the garbage collector's first threshold raised to at least
    :data:`REBUILD_GC_THRESHOLD` allocations (the thresholds are restored after it; a
    threshold already higher, or 0 (automatic collection off), is left as it is).

    A rebuild allocates several container objects per event (the decoded state, its nested
    dicts, the page's tuples) that reference counting frees a page later; with the default
    threshold (700) the collector ran about 500 times over a 100,000-event rebuild, scanning
    the live page each time (5-8% of the rebuild). Cyclic garbage is still collected, every
    few pages, so memory stays flat. The thresholds are process-wide: another thread collects
    less often meanwhile, and a threshold set meanwhile (by another thread, or another rebuild
    ending first) is overwritten by the one restored.
    """
    thresholds = gc.get_threshold()
    if thresholds[0] == 0 or thresholds[0] >= REBUILD_GC_THRESHOLD:  # 0: collection is off
        yield
        return
    gc.set_threshold(REBUILD_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


# A filter on tags or properties: (table kind, key, has a value to compare, the value).
_Filter = tuple[str, str, bool, "str | None"]


def parse_filter(value: Any, what: str) -> list[_Filter]:
    """Validate a ``tags=``/``properties=`` query argument.

    Args:
        value: ``None`` (no filter), a string (the key must exist, whatever its value), or a
            dict (every pair must be equal; values compare as the stored strings: ``str(v)``,
            and ``None`` matches a tag stored without a value).
        what: ``"tags"`` or ``"properties"``.

    Returns:
        The filters.

    Raises:
        ValidationError: any other type (a list, say), or a key that is not a string.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [(what, value, False, None)]
    if isinstance(value, Mapping):
        filters: list[_Filter] = []
        for key, expected in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    f"{what} filter keys must be strings, not {type(key).__name__}: {key!r}")
            filters.append((what, key, True, None if expected is None else str(expected)))
        return filters
    raise ValidationError(
        f"{what} must be a string (a key that must exist) or a dict of key: value pairs that "
        f"must all match, not {type(value).__name__}: {value!r}")


def _text_argument(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, not {type(value).__name__}: {value!r}")
    return str(value.value) if hasattr(value, "value") else str(value)


class RunIndex:
    """Queries across the runs of a ledger, from persisted read models kept up to date from its
    log.

    Creating one creates the read-model tables if they are missing (safe when many processes
    start at once); it does not catch up: call :meth:`catch_up` before querying.

    Args:
        app: the ledger.
        projections: the projection classes to maintain (default: :data:`PROJECTIONS`).
        page_size: events per catch-up transaction.
        before_commit: test hook, see :class:`projections.projector.Projector`.

    Raises:
        StoreError: the store failed.
    """

    def __init__(self, app: LedgerApplication, *,
                 projections: Sequence[type[Projection]] | None = None,
                 page_size: int = 500,
                 before_commit: Callable[[int, int], None] | None = None) -> None:
        self.app = app
        with store_errors("Opening the run index"):
            self._projector = Projector(app, list(projections or PROJECTIONS),
                                        page_size=page_size, before_commit=before_commit)
            self._projector.ensure_schema()
        self._dialect = self._projector.dialect
        self._datastore = self._projector.datastore
        self._transcoder = app.mapper.transcoder
        self._lock = threading.RLock()
        self._checked = False
        self._quarantined_seen = 0
        # The store's read token (``LedgerApplication.read_token``) taken before the last
        # catch-up that reached the log's end: while the store still gives it, nobody has
        # committed since, and a catch-up would find nothing (no query needed).
        self._caught_up_token: Any = None

    # ------------------------------------------------------------------ projecting
    def catch_up(self, until: int | None = None) -> int:
        """Apply every event committed to the log so far.

        Args:
            until: a position the caller needs applied (what a write returned); when this index
                has already applied it, the call returns without a query.

        Returns:
            The position every read model has reached.

        Raises:
            StoreError: the store failed, or other processes kept winning every race.
        """
        with self._lock, store_errors("Catching up the run index"):
            token = self.app.read_token()
            if token is not None and token == self._caught_up_token:
                return self._projector.position
            position, applied = self._projector.catch_up(until)
            if applied or not self._checked:
                self._checked = True
                self._warn_if_incomplete()
            # A catch-up that returned early (``until`` already applied) did not look for later
            # events: only a full one vouches for the token.
            self._caught_up_token = token if until is None or applied else None
        return position

    def _warn_if_incomplete(self) -> None:
        # Said when this process first queries, and when new events are quarantined: queries
        # answer without the quarantined events.
        count = len(self._projector.quarantined())
        if count > self._quarantined_seen:
            self._quarantined_seen = count
            logger.warning("runledger: the query index is incomplete: %d event(s) could not be "
                           "projected and are quarantined (see `runledger projections status`)",
                           count)

    def position(self) -> int:
        """Return the position every read model has reached (read from the store).

        Returns:
            A notification id (0 for an empty ledger).

        Raises:
            StoreError: the store failed.
        """
        with store_errors("Reading the run index position"):
            return min(self._projector.positions().values())

    def status(self) -> IndexStatus:
        """Return how complete the index is: its position, the log's end, and the events it
        could not decode or apply (quarantined; the index lacks them).

        Raises:
            StoreError: the store failed.
        """
        with store_errors("Reading the run index status"):
            positions = self._projector.positions()
            last = self.app.max_position()
            quarantined = tuple(QuarantinedEvent(*row) for row in self._projector.quarantined())
        position = min(positions.values())
        return IndexStatus(position=position, last_position=last,
                           lag=max(0, last - position), positions=positions,
                           quarantined=quarantined)

    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Drop every read model, create it again and project the whole log into it.

        Memory stays flat (one page of events at a time). Queries made by other processes
        meanwhile see partial results; other projectors just help.

        Args:
            progress: called with (position reached, position to reach) after each page.

        Returns:
            How many events were applied.

        Raises:
            StoreError: the store failed.
        """
        with self._lock, store_errors("Rebuilding the run index"):
            self._projector.reset()
            total = self.app.max_position()
            if progress is not None:
                progress(0, total)

            def report(position: int) -> None:
                if progress is not None:
                    progress(position, max(total, position))

            with _fewer_collections():
                _position, applied = self._projector.catch_up(page_size=REBUILD_PAGE,
                                                              progress=report)
            self._projector.ensure_schema()
        return applied

    def close(self) -> None:
        """Release nothing of the ledger's: the index uses the ledger's own connections.

        The ledger (``app.close()``) closes them.
        """

    # ------------------------------------------------------------------ runs
    def get(self, run_id: str) -> RunRow | None:
        """Return a run, with its properties and tags.

        Args:
            run_id: the run's id.

        Returns:
            The run, or ``None`` if the index has no run with this id.

        Raises:
            StoreError: the store failed.
        """
        stream = run_stream_id(run_id).bytes
        sql = self._dialect.sql
        with store_errors("Reading a run"), self._read() as cursor:
            cursor.execute(sql(f"SELECT {_RUN_SELECT} FROM {{p}}rl_runs r WHERE r.stream_id = ?"),
                           (stream,))
            rows = [row for row in cursor.fetchall() if row[0] == run_id]
            if not rows:
                return None
            return run_rows(rows)[0]

    def find_runs(self, *, experiment_name: str | None = None,
                  parent_run_id: str | None = None, recursive: bool = False,
                  run_type: str | None = None, tags: str | Mapping[str, Any] | None = None,
                  properties: str | Mapping[str, Any] | None = None, status: str | None = None,
                  include_children: bool = False, limit: int | None = None,
                  include_archived: bool = False, filter: str | None = None,
                  order_by: str | Sequence[str] | None = None) -> Iterator[RunRow]:
        """Find runs, newest first (descending creation order in the log) unless ``order_by``.

        Arguments are validated when this is called; rows are read a page at a time as the
        generator is consumed, each page in its own read transaction.

        Args:
            experiment_name: only runs of this experiment.
            parent_run_id: only children of this run (``recursive``: all its descendants, the
                run itself excluded). ``include_children`` is then irrelevant.
            recursive: with ``parent_run_id``, descendants at any depth.
            run_type: only runs of this type.
            tags: a key that must exist (str) or pairs that must all be equal (dict; values
                compare as ``str(v)``, ``None`` matches a tag without value).
            properties: as ``tags``, for properties.
            status: only runs in this status.
            include_children: with ``experiment_name`` and no parent, include child runs (by
                default only top-level runs).
            limit: at most this many runs.
            include_archived: also archived runs (by default they are left out).
            filter: comparisons in MLflow's search grammar (``ledger.domain.search``), all of
                which must hold, for example ``"metrics.loss < 0.2 and params.lr = '0.01'"``.
            order_by: ``["metrics.loss ASC", "attributes.start_time DESC"]``: runs in this
                order (empty values last), ties newest first (see ``projections.search``).

        Returns:
            A generator of runs, with properties and tags.

        Raises:
            ValidationError: ``tags`` or ``properties`` is neither a string nor a dict, or
                another argument has the wrong type; a bad ``filter`` or ``order_by``
                (``SearchSyntaxError``, naming the token and its position).
            StoreError: the store failed (when iterating).
        """
        return _rows_of(self.find_run_tuples(
            experiment_name=experiment_name, parent_run_id=parent_run_id, recursive=recursive,
            run_type=run_type, tags=tags, properties=properties, status=status,
            include_children=include_children, limit=limit, include_archived=include_archived,
            filter=filter, order_by=order_by))

    def find_run_tuples(self, *, experiment_name: str | None = None,
                        parent_run_id: str | None = None, recursive: bool = False,
                        run_type: str | None = None,
                        tags: str | Mapping[str, Any] | None = None,
                        properties: str | Mapping[str, Any] | None = None,
                        status: str | None = None, include_children: bool = False,
                        limit: int | None = None, include_archived: bool = False,
                        filter: str | None = None,
                        order_by: str | Sequence[str] | None = None,
                        ) -> Iterator[list[RunTuple]]:
        """:meth:`find_runs`, a page (a list, never empty) at a time, each run as the tuple the
        index read (``RunTuple``: id, type, experiment, packed fields, creation position;
        ``run_rows`` makes rows of a page).

        For the SDK, whose ``Run`` objects keep the tuple and make a row only when one is
        read (most runs of a query are built and never read beyond their id), and for callers
        that turn every row into another object: a list per page spares the generator frames
        per row.

        Args:
            experiment_name: see :meth:`find_runs`, as are the other arguments.

        Returns:
            A generator of pages of tuples, in :meth:`find_runs`' order.

        Raises:
            ValidationError: as :meth:`find_runs`.
            StoreError: the store failed (when iterating).
        """
        filters = parse_filter(tags, "tags") + parse_filter(properties, "properties")
        experiment_name = _text_argument(experiment_name, "experiment_name")
        parent_run_id = _text_argument(parent_run_id, "parent_run_id")
        run_type = _text_argument(run_type, "run_type")
        status = _text_argument(status, "status")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise ValidationError(f"limit must be an int, not {type(limit).__name__}")
        search = parse_search(filter), parse_order_by(order_by)
        check_search(search[1], recursive=parent_run_id is not None and recursive)
        return self._find_pages(experiment_name, parent_run_id, recursive, run_type, filters,
                                status, include_children, limit, bool(include_archived),
                                search)

    def _find_pages(self, experiment: str | None, parent: str | None, recursive: bool,
                    run_type: str | None, filters: list[_Filter], status: str | None,
                    include_children: bool, limit: int | None,
                    include_archived: bool,
                    search: tuple[tuple[Comparison, ...], tuple[OrderKey, ...]] = ((), ()),
                    ) -> Iterator[list[RunTuple]]:
        if limit is not None and limit <= 0:
            return
        remaining = limit
        # Conditions on the run row r (text, params), shared by every mode.
        conditions: list[str] = []
        params: list[Any] = []
        if experiment is not None:
            conditions.append("r.experiment = ?")
            params.append(experiment)
        if status is not None:
            conditions.append("r.status = ?")
            params.append(status)
        if run_type is not None:
            conditions.append("r.run_type = ?")
            params.append(run_type)
        if not include_archived:
            conditions.append("r.archived = 0")
        comparisons, order_keys = search
        if comparisons and not order_keys:  # (an ordered query adds them itself)
            search_conditions, search_params = filter_conditions(comparisons, self._dialect)
            conditions += search_conditions
            params += search_params

        if order_keys:
            if parent is not None:
                conditions.insert(0, "r.parent_run_id = ?")
                params.insert(0, parent)
            elif experiment is not None and not include_children:
                conditions.insert(1, "r.parent_run_id IS NULL")
            exists, exists_params = self._exists(filters)
            for_page = ordered_pages(self, order_keys, comparisons,
                                     experiment if parent is None else None,
                                     conditions + exists, params + exists_params)
        elif parent is not None and recursive:
            for_page = self._pages_of_descendants(parent, filters, conditions, params)
        else:
            source = "{p}rl_runs r"
            order = "r.seq"
            driver: _Filter | None = None
            first_page = min(FIRST_PAGE, QUERY_PAGE)
            driver_conditions: list[str] = []
            driver_params: list[Any] = []
            if parent is not None:
                driver_conditions.append("r.parent_run_id = ?")
                driver_params.append(parent)
            elif experiment is not None:
                if not include_children:
                    conditions.append("r.parent_run_id IS NULL")
                if filters:
                    chosen = self._choose_driver(experiment, filters)
                    if chosen is None:  # some filter matches nothing
                        return
                    driver, entries = chosen
                    if entries < PROBE_LIMIT:
                        # No more runs can match than the driver has entries: one page (a
                        # page more only if runs were added since they were counted).
                        first_page = entries + 1
                    kind, key, has_value, value = driver
                    source = f"{{p}}rl_{kind} d CROSS JOIN {{p}}rl_runs r"
                    order = "d.seq"
                    driver_conditions += ["d.experiment = ?", "d.key = ?"]
                    driver_params += [experiment, key]
                    if has_value:
                        driver_conditions.append("d.value IS NULL" if value is None
                                                 else "d.value = ?")
                        if value is not None:
                            driver_params.append(value)
                    driver_conditions.append("r.seq = d.seq")
                    # The driver's own experiment condition already selects the experiment; a
                    # second one on r made PostgreSQL's prepared plan scan every run (176 ms
                    # instead of 2.9 ms at 100k runs).
                    del conditions[0], params[0]
            others = [f for f in filters if f is not driver]
            exists, exists_params = self._exists(others, "d" if driver is not None else "r")
            where = driver_conditions + conditions + exists
            base_params = driver_params + params + exists_params
            for_page = self._keyset_pages(source, order, where, base_params, first_page)

        for rows in for_page(remaining):
            if remaining is not None:
                if len(rows) >= remaining:
                    yield rows[:remaining]
                    return
                remaining -= len(rows)
            yield rows

    def _keyset_pages(self, source: str, order: str, where: list[str], params: list[Any],
                      first_page: int) -> Callable[[int | None], Iterator[list[RunTuple]]]:
        sql = self._dialect.sql

        def pages(remaining: int | None) -> Iterator[list[RunTuple]]:
            last: int | None = None
            page = first_page
            while True:
                size = page if remaining is None else min(page, remaining)
                page = QUERY_PAGE
                conditions = list(where)
                page_params = list(params)
                if last is not None:
                    conditions.append(f"{order} < ?")
                    page_params.append(last)
                text = f"SELECT {_RUN_SELECT} FROM {source}"
                if conditions:
                    text += " WHERE " + " AND ".join(conditions)
                text += f" ORDER BY {order} DESC LIMIT ?"
                page_params.append(size)
                with store_errors("Querying runs"), self._read() as cursor:
                    cursor.execute(sql(text), page_params)
                    rows = cursor.fetchall()
                if rows:
                    yield rows
                if len(rows) < size:
                    return
                last = rows[-1][-1]
                if remaining is not None:
                    remaining -= len(rows)

        return pages

    def _pages_of_descendants(self, parent: str, filters: list[_Filter], conditions: list[str],
                              params: list[Any]) -> Callable[[int | None],
                                                             Iterator[list[RunTuple]]]:
        sql = self._dialect.sql
        exists, exists_params = self._exists(filters)

        def pages(remaining: int | None) -> Iterator[list[RunTuple]]:
            del remaining
            seqs = [seq for _run_id, seq in self._descendants(parent)]
            start, page = 0, min(FIRST_PAGE, QUERY_PAGE)
            while start < len(seqs):
                chunk = seqs[start:start + page]
                start, page = start + page, QUERY_PAGE
                where = [f"r.seq IN ({', '.join('?' * len(chunk))})", *conditions, *exists]
                text = (f"SELECT {_RUN_SELECT} FROM {{p}}rl_runs r WHERE "
                        + " AND ".join(where) + " ORDER BY r.seq DESC")
                with store_errors("Querying runs"), self._read() as cursor:
                    cursor.execute(sql(text), [*chunk, *params, *exists_params])
                    rows = cursor.fetchall()
                if rows:
                    yield rows

        return pages

    def _exists(self, filters: list[_Filter], table: str = "r") -> tuple[list[str], list[Any]]:
        # With a driver, correlated on its d.seq: the filters are checked before the run's row
        # is read (SQLite, 2026-12-01: 7% faster at 2,000 and at 100,000 runs).
        conditions: list[str] = []
        params: list[Any] = []
        for kind, key, has_value, value in filters:
            text = (f"EXISTS (SELECT 1 FROM {{p}}rl_{kind} x WHERE x.seq = {table}.seq "
                    "AND x.key = ?")
            params.append(key)
            if has_value:
                if value is None:
                    text += " AND x.value IS NULL"
                else:
                    text += " AND x.value = ?"
                    params.append(value)
            conditions.append(text + ")")
        return conditions, params

    def _choose_driver(self, experiment: str,
                       filters: list[_Filter]) -> tuple[_Filter, int] | None:
        """Return the filter with the fewest index entries (counting at most PROBE_LIMIT of
        each) and its count (PROBE_LIMIT: at least that many, or not counted), or ``None``
        when one has none (the query has no result)."""
        if len(filters) == 1:
            return filters[0], PROBE_LIMIT
        best: tuple[int, int, _Filter] | None = None
        sql = self._dialect.sql
        with store_errors("Querying runs"), self._read() as cursor:
            for order, (kind, key, has_value, value) in enumerate(filters):
                text = f"SELECT 1 FROM {{p}}rl_{kind} WHERE experiment = ? AND key = ?"
                probe_params: list[Any] = [experiment, key]
                if has_value:
                    if value is None:
                        text += " AND value IS NULL"
                    else:
                        text += " AND value = ?"
                        probe_params.append(value)
                # Past the best count so far, more entries cannot make this filter the driver.
                cap = PROBE_LIMIT if best is None else min(PROBE_LIMIT, best[0] + 1)
                cursor.execute(sql(f"SELECT COUNT(*) FROM ({text} LIMIT ?) probe"),
                               [*probe_params, cap])
                count = int(cursor.fetchone()[0])
                if count == 0:
                    return None
                # Equal counts: prefer a filter with a value (its index gives creation order).
                rank = (count, order if has_value else order + len(filters))
                if best is None or rank < best[:2]:
                    best = (*rank, filters[order])
        assert best is not None
        return best[2], best[0]

    def created_runs(self, *, experiment_name: str | None = None,
                     parent_run_id: str | None = None, recursive: bool = False,
                     run_type: str | None = None, include_children: bool = False,
                     until_position: int | None = None,
                     until_created: datetime | None = None) -> list[tuple[str, int, int]]:
        """Return the runs a query selects by what never changes after creation (experiment,
        parent, type), created up to a position or a time, newest first.

        A query as of a moment (``ledger.audit.timeline``) starts from these candidates and
        folds each one's own events up to the moment for the rest (status, tags, properties,
        archived). The selection rules are :meth:`find_runs`'s.

        Args:
            experiment_name: only runs of this experiment.
            parent_run_id: only children of this run (``recursive``: every descendant).
            recursive: with ``parent_run_id``, descendants at any depth.
            run_type: only runs of this type.
            include_children: with ``experiment_name`` and no parent, child runs too.
            until_position: only runs whose creation is at this log position or before.
            until_created: only runs whose creation was recorded at this time or before.

        Returns:
            ``(run_id, creation position, number)`` per run, newest first.

        Raises:
            StoreError: the store failed.
        """
        conditions: list[str] = []
        params: list[Any] = []
        if parent_run_id is not None and recursive:
            seqs = [seq for _run_id, seq in self._descendants(parent_run_id)]
            if not seqs:
                return []
        else:
            seqs = []
            if parent_run_id is not None:
                conditions.append("parent_run_id = ?")
                params.append(parent_run_id)
            elif experiment_name is not None and not include_children:
                conditions.append("parent_run_id IS NULL")
        if experiment_name is not None:
            conditions.append("experiment = ?")
            params.append(experiment_name)
        if run_type is not None:
            conditions.append("run_type = ?")
            params.append(run_type)
        if until_position is not None:
            conditions.append("seq <= ?")
            params.append(until_position)
        if until_created is not None:
            conditions.append("created_at <= ?")
            params.append(to_micros(until_created))
        found: list[tuple[str, int, int]] = []
        sql = self._dialect.sql
        chunks = [seqs[i:i + QUERY_PAGE] for i in range(0, len(seqs), QUERY_PAGE)] or [[]]
        with store_errors("Querying runs"), self._read() as cursor:
            for chunk in chunks:
                where = list(conditions)
                if chunk:
                    where.insert(0, f"seq IN ({', '.join('?' * len(chunk))})")
                text = "SELECT run_id, seq, number FROM {p}rl_runs"
                if where:
                    text += " WHERE " + " AND ".join(where)
                cursor.execute(sql(text), [*chunk, *params])
                found += [(row[0], int(row[1]), int(row[2])) for row in cursor.fetchall()]
        found.sort(key=lambda r: r[1], reverse=True)
        return found

    def descendant_ids(self, run_id: str) -> list[str]:
        """Return the ids of every descendant of a run (children, their children...), newest
        first, the run itself excluded.

        Args:
            run_id: the run's id.

        Returns:
            Run ids (empty for an unknown run).

        Raises:
            StoreError: the store failed.
        """
        return [child for child, _seq in self._descendants(run_id)]

    def _descendants(self, run_id: str) -> list[tuple[str, int]]:
        with store_errors("Reading descendants"), self._read() as cursor:
            cursor.execute(self._dialect.sql(_DESCENDANTS), (run_id,))
            return [(row[0], int(row[1])) for row in cursor.fetchall()]

    # ------------------------------------------------------------------ metrics, experiments
    def metric_summaries(self, run_id: str) -> list[MetricSummaryRow]:
        """Return the summary of each metric of a run, by name.

        Args:
            run_id: the run's id.

        Returns:
            Summaries, sorted by metric name (empty when the run logged nothing).

        Raises:
            StoreError: the store failed.
        """
        with store_errors("Reading metric summaries"), self._read() as cursor:
            cursor.execute(self._dialect.sql(_METRICS), (run_id,))
            rows = cursor.fetchall()
        return [MetricSummaryRow(run_id=row[0], name=row[1], kind=row[2], count=int(row[3]),
                                 last=decode_last(self._transcoder, row[4]), minimum=row[5],
                                 maximum=row[6], last_step=row[7])
                for row in rows]

    def experiments(self) -> list[ExperimentRow]:
        """Return every experiment, by name.

        Returns:
            Experiments with their run counts (top-level runs and children).

        Raises:
            StoreError: the store failed.
        """
        with store_errors("Reading experiments"), self._read() as cursor:
            cursor.execute(self._dialect.sql(_EXPERIMENTS + " ORDER BY e.name"))
            return self._experiments_with_tags(cursor, cursor.fetchall())

    def experiment(self, name: str) -> ExperimentRow | None:
        """Return one experiment.

        Args:
            name: its name.

        Returns:
            The experiment, or ``None`` if the index has none of that name.

        Raises:
            StoreError: the store failed.
        """
        with store_errors("Reading an experiment"), self._read() as cursor:
            cursor.execute(self._dialect.sql(_EXPERIMENTS + " WHERE e.name = ?"), (name,))
            rows = cursor.fetchall()
            found = self._experiments_with_tags(cursor, rows)
        return found[0] if found else None

    # ------------------------------------------------------------------ helpers
    @contextmanager
    def _read(self) -> Iterator[DbCursor]:
        with self._dialect.transaction(self._datastore, commit=False) as (_wrapped, cursor):
            yield cursor

    def _experiments_with_tags(self, cursor: DbCursor,
                               rows: Sequence[Sequence[Any]]) -> list[ExperimentRow]:
        """Build experiment rows, with the tags of all of them read in one query."""
        streams = [bytes(row[5]) for row in rows if row[5] is not None]
        tags: dict[bytes, dict[str, str | None]] = {}
        for start in range(0, len(streams), 500):
            chunk = streams[start:start + 500]
            cursor.execute(self._dialect.sql(
                "SELECT stream_id, key, value FROM {p}rl_experiment_tags WHERE stream_id IN ("
                + ", ".join("?" * len(chunk)) + ")"), chunk)
            for stream, key, value in cursor.fetchall():
                tags.setdefault(bytes(stream), {})[key] = value
        return [ExperimentRow(name=row[0], created_at=micros_to_datetime(row[1]),
                              run_count=int(row[2]), created_by=row[3],
                              archived_time=from_micros(row[4]),
                              tags=tags.get(bytes(row[5]), {}) if row[5] is not None else {})
                for row in rows]



def run_rows(tuples: Sequence[Sequence[Any]]) -> list[RunRow]:
    """The rows of ``RunTuple``s (``_RUN_SELECT`` rows), each unpacked when a field beyond its
    id, type and experiment is first read (``PackedRunRow``).

    Args:
        tuples: rows as the index read them (extra columns after the packed fields ignored).

    Returns:
        One ``RunRow`` per tuple, in order.
    """
    wrap = PackedRunRow.from_raw
    return [wrap(row[0], row[1], row[2], row[3]) for row in tuples]


def _rows_of(pages: Iterator[list[RunTuple]]) -> Iterator[RunRow]:
    for tuples in pages:
        yield from run_rows(tuples)


def _unpack_row(blob: Any) -> list[Any]:
    """Every RunRow field of a packed run (``pack_run``: RunRow's field order), converted."""
    fields = unpack_run(blob)
    fields[11] = micros_to_datetime(fields[11])
    fields[12] = from_micros(fields[12])
    fields[13] = from_micros(fields[13])
    fields[19] = bool(fields[19])
    return fields


register_unpacker(_unpack_row)
