"""Test helpers: drive a ledger through the application layer, and answer every run-index query by
brute force from the log (the oracle the projections are checked against).

The oracle reads the whole log, replays each run with the domain's own aggregate (its events'
``apply`` methods) and filters and sorts in Python: nothing of it is shared with the projections.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ledger.application import LedgerApplication
from ledger.domain.experiment import ExperimentAggregate
from ledger.domain.ids import experiment_stream_id, new_run_id, run_stream_id
from ledger.domain.metrics import MetricsLogged
from ledger.domain.run import RunAggregate
from ledger.domain.values import Actor, current_actor
from ledger.persistence.store import parse_store_url
from projections.read_models import ExperimentRow, MetricSummaryRow, RunRow


class Driver:
    """Writes to a ledger the way the SDK will, through ``LedgerApplication``."""

    def __init__(self, url: str) -> None:
        self.app = LedgerApplication(parse_store_url(url))
        self.actor: Actor = current_actor()
        self.last_position = 0

    def experiment(self, name: str) -> None:
        self.app.ensure_experiment(name, self.actor)

    def new_run(self, experiment: str, parent: str | None = None, *, run_id: str | None = None,
                run_type: str = "experiment_run", display_name: str | None = None,
                description: str | None = None) -> RunAggregate:
        """Return a new, unsaved run (its parent is loaded from the store)."""
        run_id = run_id or new_run_id()
        parent_run = self.app.get_run(parent) if parent is not None else None
        return RunAggregate.create(
            aggregate_id=run_stream_id(run_id), run_id=run_id,
            experiment_id=experiment_stream_id(experiment), experiment_name=experiment,
            actor=self.actor, parent=parent_run, run_type=run_type,
            display_name=display_name, description=description)

    def create(self, experiment: str, parent: str | None = None, **kwargs: Any) -> str:
        """Create and save a run; return its id."""
        run = self.new_run(experiment, parent, **kwargs)
        self.save(run)
        return run.run_id

    def save(self, *objs: Any) -> int:
        self.last_position = self.app.save_all(*objs)
        return self.last_position

    def do(self, run_id: str, command: Any) -> int:
        """Apply a command (a function of the aggregate) to a run and save it."""
        _run, _result, position = self.app.run_command(None, run_id, command)
        if position:
            self.last_position = position
        return position

    def experiment_do(self, name: str, command: Any) -> int:
        """Apply a command to an experiment's aggregate and save it."""
        self.app.experiment_command(name, command)
        self.last_position = self.app.max_position()
        return self.last_position

    def start(self, run_id: str) -> int:
        return self.do(run_id, lambda r: r.start(self.actor))

    def complete(self, run_id: str) -> int:
        return self.do(run_id, lambda r: r.complete(self.actor))

    def fail(self, run_id: str, message: str = "boom", code: str = "UserError") -> int:
        return self.do(run_id, lambda r: r.fail(code, message, None, self.actor))

    def tag(self, run_id: str, tags: dict[str, Any]) -> int:
        return self.do(run_id, lambda r: r.set_tags(tags, self.actor))

    def untag(self, run_id: str, keys: list[str]) -> int:
        return self.do(run_id, lambda r: r.remove_tags(keys, self.actor))

    def props(self, run_id: str, properties: dict[str, Any]) -> int:
        return self.do(run_id, lambda r: r.add_properties(properties, self.actor))

    def correct(self, run_id: str, key: str, value: Any, reason: str = "wrong") -> int:
        return self.do(run_id, lambda r: r.correct_property(key, value, reason, self.actor))

    def archive(self, run_id: str, reason: str = "superseded") -> int:
        return self.do(run_id, lambda r: r.archive(reason, self.actor))

    def restore(self, run_id: str) -> int:
        return self.do(run_id, lambda r: r.restore(self.actor))

    def log(self, run_id: str, name: str, values: list[Any], kind: str = "scalar",
            steps: list[Any] | None = None) -> int:
        steps = steps if steps is not None else [None] * len(values)
        series = [[name, kind, "", values, steps, [0.0] * len(values)]]
        self.last_position = self.app.append_metrics(run_id, series, self.actor)
        return self.last_position


# ---------------------------------------------------------------------- the oracle
def read_whole_log(app: LedgerApplication) -> list[tuple[int, str, Any]]:
    out = []
    position = 0
    while True:
        page = app.read_log(position, 1000)
        if not page:
            return out
        out += [(n.id, n.topic, app.decode(n)) for n in page]
        position = page[-1].id


class Oracle:
    """Every answer of the run index, computed from the whole log by brute force."""

    def __init__(self, app: LedgerApplication) -> None:
        self.app = app
        log = read_whole_log(app)
        self.runs: dict[str, RunRow] = {}
        self.order: dict[str, int] = {}
        counts: dict[str, int] = {}
        experiments: dict[str, dict[str, Any]] = {}
        metric_events: list[MetricsLogged] = []
        for position, topic, event in log:
            if topic == ExperimentAggregate.Created.TOPIC:
                entry = experiments.setdefault(event.name, {"count": 0})
                entry["created_at"] = event.timestamp
                entry["created_by"] = event.actor["user"]
            elif topic == RunAggregate.Created.TOPIC:
                name = event.experiment_name
                entry = experiments.setdefault(name, {"count": 0})
                entry.setdefault("created_at", event.timestamp)
                entry.setdefault("created_by", event.actor["user"])
                entry["count"] += 1
                counts[event.run_id] = entry["count"]
                self.order[event.run_id] = position
            elif topic == MetricsLogged.TOPIC:
                metric_events.append(event)
        for run_id in self.order:
            run = app.get_run(run_id)  # the domain's own fold of the run's events
            self.runs[run_id] = RunRow(
                run_id=run.run_id, experiment_name=run.experiment_name,
                parent_run_id=run.parent_run_id, root_run_id=run.root_run_id,
                status=run.status.value, run_type=run.run_type, target=run.target,
                name=run.name, display_name=run.display_name, description=run.description,
                number=counts[run_id], created_at=run.created_at, started_at=run.started_at,
                ended_at=run.ended_at, created_by=run.created_by["user"],
                error_code=run.error["code"] if run.error else None,
                error_message=run.error["message"] if run.error else None,
                properties=dict(run.properties), tags=dict(run.tags), archived=run.archived)
        declared = {event.name for _p, topic, event in log
                    if topic == ExperimentAggregate.Created.TOPIC}
        states = {name: app.get_experiment(name) for name in declared}  # the domain's fold
        self.experiment_rows = {
            name: ExperimentRow(name=name, created_at=e["created_at"], run_count=e["count"],
                                created_by=e["created_by"],
                                archived_time=(states[name].archived_time
                                               if name in states else None),
                                tags=dict(states[name].tags) if name in states else {})
            for name, e in experiments.items()}
        self.metrics = _fold_metrics(metric_events)

    # -------------------------------------------------------------- queries
    def newest_first(self, runs: Iterable[RunRow]) -> list[RunRow]:
        return sorted(runs, key=lambda r: self.order[r.run_id], reverse=True)

    def descendant_ids(self, run_id: str) -> list[str]:
        found: list[RunRow] = []
        frontier = [run_id]
        while frontier:
            children = [r for r in self.runs.values() if r.parent_run_id in frontier]
            found += children
            frontier = [r.run_id for r in children]
        return [r.run_id for r in self.newest_first(found)]

    def find_runs(self, *, experiment_name: str | None = None, parent_run_id: str | None = None,
                  recursive: bool = False, run_type: str | None = None, tags: Any = None,
                  properties: Any = None, status: str | None = None,
                  include_children: bool = False, limit: int | None = None,
                  include_archived: bool = False) -> list[RunRow]:
        runs = list(self.runs.values())
        if not include_archived:
            runs = [r for r in runs if not r.archived]
        if parent_run_id is not None:
            if recursive:
                wanted = set(self.descendant_ids(parent_run_id))
                runs = [r for r in runs if r.run_id in wanted]
            else:
                runs = [r for r in runs if r.parent_run_id == parent_run_id]
        elif experiment_name is not None and not include_children:
            runs = [r for r in runs if r.parent_run_id is None]
        if experiment_name is not None:
            runs = [r for r in runs if r.experiment_name == experiment_name]
        if run_type is not None:
            runs = [r for r in runs if r.run_type == run_type]
        if status is not None:
            runs = [r for r in runs if r.status == status]
        runs = [r for r in runs if _matches(r.tags, tags) and _matches(r.properties, properties)]
        result = self.newest_first(runs)
        return result if limit is None else result[:max(limit, 0)]

    def experiments(self) -> list[ExperimentRow]:
        return [self.experiment_rows[name] for name in sorted(self.experiment_rows)]

    def metric_summaries(self, run_id: str) -> list[MetricSummaryRow]:
        return sorted((m for m in self.metrics.values() if m.run_id == run_id),
                      key=lambda m: m.name)


def _matches(pairs: dict[str, str | None], query: Any) -> bool:
    if query is None:
        return True
    if isinstance(query, str):
        return query in pairs
    return all(key in pairs and pairs[key] == (None if value is None else str(value))
               for key, value in query.items())


def _fold_metrics(events: list[MetricsLogged]) -> dict[tuple[str, str], MetricSummaryRow]:
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        for name, kind, _description, values, steps, _times in event.series:
            s = state.setdefault((event.run_id, name), {
                "kind": kind, "count": 0, "last": None, "min": None, "max": None, "step": None})
            s["kind"] = kind
            s["count"] += len(values)
            if values:
                s["last"] = values[-1]
            for value in values:
                if type(value) in (int, float) and not (isinstance(value, float)
                                                        and math.isnan(value)):
                    number = float(value)
                    s["min"] = number if s["min"] is None else min(s["min"], number)
                    s["max"] = number if s["max"] is None else max(s["max"], number)
            for step in steps:
                if step is not None:
                    s["step"] = step
    return {key: MetricSummaryRow(run_id=key[0], name=key[1], kind=s["kind"], count=s["count"],
                                  last=s["last"], minimum=s["min"], maximum=s["max"],
                                  last_step=s["step"])
            for key, s in state.items()}
