"""``runledger convert mlflow``: an MLflow store, written by MLflow itself, imported losslessly.

Each test runs on an MLflow SQLite store, an ``mlruns`` folder and an MLflow store on
PostgreSQL (``mlflow_store``), and on each of the ledger's backends (``store_url``: memory,
SQLite, PostgreSQL).
"""

from __future__ import annotations

import math
import sys
from datetime import datetime, timezone
from typing import Any

import pytest

from ledger import Experiment, Run, Workspace
from ledger.domain.errors import ImportSourceError, RunNotFoundError
from tests.importers.conftest import mlflow_client
from tests.importers.mlflow_stores import SWEEP_ARTIFACTS, T0, log_artifacts

STATUS_MAP = {"RUNNING": "Running", "SCHEDULED": "Queued", "FINISHED": "Completed",
              "FAILED": "Failed", "KILLED": "Canceled"}


def convert(ws: Workspace, uri: str, *experiments: str, artifacts: bool = False) -> Any:
    from ledger.importers.mlflow import convert_mlflow

    return convert_mlflow(ws, uri, experiments, artifacts=artifacts)


def ours(mlflow_run_id: str) -> str:
    from ledger.importers.mlflow import ledger_run_id

    return ledger_run_id(mlflow_run_id)


def iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def all_mlflow_runs(client: Any) -> list[Any]:
    experiments = client.search_experiments()
    return list(client.search_runs([e.experiment_id for e in experiments], max_results=1000))


# The same questions, in MLflow's filter language and as get_runs() arguments.
QUESTIONS = [
    ("alpha", "params.optimizer = 'adam'", {"optimizer": "adam"}, None),
    ("alpha", "tags.team = 'vision'", None, {"team": "vision"}),
    ("alpha", "params.optimizer = 'adam' and tags.team = 'vision'", {"optimizer": "adam"},
     {"team": "vision"}),
    ("alpha", "params.lr = '0.1' and tags.stage = 'prod'", {"lr": "0.1"}, {"stage": "prod"}),
    ("beta", "tags.stage = 'dev'", None, {"stage": "dev"}),
    ("alpha", "params.lr = '42'", {"lr": "42"}, None),
]


@pytest.mark.parametrize(("experiment", "mlflow_filter", "properties", "tags"), QUESTIONS)
def test_the_same_question_finds_the_same_runs(store_url: str, mlflow_store: Any,
                                               experiment: str, mlflow_filter: str,
                                               properties: Any, tags: Any) -> None:
    uri, _ids = mlflow_store
    client = mlflow_client(uri)
    exp_id = client.get_experiment_by_name(experiment).experiment_id
    before = {ours(r.info.run_id) for r in client.search_runs([exp_id], mlflow_filter)}
    ws = Workspace(store=store_url)
    convert(ws, uri)
    after = {r.id for r in Experiment(ws, experiment).get_runs(
        properties=properties, tags=tags, include_children=True)}
    assert after == before
    # The very same filter string, in our own search grammar (MLflow's, ledger.domain.search).
    searched = {r.id for r in Experiment(ws, experiment).get_runs(
        filter=mlflow_filter, include_children=True)}
    assert searched == before
    if mlflow_filter != "params.lr = '42'":
        assert before, "the question must find something to compare"


def test_metric_histories_equal_value_by_value(store_url: str, mlflow_store: Any) -> None:
    uri, _ids = mlflow_store
    client = mlflow_client(uri)
    ws = Workspace(store=store_url)
    convert(ws, uri)
    app = ws.ledger.application
    compared = 0
    for run in all_mlflow_runs(client):
        ledger: dict[str, list[tuple[Any, int, int]]] = {}
        for event in app.metric_events(ours(run.info.run_id)):
            for name, kind, _d, values, steps, times in event.series:
                assert kind == "scalar"
                ledger.setdefault(name, []).extend(
                    (v, s, round(t * 1000)) for v, s, t in zip(values, steps, times, strict=True))
        assert set(ledger) == set(run.data.metrics)
        for key in run.data.metrics:
            theirs = sorted(((m.value, m.step, m.timestamp) for m in
                             client.get_metric_history(run.info.run_id, key)),
                            key=lambda p: (p[2], p[1], repr(p[0])))
            mine = sorted(ledger[key], key=lambda p: (p[2], p[1], repr(p[0])))
            assert len(mine) == len(theirs)
            for (v1, s1, t1), (v2, s2, t2) in zip(mine, theirs, strict=True):
                assert (s1, t1) == (s2, t2)
                assert v1 == v2 or (math.isnan(v1) and math.isnan(v2))
                compared += 1
    assert compared >= 9


def test_runs_keep_parents_statuses_times_names_and_users(store_url: str,
                                                          mlflow_store: Any) -> None:
    uri, ids = mlflow_store
    client = mlflow_client(uri)
    ws = Workspace(store=store_url)
    convert(ws, uri)
    for run in all_mlflow_runs(client):
        info = run.info
        details = Run.get(ws, ours(info.run_id)).get_details()
        assert details["status"] == STATUS_MAP[info.status]
        assert details["displayName"] == run.data.tags["mlflow.runName"]
        assert details["submittedBy"] == "alice"
        assert details["createdTimeUtc"] == iso(info.start_time)
        if info.status == "SCHEDULED":
            assert "startTimeUtc" not in details
        else:
            assert details["startTimeUtc"] == iso(info.start_time)
        if info.status in ("FINISHED", "FAILED", "KILLED"):
            assert details["endTimeUtc"] == iso(info.end_time)
        else:
            assert "endTimeUtc" not in details
        assert details["properties"]["mlflow.source.git.commit"] == "abc123"
        assert details["properties"]["runledger.import.mlflow_run_id"] == info.run_id
        assert not any(k in details["tags"] for k in
                       ("mlflow.runName", "mlflow.user", "mlflow.parentRunId",
                        "mlflow.source.name"))
        assert {k: v for k, v in details["properties"].items()
                if not k.startswith(("mlflow.", "runledger."))} == run.data.params
    sweep = Run.get(ws, ours(ids["sweep"]))
    children = {r.id for r in sweep.get_children()}
    assert children == {ours(ids["child-1"]), ours(ids["child-2"])}
    assert Run.get(ws, ours(ids["child-1"])).parent == sweep
    # The query index answers with the business times too (run list).
    rows = {r.id: r for r in Experiment(ws, "beta").get_runs()}
    assert set(rows) == {ours(ids["killed"]), ours(ids["queued"])}
    assert [r.id for r in Experiment(ws, "alpha").get_runs()] == [
        ours(ids["live"]), ours(ids["sweep"])]


def test_the_audit_trail_tells_imported_facts_from_live_ones(store_url: str,
                                                              mlflow_store: Any) -> None:
    uri, ids = mlflow_store
    ws = Workspace(store=store_url)
    convert(ws, uri)
    run = Run.get(ws, ours(ids["sweep"]))
    run.tag("reviewed", "yes")  # a live change, after the import
    history = run.get_history()
    kinds = [e.kind for e in history]
    assert kinds[:6] == ["Created", "PropertiesAdded", "TagsSet", "StatusChanged", "Completed",
                         "Imported"]
    imported = history[5]
    assert imported.payload["source"] == "mlflow"
    assert imported.payload["source_run_id"] == ids["sweep"]
    assert imported.payload["source_uri"] == uri
    # What MLflow holds: its SQL store drops an exact repeat of a value, its file store keeps it.
    client = mlflow_client(uri)
    assert imported.payload["metric_values"] == sum(
        len(client.get_metric_history(ids["sweep"], key)) for key in ("loss", "acc"))
    assert imported.payload["started_at"].startswith("2023-11-14 22:13:20")
    assert imported.time > datetime(2024, 1, 1, tzinfo=timezone.utc)  # recorded: now
    assert history[-1].kind == "TagsSet" and history[-1].payload == {"tags": {"reviewed": "yes"}}


def test_importing_twice_adds_nothing(store_url: str, mlflow_store: Any) -> None:
    uri, _ids = mlflow_store
    ws = Workspace(store=store_url)
    first = convert(ws, uri)
    client = mlflow_client(uri)
    values = sum(len(client.get_metric_history(r.info.run_id, key))
                 for r in all_mlflow_runs(client) for key in r.data.metrics)
    assert (first.runs, first.created, first.metric_values) == (6, 6, values)
    length = ws.ledger.application.max_position()
    second = convert(ws, uri)
    assert (second.runs, second.created, second.updated, second.metric_values) == (6, 0, 0, 0)
    assert ws.ledger.application.max_position() == length


def test_a_second_import_adds_exactly_the_difference(store_url: str, mlflow_store: Any) -> None:
    uri, ids = mlflow_store
    ws = Workspace(store=store_url)
    convert(ws, uri)
    app = ws.ledger.application
    length = app.max_position()
    client = mlflow_client(uri)
    live = ids["live"]
    client.set_tag(live, "stage", "staging")  # changed
    client.set_tag(live, "reviewer", "bob")  # new
    client.log_metric(live, "loss", 2.5, timestamp=T0 + 2100, step=1)
    client.log_metric(live, "loss", 2.0, timestamp=T0 + 2200, step=2)
    client.set_terminated(live, status="FINISHED", end_time=T0 + 2500)
    alpha = client.get_experiment_by_name("alpha").experiment_id
    new = client.create_run(alpha, start_time=T0 + 5000, run_name="late",
                            tags={"team": "nlp"}).info.run_id
    client.log_param(new, "lr", "0.2")
    client.log_metric(new, "loss", 1.5, timestamp=T0 + 5001, step=0)
    client.set_terminated(new, status="FINISHED", end_time=T0 + 5100)

    summary = convert(ws, uri)
    assert (summary.created, summary.updated, summary.metric_values) == (1, 1, 3)
    added = [app.decode(n) for n in app.read_log(length, 1000)]
    kinds = sorted(type(e).__name__ for e in added)
    # The old run: its changed tags, its end, the import marker and its two new values; the
    # new run: created, started, ended, marked, one metric batch. Nothing else.
    assert kinds == sorted(["TagsSet", "Completed", "Imported", "MetricsLogged",
                            "Created", "PropertiesAdded", "TagsSet", "StatusChanged",
                            "Completed", "Imported", "MetricsLogged"])
    old_tags = next(e for e in added if type(e).__name__ == "TagsSet"
                    and e.originator_id == Run.get(ws, ours(live))._aggregate().id)
    assert old_tags.tags == {"stage": "staging", "reviewer": "bob"}
    details = Run.get(ws, ours(live)).get_details()
    assert details["status"] == "Completed"
    assert details["endTimeUtc"] == iso(T0 + 2500)
    assert Run.get(ws, ours(live)).get_metrics()["loss"] == [3.0, 2.5, 2.0]
    assert Run.get(ws, ours(new)).get_details()["properties"]["lr"] == "0.2"
    # And a third import finds nothing new.
    length = app.max_position()
    convert(ws, uri)
    assert app.max_position() == length


def test_only_the_named_experiments_are_imported(store_url: str, mlflow_store: Any) -> None:
    uri, ids = mlflow_store
    ws = Workspace(store=store_url)
    summary = convert(ws, uri, "beta")
    assert (summary.experiments, summary.runs) == (1, 2)
    assert {r.id for r in Experiment(ws, "beta").get_runs()} == {ours(ids["killed"]),
                                                                ours(ids["queued"])}
    assert "alpha" not in ws.experiments
    with pytest.raises(ImportSourceError, match="no experiment 'gamma'"):
        convert(ws, uri, "gamma")


def test_a_missing_mlflow_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Any) -> None:
    (tmp_path / "mlruns").mkdir()
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    ws = Workspace(store="memory://")
    with pytest.raises(ImportSourceError, match=r"pip install 'runledger-ml\[mlflow\]'"):
        convert(ws, str(tmp_path / "mlruns"))
    assert ws.ledger.application.max_position() == 0


def test_the_command_line_imports_and_reports(shared_store_url: str, mlflow_store: Any) -> None:
    import json

    from ledger.cli.main import cli
    from tests.cli.conftest import make_runner

    uri, _ids = mlflow_store
    runner = make_runner()
    args = ["convert", "mlflow", "--tracking-uri", uri, "--store", shared_store_url]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["created"] == 6
    again = runner.invoke(cli, args)
    assert json.loads(again.stdout)["created"] == 0
    assert json.loads(again.stdout)["metricValuesAdded"] == 0
    with_files = runner.invoke(cli, [*args, "--artifacts"])
    assert with_files.exit_code == 0, with_files.output
    assert json.loads(with_files.stdout)["artifactsCopied"] == 6
    assert json.loads(runner.invoke(cli, [*args, "--artifacts"]).stdout)["artifactsCopied"] == 0
    missing = runner.invoke(cli, [*args, "--experiment", "nope"])
    assert missing.exit_code == 1
    assert "no experiment 'nope'" in missing.stderr


def test_runs_and_histories_are_read_page_by_page(store_url: str, mlflow_store: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import ledger.importers.mlflow as importer

    uri, ids = mlflow_store
    monkeypatch.setattr(importer, "RUNS_PAGE", 2)  # 4 runs in alpha: two pages
    monkeypatch.setattr(importer, "HISTORY_PAGE", 2)  # sweep's loss: two pages or more
    ws = Workspace(store=store_url)
    summary = convert(ws, uri)
    client = mlflow_client(uri)
    assert summary.runs == 6
    loss = [m.value for m in sorted(client.get_metric_history(ids["sweep"], "loss"),
                                    key=lambda m: (m.timestamp, m.step))]
    assert len(loss) >= 3
    assert Run.get(ws, ours(ids["sweep"])).get_metrics()["loss"] == loss


# ------------------------------------------------------------------------------ artifacts
def mlflow_artifacts(client: Any, run_id: str, tmp_path: Any) -> dict[str, bytes]:
    """Every artifact file of a run, nested folders walked, as MLflow itself downloads it."""
    found: dict[str, bytes] = {}
    folders: list[str | None] = [None]
    while folders:
        for info in client.list_artifacts(run_id, folders.pop()):
            if info.is_dir:
                folders.append(info.path)
            else:
                target = tmp_path / "mlflow-download" / run_id
                target.mkdir(parents=True, exist_ok=True)
                local = client.download_artifacts(run_id, info.path, str(target))
                with open(local, "rb") as handle:
                    found[info.path] = handle.read()
    return found


def test_artifacts_are_copied_into_the_runs_files(store_url: str, mlflow_store: Any,
                                                  tmp_path: Any) -> None:
    uri, ids = mlflow_store
    client = mlflow_client(uri)
    ws = Workspace(store=store_url)
    summary = convert(ws, uri, artifacts=True)
    copied = 0
    for run in all_mlflow_runs(client):
        theirs = mlflow_artifacts(client, run.info.run_id, tmp_path)
        mine = Run.get(ws, ours(run.info.run_id))
        assert mine.get_file_names() == sorted(theirs)
        for name, data in theirs.items():
            assert mine.read_file(name) == data, name
        imported = [e for e in mine.get_history() if e.kind == "Imported"]
        assert imported[-1].payload["artifacts"] == sorted(theirs)
        copied += len(theirs)
    assert summary.artifacts == copied == len(SWEEP_ARTIFACTS) + 1
    sweep = Run.get(ws, ours(ids["sweep"]))
    assert sweep.read_file("plots/epoch/0/loss.png").startswith(b"\x89PNG")
    sweep.download_files(prefix="model/", output_directory=str(tmp_path / "out"))
    assert (tmp_path / "out/model/data/weights.bin").read_bytes() == SWEEP_ARTIFACTS[
        "model/data/weights.bin"]
    # The files came in the same write as the run's imported facts, before its Imported event.
    kinds = [e.kind for e in sweep.get_history()]
    assert kinds.index("Imported") > max(i for i, k in enumerate(kinds) if k == "FileUploaded")


def test_without_the_flag_artifacts_are_listed_not_copied(store_url: str,
                                                          mlflow_store: Any) -> None:
    uri, ids = mlflow_store
    ws = Workspace(store=store_url)
    summary = convert(ws, uri)
    assert summary.artifacts == 0
    sweep = Run.get(ws, ours(ids["sweep"]))
    assert sweep.get_file_names() == []
    imported = next(e for e in sweep.get_history() if e.kind == "Imported")
    assert imported.payload["artifacts"] == sorted(SWEEP_ARTIFACTS)


def test_reimporting_artifacts_copies_nothing_and_turning_them_on_adds_only_files(
        store_url: str, mlflow_store: Any) -> None:
    uri, ids = mlflow_store
    ws = Workspace(store=store_url)
    app = ws.ledger.application
    convert(ws, uri)
    length = app.max_position()
    # Artifacts on, on a store already imported: each run with artifacts gets its files and
    # one Imported event; nothing else.
    summary = convert(ws, uri, artifacts=True)
    assert (summary.created, summary.updated, summary.metric_values) == (0, 2, 0)
    added = [app.decode(n) for n in app.read_log(length, 1000)]
    names = sorted(type(e).__name__ for e in added)
    files = len(SWEEP_ARTIFACTS) + 1
    assert names == sorted(["FileUploaded"] * files + ["Imported"] * 2)
    # Again: nothing is downloaded or written.
    length = app.max_position()
    again = convert(ws, uri, artifacts=True)
    assert (again.artifacts, again.updated, again.artifacts_differing) == (0, 0, 0)
    assert app.max_position() == length
    assert Run.get(ws, ours(ids["child-1"])).read_file("notes/readme.txt") == b"child one"


def test_a_later_import_copies_new_artifacts_and_keeps_recorded_ones(
        store_url: str, mlflow_store: Any) -> None:
    uri, _ids = mlflow_store
    client = mlflow_client(uri)
    # A run of this test's own: the store's copies share the template's artifact folders.
    alpha = client.get_experiment_by_name("alpha").experiment_id
    run_id = client.create_run(alpha, start_time=T0 + 6000, run_name="arts").info.run_id
    log_artifacts(client, run_id, {"a/b/one.txt": b"one", "two.txt": b"two"})
    ws = Workspace(store=store_url)
    first = convert(ws, uri, artifacts=True)
    assert first.artifacts == len(SWEEP_ARTIFACTS) + 1 + 2
    log_artifacts(client, run_id, {"a/b/c/three.txt": b"three", "two.txt": b"two, rewritten"})
    app = ws.ledger.application
    length = app.max_position()
    second = convert(ws, uri, artifacts=True)
    assert (second.artifacts, second.artifacts_differing, second.updated) == (1, 1, 1)
    added = [app.decode(n) for n in app.read_log(length, 1000)]
    assert sorted(type(e).__name__ for e in added) == ["FileUploaded", "Imported"]
    run = Run.get(ws, ours(run_id))
    assert run.get_file_names() == ["a/b/c/three.txt", "a/b/one.txt", "two.txt"]
    assert run.read_file("a/b/c/three.txt") == b"three"
    assert run.read_file("two.txt") == b"two"  # write-once: the recorded content stays


def test_an_artifact_that_cannot_be_downloaded_writes_nothing_of_its_run(
        store_url: str, mlflow_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    uri, ids = mlflow_store
    real = MlflowClient.download_artifacts

    def failing(self: Any, run_id: str, path: str, dst_path: str | None = None) -> str:
        if path == "model/data/weights.bin":
            raise OSError("connection reset")
        return str(real(self, run_id, path, dst_path))

    monkeypatch.setattr(MlflowClient, "download_artifacts", failing)
    ws = Workspace(store=store_url)
    with pytest.raises(ImportSourceError, match=(
            f"artifact 'model/data/weights.bin' of MLflow run '{ids['sweep']}'.*"
            "connection reset")):
        convert(ws, uri, "alpha", artifacts=True)
    with pytest.raises(RunNotFoundError):
        Run.get(ws, ours(ids["sweep"]))
    monkeypatch.undo()
    summary = convert(ws, uri, "alpha", artifacts=True)  # the next import completes it
    assert Run.get(ws, ours(ids["sweep"])).get_file_names() == sorted(SWEEP_ARTIFACTS)
    assert summary.artifacts == len(SWEEP_ARTIFACTS) + 1


def test_an_artifact_store_that_cannot_be_listed(store_url: str, mlflow_store: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    uri, ids = mlflow_store

    def unreachable(self: Any, run_id: str, path: str | None = None) -> list[Any]:
        raise OSError("no route to host")

    monkeypatch.setattr(MlflowClient, "list_artifacts", unreachable)
    ws = Workspace(store=store_url)
    # Copying needs the artifacts: a clear error naming the run, and nothing of it written.
    with pytest.raises(ImportSourceError, match=(
            r"Cannot list the artifacts of MLflow run '[0-9a-f]+'.*no route to host")):
        convert(ws, uri, "beta", artifacts=True)
    assert ws.ledger.application.max_position() == 0
    # Listing them only does not: the runs are imported, with no artifact listed.
    summary = convert(ws, uri)
    assert summary.created == 6
    imported = next(e for e in Run.get(ws, ours(ids["sweep"])).get_history()
                    if e.kind == "Imported")
    assert imported.payload["artifacts"] == []
