"""Export and import (``ledger.transfer``): lossless, idempotent, streamed, across backends.

The source is the backend under test (``store_url``); the target is each of SQLite and
PostgreSQL, so SQLite -> PostgreSQL and PostgreSQL -> SQLite are both covered. "The same ledger"
is checked twice: the raw log (every stream's events, byte for byte) and every query of the SDK.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from ledger import Experiment, Workspace
from ledger.application import LedgerApplication
from ledger.transfer import TransferError, export_ledger, import_ledger


def populate(ws: Workspace, prefix: str = "") -> None:
    """Runs of every kind: metrics of every shape, children, failed and canceled runs..."""
    exp = Experiment(ws, f"{prefix}transfer-a")
    other = Experiment(ws, f"{prefix}transfer-b")
    with exp.start_logging(display_name="first", description="héllo ✓") as run:
        run.add_properties({"author": "azureml-user", "lr": 0.1})
        run.tag("quality", "fantastic run")
        run.tag("flag")
        for step in range(30):
            run.log("loss", 1.0 / (step + 1), step=step)
        run.log("nan", math.nan)
        run.log("inf", -math.inf)
        run.log("big", 2**62)
        run.log("text", "naïve ünïcode")
        run.log("ok", True)
        run.log_list("list", [1, 2.5, 3])
        run.log_row("row", x=1, y=0.5)
        run.log_table("table", {"a": [1, 2], "b": ["x", "y"]})
        with run.child_run(name="child") as child:
            child.log("loss", 0.5)
            child.tag("kind", "child")
        run.create_children(count=2)
        run.remove_tags(["flag"])
    failing = exp.start_logging()
    failing.fail(ValueError("boom"))
    canceled = other.start_logging(tags={"t": "1"})
    canceled.cancel()
    running = other.start_logging()
    running.log("partial", 1.0)
    running.flush()
    ws.flush()


def raw_log(app: LedgerApplication) -> list[tuple[Any, int, str, bytes]]:
    """Every stored event, in log order, without notification ids."""
    events = []
    position = 0
    while True:
        page = app.read_log(position, 500)
        if not page:
            return events
        events.extend((n.originator_id, n.originator_version, n.topic, bytes(n.state))
                      for n in page)
        position = page[-1].id


def answers(ws: Workspace) -> dict[str, Any]:
    """What the SDK answers about every experiment and run of a ledger."""
    result: dict[str, Any] = {"experiments": sorted(ws.experiments)}
    for name in result["experiments"]:
        exp = Experiment(ws, name)
        runs = list(exp.get_runs(include_children=True))
        result[name] = {
            "ids": [r.id for r in runs],
            "top": [r.id for r in exp.get_runs()],
            "by_property": [r.id for r in exp.get_runs(properties={"author": "azureml-user"})],
            "by_tag": [r.id for r in exp.get_runs(tags="quality", include_children=True)],
        }
        for run in runs:
            details = run.get_details()
            result[run.id] = {
                "details": details,
                "number": run.number,
                "metrics": repr(run.get_metrics()),
                "children": [c.id for c in run.get_children(recursive=True)],
                "history": [(e.version, e.kind, e.time, repr(e.payload))
                            for e in run.get_history()],
            }
    return result


@pytest.fixture(params=["sqlite", "postgresql"])
def target_url(request: pytest.FixtureRequest,
               store_factory: Callable[[str], str]) -> str:
    """A fresh, empty target store."""
    return store_factory(str(request.param))


def test_export_then_import_gives_the_same_ledger_and_twice_adds_nothing(
        store_url: str, target_url: str, tmp_path: Path) -> None:
    source = Workspace(store=store_url)
    populate(source)
    calls: list[tuple[int, int]] = []
    path = tmp_path / "ledger.rlx"
    exported = export_ledger(source.ledger.application, path,
                             progress=lambda d, t: calls.append((d, t)))
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] == exported.last_position
    source_events = raw_log(source.ledger.application)
    assert exported.events == len(source_events)

    target = Workspace(store=target_url)
    imported = import_ledger(target.ledger.application, path)
    assert (imported.events, imported.added, imported.skipped, imported.conflicts) == (
        len(source_events), len(source_events), 0, 0)
    assert raw_log(target.ledger.application) == source_events
    assert answers(target) == answers(source)

    again = import_ledger(target.ledger.application, path)
    assert (again.added, again.skipped) == (0, len(source_events))
    assert raw_log(target.ledger.application) == source_events


def test_a_newer_export_adds_only_what_is_new(store_url: str, target_url: str,
                                              tmp_path: Path) -> None:
    source = Workspace(store=store_url)
    populate(source)
    target = Workspace(store=target_url)
    first = export_ledger(source.ledger.application, tmp_path / "one.rlx")
    import_ledger(target.ledger.application, tmp_path / "one.rlx")
    assert answers(target) == answers(source)  # the target's index has caught up once

    populate(source, prefix="more-")
    old_run = next(Experiment(source, "transfer-a").get_runs())
    old_run.tag("later", "yes")
    second = export_ledger(source.ledger.application, tmp_path / "two.rlx")
    summary = import_ledger(target.ledger.application, tmp_path / "two.rlx")
    assert summary.added == second.events - first.events > 0
    assert summary.skipped == first.events
    assert raw_log(target.ledger.application) == raw_log(source.ledger.application)
    assert answers(target) == answers(source)


def test_a_truncated_export_imports_a_prefix_and_says_so(tmp_path: Path,
                                                         store_factory: Callable[[str], str]
                                                         ) -> None:
    source = Workspace(store=store_factory("sqlite"))
    populate(source)
    buffer = io.BytesIO()
    summary = export_ledger(source.ledger.application, buffer)
    data = buffer.getvalue()
    target = Workspace(store=store_factory("sqlite"))
    # A file that carries a digest is refused whole when truncated (its digest cannot be
    # checked: docs/audit.md); a file of an older runledger, without one, imports its prefix.
    with pytest.raises(TransferError, match=r"nothing was imported"):
        import_ledger(target._session.app, io.BytesIO(data[: len(data) // 2]), batch_size=7)
    assert raw_log(target._session.app) == []
    items = list(msgpack.Unpacker(io.BytesIO(data), raw=False, strict_map_key=False))
    del items[0]["digest"], items[-1]["digest"]
    data = b"".join(msgpack.packb(item, use_bin_type=True) for item in items)
    with pytest.raises(TransferError, match=r"truncated|damaged"):
        import_ledger(target.ledger.application, io.BytesIO(data[: len(data) // 2]), batch_size=7)
    partial = raw_log(target.ledger.application)
    assert 0 < len(partial) < summary.events
    assert partial == raw_log(source.ledger.application)[: len(partial)]
    finished = import_ledger(target.ledger.application, io.BytesIO(data))
    assert finished.added == summary.events - len(partial)
    assert answers(target) == answers(source)


def test_not_an_export_is_refused(tmp_path: Path, store_factory: Callable[[str], str]) -> None:
    app = Workspace(store=store_factory("sqlite")).ledger.application
    for content in (b"", b"hello", msgpack.packb({"format": "other"}),
                    msgpack.packb({"format": "runledger-export", "version": 99})):
        with pytest.raises(TransferError):
            import_ledger(app, io.BytesIO(content))
    assert app.max_position() == 0


def test_a_diverged_stream_is_reported_not_overwritten(tmp_path: Path,
                                                       store_factory: Callable[[str], str]
                                                       ) -> None:
    source = Workspace(store=store_factory("sqlite"))
    run = Experiment(source, "e").start_logging()
    run.flush()
    export_ledger(source.ledger.application, tmp_path / "base.rlx")
    target = Workspace(store=store_factory("sqlite"))
    import_ledger(target.ledger.application, tmp_path / "base.rlx")
    from ledger import Run

    Run(Experiment(target, "e"), run.id).tag("side", "target")  # same version, other content
    run.tag("side", "source")
    run.tag("more", "source")
    export_ledger(source.ledger.application, tmp_path / "next.rlx")
    summary = import_ledger(target.ledger.application, tmp_path / "next.rlx")
    assert summary.conflicts == 2 and summary.added == 0
    assert Run(Experiment(target, "e"), run.id).get_tags() == {"side": "target"}


def test_export_streams_in_bounded_memory(tmp_path: Path,
                                          store_factory: Callable[[str], str]) -> None:
    """The export writes as it reads (the file grows page by page) and the import reads as it
    writes (a batch at a time)."""
    source = Workspace(store=store_factory("sqlite"))
    exp = Experiment(source, "bulk")
    for i in range(300):
        run = exp.start_logging()
        run.log("loss", float(i))
        run.complete()
    path = tmp_path / "bulk.rlx"
    sizes: list[int] = []
    with open(path, "wb") as handle:
        export_ledger(source.ledger.application, handle,
                      progress=lambda d, t: sizes.append(handle.tell()))
    assert len(sizes) > 2 and sizes == sorted(sizes) and sizes[1] > 0
    batches: list[int] = []
    target = Workspace(store=store_factory("sqlite"))
    import_ledger(target.ledger.application, path, progress=lambda d, t: batches.append(d),
                  batch_size=100)
    assert len(batches) > 10
    assert len(list(Experiment(target, "bulk").get_runs())) == 300
