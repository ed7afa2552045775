"""Reads of a loaded run skip the catch-up query while nobody committed (SQLite's read token,
``LedgerApplication.read_token``); what another writer commits is still seen by the next read:
tags, status, details and the logs ``get_details()`` lists."""

from __future__ import annotations

from ledger import Experiment, Run, Workspace
from ledger.application import LedgerApplication
from ledger.domain.values import current_actor
from ledger.sdk.files import LogAppender


def test_a_loaded_run_sees_what_another_writer_commits(store_url: str) -> None:
    ws = Workspace(store=store_url)
    exp = Experiment(ws, "fresh")
    run = exp.start_logging()
    run.tag("a", "1")
    ws.flush()

    loaded = Run.get(ws, run.id)
    assert loaded.get_tags() == {"a": "1"}
    assert loaded.get_details()["tags"] == {"a": "1"}
    assert loaded.get_details()["logFiles"] == {}

    # Another writer: the same store through connections of its own.
    other = LedgerApplication(ws._session.store)
    try:
        actor = current_actor(None)
        other.run_command(None, run.id, lambda agg: agg.set_tags({"b": "2"}, actor))
        assert loaded.get_tags() == {"a": "1", "b": "2"}
        other.run_command(None, run.id, lambda agg: agg.complete(actor))
        assert loaded.get_status() == "Completed"
        LogAppender(other, run.id).append("logs/out.txt", b"hello\n")
        details = loaded.get_details()
        assert details["status"] == "Completed"
        assert details["tags"] == {"a": "1", "b": "2"}
        assert details["logFiles"] == {
            "logs/out.txt": f"runledger://runs/{run.id}/files/logs/out.txt"}
        # And a run loaded afresh reads the same.
        assert Run(exp, run.id).get_details() == details
    finally:
        other.close()


def test_a_write_of_this_process_is_seen_by_another_copy_of_the_run(store_url: str) -> None:
    ws = Workspace(store=store_url)
    exp = Experiment(ws, "fresh")
    run = exp.start_logging()
    ws.flush()
    first, second = Run.get(ws, run.id), Run.get(ws, run.id)
    assert first.get_tags() == second.get_tags() == {}
    first.tag("t", "v")
    assert second.get_tags() == {"t": "v"}
    first.complete()
    assert second.get_details()["status"] == "Completed"


def test_a_query_sees_what_another_writer_commits(store_url: str) -> None:
    """Queries skip the index catch-up while the read token is unchanged (SQLite): a run or a
    tag another writer commits between two queries is in the second one's answer."""
    ws = Workspace(store=store_url)
    exp = Experiment(ws, "fresh")
    parent = exp.start_logging()
    first = parent.child_run()
    first.tag("k", "v")
    ws.flush()
    assert [r.id for r in exp.get_runs(tags={"k": "v"}, include_children=True)] == [first.id]
    assert [r.id for r in parent.get_children()] == [first.id]
    assert [r.id for r in exp.get_runs(tags={"k": "v"}, include_children=True)] == [first.id]

    other = LedgerApplication(ws._session.store)
    try:
        actor = current_actor(None)
        other.run_command(None, parent.id, lambda agg: agg.set_tags({"k": "v"}, actor))
        found = {r.id for r in exp.get_runs(tags={"k": "v"}, include_children=True)}
        assert found == {first.id, parent.id}
        other.run_command(None, first.id, lambda agg: agg.complete(actor))
        assert [r.get_status() for r in parent.get_children(status="Completed")] == ["Completed"]
    finally:
        other.close()
