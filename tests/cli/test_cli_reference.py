"""``docs/cli.md`` is the ``--help`` of every command as the code renders it today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ledger.cli.lazy import walk_commands
from ledger.cli.main import cli
from ledger.cli.reference import REGENERATE, reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
START = "]]] -->\n"
END = "<!-- [[[end]]] -->"


def generated_part() -> str:
    text = DOC.read_text(encoding="utf-8")
    begin = text.index(START, text.index("<!-- [[[cog")) + len(START)
    return text[begin:text.index(END, begin)]


def test_the_cli_reference_is_up_to_date() -> None:
    assert generated_part() == reference(), (
        f"docs/cli.md is out of date with the commands' --help: regenerate it with "
        f"`{REGENERATE}` (pip install cogapp) and commit it")


def test_the_reference_documents_every_command() -> None:
    sections = {line[3:] for line in generated_part().splitlines() if line.startswith("## ")}
    assert {path for path, _ in walk_commands(cli)} <= sections


def test_the_help_in_the_reference_is_what_the_command_prints(tmp_path: Path) -> None:
    section = generated_part().split("## runledger run list\n", 1)[1]
    documented = section.split("```text\n", 1)[1].split("```", 1)[0]
    printed = subprocess.run([sys.executable, "-m", "ledger.cli", "run", "list", "--help"],
                             capture_output=True, text=True, timeout=120, check=True,
                             env={"COLUMNS": "120", "PATH": ""}).stdout
    assert documented == printed


def test_cog_itself_finds_the_file_up_to_date() -> None:
    pytest.importorskip("cogapp", reason="cogapp is not installed (pip install -e '.[dev]')")
    completed = subprocess.run([sys.executable, "-m", "cogapp", "--check", str(DOC)],
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, (completed.stdout, completed.stderr,
                                       f"regenerate with `{REGENERATE}`")
