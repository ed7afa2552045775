"""Where the ledger is: ``Workspace.from_config()``, configuration files and store URLs.

Documented in ``ledger.config``: with no configuration anywhere, ``from_config()`` uses the
embedded default ``./.runledger/ledger.db`` of the current folder; otherwise ``path``, then
``RUNLEDGER_CONFIG``, then ``runledger.json`` before ``.runledger/config.json`` in the current
folder and then each parent. Relative SQLite paths in a file are relative to the file's folder (to
the folder holding ``.runledger/`` for ``.runledger/config.json``). ``RUNLEDGER_STORE`` overrides
the store of any file. Bad URLs and unreadable files raise ``StoreConfigError``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger import Experiment, LedgerError, Run, StoreConfigError, Workspace


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def store_file(ws: Workspace) -> Path:
    """The SQLite file a workspace writes to."""
    assert ws._store.path is not None
    return ws._store.path


def make_a_run(ws: Workspace) -> str:
    run = Experiment(ws, "cfg").start_logging()
    run.complete()
    return run.id


def test_no_config_uses_the_embedded_default_in_cwd(tmp_path: Path) -> None:
    cwd = Path.cwd()
    ws = Workspace.from_config()
    run_id = make_a_run(ws)
    assert store_file(ws) == (cwd / ".runledger" / "ledger.db").resolve()
    assert (cwd / ".runledger" / "ledger.db").is_file()
    assert ws.name == "default"
    assert Run.get(Workspace.from_config(), run_id).get_status() == "Completed"


def test_workspace_without_arguments_follows_the_same_rules() -> None:
    ws = Workspace()
    make_a_run(ws)
    assert store_file(ws) == (Path.cwd() / ".runledger" / "ledger.db").resolve()


def test_runledger_json_in_cwd(tmp_path: Path) -> None:
    write_json(Path.cwd() / "runledger.json", {"store": "sqlite:///data/team.db", "name": "team"})
    ws = Workspace.from_config()
    make_a_run(ws)
    assert store_file(ws) == (Path.cwd() / "data" / "team.db").resolve()
    assert (Path.cwd() / "data" / "team.db").is_file()
    assert ws.name == "team"
    assert not (Path.cwd() / ".runledger" / "ledger.db").exists()


def test_dot_runledger_config_json_is_relative_to_the_folder_holding_it() -> None:
    write_json(Path.cwd() / ".runledger" / "config.json", {"store": "sqlite:///stores/x.db"})
    ws = Workspace.from_config()
    assert store_file(ws) == (Path.cwd() / "stores" / "x.db").resolve()


def test_runledger_json_wins_over_dot_runledger_config_json() -> None:
    write_json(Path.cwd() / ".runledger" / "config.json", {"store": "sqlite:///second.db"})
    write_json(Path.cwd() / "runledger.json", {"store": "sqlite:///first.db"})
    assert store_file(Workspace.from_config()) == (Path.cwd() / "first.db").resolve()


def test_a_parent_folders_config_is_found_and_paths_are_relative_to_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    project = Path.cwd()
    write_json(project / "runledger.json", {"store": "sqlite:///ledgers/main.db"})
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    ws = Workspace.from_config()
    assert store_file(ws) == (project / "ledgers" / "main.db").resolve()


def test_the_nearest_config_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    project = Path.cwd()
    write_json(project / "runledger.json", {"store": "sqlite:///outer.db"})
    inner = project / "inner"
    write_json(inner / ".runledger" / "config.json", {"store": "sqlite:///inner.db"})
    monkeypatch.chdir(inner)
    assert store_file(Workspace.from_config()) == (inner / "inner.db").resolve()


def test_an_absolute_path_in_a_config(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "abs.db"
    write_json(Path.cwd() / "runledger.json", {"store": f"sqlite:///{target}"})
    assert store_file(Workspace.from_config()) == target.resolve()


def test_from_config_with_a_path(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    write_json(folder / "runledger.json", {"store": "sqlite:///by-folder.db"})
    assert store_file(Workspace.from_config(folder)) == (folder / "by-folder.db").resolve()
    file = write_json(tmp_path / "named.json", {"store": "sqlite:///by-file.db"})
    assert store_file(Workspace.from_config(path=str(file))) == (
        tmp_path / "by-file.db").resolve()


def test_from_config_with_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError, match="no-such"):
        Workspace.from_config(tmp_path / "no-such")


def test_runledger_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(Path.cwd() / "runledger.json", {"store": "sqlite:///cwd.db"})
    file = write_json(tmp_path / "env" / "conf.json", {"store": "sqlite:///env.db"})
    monkeypatch.setenv("RUNLEDGER_CONFIG", str(file))
    assert store_file(Workspace.from_config()) == (tmp_path / "env" / "env.db").resolve()


def test_runledger_store_overrides_config_files(store_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(Path.cwd() / "runledger.json", {"store": "sqlite:///from-file.db",
                                               "name": "named"})
    monkeypatch.setenv("RUNLEDGER_STORE", store_url)
    ws = Workspace.from_config()
    assert ws._store.url == store_url
    assert ws.name == "named"
    run_id = make_a_run(ws)
    assert Run.get(ws, run_id).get_status() == "Completed"
    assert not (Path.cwd() / "from-file.db").exists()


def test_runledger_store_without_any_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLEDGER_STORE", f"sqlite:///{tmp_path / 'env-only.db'}")
    for ws in (Workspace.from_config(), Workspace()):
        assert store_file(ws) == (tmp_path / "env-only.db").resolve()
    assert not (Path.cwd() / ".runledger").exists()


def test_an_explicit_store_wins_over_the_environment(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLEDGER_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    ws = Workspace(store=f"sqlite:///{tmp_path / 'explicit.db'}")
    assert store_file(ws) == (tmp_path / "explicit.db").resolve()


def test_memory_store_writes_no_file_and_is_private() -> None:
    first = Workspace(store="memory://")
    run_id = make_a_run(first)
    assert Run.get(first, run_id).get_status() == "Completed"
    assert not (Path.cwd() / ".runledger").exists()
    # start_logging() makes ./outputs, as the seed does; nothing else is written.
    assert list(Path.cwd().iterdir()) == [Path.cwd() / "outputs"]
    assert list((Path.cwd() / "outputs").iterdir()) == []
    second = Workspace(store="memory://")
    with pytest.raises(LedgerError):
        Run.get(second, run_id)


def test_sqlite_url_with_a_relative_path_is_relative_to_cwd() -> None:
    ws = Workspace(store="sqlite:///rel/ledger.db")
    make_a_run(ws)
    assert (Path.cwd() / "rel" / "ledger.db").is_file()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"store": "ftp://x/y"}',
                                     '{"store": "sqlite:///a.db?bogus=1"}'],
                         ids=["not-json", "not-an-object", "bad-scheme", "bad-option"])
def test_bad_config_files(content: str) -> None:
    (Path.cwd() / "runledger.json").write_text(content, encoding="utf-8")
    with pytest.raises(StoreConfigError) as caught:
        Workspace.from_config()
    assert isinstance(caught.value, LedgerError)


@pytest.mark.parametrize("url", ["", "nonsense", "ftp://host/x", "sqlite://host/x.db",
                                 "sqlite:///", "sqlite:///a.db?timeout=soon",
                                 "sqlite:///a.db?synchronous=FAST", "postgresql://host/"],
                         ids=["empty", "no-scheme", "ftp", "netloc", "no-file", "timeout",
                              "synchronous", "no-database"])
def test_bad_store_urls_raise_store_config_error(url: str) -> None:
    with pytest.raises(StoreConfigError):
        Workspace(store=url)


def test_bad_store_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLEDGER_STORE", "mysql://nope/db")
    with pytest.raises(StoreConfigError, match="mysql"):
        Workspace.from_config()


# ---------------------------------------------------------------------------------- discovery
def test_discovery_stops_at_the_home_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    outside = Path.cwd()
    write_json(outside / "runledger.json", {"store": "sqlite:///planted.db"})  # above home
    home = outside / "home" / "alice"
    project = home / "project"
    project.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(project)
    ws = Workspace.from_config()
    assert store_file(ws) == (project / ".runledger" / "ledger.db").resolve()
    assert ws.config_file is None
    write_json(home / "runledger.json", {"store": "sqlite:///mine.db"})  # home itself: found
    assert store_file(Workspace.from_config()) == (home / "mine.db").resolve()


def test_discovery_stops_at_a_filesystem_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    import ledger.config as config

    parent = Path.cwd()
    write_json(parent / "runledger.json", {"store": "sqlite:///other-device.db"})
    mounted = parent / "mnt"
    mounted.mkdir()
    monkeypatch.chdir(mounted)
    real = config._device
    monkeypatch.setattr(config, "_device", lambda d: -1 if d == parent.resolve() else real(d))
    assert Workspace.from_config().config_file is None


def test_the_config_file_used_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from ledger.cli.main import cli

    project = Path.cwd()
    found = write_json(project / "runledger.json", {"store": "sqlite:///named.db"})
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert f"config_file='{found.resolve()}'" in repr(Workspace())
    assert f"config_file='{found.resolve()}'" in repr(Workspace.from_config())
    assert "config_file=" not in repr(Workspace(store="memory://"))
    result = CliRunner().invoke(cli, ["run", "list", "--verbose"], catch_exceptions=False)
    assert result.exit_code == 0
    assert f"Configuration file: {found.resolve()}" in result.output
