"""One bad event never wedges the ledger (issue 15, item 2).

Before: an event that could not be decoded or projected (a damaged byte, a crafted import, a NUL
that PostgreSQL refuses) made every query end in a traceback, and ``projections rebuild``, the
documented repair, too. Now the projector quarantines it (position, reason), goes on, and says the
index is incomplete (a logged warning and ``RunIndex.status()`` / ``runledger projections
status``); a rebuild survives it; ``import`` refuses a file holding one, before appending anything.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eventsourcing.persistence import StoredEvent

from ledger import Experiment, Run, RunNotFoundError, StoreError, Workspace
from ledger.cli.main import cli
from ledger.domain.ids import run_stream_id
from ledger.transfer import TransferError, export_ledger, import_ledger


def _poison(ws: Workspace, victim: Run) -> dict[str, int]:
    """Append three bad events behind the SDK's back; return their positions by kind."""
    app = ws._session.app
    encode = app.mapper.transcoder.encode
    victim_stream = run_stream_id(victim.id)
    version = len(app.stream_events(victim_stream))
    records = {
        # The bytes are not msgpack at all: cannot be decoded.
        "undecodable": StoredEvent(originator_id=victim_stream,
                                   originator_version=version + 1,
                                   topic="runledger:Run.TagsSet", state=b"\xc1\xc1\xc1"),
        # Decodes, but has none of the fields a Created event needs: cannot be projected.
        "unprojectable": StoredEvent(originator_id=uuid.uuid4(), originator_version=1,
                                     topic="runledger:Run.Created", state=encode({})),
    }
    positions = {}
    for kind, record in records.items():
        positions[kind] = max(app.recorder.insert_events([record]) or [0])
    return positions


def _healthy_run(exp: Experiment, name: str) -> Run:
    run = exp.start_logging(display_name=name)
    run.log("loss", 0.5)
    run.tag("ok", "yes")
    run.complete()
    return run


def test_a_bad_event_is_quarantined_and_queries_go_on(
        ws: Workspace, exp: Experiment, caplog: pytest.LogCaptureFixture) -> None:
    before = _healthy_run(exp, "before")
    victim = _healthy_run(exp, "victim")
    positions = _poison(ws, victim)
    after = _healthy_run(exp, "after")
    with caplog.at_level(logging.WARNING, logger="runledger"):
        ids = {r.id for r in Run.list(exp)}
    assert {before.id, after.id} <= ids
    assert any("quarantined" in m for m in caplog.messages)
    status = ws._session.index.status()
    assert not status.complete and status.lag == 0
    stages = {q.position: q.stage for q in status.quarantined}
    assert stages == {positions["undecodable"]: "decode", positions["unprojectable"]: "apply"}
    # The run whose stream holds the damaged event is refused with a typed error, not a crash.
    with pytest.raises(StoreError, match="cannot be decoded"):
        Run.get(ws, victim.id).get_tags()
    # Rebuilding survives it, and finds it again.
    ws._session.index.rebuild()
    assert {r.id for r in Run.list(exp)} == ids
    assert len(ws._session.index.status().quarantined) == 2
    # Later writes are projected as usual.
    later = _healthy_run(exp, "later")
    assert later in list(Run.list(exp, tags={"ok": "yes"}))


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_text_postgres_refuses_is_quarantined_not_fatal(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.flush()
    app = ws._session.app
    stream = run_stream_id(run.id)
    events = app.stream_events(stream)
    crafted = app.mapper.transcoder.encode({
        "timestamp": events[-1].timestamp, "actor": {"user": "x", "host": "h", "pid": 1},
        "error_code": "UserError", "message": "bad\x00data", "exception_type": None})
    app.recorder.insert_events([StoredEvent(originator_id=stream,
                                            originator_version=len(events) + 1,
                                            topic="runledger:Run.Failed", state=crafted)])
    good = _healthy_run(exp, "good")
    assert good in list(Run.list(exp))
    (quarantined,) = ws._session.index.status().quarantined
    assert quarantined.stage == "apply" and quarantined.topic == "runledger:Run.Failed"


def test_projections_status_command_shows_the_quarantine(
        shared_store_url: str, ws: Workspace, exp: Experiment) -> None:
    store_url = shared_store_url  # the CLI opens the ledger itself: memory:// is left out
    victim = _healthy_run(exp, "victim")
    runner = CliRunner()
    clean = runner.invoke(cli, ["--store", store_url, "projections", "status"])
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["complete"] is True
    positions = _poison(ws, victim)
    ws.flush()
    result = runner.invoke(cli, ["--store", store_url, "projections", "status"])
    assert result.exit_code == 1
    shown: dict[str, Any] = json.loads(result.stdout)
    assert shown["lag"] == 0 and shown["position"] == shown["lastPosition"]
    assert [q["position"] for q in shown["quarantined"]] == sorted(positions.values())
    assert all(q["reason"] for q in shown["quarantined"])
    rebuilt = runner.invoke(cli, ["--store", store_url, "projections", "rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output


def test_import_refuses_a_file_with_a_bad_event_and_appends_nothing(
        ws: Workspace, exp: Experiment, tmp_path: Path) -> None:
    victim = _healthy_run(exp, "victim")
    _poison(ws, victim)
    export = tmp_path / "poisoned.rlx"
    export_ledger(ws._session.app, export)
    target = Workspace(store=f"sqlite:///{tmp_path / 'target.db'}")
    with pytest.raises(TransferError, match=r"cannot be decoded .*nothing was imported"):
        import_ledger(target._session.app, export)
    assert target._session.app.max_position() == 0
    with pytest.raises(RunNotFoundError):
        Run.get(target, victim.id)
    # Through a file object that cannot seek, too.
    with open(export, "rb") as raw, pytest.raises(TransferError):
        import_ledger(target._session.app, _Unseekable(raw))
    assert target._session.app.max_position() == 0


class _Unseekable:
    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._raw.read(size)
        return data

    def seekable(self) -> bool:
        return False
