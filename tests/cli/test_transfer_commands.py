"""``runledger export`` / ``runledger import``: a ledger moved to another store answers the same."""

from __future__ import annotations

from pathlib import Path

from ledger import Experiment, Run, Workspace
from ledger.cli.main import cli
from tests.cli.conftest import Invoke, make_runner, stdout_json


def test_export_then_import_twice_into_sqlite_copies_every_run_once(
        invoke: Invoke, workspace: Workspace, tmp_path: Path) -> None:
    exp = Experiment(workspace, "moved")
    ids = []
    for i in range(3):
        with exp.start_logging() as run:
            run.add_properties({"author": f"user{i}"})
            run.tag("quality", "fantastic run" if i else "ok")
            run.log("loss", 1.0 / (i + 1))
        ids.append(run.id)
    dump = tmp_path / "ledger.rlx"
    exported = invoke("export", str(dump))
    assert exported.exit_code == 0, exported.stderr
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    runner = make_runner()
    first = runner.invoke(cli, ["--store", target, "import", str(dump)])
    assert first.exit_code == 0, first.stderr
    second = runner.invoke(cli, ["--store", target, "import", str(dump)])
    assert second.exit_code == 0, second.stderr
    assert "0 added" in second.stdout

    copied = stdout_json(runner.invoke(cli, ["--store", target, "run", "list", "-e", "moved"]))
    assert sorted(r["runId"] for r in copied) == sorted(ids)
    found = stdout_json(runner.invoke(
        cli, ["--store", target, "run", "list", "-e", "moved", "--tags", "quality=fantastic run"]))
    assert len(found) == 2
    copy = Run.get(Workspace(store=target), ids[0])
    assert copy.get_properties() == {"author": "user0"}
    assert copy.get_metrics() == {"loss": 1.0}
