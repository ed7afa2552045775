"""The random histories the model-based tests write: one generator of commands, shared by the
projections' oracle test (``test_projection_model``: every index query equals a fold of the log)
and the timeline's (``tests/audit/test_timeline_oracle``: every view and list query as of a
moment equals a cut and fold of the log), so both are checked over the same kinds of history.

A scenario creates runs, then applies random commands through the application layer (tags set
and removed, properties, corrections, every status transition, archive and restore, display
names, descriptions, metrics of several kinds, batches of runs saved in one transaction,
experiment tags and archiving, and ``catch_up`` points where the index catches up mid-way).
Commands the domain refuses (an invalid transition, an immutable property) write nothing.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from hypothesis import strategies as st

from ledger.domain.errors import LedgerError

if TYPE_CHECKING:
    from tests.projections.projection_oracle import Driver

EXPERIMENTS = ["exp-a", "exp-b"]
TAG_KEYS = ["a", "b", "c"]
TAG_VALUES: list[Any] = ["x", "y", None, 1]
PROPERTY_KEYS = ["p", "q"]
PROPERTY_VALUES: list[Any] = ["1", "2", None]
STATUS_COMMANDS = ["start", "complete", "fail", "request_cancel", "cancel", "queue", "finalize"]
# RUNLEDGER_MODEL_EXAMPLES=500 (say) explores further, with random rather than fixed examples.
EXTRA = int(os.environ.get("RUNLEDGER_MODEL_EXAMPLES", "0"))

run_choice = st.integers(0, 50)
metric_values = st.lists(st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.integers(-5, 5),
    st.booleans(), st.text(max_size=2)), max_size=4)
command = st.one_of(
    st.tuples(st.just("create"), st.integers(0, 1), st.integers(0, 60),
              st.sampled_from(["train", "sweep"])),
    st.tuples(st.just("batch"), st.integers(1, 4), st.integers(0, 60)),
    st.tuples(st.just("status"), run_choice, st.sampled_from(STATUS_COMMANDS)),
    st.tuples(st.just("tags"), run_choice,
              st.dictionaries(st.sampled_from(TAG_KEYS), st.sampled_from(TAG_VALUES),
                              max_size=2)),
    st.tuples(st.just("untag"), run_choice, st.lists(st.sampled_from(TAG_KEYS), max_size=2)),
    st.tuples(st.just("props"), run_choice,
              st.dictionaries(st.sampled_from(PROPERTY_KEYS), st.sampled_from(PROPERTY_VALUES),
                              max_size=2)),
    st.tuples(st.just("correct"), run_choice, st.sampled_from(PROPERTY_KEYS),
              st.sampled_from(PROPERTY_VALUES)),
    st.tuples(st.just("archive"), run_choice, st.booleans()),
    st.tuples(st.just("display"), run_choice, st.sampled_from(["shown", None])),
    st.tuples(st.just("describe"), run_choice, st.sampled_from(["text", None])),
    st.tuples(st.just("metrics"), run_choice, st.sampled_from(["m1", "m2"]),
              st.sampled_from(["scalar", "list"]), metric_values,
              st.lists(st.one_of(st.none(), st.integers(0, 9)), min_size=4, max_size=4)),
    st.tuples(st.just("catch_up")),
    st.tuples(st.just("experiment"), st.integers(0, 1),
              st.sampled_from(["archive", "reactivate", "tag", "untag"]),
              st.sampled_from(TAG_KEYS), st.sampled_from(TAG_VALUES)),
)
creation = st.one_of(
    st.tuples(st.just("create"), st.integers(0, 1), st.integers(0, 60),
              st.sampled_from(["train", "sweep"])),
    st.tuples(st.just("batch"), st.integers(1, 4), st.integers(0, 60)))
# Every example starts by creating runs, so that the commands after it have runs to act on.
scenario = st.tuples(st.lists(creation, min_size=2, max_size=6),
                     st.lists(command, min_size=5, max_size=40)).map(lambda t: t[0] + t[1])


def run_command(driver: Driver, runs: list[str], cmd: tuple[Any, ...]) -> None:
    kind = cmd[0]
    actor = driver.actor
    if kind == "create":
        parent = runs[cmd[2] % len(runs)] if runs and cmd[2] < 40 else None
        runs.append(driver.create(EXPERIMENTS[cmd[1]], parent, run_type=cmd[3]))
        return
    if kind == "batch":  # several new runs in one save (group commit), children too
        parent = runs[cmd[2] % len(runs)] if runs and cmd[2] < 30 else None
        new = [driver.new_run(EXPERIMENTS[i % 2], parent) for i in range(cmd[1])]
        for i, run in enumerate(new):
            run.set_tags({"a": str(i)}, actor)
        driver.save(*new)
        runs += [r.run_id for r in new]
        return
    if kind == "experiment":  # tags and archiving of an experiment (its own stream)
        name, action, key, value = EXPERIMENTS[cmd[1]], cmd[2], cmd[3], cmd[4]
        commands: dict[str, Any] = {
            "archive": lambda e: e.archive(actor),
            "reactivate": lambda e: e.reactivate(actor),
            "tag": lambda e: e.set_tags({key: value}, actor),
            "untag": lambda e: e.remove_tags([key], actor),
        }
        driver.experiment_do(name, commands[action])
        return
    if not runs:
        return
    run_id = runs[cmd[1] % len(runs)]
    actions: dict[str, Any] = {
        "start": lambda r: r.start(actor),
        "complete": lambda r: r.complete(actor),
        "fail": lambda r: r.fail("Code", "message", "ValueError", actor),
        "request_cancel": lambda r: r.request_cancel(actor),
        "cancel": lambda r: r.cancel(actor),
        "queue": lambda r: r.set_status("Queued", actor),
        "finalize": lambda r: r.set_status("Finalizing", actor),
    }
    try:
        if kind == "status":
            driver.do(run_id, actions[cmd[2]])
        elif kind == "tags":
            driver.tag(run_id, cmd[2])
        elif kind == "untag":
            driver.untag(run_id, cmd[2])
        elif kind == "props":
            driver.props(run_id, cmd[2])
        elif kind == "correct":
            driver.correct(run_id, cmd[2], cmd[3])
        elif kind == "archive":
            if cmd[2]:
                driver.archive(run_id)
            else:
                driver.restore(run_id)
        elif kind == "display":
            driver.do(run_id, lambda r: r.set_display_name(cmd[2], actor))
        elif kind == "describe":
            driver.do(run_id, lambda r: r.set_description(cmd[2], actor))
        elif kind == "metrics":
            values = cmd[4]
            driver.log(run_id, cmd[2], values, kind=cmd[3], steps=cmd[5][:len(values)])
    except LedgerError:  # an invalid transition, an immutable property: nothing was written
        pass


def fresh_store(backend: str, tmp_path: Path, fixture_url: str) -> tuple[str, str | None]:
    """A new store for one example (and its PostgreSQL schema, to drop afterwards)."""
    if backend == "memory":
        return "memory://", None
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / uuid.uuid4().hex / 'ledger.db'}", None
    parts = urlsplit(fixture_url)
    schema = "t_" + uuid.uuid4().hex[:16]
    query = parse_qs(parts.query)
    query["schema"] = [schema]
    url = parts._replace(query="&".join(f"{k}={v[-1]}" for k, v in query.items())).geturl()
    return url, schema


def drop_schema(fixture_url: str, schema: str) -> None:
    import psycopg

    base = urlsplit(fixture_url)._replace(query="").geturl()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
