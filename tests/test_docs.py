"""The examples of README.md and docs/*.md run as written, so the docs cannot drift from the code.

- Every fenced ```` ```python ```` block runs, in order, sharing one namespace per file, in a
  fresh process whose current folder is an empty temporary folder and whose environment holds no
  ``RUNLEDGER_*`` variable: ``Workspace.from_config()`` gives the embedded default store of that
  folder. A failure names the file and line. Blocks fenced ```` ```text ```` (or with no
  language) are not run: that is how a doc shows what cannot run offline.
- Every ``runledger ...`` command line of a ```` ```bash ````/```` ```console ````/```` ```sh ````
  block, and every inline ```` `runledger ...` ```` code span, must parse: it is run with
  ``--help`` inserted after its command (so an unknown command or option fails, and nothing runs).
- The command lines of a file with Python examples that name no placeholder (``ID``, ``FILE``,
  ``RUN_ID``...) also run for real, after its Python blocks, in their folder, through the
  ``runledger`` console script; they must succeed.

(The seed document's CLI examples are run by ``tests/cli/test_run_commands.py`` and its Python
examples by ``tests/ledger/test_seed_examples.py``.)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from markdown_it import MarkdownIt
from markdown_it.token import Token

from ledger.cli.main import cli
from tests.cli.test_entry_point import runledger_command

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "console", "sh", "shell", "shell-session"}
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.\.\.)?$|^\.\.\.$")

# Runs the Python blocks given as JSON [[file, line, code], ...] in one namespace; a failure's
# traceback points at the line of the Markdown file.
RUNNER = textwrap.dedent("""
    import json, sys
    namespace = {"__name__": "__main__"}
    for file, line, code in json.load(sys.stdin):
        exec(compile("\\n" * line + code, file, "exec"), namespace)
""")


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@cache
def _tokens(path: Path) -> list[Token]:
    return MarkdownIt().parse(path.read_text(encoding="utf-8"))


def _language(token: Token) -> str:
    return token.info.split()[0] if token.info.split() else ""


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """The ```python blocks of a Markdown file: (the number of lines before the code, code)."""
    return [(tok.map[0] + 1, tok.content) for tok in _tokens(path)
            if tok.type == "fence" and tok.map and _language(tok) == "python"]


def command_lines(path: Path) -> list[tuple[int, str]]:
    """The ``runledger ...`` command lines of the shell blocks and inline code of a file, with
    their line numbers."""
    found: list[tuple[int, str]] = []
    for tok in _tokens(path):
        if not tok.map:
            continue
        if tok.type == "fence" and _language(tok) in SHELL_LANGUAGES:
            for offset, line in enumerate(tok.content.replace("\\\n", " ").splitlines()):
                line = line.strip().removeprefix("$ ")
                if line.startswith("runledger "):
                    found.append((tok.map[0] + 2 + offset, line))
        elif tok.type == "inline":
            for child in tok.children or []:
                if child.type == "code_inline" and child.content.startswith("runledger "):
                    found.append((tok.map[0] + 1, child.content))
    return found


def _arguments(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    for stop in ("|", "&&", ";", ">"):  # only the runledger command of a pipeline
        if stop in words:
            words = words[:words.index(stop)]
    return words[1:]


def _with_help(args: list[str]) -> list[str]:
    """The arguments with ``--help`` inserted after the command they name."""
    command: click.Command = cli
    at = 0
    for index, word in enumerate(args):
        if isinstance(command, click.Group):
            with click.Context(command) as ctx:
                if word in command.list_commands(ctx):
                    sub = command.get_command(ctx, word)
                    if sub is not None:
                        command, at = sub, index + 1
    if isinstance(command, click.Group):  # no leaf command named: click must resolve the rest
        return [*args, "--help"]
    # After the leaf's name, before its arguments: a script's own arguments (submit-script) are
    # never reached, and an unknown option still fails to parse.
    return [*args[:at], "--help", *args[at:]]


def _clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}


PYTHON_DOCS = [d for d in DOCS if python_blocks(d)]
COMMAND_LINES = [(d, n, line) for d in DOCS for n, line in command_lines(d)]


def runs_for_real(line: str) -> bool:
    """True for a command line that names no placeholder (run after the file's examples)."""
    return not any(PLACEHOLDER.match(word) for word in _arguments(line))


def test_the_docs_have_examples() -> None:
    assert ROOT / "README.md" in PYTHON_DOCS  # or the README's code block stopped being checked
    readme_lines = [line for d, _, line in COMMAND_LINES if d.name == "README.md"]
    assert any(runs_for_real(line) for line in readme_lines)
    assert not all(runs_for_real(line) for line in readme_lines)  # `-r ID`: parsed only


def test_a_failing_example_is_reported_at_its_line_of_the_doc() -> None:
    blocks = [["doc.md", 3, "x = 1\n"], ["doc.md", 9, "y = x\nraise ValueError(y)\n"]]
    completed = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(blocks),
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 1
    assert 'File "doc.md", line 11' in completed.stderr and "ValueError: 1" in completed.stderr


@pytest.mark.parametrize("doc", PYTHON_DOCS, ids=_relative)
def test_python_examples_run(doc: Path, tmp_path: Path) -> None:
    folder = tmp_path / "example"
    folder.mkdir()
    blocks = [[_relative(doc), line, code] for line, code in python_blocks(doc)]
    completed = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(blocks),
                               cwd=folder, env=_clean_environment(), capture_output=True,
                               text=True, timeout=300, check=False)
    assert completed.returncode == 0, (
        f"a ```python example of {_relative(doc)} failed:\n{completed.stderr}")
    # The command lines of the file that need no placeholder run for real on what it made.
    for line_number, line in command_lines(doc):
        if not runs_for_real(line):
            continue
        ran = subprocess.run([*runledger_command(), *_arguments(line)], cwd=folder,
                             env=_clean_environment(), capture_output=True, text=True,
                             timeout=120, check=False)
        assert ran.returncode == 0, f"{_relative(doc)}:{line_number}: {line}\n{ran.stderr}"


@pytest.mark.parametrize(("doc", "line_number", "line"), COMMAND_LINES,
                         ids=[f"{_relative(d)}:{n}" for d, n, _ in COMMAND_LINES])
def test_command_lines_parse(doc: Path, line_number: int, line: str) -> None:
    args = _with_help(_arguments(line))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, f"{_relative(doc)}:{line_number}: {line}\n{result.output}"
    assert "Usage: runledger" in result.output


def test_an_unknown_option_in_a_doc_line_would_fail() -> None:
    # The check above would catch a renamed option or command (not just print help).
    assert CliRunner().invoke(cli, _with_help(["run", "list", "--no-such"])).exit_code == 2
    assert CliRunner().invoke(cli, _with_help(["run", "lst"])).exit_code == 2
