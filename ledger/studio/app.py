"""The Studio's ASGI application: routes, what each page reads, and the one write.

Pages answer from the read models through ``ws.ledger.index`` (the run index, caught up on each
request) and :class:`projections.studio_queries.StudioQueries`; run rows are shaped by
``ledger.sdk.details`` (the keys ``get_details()`` and ``runledger run show`` show). The only
events a page reads are the ones it shows: a run's metric values (charts, tables) and its own
stream (the audit timeline). Nothing goes through the SDK's write path; saving a view appends
one ``SavedView`` event through the application.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

import attrs
import jinja2
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ledger.domain.errors import (
    FileDamagedError,
    LedgerError,
    RunFileNotFoundError,
    ValidationError,
)
from ledger.domain.files import is_log_name
from ledger.domain.saved_view import SavedViewAggregate
from ledger.domain.values import current_actor
from ledger.sdk.details import details_from_row, iso_utc
from ledger.sdk.metrics import shape_metrics
from ledger.sdk.workspace import Workspace
from ledger.studio import hooks
from ledger.studio.security import CsrfTokens, Guard, same_origin
from ledger.studio.state import STATUSES, parse_state
from projections.read_models import RunRow

if TYPE_CHECKING:
    from ledger.domain.digest import Digest
from projections.studio_queries import TERMINAL, StudioQueries

HERE = Path(__file__).parent
SCALAR_KINDS = ("scalar", "list")
TABLE_KINDS = ("row", "table")
MAX_CHILDREN_SHOWN = 100
MAX_TIMELINE_BATCHES = 500
MAX_COMPARE = 10
MAX_FORM_BYTES = 16_000


def run_url(run_id: str) -> str:
    """The path of a run's page."""
    return "/runs/" + quote(run_id, safe="")


def files_url(run_id: str) -> str:
    """The path a run's files are downloaded from (``?name=...``)."""
    return run_url(run_id) + "/files"


def experiment_url(name: str) -> str:
    """The path of an experiment's runs table."""
    return "/experiments/" + quote(name, safe="")


def format_time(moment: datetime | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS`` UTC (empty for ``None``)."""
    if moment is None:
        return ""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float | None) -> str:
    """A duration as ``1h 02m 03s`` / ``2m 03s`` / ``4.2s`` (empty for ``None``)."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def format_value(value: Any) -> str:
    """A metric value for a table cell (numbers to 6 significant digits)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return ""
    return str(value)


def duration_of(row: RunRow, now: float) -> float | None:
    """How long a run has run: until its end, or until ``now`` while it runs."""
    if row.started_at is None:
        return None
    end = row.ended_at.timestamp() if row.ended_at is not None else now
    return max(0.0, end - row.started_at.timestamp())


def is_active(status: str) -> bool:
    """Whether a run in this status may still change status."""
    return status not in TERMINAL


class Studio:
    """The Studio over one workspace.

    Args:
        workspace: the ledger to show.
        read_only: refuse saving views too (nothing at all is written).
        hosts: the ``Host`` header values to answer (``None``: any; the CLI passes the bound
            address's names).
        digests: digests to verify the ledger against (none: "no digest given").
    """

    def __init__(self, workspace: Workspace, *, read_only: bool = False,
                 hosts: frozenset[str] | None = None,
                 digests: Sequence[Digest] = ()) -> None:
        self.workspace = workspace
        self.read_only = read_only
        self.digests = tuple(digests)
        self._verified: tuple[int, hooks.VerifyStatus] | None = None
        self.csrf = CsrfTokens()
        self._cache: dict[tuple[str, str], tuple[int, Any]] = {}
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(HERE / "templates")),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
            lstrip_blocks=True)
        self.templates.globals.update(
            run_url=run_url, experiment_url=experiment_url, format_time=format_time,
            format_duration=format_duration, format_value=format_value, iso_utc=iso_utc,
            is_active=is_active, statuses=STATUSES)
        routes = [
            Route("/", self.experiments_page),
            Route("/experiments/{name:path}", self.runs_page),
            Route("/runs/{run_id:path}/files", self.file_download),
            Route("/runs/{run_id:path}", self.run_page),
            Route("/compare", self.compare_page),
            Route("/views", self.save_view, methods=["POST"]),
            Route("/views/{view_id}", self.open_view),
            Route("/logs", self.log_file),
            Route("/api/metrics", self.metrics_api),
            Route("/api/run", self.run_api),
            Route("/api/status", self.status_api),
            Route("/api/log", self.log_api),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]
        inner = Starlette(routes=routes, exception_handlers={
            LedgerError: self._ledger_error, 404: self._not_found})
        self.app = Guard(inner, hosts, write_paths=["/views"])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI entry point."""
        await self.app(scope, receive, send)

    # ------------------------------------------------------------------ helpers
    @property
    def queries(self) -> StudioQueries:
        """The Studio's queries over the run index, caught up with the log."""
        return StudioQueries(self.workspace.ledger.index)

    def cached(self, key: tuple[str, str], compute: Callable[[], Any]) -> Any:
        """Answers that read many rows (counts, column names), kept until the log moves on.

        Args:
            key: what is asked.
            compute: computes the answer from the read models.
        """
        position = self.workspace.ledger.index.catch_up()
        found = self._cache.get(key)
        if found is not None and found[0] == position:
            return found[1]
        value = compute()
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[key] = (position, value)
        return value

    def verify_status(self) -> hooks.VerifyStatus:
        """The ledger's verify status against the digests given, computed once per log
        position (verify reads the whole log; browsing does not move it)."""
        position = self.workspace.ledger.index.catch_up()
        if self._verified is None or self._verified[0] != position:
            self._verified = (position, hooks.verify_status(self.workspace, self.digests))
        return self._verified[1]

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """Render a page."""
        page = self.templates.get_template(template).render(
            read_only=self.read_only, store=self.workspace.ledger.application.store.display_url,
            **context)
        return HTMLResponse(page, status_code=status_code)

    async def _ledger_error(self, request: Request, error: Exception) -> Response:
        status = 404 if isinstance(error, LookupError) else 400
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(error)}, status_code=status)
        return self.render("error.html", status_code=status, title="Error", message=str(error))

    async def _not_found(self, request: Request, error: Exception) -> Response:
        return self.render("error.html", status_code=404, title="Not found",
                           message=f"Nothing here: {request.url.path}")

    def _row(self, run_id: str) -> RunRow:
        row = self.workspace.ledger.index.get(run_id)
        if row is None:
            raise _NotFound(f"No run with id {run_id!r}")
        return row

    def _open_file(self, row: RunRow, name: str,
                   kind: str) -> tuple[hooks.FileEntry, Iterator[bytes]]:
        """``hooks.open_file``, a missing file a 404 naming the run and the ``kind`` (log or
        file) asked for.

        Raises:
            _NotFound: the run has no file of that name.
            FileDamagedError: its content is missing or damaged (checked before any byte).
        """
        try:
            return hooks.open_file(self.workspace, row, name)
        except RunFileNotFoundError:
            raise _NotFound(f"Run {row.run_id!r} has no {kind} named {name!r}") from None

    # ------------------------------------------------------------------ pages
    async def experiments_page(self, request: Request) -> Response:
        """Every experiment with its run counts by status, active runs and last activity."""
        show_archived = request.query_params.get("archived") == "1"
        summaries = self.cached(("experiments", ""), self.queries.experiment_summaries)
        # Archived experiments (``experiment.archive()``) are behind the toggle.
        archived = {s.name for s in summaries if s.archived_time is not None}
        shown = [s for s in summaries if show_archived or s.name not in archived]
        return self.render("experiments.html", title="Experiments", experiments=shown,
                           show_archived=show_archived, archived=archived,
                           hidden=len(archived) if not show_archived else 0)

    async def runs_page(self, request: Request) -> Response:
        """One page of an experiment's runs table (filters, sort, columns in the URL)."""
        name = request.path_params["name"]
        index = self.workspace.ledger.index
        experiment = index.experiment(name)
        if experiment is None:
            raise _NotFound(f"No experiment named {name!r}")
        path = experiment_url(name)
        queries = StudioQueries(index)
        error = None
        show_archived = request.query_params.get("archived") == "1"
        try:
            state = parse_state(name, request.query_params)
        except ValidationError as bad:
            error = str(bad)
            state = parse_state(name, QueryParams(""))
        now = time.time()
        page = queries.runs_page(attrs.evolve(state.query, include_archived=show_archived),
                                 now=now)
        ids = [row.run_id for row in page.rows]
        children: dict[str, list[RunRow]] = {}
        for run_id in state.opened:
            if run_id in ids:
                children[run_id] = list(index.find_runs(parent_run_id=run_id,
                                                        limit=MAX_CHILDREN_SHOWN))
        shown_ids = ids + [c.run_id for rows in children.values() for c in rows]
        metric_names = sorted({c.key for c in state.columns if c.kind == "metric"})
        return self.render(
            "runs.html", title=name, experiment=experiment, state=state, path=path, page=page,
            rows=page.rows, children=children, error=error,
            child_counts=queries.child_counts(shown_ids),
            metrics=queries.metric_columns(shown_ids, metric_names),
            counts=self.cached(("counts", name), lambda: queries.status_counts(name)),
            choices=self.cached(("choices", name), lambda: queries.column_choices(name)),
            views=queries.saved_views(name), now=now, duration_of=duration_of,
            csrf=self.csrf.token, current_view=request.query_params.get("view", ""),
            show_archived=show_archived,
            archived_url=state.url(path, archived=None if show_archived else "1", after=None),
            next_url=(state.url(path, after=page.next_cursor) if page.next_cursor else None),
            first_url=(state.url(path) if state.query.after else None),
            view_query=state.query_string())

    async def run_page(self, request: Request) -> Response:
        """A run: details, properties, tags, children, metrics, logs, files, audit timeline."""
        run_id = request.path_params["run_id"]
        index = self.workspace.ledger.index
        row = self._row(run_id)
        app = self.workspace.ledger.application
        summaries = index.metric_summaries(run_id)
        descendants = list(index.find_runs(parent_run_id=run_id, recursive=True, limit=1000))
        tree = _tree(run_id, descendants)
        batches = list(app.metric_events(run_id))
        tables = {name: value for name, value in shape_metrics(
            [b.series for b in batches]).items()
            if any(s.name == name and s.kind in TABLE_KINDS for s in summaries)}
        timeline = hooks.audit_timeline(self.workspace, row)
        logs = [view for view in (hooks.read_log(self.workspace, row, entry.name)
                                  for entry in hooks.run_logs(self.workspace, row))
                if view is not None]
        snapshot_id, snapshot = hooks.snapshot_files(self.workspace, row)
        now = time.time()
        details = details_from_row(row)
        data = {"run": run_id, "active": is_active(row.status),
                "metrics": [s.name for s in summaries if s.kind in SCALAR_KINDS],
                "logs": [{"name": view.name, "version": view.version} for view in logs]}
        return self.render(
            "run.html", title=row.display_name or row.name, row=row, details=details,
            summaries=summaries, tree=tree, tables=tables, timeline=timeline, data=data,
            duration=duration_of(row, now), parent=index.get(row.parent_run_id)
            if row.parent_run_id else None, logs=logs,
            files=hooks.run_files(self.workspace, row), files_url=files_url(run_id),
            snapshot_id=snapshot_id, snapshot=snapshot,
            verify=self.verify_status())

    async def compare_page(self, request: Request) -> Response:
        """Several runs: their metrics on one chart, properties and tags side by side."""
        run_ids = [r for r in request.query_params.getlist("run") if r.strip()][:MAX_COMPARE]
        index = self.workspace.ledger.index
        rows = [self._row(run_id) for run_id in run_ids]
        summaries = {row.run_id: index.metric_summaries(row.run_id) for row in rows}
        names = sorted({s.name for found in summaries.values() for s in found
                        if s.kind in SCALAR_KINDS})
        chosen = request.query_params.get("metric") or (names[0] if names else "")

        def side_by_side(pick: Callable[[RunRow], Mapping[str, str | None]]) -> list[Any]:
            keys = sorted({k for row in rows for k in pick(row)})
            table = []
            for key in keys:
                values = [pick(row).get(key, _MISSING) for row in rows]
                table.append((key, values, len({repr(v) for v in values}) > 1))
            return table

        def summary_of(run_id: str, name: str) -> Any:
            return next((s for s in summaries[run_id] if s.name == name), None)

        data = {"runs": [row.run_id for row in rows], "metric": chosen,
                "labels": {row.run_id: f"{row.display_name or row.name} #{row.number}"
                           for row in rows}}
        return self.render(
            "compare.html", title="Compare runs", rows=rows, names=names, chosen=chosen,
            properties=side_by_side(lambda r: r.properties), tags=side_by_side(lambda r: r.tags),
            missing=_MISSING, data=data, summary_of=summary_of,
            metric_summary=[(n, [summary_of(r.run_id, n) for r in rows]) for n in names])

    async def open_view(self, request: Request) -> Response:
        """Restore a saved view: redirect to the runs page with its arrangement."""
        view = self.queries.saved_view(request.path_params["view_id"])
        if view is None:
            raise _NotFound(f"No saved view {request.path_params['view_id']!r}")
        query = view.query + ("&" if view.query else "") + urlencode({"view": view.view_id})
        return RedirectResponse(f"{experiment_url(view.experiment)}?{query}", 303)

    async def save_view(self, request: Request) -> Response:
        """Save (or update) a view: the Studio's one write, same-origin and CSRF checked."""
        if self.read_only:
            return PlainTextResponse("This Studio is read-only (--read-only).\n", 403)
        if not same_origin(request.headers):
            return PlainTextResponse("Cross-origin request refused.\n", 403)
        # Our form posts application/x-www-form-urlencoded; read it without a multipart parser.
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return PlainTextResponse("Form too large.\n", 413)
        form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        if not self.csrf.check(form.get("csrf")):
            return PlainTextResponse("Missing or wrong CSRF token.\n", 403)

        def text(key: str) -> str:
            return form.get(key, "")

        experiment, name, query = text("experiment"), text("name"), text("query")
        # Only the runs page's own state is recorded (no cursor, no view id).
        query = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=False)
                           if k not in ("after", "view")])
        if self.workspace.ledger.index.experiment(experiment) is None:
            raise _NotFound(f"No experiment named {experiment!r}")
        app = self.workspace.ledger.application
        actor = current_actor(self.workspace.settings.user)
        view_id = text("view_id")
        if view_id:
            existing = self.queries.saved_view(view_id)
            if existing is None or existing.experiment != experiment:
                raise _NotFound(f"No saved view {view_id!r} of experiment {experiment!r}")
            aggregate: Any = app.repository.get(_uuid(view_id))
            aggregate.update(name, query, actor)
        else:
            aggregate = SavedViewAggregate.create(experiment, name, query, actor)
        app.save_all(aggregate)
        return RedirectResponse(f"/views/{aggregate.view_id}", 303)

    async def log_file(self, request: Request) -> Response:
        """A run's whole log, as text, streamed from the store: found by its name among the
        run's logs, never by a path."""
        row = self._row(request.query_params.get("run", ""))
        name = request.query_params.get("name", "")
        if not is_log_name(name):
            raise _NotFound(f"Run {row.run_id!r} has no log named {name!r}")
        try:
            _entry, chunks = self._open_file(row, name, "log")
        except FileDamagedError as error:
            return PlainTextResponse(f"{error}\n", 409)
        return StreamingResponse(chunks, media_type="text/plain; charset=utf-8",
                                 headers={"Cache-Control": "no-store"})

    async def log_api(self, request: Request) -> Response:
        """What a run's log gained after a log stream version (the run page's live tail):
        ``{"text", "version", "active"}``."""
        row = self._row(request.query_params.get("run", ""))
        name = request.query_params.get("name", "")
        if name not in {f.name for f in hooks.run_logs(self.workspace, row)}:
            raise _NotFound(f"Run {row.run_id!r} has no log named {name!r}")
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            raise ValidationError("after must be a whole number") from None
        text, version = hooks.tail_log(self.workspace, row, name, after)
        return JSONResponse({"text": text, "version": version, "active": is_active(row.status)},
                            headers={"Cache-Control": "no-store"})

    async def file_download(self, request: Request) -> Response:
        """One of a run's files, by a name from the run's own file list, streamed a checked
        chunk at a time, always as an attachment (raster images keep their type, so the page
        can show them in an ``<img>``; anything else is an octet stream)."""
        row = self._row(request.path_params["run_id"])
        name = request.query_params.get("name", "")
        try:
            entry, chunks = self._open_file(row, name, "file")
        except FileDamagedError as error:
            return PlainTextResponse(f"{error}\n", 409)
        media = entry.media_type if entry.is_image else "application/octet-stream"
        base = name.rsplit("/", 1)[-1]
        headers = {"Content-Disposition": "attachment; filename*=UTF-8''" + quote(base, safe=""),
                   "Cache-Control": "no-store"}
        if entry.sha256 is not None and entry.size is not None:
            # A recorded file's length is known: a download cut short by a damaged chunk
            # further on is then seen as incomplete (a growing log's length is not fixed).
            headers["Content-Length"] = str(entry.size)
        return StreamingResponse(chunks, media_type=media, headers=headers)

    # ------------------------------------------------------------------ JSON for the charts
    async def metrics_api(self, request: Request) -> Response:
        """The values of some scalar metrics of a run: ``{name: {steps, times, values}}``."""
        run_id = request.query_params.get("run", "")
        self._row(run_id)
        wanted = set(request.query_params.getlist("name"))
        series: dict[str, dict[str, list[Any]]] = {}
        for batch in self.workspace.ledger.application.metric_events(run_id):
            for name, kind, _description, values, steps, times in batch.series:
                if kind not in SCALAR_KINDS or (wanted and name not in wanted):
                    continue
                found = series.setdefault(name, {"steps": [], "times": [], "values": []})
                found["values"].extend(_number(v) for v in values)
                found["steps"].extend(steps)
                found["times"].extend(times)
        # Compact for 100,000-point charts: no steps when none was given, times as whole
        # microseconds after the first (values logged in one loop are microseconds apart).
        answer: dict[str, dict[str, Any]] = {}
        for name, found in series.items():
            times = found["times"]
            start = times[0] if times else 0.0
            answer[name] = {
                "values": found["values"],
                "steps": None if all(s is None for s in found["steps"]) else found["steps"],
                "t0": start, "times_us": [round((t - start) * 1e6) for t in times]}
        return JSONResponse(answer)

    async def run_api(self, request: Request) -> Response:
        """A run's status, duration and metric summaries (the run page's live update)."""
        row = self._row(request.query_params.get("run", ""))
        summaries = self.workspace.ledger.index.metric_summaries(row.run_id)
        return JSONResponse({
            "status": row.status, "active": is_active(row.status),
            "duration": format_duration(duration_of(row, time.time())),
            "metrics": [{"name": s.name, "kind": s.kind, "count": s.count,
                         "last": format_value(s.last) if s.kind in SCALAR_KINDS else "",
                         "min": format_value(s.minimum), "max": format_value(s.maximum),
                         "last_step": format_value(s.last_step)} for s in summaries]})

    async def status_api(self, request: Request) -> Response:
        """Statuses and durations of some runs (the runs table's live update)."""
        index = self.workspace.ledger.index
        now = time.time()
        found = {}
        for run_id in request.query_params.getlist("run")[:MAX_PAGE_IDS]:
            row = index.get(run_id)
            if row is not None:
                found[run_id] = {"status": row.status, "active": is_active(row.status),
                                 "duration": format_duration(duration_of(row, now))}
        return JSONResponse(found)


MAX_PAGE_IDS = 600


class _NotFound(LedgerError, LookupError):
    """A page asked for something the ledger does not have (answered 404)."""


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _uuid(text: str) -> Any:
    import uuid

    try:
        return uuid.UUID(text)
    except ValueError:
        raise _NotFound(f"No saved view {text!r}") from None


def _number(value: Any) -> float | None:
    """A value for a chart: finite numbers as they are, anything else a gap."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _tree(root: str, descendants: list[RunRow]) -> list[tuple[int, RunRow]]:
    """The descendants of a run as (depth, row) in tree order (children oldest first)."""
    by_parent: dict[str | None, list[RunRow]] = {}
    for row in sorted(descendants, key=lambda r: r.created_at):
        by_parent.setdefault(row.parent_run_id, []).append(row)
    out: list[tuple[int, RunRow]] = []

    def walk(parent: str, depth: int) -> None:
        for child in by_parent.get(parent, []):
            out.append((depth, child))
            walk(child.run_id, depth + 1)

    walk(root, 0)
    return out


def create_app(workspace: Workspace, *, read_only: bool = False,
               hosts: frozenset[str] | None = None, digests: Sequence[Digest] = ()) -> Studio:
    """Return the Studio's ASGI application over a workspace.

    Args:
        workspace: the ledger to show.
        read_only: refuse saving views too.
        hosts: the ``Host`` header values to answer (``None``: any).
        digests: digests to verify the ledger against (``runledger studio --digest``).

    Returns:
        The application (an ASGI callable).
    """
    return Studio(workspace, read_only=read_only, hosts=hosts, digests=digests)
