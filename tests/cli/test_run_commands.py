"""``runledger run list|show|cancel|update|history|metrics|wait`` and ``experiment list``."""

from __future__ import annotations

import threading
import time

import pytest

from ledger import Experiment, Run, Workspace
from tests.cli.conftest import Invoke, stdout_json

SEED_QUERIES = {
    "[?properties.author=='azureml-user']": {"fantastic", "plain"},
    "[?tags.keys(@)[?starts_with(@, 'worth another look')]]": {"look"},
    "[?properties.author=='azureml-user' && tags.quality=='fantastic run']": {"fantastic"},
}


# ---------------------------------------------------------------------------------- run list
@pytest.mark.parametrize("query", sorted(SEED_QUERIES))
def test_the_seed_queries_as_a_trailing_argument(invoke: Invoke, seed_runs: dict[str, str],
                                                 query: str) -> None:
    runs = stdout_json(invoke("run", "list", "--experiment-name", "experiment", query))
    assert {r["runId"] for r in runs} == {seed_runs[k] for k in SEED_QUERIES[query]}


@pytest.mark.parametrize("query", sorted(SEED_QUERIES))
def test_the_seed_queries_with_query_option(invoke: Invoke, seed_runs: dict[str, str],
                                            query: str) -> None:
    runs = stdout_json(invoke("run", "list", "-e", "experiment", "--query", query))
    assert {r["runId"] for r in runs} == {seed_runs[k] for k in SEED_QUERIES[query]}


def test_list_gives_run_details_newest_first(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    runs = stdout_json(invoke("run", "list", "-e", "experiment"))
    assert [r["runId"] for r in runs] == [seed_runs[k] for k in (
        "running", "look", "plain", "fantastic")]
    first = runs[-1]
    assert first["number"] == 1
    assert first["status"] == "Completed"
    assert first["displayName"] == "first"
    assert first["properties"] == {"author": "azureml-user"}
    assert first["tags"] == {"quality": "fantastic run"}
    assert first["experimentName"] == "experiment"
    assert first["runType"] == "experiment_run" and first["target"] == "local"
    assert first["submittedBy"]
    for key in ("createdTimeUtc", "startTimeUtc", "endTimeUtc"):
        assert first[key].endswith("Z")
    assert "endTimeUtc" not in runs[0]  # still Running: None values are left out
    assert runs[2]["tags"] == {"quality": "ok"}
    assert runs[1]["tags"] == {"worth another look": None}


def test_list_rows_have_the_keys_of_show(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    listed = stdout_json(invoke("run", "list", "-e", "experiment", "--query",
                                f"[?runId=='{seed_runs['fantastic']}'] | [0]"))
    shown = stdout_json(invoke("run", "show", "-r", seed_runs["fantastic"]))
    only_shown = {"logFiles", "inputDatasets", "outputDatasets"}
    assert {k: v for k, v in shown.items() if k not in only_shown} == listed


def test_list_filters(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    def ids(*args: str) -> set[str]:
        return {r["runId"] for r in stdout_json(invoke("run", "list", "-e", "experiment",
                                                       *args))}

    assert ids("--tags", "quality=fantastic run") == {seed_runs["fantastic"]}
    assert ids("--tags", "quality") == {seed_runs["fantastic"], seed_runs["plain"]}
    assert ids("--tags", "quality", "--tags", "worth another look") == set()
    assert ids("--tags", "quality", "--properties", "author=azureml-user") == {
        seed_runs["fantastic"], seed_runs["plain"]}
    assert ids("--properties", "author=someone") == {seed_runs["look"]}
    assert ids("--status", "Running") == {seed_runs["running"]}
    assert ids("--status", "running") == {seed_runs["running"]}
    assert ids("--last", "2") == {seed_runs["running"], seed_runs["look"]}
    assert seed_runs["child"] in ids("--include-children")
    assert seed_runs["child"] not in ids()


def test_list_children_of_a_parent(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    runs = stdout_json(invoke("run", "list", "--parent-run-id", seed_runs["fantastic"]))
    assert [r["runId"] for r in runs] == [seed_runs["child"]]
    assert runs[0]["parentRunId"] == seed_runs["fantastic"]
    assert stdout_json(invoke("run", "list", "--parent-run-id", seed_runs["plain"])) == []


def test_list_every_experiment_and_minimal(invoke: Invoke, seed_runs: dict[str, str],
                                           workspace: Workspace) -> None:
    with Experiment(workspace, "other").start_logging() as other:
        pass
    runs = stdout_json(invoke("run", "list", "--minimal"))
    assert runs[0]["runId"] == other.id  # the newest of every experiment first
    assert {r["runId"] for r in runs} == {other.id} | {
        seed_runs[k] for k in ("fantastic", "plain", "look", "running")}
    assert set(runs[0]) == {"runId", "experimentName", "number", "status", "startTimeUtc",
                            "endTimeUtc"}


def test_list_errors(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    result = invoke("run", "list", "-e", "missing")
    assert result.exit_code == 3
    assert result.stderr == "Error: Experiment 'missing' was not found in this ledger\n"
    result = invoke("run", "list", "-e", "experiment", "[0]", "--query", "[1]")
    assert result.exit_code == 2
    assert "once" in result.stderr
    result = invoke("run", "list", "-e", "experiment", "--last", "-1")
    assert result.exit_code == 2
    result = invoke("run", "list", "-e", "experiment", "--status", "Sleeping")
    assert result.exit_code == 2
    result = invoke("run", "list", "--parent-run-id", "nope")
    assert result.exit_code == 3
    assert "nope" in result.stderr and "Traceback" not in result.stderr
    result = invoke("run", "list", "--tags", "=v")
    assert result.exit_code == 2


def test_list_does_not_create_the_experiment(invoke: Invoke, workspace: Workspace) -> None:
    invoke("run", "list", "-e", "missing")
    assert stdout_json(invoke("experiment", "list")) == []


# ---------------------------------------------------------------------------------- run show
def test_show(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    details = stdout_json(invoke("run", "show", "-r", seed_runs["fantastic"]))
    assert details["runId"] == seed_runs["fantastic"]
    assert details["number"] == 1
    assert details["tags"] == {"quality": "fantastic run"}
    assert details["status"] == "Completed"
    details = stdout_json(invoke("run", "show", "-r", seed_runs["child"], "-e", "experiment",
                                 "-w", "my-workspace"))
    assert details["parentRunId"] == seed_runs["fantastic"]


def test_show_errors(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    result = invoke("run", "show", "-r", "no-such-run")
    assert result.exit_code == 3
    assert result.stderr == "Error: Run 'no-such-run' was not found in this ledger\n"
    result = invoke("run", "show", "-r", seed_runs["fantastic"], "-e", "other")
    assert result.exit_code == 3
    assert "in experiment 'other'" in result.stderr
    result = invoke("run", "show")
    assert result.exit_code == 2
    assert "--run" in result.stderr


# ---------------------------------------------------------------------------------- run cancel
def test_cancel_prints_the_seed_message(invoke: Invoke, seed_runs: dict[str, str],
                                        workspace: Workspace) -> None:
    result = invoke("run", "cancel", "-r", seed_runs["running"], "-w", "workspace_name",
                    "-e", "experiment")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Experiment run canceled successfully.\n"
    assert Run.get(workspace, seed_runs["running"]).get_status() == "Canceled"


def test_cancel_errors(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    result = invoke("run", "cancel", "-r", "no-such-run")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: Run 'no-such-run' was not found")
    assert "Traceback" not in result.stderr
    result = invoke("run", "cancel", "-r", seed_runs["fantastic"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert "Completed" in result.stderr and len(result.stderr.splitlines()) == 1


# ---------------------------------------------------------------------------------- run update
def test_update_as_the_seed_writes_it(invoke: Invoke, seed_runs: dict[str, str],
                                      workspace: Workspace) -> None:
    run_id = seed_runs["plain"]
    details = stdout_json(invoke("run", "update", "-r", run_id, "--add-tag",
                                 "quality=fantastic run"))
    assert details["tags"] == {"quality": "fantastic run"}
    assert Run.get(workspace, run_id).get_tags() == {"quality": "fantastic run"}


def test_update_everything(invoke: Invoke, seed_runs: dict[str, str],
                           workspace: Workspace) -> None:
    run_id = seed_runs["plain"]
    details = stdout_json(invoke(
        "run", "update", "-r", run_id, "--add-tag", "a=1", "--add-tag", "flag",
        "--remove-tag", "quality", "--add-property", "dataset=v2",
        "--add-property", "author=azureml-user", "--display-name", "renamed",
        "--description", "described"))
    assert details["tags"] == {"a": "1", "flag": None}
    assert details["properties"] == {"author": "azureml-user", "dataset": "v2"}
    assert details["displayName"] == "renamed"
    assert details["description"] == "described"
    run = Run.get(workspace, run_id)
    assert run.display_name == "renamed" and run.get_tags() == {"a": "1", "flag": None}


def test_update_refuses_a_property_change_and_writes_nothing(
        invoke: Invoke, seed_runs: dict[str, str], workspace: Workspace) -> None:
    run_id = seed_runs["plain"]
    before = len(Run.get(workspace, run_id).get_history())
    result = invoke("run", "update", "-r", run_id, "--add-tag", "new=tag",
                    "--add-property", "author=someone-else", "--display-name", "x")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Property 'author' of run '{run_id}' is immutable: it is recorded as "
        "'azureml-user', cannot set it to 'someone-else' (to correct it, use "
        "run.correct_property(key, value, reason): the correction is recorded)\n")
    run = Run.get(workspace, run_id)
    assert len(run.get_history()) == before
    assert run.get_tags() == {"quality": "ok"}
    assert run.get_properties() == {"author": "azureml-user"}


def test_update_usage_errors(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    run_id = seed_runs["plain"]
    assert invoke("run", "update", "-r", run_id).exit_code == 2
    assert invoke("run", "update", "-r", run_id, "--add-property", "novalue").exit_code == 2
    assert invoke("run", "update", "-r", run_id, "--add-tag", "k", "--remove-tag",
                  "k").exit_code == 2
    assert invoke("run", "update", "-r", run_id, "--add-tag", "k=1", "--add-tag",
                  "k=2").exit_code == 2
    result = invoke("run", "update", "-r", "missing", "--add-tag", "k")
    assert result.exit_code == 3 and "missing" in result.stderr


# ---------------------------------------------------------------------------------- history
def test_history_is_the_audit_trail(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    entries = stdout_json(invoke("run", "history", "-r", seed_runs["fantastic"]))
    kinds = [e["kind"] for e in entries]
    assert kinds[0] == "Created"
    assert {"PropertiesAdded", "TagsSet", "MetricsLogged", "Completed"} <= set(kinds)
    assert all({"version", "time", "actor", "kind", "payload"} <= set(e) for e in entries)
    assert entries[0]["actor"]["user"]
    without = stdout_json(invoke("run", "history", "-r", seed_runs["fantastic"],
                                 "--no-metrics"))
    assert "MetricsLogged" not in {e["kind"] for e in without}
    assert invoke("run", "history", "-r", "missing").exit_code == 3


# ---------------------------------------------------------------------------------- metrics
def test_metrics(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    run_id = seed_runs["fantastic"]
    assert stdout_json(invoke("run", "metrics", "-r", run_id)) == {
        "accuracy": [0.9, 0.95], "loss": 0.1}
    assert stdout_json(invoke("run", "metrics", "-r", run_id, "--name", "loss")) == {
        "loss": 0.1}
    assert stdout_json(invoke("run", "metrics", "-r", run_id, "--name", "nope")) == {}
    recursive = stdout_json(invoke("run", "metrics", "-r", run_id, "--recursive"))
    assert recursive[seed_runs["child"]] == {"loss": 0.5}
    result = invoke("run", "metrics", "-r", run_id, "-o", "table")
    assert result.stdout.split("\n")[0].split() == ["loss"]  # lists are not columns
    assert invoke("run", "metrics", "-r", "missing").exit_code == 3


# ---------------------------------------------------------------------------------- wait
def test_wait_returns_when_the_run_ends(invoke: Invoke, seed_runs: dict[str, str],
                                        workspace: Workspace) -> None:
    run = Run.get(workspace, seed_runs["running"])
    ender = threading.Timer(0.3, run.complete)
    ender.start()
    started = time.monotonic()
    details = stdout_json(invoke("run", "wait", "-r", run.id))
    ender.join()
    assert details["status"] == "Completed"
    assert time.monotonic() - started >= 0.25


def test_wait_on_a_failed_run_exits_1(invoke: Invoke, workspace: Workspace) -> None:
    run = Experiment(workspace, "experiment").start_logging()
    run.fail("it broke", error_code="Boom")
    result = invoke("run", "wait", "-r", run.id)
    assert result.exit_code == 1
    assert result.stderr == f"Error: Run '{run.id}' failed: Boom: it broke\n"
    assert '"status": "Failed"' in result.stdout
    assert invoke("run", "wait", "-r", "missing").exit_code == 3


# ---------------------------------------------------------------------------------- experiments
def test_experiment_list(invoke: Invoke, seed_runs: dict[str, str],
                         workspace: Workspace) -> None:
    Experiment(workspace, "another")
    experiments = stdout_json(invoke("experiment", "list"))
    assert [e["name"] for e in experiments] == ["another", "experiment"]
    assert experiments[1]["runCount"] == 5
    assert experiments[1]["id"] == Experiment(workspace, "experiment").id
    assert experiments[0]["createdTimeUtc"].endswith("Z")
    table = invoke("experiment", "list", "-o", "table").stdout
    assert table.splitlines()[0].split() == ["name", "id", "createdTimeUtc", "createdBy",
                                             "runCount"]


def test_a_bad_store_url_is_one_error_line(invoke: Invoke) -> None:
    from click.testing import CliRunner

    from ledger.cli.main import cli

    result = CliRunner().invoke(cli, ["run", "list", "--store", "bogus://x"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and len(result.output.splitlines()) == 1
