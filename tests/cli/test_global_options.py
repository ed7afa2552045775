"""The Azure CLI's global options: exit codes, ``--debug``, ``--verbose``, ``--only-show-errors``,
and ``-g/--resource-group``, ``--subscription-id``, ``--path`` accepted and ignored."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest

from ledger import Run, Workspace
from ledger.cli import access
from ledger.cli.boundary import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from ledger.cli.main import cli
from tests.cli.conftest import Invoke, make_runner, stdout_json
from tests.cli.test_entry_point import runledger_command


# ---------------------------------------------------------------------------- exit codes
def test_exit_code_0_ok(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    result = invoke("run", "show", "-r", seed_runs["fantastic"])
    assert result.exit_code == EXIT_OK == 0
    assert result.stderr == ""


def test_exit_code_1_error(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    result = invoke("run", "cancel", "-r", seed_runs["fantastic"])  # it is Completed
    assert result.exit_code == EXIT_ERROR == 1
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1


def test_exit_code_2_usage(invoke: Invoke) -> None:
    result = invoke("run", "show", "--no-such-option")
    assert result.exit_code == EXIT_USAGE == 2
    assert "Error: No such option" in result.stderr


def test_exit_code_3_run_or_experiment_not_found(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    for args in (["run", "show", "-r", "no-such-run"], ["run", "list", "-e", "no-such-exp"],
                 ["run", "show", "-r", seed_runs["fantastic"], "-e", "other-experiment"]):
        result = invoke(*args)
        assert result.exit_code == EXIT_NOT_FOUND == 3, args
        assert result.stderr.startswith("Error: ") and "not found" in result.stderr


def test_exit_codes_of_the_console_script(store: str, seed_runs: dict[str, str]) -> None:
    def code(*args: str) -> int:
        return subprocess.run([*runledger_command(), "--store", store, *args],
                              capture_output=True, timeout=120, check=False).returncode

    assert code("run", "show", "-r", seed_runs["plain"]) == 0
    assert code("run", "cancel", "-r", seed_runs["plain"]) == 1
    assert code("run", "show", "--bogus") == 2
    assert code("run", "list", "-e", "nope") == 3


# ---------------------------------------------------------------------------- --debug
def test_debug_shows_the_traceback_and_debug_logging(invoke: Invoke) -> None:
    result = invoke("--debug", "run", "show", "-r", "no-such-run")
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.stderr
    assert "RunNotFoundError" in result.stderr
    assert result.stderr.splitlines()[-1] == "Error: Run 'no-such-run' was not found in this ledger"
    assert "DEBUG: runledger.cli: command line: runledger --store " in result.stderr


def test_debug_per_command_and_no_traceback_without_it(invoke: Invoke) -> None:
    assert "Traceback" in invoke("run", "show", "-r", "nope", "--debug").stderr
    plain = invoke("run", "show", "-r", "nope")
    assert plain.stderr == "Error: Run 'nope' was not found in this ledger\n"


def test_debug_output_keeps_stdout_clean(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    result = invoke("--debug", "run", "show", "-r", seed_runs["plain"])
    assert json.loads(result.stdout)["runId"] == seed_runs["plain"]
    assert "DEBUG: " in result.stderr


# ---------------------------------------------------------------------------- --verbose
def test_verbose_names_the_store_and_the_configuration_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("RUNLEDGER_")]:
        monkeypatch.delenv(name)
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "runledger.json").write_text(json.dumps({"store": "sqlite:///team.db",
                                                        "name": "team"}))
    monkeypatch.chdir(project / "sub")
    runner = make_runner()
    for args in (["--verbose", "experiment", "list"], ["experiment", "list", "--verbose"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == []
        assert (f"INFO: Store sqlite:///team.db (from the configuration file "
                f"'{project / 'runledger.json'}'), workspace 'team'") in result.stderr
        assert f"INFO: Configuration file: {project / 'runledger.json'}" in result.stderr
    quiet = runner.invoke(cli, ["experiment", "list"])
    assert quiet.stderr == ""


def test_verbose_names_a_store_given_by_option_or_environment(
        store: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    runner = make_runner()
    result = runner.invoke(cli, ["--store", store, "--verbose", "experiment", "list"])
    assert "(from --store)" in result.stderr
    monkeypatch.setenv("RUNLEDGER_STORE", store)
    result = runner.invoke(cli, ["--verbose", "experiment", "list"])
    assert "(from $RUNLEDGER_STORE)" in result.stderr


# ---------------------------------------------------------------------------- --only-show-errors
def test_only_show_errors_hides_warnings(invoke: Invoke, seed_runs: dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    opened = access.open_workspace

    def open_with_a_warning() -> Workspace:
        # As the SDK warns when a background flush failed and will be retried.
        logging.getLogger("runledger").warning("runledger: something to know")
        return opened()

    monkeypatch.setattr(access, "open_workspace", open_with_a_warning)
    shown = invoke("run", "show", "-r", seed_runs["plain"])
    assert shown.exit_code == 0
    assert shown.stderr == "WARNING: runledger: something to know\n"
    for args in (["--only-show-errors", "run", "show", "-r", seed_runs["plain"]],
                 ["run", "show", "-r", seed_runs["plain"], "--only-show-errors"]):
        hidden = invoke(*args)
        assert hidden.exit_code == 0
        assert hidden.stderr == ""
    error = invoke("--only-show-errors", "run", "show", "-r", "nope")
    assert error.stderr == "Error: Run 'nope' was not found in this ledger\n"


def test_logging_configuration_is_restored_after_each_invocation(invoke: Invoke) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    own = logging.getLogger("runledger").level
    invoke("--debug", "--verbose", "experiment", "list")
    assert root.handlers == handlers and root.level == level
    assert logging.getLogger("runledger").level == own


# ---------------------------------------------------------------------------- ignored az options
def test_azure_options_are_accepted_and_ignored(invoke: Invoke,
                                                seed_runs: dict[str, str]) -> None:
    plain = stdout_json(invoke("run", "show", "-r", seed_runs["plain"]))
    ported = stdout_json(invoke(
        "run", "show", "-r", seed_runs["plain"], "-w", "ws", "-g", "my-rg",
        "--subscription-id", "00000000-0000-0000-0000-000000000000", "--path", "."))
    assert ported == plain
    rooted = stdout_json(invoke("-g", "my-rg", "--resource-group", "rg2", "--subscription-id",
                                "sub", "run", "list", "-e", "experiment"))
    assert [r["runId"] for r in rooted] == [r["runId"] for r in stdout_json(
        invoke("run", "list", "-e", "experiment"))]


def test_ported_az_ml_cancel_line(invoke: Invoke, seed_runs: dict[str, str],
                                  workspace: Workspace) -> None:
    # az ml run cancel -r RUN_ID -w WORKSPACE -e EXPERIMENT -g RESOURCE_GROUP --subscription-id ID
    result = invoke("run", "cancel", "-r", seed_runs["running"], "-w", "workspace_name", "-e",
                    "experiment", "-g", "rg", "--subscription-id", "sub")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Experiment run canceled successfully.\n"
    assert Run.get(workspace, seed_runs["running"]).get_status() == "Canceled"
