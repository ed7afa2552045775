"""``runledger --help`` starts fast: the commands are loaded lazily, and printing help or the
version imports neither the SDK, eventsourcing nor rich."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import click
import pytest
from click.testing import CliRunner

from ledger.cli.lazy import LazyGroup, walk_commands
from ledger.cli.main import cli

HEAVY = ("ledger.sdk", "eventsourcing", "rich", "projections", "ledger.application",
         "ledger.studio", "starlette", "uvicorn", "jinja2")

# Runs the CLI in a fresh interpreter, then reports which heavy modules it imported.
PROBE = textwrap.dedent("""
    import json, sys
    from ledger.cli.main import cli
    try:
        cli(sys.argv[2:], prog_name="runledger")
    except SystemExit as end:
        code = end.code
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("eventsourcing", "rich",
                   "projections", "starlette", "uvicorn", "jinja2")
                   or m.startswith(("ledger.sdk", "ledger.application", "ledger.studio")))
    with open(sys.argv[1], "w") as out:
        json.dump({"code": code, "heavy": heavy}, out)
""")


def imported_by(tmp_path: object, *args: str) -> dict[str, object]:
    report = f"{tmp_path}/modules.json"
    completed = subprocess.run([sys.executable, "-c", PROBE, report, *args],
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.stderr == ""
    with open(report) as handle:
        result: dict[str, object] = json.load(handle)
    result["stdout"] = completed.stdout
    return result


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["run", "--help"],
                                  ["experiment", "--help"], ["projections", "--help"]])
def test_help_and_version_import_no_sdk_eventsourcing_or_rich(tmp_path: object,
                                                              args: list[str]) -> None:
    result = imported_by(tmp_path, *args)
    assert result["code"] == 0
    assert result["heavy"] == []
    assert "Usage: runledger" in str(result["stdout"]) or "version" in str(result["stdout"])


def test_a_command_imports_its_module_when_invoked(tmp_path: object) -> None:
    # The probe itself must see the SDK when it is used, or the test above proves nothing.
    result = imported_by(tmp_path, "--store", "memory://", "experiment", "list")
    assert result["code"] == 0
    assert "ledger.sdk.workspace" in result["heavy"]  # type: ignore[operator]


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import PackageNotFoundError, version

    expected = None
    for name in ("runledger-ml", "runledger"):
        try:
            expected = version(name)
            break
        except PackageNotFoundError:
            continue
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"runledger, version {expected}\n"


def lazy_groups() -> list[tuple[str, LazyGroup]]:
    return [(path, command) for path, command in walk_commands(cli)
            if isinstance(command, LazyGroup)]


def test_each_table_short_help_is_the_commands_first_sentence() -> None:
    mismatched = []
    for path, group in lazy_groups():
        for name in group.lazy_commands:
            listed = group.placeholder(name).get_short_help_str(10_000)
            actual = group.load(name).get_short_help_str(10_000)
            if listed != actual:
                mismatched.append(f"{path} {name}: table {listed!r}, command {actual!r}")
    assert mismatched == []


def test_group_help_is_the_same_before_and_after_the_commands_are_loaded() -> None:
    helps = {}
    for path, _group in lazy_groups():
        args = [*path.split()[1:], "--help"]
        fresh = subprocess.run([sys.executable, "-m", "ledger.cli", *args], capture_output=True,
                               text=True, timeout=120, check=False,
                               env={"COLUMNS": "100", "PATH": ""})
        helps[path] = fresh.stdout
    for path, _group in lazy_groups():  # walk_commands has loaded every command here
        # click's width in the subprocess: min(COLUMNS, max_content_width=100) - 2
        loaded = CliRunner().invoke(cli, [*path.split()[1:], "--help"], terminal_width=98)
        assert loaded.output == helps[path], path


def test_a_lazy_entry_that_is_not_a_command_is_refused() -> None:
    group = LazyGroup("g", lazy_commands={"bad": ("ledger.cli.main:CONTEXT_SETTINGS", "Bad.")})
    with pytest.raises(TypeError, match="not a click command"):
        group.load("bad")


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["run", "nope"])
    assert result.exit_code == 2
    assert "No such command 'nope'" in result.output


def test_every_listed_command_exists() -> None:
    for path, group in lazy_groups():
        with click.Context(group, info_name=path, help_option_names=["-h", "--help"]) as ctx:
            for name in group.list_commands(ctx):
                assert group.get_command(ctx, name) is not None, f"{path} {name}"
