"""``LedgerSettings`` (``ledger.config``): resolved once per workspace from the store URL, the
configuration file and the environment; bad values are typed errors naming the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import Experiment, StoreConfigError, Workspace
from ledger.config import find_config_file, resolve_settings


@pytest.mark.parametrize(("name", "value"), [
    ("RUNLEDGER_FLUSH_INTERVAL", "abc"),
    ("RUNLEDGER_FLUSH_INTERVAL", "-1"),
    ("RUNLEDGER_FLUSH_INTERVAL", "nan"),
    ("RUNLEDGER_METRIC_BATCH", "1.5"),
    ("RUNLEDGER_METRIC_BATCH", "0"),
])
def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                    name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(StoreConfigError, match=name):
        Workspace(store="memory://")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("RUNLEDGER_FLUSH_INTERVAL", "0.25")
    monkeypatch.setenv("RUNLEDGER_METRIC_BATCH", "7")
    monkeypatch.setenv("RUNLEDGER_USER", "alice")
    monkeypatch.setenv("RUNLEDGER_SQLITE_SYNCHRONOUS", "FULL")
    settings = resolve_settings(f"sqlite:///{tmp_path / 'l.db'}")
    assert (settings.flush_interval, settings.metric_batch, settings.user) == (0.25, 7, "alice")
    assert settings.store.env["SQLITE_SYNCHRONOUS"] == "FULL"
    ws = Workspace(store="memory://")
    run = Experiment(ws, "who").start_logging()
    run.complete()
    assert run.get_details()["submittedBy"] == "alice"
    assert {e.actor.user for e in run.get_history()} == {"alice"}


def test_the_url_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("RUNLEDGER_SQLITE_SYNCHRONOUS", "FULL")
    settings = resolve_settings(f"sqlite:///{tmp_path / 'l.db'}?synchronous=NORMAL")
    assert settings.store.env["SQLITE_SYNCHRONOUS"] == "NORMAL"


def test_the_workspace_names_its_configuration_file() -> None:
    file = Path.cwd() / "runledger.json"
    file.write_text(json.dumps({"store": "memory://", "name": "team"}))
    ws = Workspace.from_config()
    assert ws.config_file == file
    assert str(file) in repr(ws)
    assert Workspace(store="memory://").config_file is None


def test_the_search_stops_at_the_home_folder(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home" / "me"
    project = home / "project" / "src"
    project.mkdir(parents=True)
    (tmp_path / "home" / "runledger.json").write_text("{}")  # above home: never read
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(project)
    assert find_config_file() is None
    (home / "runledger.json").write_text("{}")  # home itself is searched
    assert find_config_file() == home / "runledger.json"


def test_a_driver_that_fails_to_load_is_one_error_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "psycopg"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('libpq library not found')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(broken.parent), str(Path(__file__).resolve().parents[2])])}
    result = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "experiment", "list",
         "--store", "postgresql://postgres@127.0.0.1:5432/test"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "Error: Cannot open the store postgresql://postgres@127.0.0.1:5432/test: its database "
        "driver does not load (ImportError: libpq library not found); install it with "
        "pip install 'runledger-ml[postgres]'"]
