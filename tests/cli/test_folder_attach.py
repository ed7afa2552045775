"""``runledger folder attach -w NAME [-g RG] [--store URL] [--path DIR]`` writes the configuration
file that ``Workspace.from_config()`` and the commands run in that folder then find."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ledger import Experiment, Workspace
from ledger.cli.main import cli
from tests.cli.conftest import make_runner
from tests.cli.test_entry_point import runledger_command


@pytest.fixture(autouse=True)
def _no_store_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("RUNLEDGER_")]:
        monkeypatch.delenv(name)


def attach(*args: str) -> dict[str, str]:
    result = make_runner().invoke(cli, ["folder", "attach", *args])
    assert result.exit_code == 0, result.stderr
    shown: dict[str, str] = json.loads(result.stdout)
    return shown


def test_attach_then_from_config_and_run_list_use_it(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    monkeypatch.chdir(project)
    shown = attach("-w", "team-ws", "-g", "my-rg", "--subscription-id", "sub",
                   "--store", "sqlite:///data/ledger.db")
    config = project / ".runledger" / "config.json"
    assert json.loads(config.read_text()) == {"name": "team-ws",
                                              "store": "sqlite:///data/ledger.db"}
    assert shown["configFile"] == str(config)

    monkeypatch.chdir(project / "src")  # found from a subfolder too, as git finds .git
    ws = Workspace.from_config()
    assert ws.name == "team-ws"
    assert ws.store_url == "sqlite:///data/ledger.db"
    with Experiment(ws, "attached").start_logging() as run:
        run.tag("where", "project")
    ws.flush()
    assert (project / "data" / "ledger.db").is_file()

    listed = make_runner().invoke(cli, ["run", "list", "-e", "attached"])
    assert listed.exit_code == 0, listed.stderr
    assert [r["runId"] for r in json.loads(listed.stdout)] == [run.id]

    # The console script, in another process, in that folder: the same ledger.
    completed = subprocess.run([*runledger_command(), "run", "show", "-r", run.id],
                               cwd=project / "src", capture_output=True, text=True,
                               timeout=120, check=False,
                               env={k: v for k, v in os.environ.items()
                                    if not k.startswith("RUNLEDGER_")})
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["tags"] == {"where": "project"}


def test_attach_without_store_uses_the_folders_embedded_ledger(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    attach("-w", "solo")
    assert json.loads((tmp_path / ".runledger" / "config.json").read_text()) == {"name": "solo"}
    elsewhere = tmp_path.parent
    monkeypatch.chdir(elsewhere)
    ws = Workspace.from_config(tmp_path)
    assert ws.name == "solo"
    assert ws.store_url == f"sqlite:///{tmp_path / '.runledger' / 'ledger.db'}"


def test_attach_another_folder_with_path_rewrites_a_relative_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(tmp_path)
    # Relative to the current folder on the command line, as every --store is ...
    attach("-w", "ws", "--path", str(project), "--store", "sqlite:///shared/ledger.db?timeout=5")
    data = json.loads((project / ".runledger" / "config.json").read_text())
    # ... and relative to the attached folder in the file (which stays movable with it).
    assert data["store"] == "sqlite:///../shared/ledger.db?timeout=5"
    monkeypatch.chdir(project)
    ws = Workspace.from_config()
    assert ws._store.path == (tmp_path / "shared" / "ledger.db").resolve()


def test_attach_updates_the_file_in_place(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # A runledger.json is found first by the search order: attach updates it, keeping its keys.
    (tmp_path / "runledger.json").write_text(json.dumps({"store": "sqlite:///x.db",
                                                         "note": "kept"}))
    attach("-w", "renamed")
    assert json.loads((tmp_path / "runledger.json").read_text()) == {
        "name": "renamed", "note": "kept", "store": "sqlite:///x.db"}
    assert not (tmp_path / ".runledger").exists()
    attach("-w", "renamed", "--store", "sqlite:////abs/ledger.db")
    assert json.loads((tmp_path / "runledger.json").read_text())["store"] == (
        "sqlite:////abs/ledger.db")
    assert Workspace.from_config().name == "renamed"


def test_attach_refuses_bad_input_and_writes_nothing(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = tmp_path / "project"
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    runner = make_runner()
    missing_name = runner.invoke(cli, ["folder", "attach"])
    assert missing_name.exit_code == 2 and "--workspace-name" in missing_name.stderr
    bad_store = runner.invoke(cli, ["folder", "attach", "-w", "ws", "--store", "bogus://"])
    assert bad_store.exit_code == 1 and bad_store.stderr.startswith("Error: Unknown store URL")
    no_folder = runner.invoke(cli, ["folder", "attach", "-w", "ws", "--path", "missing"])
    assert no_folder.exit_code == 2
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "runledger.json").write_text("{not json")
    broken = runner.invoke(cli, ["folder", "attach", "-w", "ws"])
    assert broken.exit_code == 1 and "runledger.json" in broken.stderr
    assert (tmp_path / "runledger.json").read_text() == "{not json"
