"""``docs/compatibility.md`` is true: every member it marks supported (or supported with a
documented difference) exists on runledger's class and is used by at least one test, and every
CLI command it marks so exists and is invoked by a test.

A member counts as used when a test source (other than this file) accesses it as ``.member`` or,
for a constructor row ``Class(...)``, calls ``Class(``; a CLI command when a test invokes it as
``"group", "command"``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest

from ledger import Experiment, Run, ScriptRunConfig, Workspace
from ledger.cli.main import cli
from ledger.environment import Environment
from ledger.runconfig import RunConfiguration

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "compatibility.md"
STATUSES = {"supported", "difference", "out of scope", "pending"}
CHECKED = {"supported", "difference"}
# A sample of each class, for the members the seed makes instance attributes.
SAMPLES: dict[str, Any] = {
    "Workspace": Workspace, "Experiment": Experiment, "Run": Run,
    "ScriptRunConfig": ScriptRunConfig(".", "train.py"), "Environment": Environment("sample"),
    "RunConfiguration": RunConfiguration(),
}
CLASSES = {"Workspace": Workspace, "Experiment": Experiment, "Run": Run,
           "ScriptRunConfig": ScriptRunConfig, "Environment": Environment,
           "RunConfiguration": RunConfiguration}


def sections() -> dict[str, list[tuple[list[str], str, str]]]:
    """``{section title: [(names, status, notes)]}`` of the member tables."""
    found: dict[str, list[tuple[list[str], str, str]]] = {}
    current: str | None = None
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            found[current] = []
            continue
        if current is None or not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        names = re.findall(r"`([^`]+)`", cells[0])
        found[current].append((names, cells[1], cells[2]))
    return found


def read_test_sources() -> str:
    here = Path(__file__).resolve()
    return "\n".join(path.read_text(encoding="utf-8")
                     for path in (ROOT / "tests").rglob("*.py") if path.resolve() != here)


SECTIONS = sections()
SOURCES = read_test_sources()
MEMBER_ROWS = [(title, name, status) for title, rows in SECTIONS.items() if title in CLASSES
               for names, status, _notes in rows for name in names]
CLI_ROWS = [(name, status, notes) for title, rows in SECTIONS.items() if title.startswith("The CLI")
            for names, status, notes in rows for name in names]


def test_the_table_covers_every_class_and_the_cli() -> None:
    assert set(CLASSES) <= set(SECTIONS)
    assert CLI_ROWS
    for title, rows in SECTIONS.items():
        assert rows, title
        for names, status, notes in rows:
            assert status in STATUSES, (title, names, status)
            if status != "supported":
                assert notes, f"{title} {names}: a {status} row must say why"


@pytest.mark.parametrize(("title", "name", "status"), MEMBER_ROWS,
                         ids=[f"{t}.{n}" for t, n, _s in MEMBER_ROWS])
def test_a_supported_member_exists_and_is_tested(title: str, name: str, status: str) -> None:
    if status not in CHECKED:
        return
    if "(" in name:  # the constructor row: Class(arguments...)
        assert name.split("(", 1)[0] == title, name
        assert re.search(rf"\b{title}\(", SOURCES) is not None, f"no test calls {title}(...)"
        return
    assert hasattr(SAMPLES[title], name) or hasattr(CLASSES[title], name), \
        f"{title}.{name} is marked {status} but does not exist"
    assert re.search(rf"\.{re.escape(name)}\b", SOURCES) is not None, \
        f"{title}.{name} is marked {status} but no test uses it"


@pytest.mark.parametrize(("name", "status", "notes"), CLI_ROWS, ids=[r[0] for r in CLI_ROWS])
def test_a_supported_cli_command_exists_and_is_tested(name: str, status: str, notes: str) -> None:
    if status not in CHECKED:
        return
    words = name.split()
    assert words[:2] == ["az", "ml"], name
    group, command = words[2], words[3]
    assert f"runledger {group} {command}" in notes
    ctx = click.Context(cli)
    found = cli.get_command(ctx, group)
    assert isinstance(found, click.Group), group
    assert found.get_command(ctx, command) is not None, f"runledger {group} {command}"
    assert re.search(rf"[\"']{group}[\"'],\s*[\"']{command}[\"']", SOURCES), \
        f"no test invokes runledger {group} {command}"
