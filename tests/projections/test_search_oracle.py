"""``find_runs(filter=, order_by=, limit=)`` against a brute-force evaluation of what was logged.

Random runs (properties, tags, metrics, statuses, children, archived runs) are written through the
application layer; random filters and orderings are drawn as structures, rendered to the search
grammar's text for the index, and evaluated in Python over the oracle's fold of the whole log
(``projection_oracle.Oracle``) with this file's own reading of the semantics
(``ledger/domain/search.py``'s docstring). Pages are made tiny so that every query crosses page
boundaries. Runs on memory, SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from typing import Any

import pytest
from projection_oracle import Driver, Oracle

import projections.search as search_module
from ledger.domain.errors import ValidationError
from ledger.domain.search import SearchSyntaxError
from projections.index import RunIndex
from projections.projection import to_micros
from projections.read_models import RunRow

EXPERIMENT = "exp"
PROPERTY_VALUES = ["0.01", "0.1", "1e-3", "A%b", "a_b", "Été", "x*y?[z"]
TAG_VALUES = ["fantastic run", "Fantastic Run", "meh", "FANTASTIC", None]
LIKE_PATTERNS = ["fan%", "%run", "%RUN%", "0.0_", "A\\%b", "a\\_b", "%", "_", "x*y?[z", "é%",
                 "É%", "%a%", "0.1"]
STATUSES = ["Running", "Completed", "Failed"]
METRICS = ["loss", "acc"]
CASES = 400


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_module, "FIRST_PAGE", 3)
    monkeypatch.setattr(search_module, "QUERY_PAGE", 4)


def populate(driver: Driver, rng: random.Random) -> list[str]:
    """Write random runs; return the ids of the top-level runs of EXPERIMENT."""
    driver.experiment(EXPERIMENT)
    driver.experiment("other")
    tops: list[str] = []
    for number in range(36):
        experiment = EXPERIMENT if number % 6 else "other"
        parent = rng.choice(tops) if tops and rng.random() < 0.2 else None
        run_id = driver.create(experiment if parent is None else EXPERIMENT, parent,
                               display_name=rng.choice([None, "alpha", "Beta", "gamma run"]))
        if parent is None and experiment == EXPERIMENT:
            tops.append(run_id)
        status = rng.choice([*STATUSES, "NotStarted"])
        if status != "NotStarted":
            driver.start(run_id)
        properties = {}
        for key in ("lr", "model"):
            if rng.random() < 0.75:
                properties[key] = rng.choice(PROPERTY_VALUES)
        if properties:
            driver.props(run_id, properties)
        tags = {}
        for key in ("quality", "team"):
            if rng.random() < 0.7:
                tags[key] = rng.choice(TAG_VALUES)
        if tags:
            driver.tag(run_id, tags)
        if rng.random() < 0.15 and tags:
            driver.untag(run_id, [next(iter(tags))])
        for name in METRICS:
            if rng.random() < 0.8:
                for _batch in range(rng.randint(1, 2)):
                    values: list[Any] = [round(rng.uniform(-1, 2), rng.choice([1, 3]))
                                         for _ in range(rng.randint(1, 3))]
                    if rng.random() < 0.1:
                        values.append(rng.choice([7, "not a number", True]))
                    driver.log(run_id, name, values)
        if status == "Completed":
            driver.complete(run_id)
        elif status == "Failed":
            driver.fail(run_id)
        if rng.random() < 0.1:
            driver.archive(run_id)
    return tops


# ---------------------------------------------------------------------- the oracle's values
def numeric_last(value: Any) -> float | None:
    if type(value) in (int, float) and math.isfinite(value):
        return float(value)
    return None


class Facts:
    """What the oracle knows of each run: its row and metric summaries."""

    def __init__(self, oracle: Oracle) -> None:
        self.oracle = oracle

    def value(self, run: RunRow, key: tuple[str, str, str]) -> Any:
        entity, name, field = key
        if entity == "metrics":
            summary = self.oracle.metrics.get((run.run_id, name))
            if summary is None:
                return None
            if field == "last":
                return numeric_last(summary.last)
            return summary.minimum if field == "min" else summary.maximum
        if entity == "params":
            return run.properties.get(name)
        if entity == "tags":
            return run.tags.get(name)
        column = {"status": run.status, "run_id": run.run_id, "run_name": run.display_name,
                  "user_id": run.created_by, "number": run.number,
                  "start_time": run.started_at, "end_time": run.ended_at}[name]
        if name in ("start_time", "end_time") and column is not None:
            return to_micros(column)
        return column


def like(pattern: str, value: str, fold: bool) -> bool:
    regex = ""
    escaped = False
    for char in pattern:
        if escaped:
            regex += re.escape(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            regex += ".*"
        elif char == "_":
            regex += "."
        else:
            regex += re.escape(char)
    if fold:  # ASCII letters only
        table = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
        value, regex = value.translate(table), regex.translate(table)
    return re.fullmatch(regex, value, re.DOTALL) is not None


OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "LIKE": lambda a, b: like(b, a, False), "ILIKE": lambda a, b: like(b, a, True),
    "IN": lambda a, b: a in b, "NOT IN": lambda a, b: a not in b,
}


# ---------------------------------------------------------------------- random queries
Comparison = tuple[tuple[str, str, str], str, Any, str]  # key, op, oracle value, value text


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def key_text(key: tuple[str, str, str], rng: random.Random) -> str:
    entity, name, field = key
    if entity == "params":
        entity = rng.choice(["params", "properties", "param"])
    if entity == "attributes":
        entity = rng.choice(["attributes", "attribute", "attr", "run"])
    if entity == "metrics":
        field_text = {"last": rng.choice(["", "last."]), "min": "min.", "max": "max."}[field]
        name_text = rng.choice([name, f"`{name}`"])
        return f"{entity}.{field_text}{name_text}"
    return f"{entity}.{name}"


def random_comparison(rng: random.Random, runs: list[RunRow], facts: Facts) -> Comparison:
    kind = rng.choice(["metric", "metric", "param", "tag", "status", "run_id", "run_name",
                       "number", "time", "user"])
    if kind == "metric":
        key = ("metrics", rng.choice(METRICS), rng.choice(["last", "last", "min", "max"]))
        op = rng.choice(["=", "!=", "<", "<=", ">", ">="])
        seen = [v for r in runs if (v := facts.value(r, key)) is not None]
        number = rng.choice(seen) if seen and rng.random() < 0.6 else round(rng.uniform(-1, 2), 1)
        return key, op, number, repr(number)
    if kind in ("param", "tag"):
        entity, names, values = (("params", ["lr", "model"], PROPERTY_VALUES) if kind == "param"
                                 else ("tags", ["quality", "team"], TAG_VALUES[:-1]))
        key = (entity, rng.choice(names), "last")
        op = rng.choice(["=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"])
        if op in ("IN", "NOT IN"):
            chosen = tuple(rng.sample([v for v in values if v is not None], rng.randint(1, 3)))
            return key, op, chosen, "(" + ", ".join(quote(v) for v in chosen) + ")"
        value = rng.choice(LIKE_PATTERNS) if op in ("LIKE", "ILIKE") else rng.choice(values)
        assert value is not None
        return key, op, value, quote(value)
    if kind == "status":
        op = rng.choice(["=", "!=", "IN", "NOT IN"])
        if op in ("IN", "NOT IN"):
            chosen = tuple(rng.sample(STATUSES, 2))
            return (("attributes", "status", "last"), op, chosen,
                    "(" + ", ".join(quote(s) for s in chosen) + ")")
        status = rng.choice([*STATUSES, "NotStarted"])
        return (("attributes", "status", "last"), op, status,
                quote(rng.choice([status, status.lower(), status.upper()])))
    if kind == "run_id":
        chosen = tuple(r.run_id for r in rng.sample(runs, min(3, len(runs))))
        op = rng.choice(["IN", "NOT IN"])
        return (("attributes", "run_id", "last"), op, chosen,
                "(" + ", ".join(quote(v) for v in chosen) + ")")
    if kind == "run_name":
        op = rng.choice(["=", "!=", "LIKE", "ILIKE"])
        value = rng.choice(["alpha", "Beta", "%a%", "%A", "gamma%", "_eta"])
        return ("attributes", "run_name", "last"), op, value, quote(value)
    if kind == "user":
        value = runs[0].created_by
        return ("attributes", "user_id", "last"), rng.choice(["=", "!="]), value, quote(value)
    if kind == "number":
        number = rng.randint(1, 30)
        return ("attributes", "number", "last"), rng.choice(["<", ">=", "="]), number, str(number)
    name = rng.choice(["start_time", "end_time"])
    moments = [m for r in runs if (m := facts.value(r, ("attributes", name, "last"))) is not None]
    millis = rng.choice(moments) // 1000 if moments else 0
    op = rng.choice(["<", "<=", ">", ">="])
    return ("attributes", name, "last"), op, millis * 1000, str(millis)


ORDER_KEYS = [("metrics", "loss", "last"), ("metrics", "acc", "last"), ("metrics", "loss", "min"),
              ("metrics", "acc", "max"), ("params", "lr", "last"), ("tags", "quality", "last"),
              ("attributes", "status", "last"), ("attributes", "start_time", "last"),
              ("attributes", "end_time", "last"), ("attributes", "number", "last"),
              ("attributes", "run_name", "last")]


def expected(facts: Facts, runs: list[RunRow], comparisons: list[Comparison],
             order: list[tuple[tuple[str, str, str], bool]], limit: int | None) -> list[str]:
    chosen = []
    for run in runs:
        ok = True
        for key, op, value, _text in comparisons:
            have = facts.value(run, key)
            if have is None or not OPS[op](have, value):
                ok = False
                break
        if ok:
            chosen.append(run)
    chosen = facts.oracle.newest_first(chosen)
    for key, descending in reversed(order):  # stable sorts, least significant key first
        present = [r for r in chosen if facts.value(r, key) is not None]
        missing = [r for r in chosen if facts.value(r, key) is None]
        chosen = sorted(present, key=lambda r, k=key: facts.value(r, k),
                        reverse=descending) + missing
    ids = [r.run_id for r in chosen]
    return ids if limit is None else ids[:limit]


@pytest.mark.usefixtures("small_pages")
def test_filters_and_orderings_match_the_oracle(driver: Driver, index: RunIndex) -> None:
    rng = random.Random(20261201)
    tops = populate(driver, rng)
    index.catch_up()
    facts = Facts(Oracle(driver.app))
    everything = list(facts.oracle.runs.values())
    checked = 0
    nonempty = 0
    kwargs: dict[str, Any]
    for case in range(CASES):
        scope = rng.choice(["top", "top", "children", "parent", "descendants"])
        include_archived = rng.random() < 0.3
        if scope == "descendants":  # filters only: an ordering of descendants is refused
            parent = rng.choice(tops)
            wanted = set(facts.oracle.descendant_ids(parent))
            runs = [r for r in everything if r.run_id in wanted]
            kwargs = {"parent_run_id": parent, "recursive": True}
        elif scope == "parent":
            parent = rng.choice(tops)
            runs = [r for r in everything if r.parent_run_id == parent]
            kwargs = {"parent_run_id": parent}
        else:
            runs = [r for r in everything if r.experiment_name == EXPERIMENT
                    and (scope == "children" or r.parent_run_id is None)]
            kwargs = {"experiment_name": EXPERIMENT, "include_children": scope == "children"}
        if not include_archived:
            runs = [r for r in runs if not r.archived]
        comparisons = [random_comparison(rng, runs or everything, facts)
                       for _ in range(rng.choice([0, 1, 1, 2, 3]))]
        order = [(rng.choice(ORDER_KEYS), rng.random() < 0.5)
                 for _ in range(rng.choice([0, 1, 1, 2]) if scope != "descendants" else 0)]
        limit = rng.choice([None, None, 1, 2, 5, 9])
        and_word = rng.choice([" and ", " AND ", "  And "])
        filter_text = and_word.join(f"{key_text(k, rng)} {op} {text}"
                                    for k, op, _v, text in comparisons) or None
        order_text = [key_text(k, rng) + rng.choice([" DESC", " desc"] if d
                                                     else ["", " ASC", " asc"])
                      for k, d in order] or None
        want = expected(facts, runs, comparisons, order, limit)
        got = [r.run_id for r in index.find_runs(filter=filter_text, order_by=order_text,
                                                 limit=limit, include_archived=include_archived,
                                                 **kwargs)]
        assert got == want, (case, filter_text, order_text, limit, kwargs)
        checked += 1
        nonempty += bool(want)
    # The draw must exercise real selections, not empty answers only.
    assert checked == CASES and nonempty > CASES // 3


def test_metric_order_reads_runs_without_a_value_last(driver: Driver, index: RunIndex) -> None:
    driver.experiment(EXPERIMENT)
    with_value = [driver.create(EXPERIMENT) for _ in range(3)]
    without = [driver.create(EXPERIMENT) for _ in range(2)]
    text_last = driver.create(EXPERIMENT)
    for run_id, loss in zip(with_value, [0.3, 0.1, 0.2], strict=True):
        driver.log(run_id, "loss", [loss])
    driver.log(text_last, "loss", [0.05, "diverged"])  # the last value is not a number
    index.catch_up()
    ascending = [r.run_id for r in index.find_runs(experiment_name=EXPERIMENT,
                                                   order_by=["metrics.loss"])]
    descending = [r.run_id for r in index.find_runs(experiment_name=EXPERIMENT,
                                                    order_by=["metrics.loss DESC"])]
    newest_without = [text_last, *reversed(without)]
    assert ascending == [with_value[1], with_value[2], with_value[0], *newest_without]
    assert descending == [with_value[0], with_value[2], with_value[1], *newest_without]
    by_min = [r.run_id for r in index.find_runs(experiment_name=EXPERIMENT,
                                                order_by=["metrics.min.loss"], limit=1)]
    assert by_min == [text_last]  # its minimum, 0.05, is a number


@pytest.mark.parametrize(("text", "token", "position"), [
    ("metrics.loss < 'low'", "'low'", 15),
    ("params.lr = 0.01", "0.01", 12),
    ("metrics.loss < 0.2 or params.lr = '1'", "or", 19),
    ("loss < 0.2", "loss", 0),
    ("metrics.loss LIKE 'a%'", "LIKE", 13),
    ("attributes.status = 'FINISHED'", "'FINISHED'", 20),
    ("attributes.colour = 'red'", "attributes.colour", 0),
    ("tags.quality = 'fantastic run' and", "", 34),
    ("tags.x IN 'a'", "'a'", 10),
])
def test_a_bad_filter_names_its_token(index: RunIndex, text: str, token: str,
                                      position: int) -> None:
    with pytest.raises(SearchSyntaxError) as raised:
        index.find_runs(experiment_name=EXPERIMENT, filter=text)
    assert (raised.value.token, raised.value.position) == (token, position)
    assert f"position {position}" in str(raised.value)
    assert (repr(token) if token else "the end") in str(raised.value)


def test_a_bad_ordering_names_its_token(index: RunIndex) -> None:
    with pytest.raises(SearchSyntaxError, match=r"order_by\[1\] at position 13 \('UP'\)"):
        index.find_runs(experiment_name=EXPERIMENT,
                        order_by=["metrics.loss", "metrics.loss UP"])


def test_an_ordering_of_every_descendant_is_refused(driver: Driver, index: RunIndex) -> None:
    driver.experiment(EXPERIMENT)
    parent = driver.create(EXPERIMENT)
    index.catch_up()
    with pytest.raises(ValidationError, match="recursive"):
        index.find_runs(parent_run_id=parent, recursive=True, order_by=["metrics.loss"])
    # Filters are fine there: the conditions are the same on every path.
    assert list(index.find_runs(parent_run_id=parent, recursive=True,
                                filter="metrics.loss < 1")) == []
