"""``get_runs(filter=, order_by=, max_results=)``, ``best_run`` and ``ledger.to_dataframe``
through the SDK, on every backend. The query semantics themselves are checked against a
brute-force oracle in tests/projections/test_search_oracle.py."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

import ledger
from ledger import Experiment, Run, SearchSyntaxError, ValidationError, Workspace


def make_runs(exp: Experiment) -> list[Run]:
    """Four completed runs: losses [0.9, 0.5], [0.4, 0.2], [0.3], none."""
    made = []
    for losses, lr, quality in [([0.9, 0.5], "0.1", "meh"), ([0.4, 0.2], "0.01", "fantastic run"),
                                ([0.3], "0.01", "meh"), ([], "0.01", "fantastic run")]:
        run = exp.start_logging()
        for loss in losses:
            run.log("loss", loss)
        run.add_properties({"lr": lr})
        run.tag("quality", quality)
        run.complete()
        made.append(run)
    return made


def ids(runs: Any) -> list[str]:
    return [run.id for run in runs]


def test_get_runs_takes_the_mlflow_arguments(exp: Experiment) -> None:
    a, b, c, d = make_runs(exp)
    found = exp.get_runs(filter="metrics.loss < 0.45 and params.lr = '0.01' and "
                                "attributes.status = 'Completed'")
    assert ids(found) == [c.id, b.id]  # newest first without an ordering
    assert ids(exp.get_runs(order_by=["metrics.loss ASC"])) == [b.id, c.id, a.id, d.id]
    assert ids(exp.get_runs(order_by=["metrics.max.loss DESC"], max_results=2)) == [a.id, b.id]
    assert ids(Run.list(exp, filter="tags.quality = 'fantastic run'",
                        order_by=["attributes.start_time DESC"])) == [d.id, b.id]
    assert ids(exp.get_runs(properties={"lr": "0.01"}, filter="metrics.min.loss >= 0.2",
                            order_by="metrics.loss DESC")) == [c.id, b.id]


def test_best_run(exp: Experiment) -> None:
    a, b, c, _d = make_runs(exp)
    best = exp.best_run("loss")
    assert best is not None and best.id == b.id
    worst = exp.best_run("loss", mode="max")
    assert worst is not None and worst.id == a.id
    # On its highest value: c's 0.3 is lower than every other run's maximum.
    lowest_peak = exp.best_run("loss", "min", field="max")
    assert lowest_peak is not None and lowest_peak.id == c.id
    among = exp.best_run("loss", filter="params.lr = '0.1'")
    assert among is not None and among.id == a.id
    assert exp.best_run("accuracy") is None
    with pytest.raises(ValidationError, match="mode"):
        exp.best_run("loss", mode="lowest")


def test_bad_arguments_are_validation_errors(exp: Experiment) -> None:
    make_runs(exp)
    with pytest.raises(SearchSyntaxError) as raised:
        exp.get_runs(filter="metrics.loss < 0.2 and params.lr = 0.01")
    assert (raised.value.position, raised.value.token) == (35, "0.01")
    assert "position 35 ('0.01')" in str(raised.value)
    with pytest.raises(ValidationError, match="max_results"):
        exp.get_runs(max_results=0)
    with pytest.raises(ValidationError, match="order_by"):
        exp.get_runs(order_by=[1])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="as_of"):
        exp.get_runs(filter="metrics.loss < 1", as_of=1)  # type: ignore[call-overload]


def test_to_dataframe(exp: Experiment) -> None:
    pandas = pytest.importorskip("pandas")
    a, b, _c, d = make_runs(exp)
    frame = ledger.to_dataframe(exp.get_runs(order_by=["metrics.loss"]))
    assert list(frame["run_id"])[:2] == [b.id, _c.id]
    assert {"properties.lr", "tags.quality", "metrics.loss", "metrics.min.loss",
            "metrics.max.loss", "status", "start_time"} <= set(frame.columns)
    row = frame.set_index("run_id").loc[a.id]
    assert (row["metrics.loss"], row["metrics.min.loss"], row["metrics.max.loss"]) == (
        0.5, 0.5, 0.9)
    assert row["properties.lr"] == "0.1" and row["tags.quality"] == "meh"
    assert row["status"] == "Completed"
    assert pandas.isna(frame.set_index("run_id").loc[d.id]["metrics.loss"])
    assert str(frame["start_time"].dtype).startswith("datetime64")


def test_to_dataframe_without_pandas_names_the_install(exp: Experiment,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_pandas(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pandas":
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ImportError, match="pip install pandas"):
        ledger.to_dataframe([])


def test_workspace_fixture_is_fresh(ws: Workspace) -> None:
    assert list(Experiment(workspace=ws, name="empty").get_runs(filter="metrics.x > 0")) == []
