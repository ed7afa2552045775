"""The ``-o`` formats and ``--query``, on plain data and through a command."""

from __future__ import annotations

import json
import sys

import click
import pytest

from ledger.cli import output
from tests.cli.conftest import Invoke

RUNS = [
    {"runId": "b", "status": "Completed", "number": 2, "tags": {"q": "x"}, "ok": True},
    {"runId": "a", "status": "Failed", "number": 1, "parentRunId": "b", "ok": None},
]


def test_json_is_indented_by_2_with_sorted_keys() -> None:
    text = output.render({"b": 1, "a": {"d": 2, "c": 3}}, "json")
    assert text == '{\n  "a": {\n    "c": 3,\n    "d": 2\n  },\n  "b": 1\n}'


def test_jsonc_off_a_terminal_is_json() -> None:
    assert output.render(RUNS, "jsonc") == output.render(RUNS, "json")


def test_table_keeps_the_top_level_scalars_as_columns() -> None:
    lines = (output.render(RUNS, "table") or "").splitlines()
    assert lines[0].split() == ["runId", "status", "number", "ok", "parentRunId"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["b", "Completed", "2", "true"]
    assert lines[3].split() == ["a", "Failed", "1", "b"]
    assert "tags" not in lines[0]


def test_table_of_scalars_and_of_lists() -> None:
    assert output.render(["x", "y"], "table") == "Result\n------\nx\ny"
    assert (output.render([["a", 1], ["b", 2]], "table")
            == "Column1  Column2\n-------  -------\na        1\nb        2")


def test_tsv_has_no_header_and_the_same_columns_on_every_line() -> None:
    lines = (output.render(RUNS, "tsv") or "").split("\n")
    # Sorted keys: number, ok, parentRunId, runId, status (tags is nested: left out).
    assert lines == ["2\ttrue\t\tb\tCompleted", "1\t\tb\ta\tFailed"]


def test_tsv_of_lists_scalars_and_escapes() -> None:
    assert output.render([["a", 1, None], ["b", 2.5, False]], "tsv") == "a\t1\t\nb\t2.5\tfalse"
    assert output.render("one", "tsv") == "one"
    assert output.render({"k": "tab\there\nnewline"}, "tsv") == "tab\\there\\nnewline"


def test_yaml_sorts_keys() -> None:
    pytest.importorskip("yaml")
    assert output.render({"b": [1, 2], "a": "x"}, "yaml") == "a: x\nb:\n- 1\n- 2"


def test_yaml_without_pyyaml_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(click.ClickException, match=r"needs PyYAML.*runledger-ml\[yaml\]"):
        output.render({"a": 1}, "yaml")


def test_none_prints_nothing() -> None:
    assert output.render(RUNS, "none") is None


def test_query_is_applied_before_formatting() -> None:
    assert output.apply_query(RUNS, "[?status=='Failed'].runId") == ["a"]
    assert output.apply_query(RUNS, None) is RUNS
    with pytest.raises(click.UsageError, match="Invalid JMESPath"):
        output.apply_query(RUNS, "[?status==")


def test_table_on_a_terminal_is_drawn_by_rich(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(output, "_stdout_is_terminal", lambda: True)
    output.emit(RUNS, "table")
    text = capsys.readouterr().out
    assert "runId" in text and "Completed" in text
    assert "━" in text or "─" in text  # rich's box drawing


def test_rich_table_shows_markup_as_it_is(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(output, "_stdout_is_terminal", lambda: True)
    output.emit([{"[b]name": "[red]value[/red]"}], "table")
    text = capsys.readouterr().out
    assert "[b]name" in text and "[red]value[/red]" in text


def test_jsonc_on_a_terminal_is_still_json(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(output, "_stdout_is_terminal", lambda: True)
    output.emit({"b": 1, "a": 2}, "jsonc")
    assert json.loads(capsys.readouterr().out) == {"a": 2, "b": 1}


# ---------------------------------------------------------------------------------- commands
@pytest.mark.parametrize("fmt", ["json", "jsonc", "table", "tsv", "yaml", "none"])
def test_every_format_through_a_command(invoke: Invoke, seed_runs: dict[str, str],
                                        fmt: str) -> None:
    if fmt == "yaml":
        pytest.importorskip("yaml")
    result = invoke("run", "show", "-r", seed_runs["fantastic"], "-o", fmt)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    if fmt == "none":
        assert text == ""
    elif fmt in ("json", "jsonc"):
        assert text.startswith('{\n  "createdTimeUtc"')
        assert json.loads(text)["runId"] == seed_runs["fantastic"]
    elif fmt == "table":
        assert text.splitlines()[0].split()[:3] == ["runId", "experimentName", "runType"]
        assert "fantastic run" not in text  # tags are nested
    elif fmt == "tsv":
        assert "\t" in text and seed_runs["fantastic"] in text
        assert "runId" not in text
    else:
        assert f"runId: {seed_runs['fantastic']}" in text


def test_output_options_on_the_root_or_the_command(invoke: Invoke,
                                                   seed_runs: dict[str, str]) -> None:
    run_id = seed_runs["fantastic"]
    on_root = invoke("-o", "tsv", "--query", "status", "run", "show", "-r", run_id)
    on_command = invoke("run", "show", "-r", run_id, "-o", "tsv", "--query", "status")
    assert on_root.stdout == on_command.stdout == "Completed\n"
    # The command's value wins.
    both = invoke("-o", "table", "run", "show", "-r", run_id, "-o", "tsv", "--query", "number")
    assert both.stdout == "1\n"


def test_bad_query_and_bad_format_are_usage_errors(invoke: Invoke,
                                                   seed_runs: dict[str, str]) -> None:
    result = invoke("run", "show", "-r", seed_runs["fantastic"], "--query", "[?")
    assert result.exit_code == 2
    assert "Invalid JMESPath" in result.stderr
    result = invoke("run", "show", "-r", seed_runs["fantastic"], "-o", "xml")
    assert result.exit_code == 2
