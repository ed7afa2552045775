"""Fuzzing every SDK call that stores something (issue 15, item 10).

Hypothesis draws calls (``log``, ``log_list``, ``log_row``, ``log_table``, ``tag``, ``set_tags``,
``remove_tags``, ``add_properties``, ``display_name``/``description``, ``child_run``,
``create_children``, ``fail``) with arguments from every corner: any unicode (surrogates
included), NUL, huge strings, huge integers, NaN and infinities, numpy scalars, lists and dicts
where scalars belong, unhashable keys, objects whose ``__str__``/``__repr__`` raise. Each call
either is accepted, and then what it stored reads back identically through a new application on
the same store and from a new process, or is refused with a ``LedgerError`` and writes nothing
(the ledger's newest position is unchanged). After every example the ledger still answers
queries, on SQLite and PostgreSQL.

The default profile is quick (a few dozen examples per store); ``RUNLEDGER_FUZZ_LONG=1`` runs the
long profile (marked ``slow``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_contract import event_count, open_reader, stored_state

from ledger import Experiment, LedgerError, Run, Workspace

REPO_ROOT = Path(__file__).resolve().parents[2]
BACKENDS = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])


class Broken:
    """An object whose str() and repr() raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


SPECIAL_TEXT = st.sampled_from([
    "", " ", "a\x00b", "\x00", "\ud800", "x\udfffy", "k" * 257, "v" * 8_001, "x" * 2_000_000,
    "ключ", "🙂" * 10, "\u202e", "tab\tnew\nline", "'; DROP TABLE runs; --",
])
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),  # surrogates too
    SPECIAL_TEXT,
)
NUMPY = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.floats(width=32).map(np.float32),
    st.floats().map(np.float64),
    st.booleans().map(np.bool_),
)
SCALAR = st.one_of(
    st.integers(-(2**70), 2**70), st.floats(), st.booleans(), TEXT, NUMPY,
)
ANYTHING = st.one_of(
    SCALAR, st.none(), st.just(Broken()), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just(object()),
    st.just(range(3)), st.just(iter([1, 2])),
)
KEY = st.one_of(TEXT, st.integers(), st.none(), st.just(["unhashable"]), st.just(Broken()))


def _calls() -> st.SearchStrategy[tuple[str, tuple[Any, ...]]]:
    return st.one_of(
        st.tuples(st.just("log"), st.tuples(KEY, ANYTHING, st.one_of(st.just(""), TEXT))),
        st.tuples(st.just("log_list"), st.tuples(KEY, st.one_of(
            st.lists(SCALAR, max_size=4), ANYTHING))),
        st.tuples(st.just("log_row"), st.tuples(KEY, st.dictionaries(
            st.text(min_size=1, max_size=4), ANYTHING, max_size=3))),
        st.tuples(st.just("log_table"), st.tuples(KEY, st.one_of(
            st.dictionaries(TEXT, st.lists(SCALAR, min_size=1, max_size=1), max_size=2),
            ANYTHING))),
        st.tuples(st.just("tag"), st.tuples(KEY, ANYTHING)),
        st.tuples(st.just("set_tags"), st.tuples(st.one_of(
            st.dictionaries(TEXT, ANYTHING, max_size=3), ANYTHING))),
        st.tuples(st.just("remove_tags"), st.tuples(st.one_of(st.lists(KEY, max_size=2), KEY))),
        st.tuples(st.just("add_properties"), st.tuples(st.one_of(
            st.dictionaries(TEXT, ANYTHING, max_size=3), ANYTHING))),
        st.tuples(st.just("display_name"), st.tuples(st.one_of(TEXT, ANYTHING))),
        st.tuples(st.just("description"), st.tuples(st.one_of(TEXT, ANYTHING))),
        st.tuples(st.just("child_run"), st.tuples(st.one_of(st.none(), TEXT, ANYTHING))),
        st.tuples(st.just("create_children"), st.tuples(TEXT, st.lists(ANYTHING, max_size=3))),
        st.tuples(st.just("fail"), st.tuples(st.one_of(TEXT, ANYTHING), st.one_of(
            st.none(), TEXT, ANYTHING))),
    )


def _apply(run: Run, name: str, args: tuple[Any, ...]) -> None:
    calls: dict[str, Callable[..., Any]] = {
        "log": lambda n, v, d: run.log(n, v, description=d),
        "log_list": lambda n, v: run.log_list(n, v),
        "log_row": lambda n, row: run.log_row(n, **row),
        "log_table": lambda n, table: run.log_table(n, table),
        "tag": lambda k, v: run.tag(k, v),
        "set_tags": lambda tags: run.set_tags(tags),
        "remove_tags": lambda keys: run.remove_tags(keys),
        "add_properties": lambda props: run.add_properties(props),
        "display_name": lambda v: setattr(run, "display_name", v),
        "description": lambda v: setattr(run, "description", v),
        "child_run": lambda v: run.child_run(name=v).complete(),
        "create_children": lambda k, values: run.create_children(tag_key=k,
                                                                 tag_values=values),
        "fail": lambda message, code: run.fail(message, error_code=code),
    }
    calls[name](*args)


def _shown(args: tuple[Any, ...]) -> str:
    parts = []
    for arg in args:
        try:
            parts.append(ascii(arg)[:80])
        except Exception:
            parts.append(f"<{type(arg).__name__}>")
    return ", ".join(parts)


def _same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (a stored NaN reads back as NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _plain(value: Any) -> Any:
    return value.item() if type(value).__module__ == "numpy" else value


class _Model:
    """What the accepted calls must have stored: tags, properties, values logged by log()."""

    def __init__(self) -> None:
        self.tags: dict[str, str | None] = {}
        self.properties: dict[str, str | None] = {}
        self.logged: dict[str, list[Any]] = {}
        self.other_metrics: set[Any] = set()

    def accept(self, name: str, args: tuple[Any, ...]) -> None:
        def stored(value: Any) -> str | None:
            return None if value is None else str(value)

        if name == "tag":
            self.tags[args[0]] = stored(args[1])
        elif name == "set_tags":
            self.tags.update({k: stored(v) for k, v in args[0].items()})
        elif name == "remove_tags":
            for key in [args[0]] if isinstance(args[0], str) else args[0]:
                self.tags.pop(key, None)
        elif name == "add_properties":
            for key, value in args[0].items():
                self.properties.setdefault(key, stored(value))
        elif name == "log":
            self.logged.setdefault(args[0], []).append(_plain(args[1]))
        elif name.startswith("log_"):
            self.other_metrics.add(args[0])

    def check(self, state: dict[str, Any]) -> None:
        assert state["tags"] == self.tags
        assert state["properties"] == self.properties
        for metric, values in self.logged.items():
            if metric in self.other_metrics:
                continue
            got = state["metrics"][metric]
            assert _same(got if len(values) > 1 else [got], values), metric


def _fuzz(ws: Workspace, exp: Experiment, calls: list[tuple[str, tuple[Any, ...]]],
          runs: list[str]) -> None:
    run = exp.start_logging()
    runs.append(run.id)
    model = _Model()
    for name, args in calls:
        before = event_count(ws)
        try:
            _apply(run, name, args)
        except LedgerError:
            assert event_count(ws) == before, f"refused {name} wrote something"
        except Exception as error:  # an untyped error is a bug
            raise AssertionError(f"{name}({_shown(args)}) raised untyped {error!r}") from error
        else:
            model.accept(name, args)
    if run.get_status() == "Running":
        run.complete()
    live = stored_state(ws._session.app, run.id)
    model.check(live)
    reader = open_reader(ws)
    try:
        assert _same(stored_state(reader, run.id), live)
        assert run.id in {r.id for r in Run.list(exp, include_children=True)}
    finally:
        reader.close()


def _check_from_a_new_process(ws: Workspace, runs: list[str]) -> None:
    script = (
        "import sys\n"
        "from ledger.application import LedgerApplication\n"
        "from ledger.persistence.store import parse_store_url\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from ledger_contract import stored_state\n"
        "app = LedgerApplication(parse_store_url(sys.argv[1]))\n"
        "for run_id in sys.argv[3:]:\n"
        "    print(ascii(stored_state(app, run_id)))\n"
        "app.close()\n")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run(
        [sys.executable, "-c", script, ws._store.url, str(Path(__file__).parent), *runs],
        env=env, capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()
    app = ws._session.app
    assert out == [ascii(stored_state(app, run_id)) for run_id in runs]


QUICK = settings(max_examples=15, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow, HealthCheck.data_too_large])
LONG = settings(QUICK, max_examples=300, derandomize=False)


@BACKENDS
def test_every_call_is_stored_exactly_or_refused_and_writes_nothing(
        ws: Workspace, exp: Experiment) -> None:
    runs: list[str] = []

    @QUICK
    @given(st.lists(_calls(), min_size=1, max_size=6))
    def check(calls: list[tuple[str, tuple[Any, ...]]]) -> None:
        _fuzz(ws, exp, calls, runs)

    check()
    _check_from_a_new_process(ws, runs)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RUNLEDGER_FUZZ_LONG") != "1",
                    reason="the long fuzzing profile runs with RUNLEDGER_FUZZ_LONG=1")
@BACKENDS
def test_every_call_long_profile(ws: Workspace, exp: Experiment) -> None:
    runs: list[str] = []

    @LONG
    @given(st.lists(_calls(), min_size=1, max_size=12))
    def check(calls: list[tuple[str, tuple[Any, ...]]]) -> None:
        _fuzz(ws, exp, calls, runs)

    check()
    _check_from_a_new_process(ws, runs)
