"""The SDK's shape as a user and a tool builder rely on it: importing the read side does not load
the SDK, a run's class follows its run type, experiments come from the workspace without store
reads, and the public accessor ``Workspace.ledger``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ledger
from ledger import Experiment, Run, ScriptRun, ScriptRunConfig, Workspace
from ledger.domain.names import SCRIPT_RUN_TYPE

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["projections", "ledger.domain", "ledger.persistence",
                                    "ledger.application"])
def test_the_read_side_does_not_load_the_sdk(module: str) -> None:
    code = (f"import sys, {module}; "
            "loaded = sorted(m for m in sys.modules if m.startswith('ledger.sdk')); "
            "assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_package_names_load_on_first_use() -> None:
    assert set(ledger.__all__) <= set(dir(ledger))
    assert ledger.Run is Run and ledger.__version__ == ledger.VERSION
    with pytest.raises(AttributeError, match="no_such_name"):
        ledger.no_such_name  # noqa: B018


def test_a_runs_class_follows_its_run_type(tmp_path: Path) -> None:
    ws = Workspace(store=f"sqlite:///{tmp_path / 'ledger.db'}")
    exp = Experiment(ws, "shapes")
    (tmp_path / "hello.py").write_text("print('hello')\n")
    submitted = exp.submit(ScriptRunConfig(source_directory=str(tmp_path), script="hello.py"))
    interactive = exp.start_logging()
    interactive.complete()
    submitted.wait_for_completion()
    assert type(submitted) is ScriptRun and submitted.type == SCRIPT_RUN_TYPE
    assert type(interactive) is Run
    assert type(Run.get(ws, submitted.id)) is ScriptRun
    assert type(Run.get(ws, interactive.id)) is Run
    assert type(Run(exp, submitted.id)) is ScriptRun and type(Run(exp, interactive.id)) is Run
    assert {type(r) for r in exp.get_runs()} == {Run, ScriptRun}
    assert {r.id: type(r) for r in exp.get_runs()} == {submitted.id: ScriptRun,
                                                      interactive.id: Run}


def test_listing_experiments_reads_no_experiment_from_the_store(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "b", "c"):
        parent = Experiment(ws, name).start_logging()
        parent.child_run().complete()
        parent.complete()
    app = ws.ledger.application
    calls: list[Any] = []
    for method in ("ensure_experiment", "get_experiment"):
        original = getattr(app, method)
        monkeypatch.setattr(app, method, lambda *a, _original=original, **k: (
            calls.append(a) or _original(*a, **k)))
    experiments = Experiment.list(ws)
    assert sorted(e.name for e in experiments) == ["a", "b", "c"]
    children = [c for e in experiments for r in e.get_runs() for c in r.get_children()]
    assert len(children) == 3 and all(c.experiment.name == c.parent.experiment.name
                                      for c in children)
    assert Experiment(ws, "b") in experiments  # known to the workspace: not read again
    assert calls == []


def test_the_public_accessor(ws: Workspace) -> None:
    run = Experiment(ws, "access").start_logging()
    run.log("m", 1.0)
    # The index is caught up with this process's buffered writes.
    assert ws.ledger.index.get(run.id) is not None
    assert ws.ledger.application.max_position() > 0
    assert ws.ledger.raw_index is ws.ledger.raw_index
