"""``runledger audit history|as-of|diff|replay`` and ``run list --as-of|--include-archived``, on
SQLite and PostgreSQL, as an auditor would use them."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ledger import Experiment, Run, Workspace
from tests.cli.conftest import Invoke, stdout_json


@pytest.fixture
def story(workspace: Workspace) -> dict[str, object]:
    """A run changed over time, with the positions and a time between its changes."""
    exp = Experiment(workspace, "audited")
    run = exp.start_logging(run_id="audited-run")
    run.add_properties({"lr": "0.1"})
    run.tag("quality", "good")
    workspace.flush()
    p1 = workspace._session.app.max_position()
    time.sleep(0.002)
    t1 = datetime.now(timezone.utc)
    time.sleep(0.002)
    run.tag("quality", "bad")
    run.correct_property("lr", "0.01", "mistyped")
    run.log("loss", 0.5)
    run.complete()
    other = exp.start_logging(run_id="archived-run")
    other.archive("duplicate")
    other.complete()
    workspace.flush()
    return {"run": run.id, "other": other.id, "p1": p1,
            "t1": t1.isoformat().replace("+00:00", "Z"),
            "p2": workspace._session.app.max_position()}


def test_history_lists_every_change_with_position_actor_and_old_new(
        invoke: Invoke, story: dict[str, object]) -> None:
    entries = stdout_json(invoke("audit", "history", "-r", str(story["run"])))
    kinds = [e["kind"] for e in entries]
    assert kinds == ["Created", "StatusChanged", "PropertiesAdded", "TagsSet", "TagsSet",
                     "PropertyCorrected", "MetricsLogged", "Completed"]
    assert [e["position"] for e in entries] == sorted(e["position"] for e in entries)
    assert all(e["actor"]["user"] and e["time"].endswith("Z") for e in entries)
    assert entries[4]["what"] == "tag quality: 'good' -> 'bad'"
    assert entries[5]["reason"] == "mistyped"
    assert entries[5]["changes"] == [{"field": "property", "key": "lr", "old": "0.1",
                                      "new": "0.01", "change": "changed"}]
    since = stdout_json(invoke("audit", "history", "-r", str(story["run"]), "--since",
                               str(story["p1"])))
    assert [e["kind"] for e in since] == kinds[4:]
    until = stdout_json(invoke("audit", "history", "-r", str(story["run"]), "--until",
                               str(story["t1"])))
    assert [e["kind"] for e in until] == kinds[:4]
    table = invoke("audit", "history", "-r", str(story["run"]), "-o", "table")
    assert table.exit_code == 0 and "'good' -> 'bad'" in table.stdout


def test_as_of_shows_the_run_as_it_was(invoke: Invoke, story: dict[str, object]) -> None:
    for moment in (str(story["p1"]), str(story["t1"])):
        then = stdout_json(invoke("audit", "as-of", "-r", str(story["run"]), "--at", moment,
                                  "--metrics"))
        assert then["status"] == "Running"
        assert then["properties"] == {"lr": "0.1"} and then["tags"] == {"quality": "good"}
        assert then["metrics"] == {} and then["archived"] is False
        assert then["asOfPosition"] <= int(str(story["p1"]))
    now = stdout_json(invoke("audit", "as-of", "-r", str(story["run"]), "--at",
                             str(story["p2"])))
    shown = stdout_json(invoke("run", "show", "-r", str(story["run"])))
    assert {k: v for k, v in now.items() if k not in ("asOf", "asOfPosition", "archived")} == {
        k: v for k, v in shown.items() if k != "number"}


def test_as_of_refuses_bad_moments(invoke: Invoke, story: dict[str, object]) -> None:
    naive = invoke("audit", "as-of", "-r", str(story["run"]), "--at", "2026-11-27T10:00:00")
    assert naive.exit_code == 2 and "no time zone" in naive.stderr
    garbage = invoke("audit", "as-of", "-r", str(story["run"]), "--at", "yesterday")
    assert garbage.exit_code == 2 and "neither a log position" in garbage.stderr
    before = invoke("audit", "as-of", "-r", str(story["run"]), "--at", "2000-01-01T00:00:00Z")
    assert before.exit_code == 3 and "was not found" in before.stderr


def test_diff_shows_what_changed(invoke: Invoke, story: dict[str, object]) -> None:
    diff = stdout_json(invoke("audit", "diff", "-r", str(story["run"]), "--from",
                              str(story["t1"]), "--to", str(story["p2"])))
    changes = {(c["field"], c["key"]): (c["old"], c["new"]) for c in diff["changes"]}
    assert changes == {("status", None): ("Running", "Completed"),
                       ("property", "lr"): ("0.1", "0.01"),
                       ("tag", "quality"): ("good", "bad"), ("metric", "loss"): (None, 1)}


def test_run_list_as_of_and_archived(invoke: Invoke, story: dict[str, object]) -> None:
    now = stdout_json(invoke("run", "list", "-e", "audited"))
    assert [r["runId"] for r in now] == [story["run"]]
    everything = stdout_json(invoke("run", "list", "-e", "audited", "--include-archived"))
    assert [r["runId"] for r in everything] == [story["other"], story["run"]]
    then = stdout_json(invoke("run", "list", "-e", "audited", "--as-of", str(story["p1"])))
    assert [(r["runId"], r["status"], r["tags"], r["number"]) for r in then] == [
        (story["run"], "Running", {"quality": "good"}, 1)]
    tagged = stdout_json(invoke("run", "list", "-e", "audited", "--as-of", str(story["t1"]),
                                "--tags", "quality=bad"))
    assert tagged == []
    archived_then = stdout_json(invoke("run", "list", "--as-of", str(story["p2"]),
                                       "--include-archived", "--minimal"))
    assert [r["runId"] for r in archived_then] == [story["other"], story["run"]]


def test_replay_writes_the_ledger_as_it_stood(invoke: Invoke, story: dict[str, object],
                                              tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    result = invoke("audit", "replay", "--until", str(story["p1"]), "--into", url)
    assert result.exit_code == 0, result.stderr
    assert "Replayed" in result.stdout
    copy = Workspace(store=url)
    run = Run.get(copy, str(story["run"]))
    assert run.get_tags() == {"quality": "good"} and run.get_status() == "Running"
    with pytest.raises(Exception, match="not found"):
        Run.get(copy, str(story["other"]))
    again = invoke("audit", "replay", "--until", str(story["p1"]), "--into", url)
    assert again.exit_code == 1 and "empty" in again.stderr


def test_the_audit_group_lists_its_commands(invoke: Invoke) -> None:
    result = invoke("audit", "--help")
    assert result.exit_code == 0
    for name in ("history", "as-of", "diff", "replay"):
        assert name in result.stdout
    unknown = invoke("audit", "history", "-r", "nope")
    assert unknown.exit_code == 3 and "'nope' was not found" in unknown.stderr
