"""``run list``/``run show --az-keys`` (the Azure CLI's record shape), ``run list --last``'s
default of 10, as the Azure CLI's, and experiment tags and archiving in ``experiment list``."""

from __future__ import annotations

from ledger import Experiment, Workspace
from tests.cli.conftest import Invoke, stdout_json

AZ_RECORD_KEYS = {"run_id", "run_number", "experiment_name", "status", "start_time_utc",
                  "end_time_utc", "created_utc", "tags", "properties", "target", "run_type",
                  "submitted_by"}


def test_show_and_list_with_az_keys(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    shown = stdout_json(invoke("run", "show", "-r", seed_runs["fantastic"], "--az-keys"))
    assert AZ_RECORD_KEYS | {"display_name"} <= set(shown)
    assert not [k for k in shown if any(c.isupper() for c in k)]  # snake_case only
    camel = stdout_json(invoke("run", "show", "-r", seed_runs["fantastic"]))
    assert shown["run_id"] == camel["runId"] == seed_runs["fantastic"]
    assert shown["run_number"] == camel["number"] == 1
    assert shown["start_time_utc"] == camel["startTimeUtc"]
    assert shown["display_name"] == "first"
    assert shown["tags"] == {"quality": "fantastic run"}
    listed = stdout_json(invoke("run", "list", "-e", "experiment", "--az-keys"))
    assert [r["run_id"] for r in listed] == [seed_runs[k] for k in (
        "running", "look", "plain", "fantastic")]
    assert AZ_RECORD_KEYS - {"end_time_utc"} <= set(listed[0])
    child = stdout_json(invoke("run", "list", "--parent-run-id", seed_runs["fantastic"],
                               "--az-keys", "--query", "[0]"))
    assert child["run_id"] == seed_runs["child"]
    assert child["parent_run_id"] == seed_runs["fantastic"]
    # --query applies to the record shape
    assert stdout_json(invoke("run", "list", "-e", "experiment", "--az-keys", "--query",
                              "[?run_number==`1`].run_id")) == [seed_runs["fantastic"]]


def test_list_gives_the_last_10_by_default(invoke: Invoke, workspace: Workspace) -> None:
    exp = Experiment(workspace, "many")
    ids = []
    for _ in range(12):
        run = exp.start_logging()
        run.complete()
        ids.append(run.id)
    workspace.flush()
    listed = [r["runId"] for r in stdout_json(invoke("run", "list", "-e", "many"))]
    assert listed == ids[::-1][:10]
    everything = stdout_json(invoke("run", "list", "-e", "many", "--last", "0"))
    assert len(everything) == 12


def test_experiment_list_shows_tags_and_archiving(invoke: Invoke, workspace: Workspace) -> None:
    Experiment(workspace, "kept").tag("team", "vision")
    Experiment(workspace, "old").archive()
    experiments = {e["name"]: e for e in stdout_json(invoke("experiment", "list"))}
    assert experiments["kept"]["tags"] == {"team": "vision"}
    assert "archivedTime" not in experiments["kept"]
    assert experiments["old"]["archivedTime"].endswith("Z")
