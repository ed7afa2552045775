"""Bad command lines end with one ``Error:`` line and the documented exit code, never a traceback.

The exit codes are the Azure CLI's (``ledger.cli.boundary``): 1 error, 2 usage, 3 a run or
experiment that does not exist. Most lines run in-process (click's runner: an exception escaping
the command would be ``result.exception``); those whose subject is the process itself (bytes
that are not UTF-8 in ``argv``, environment values, configuration files, a closed pipe) run the
real console script.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import Experiment, Workspace
from ledger.cli.main import cli
from tests.cli.conftest import make_runner
from tests.cli.test_entry_point import runledger_command

ERROR, USAGE, NOT_FOUND = 1, 2, 3

# (command line after `runledger --store STORE`, exit code). RID is a Completed run, RUNNING a
# Running one; garbage.rlx, empty.rlx and the folder adir exist in the current folder.
BAD_LINES: list[tuple[list[str], int]] = [
    # wrong commands, flags and option values
    (["bogus"], USAGE),
    (["run", "bogus"], USAGE),
    (["run", "show"], USAGE),
    (["run", "show", "-r"], USAGE),
    (["run", "list", "--bogus"], USAGE),
    (["run", "list", "--last", "abc"], USAGE),
    (["run", "list", "--last", "-5"], USAGE),
    (["run", "list", "--status", "Sleeping"], USAGE),
    (["run", "list", "--tags", "=x"], USAGE),
    (["run", "list", "--properties", "=x"], USAGE),
    (["run", "history", "-r", "RID", "--metrics=x"], USAGE),
    (["run", "submit-script", "missing.py"], USAGE),
    (["run", "update", "-r", "RID"], USAGE),
    (["run", "update", "-r", "RID", "--add-property", "=x"], USAGE),
    (["run", "update", "-r", "RID", "--add-property", "k"], USAGE),
    (["run", "update", "-r", "RID", "--add-tag", "a", "--remove-tag", "a"], USAGE),
    (["run", "update", "-r", "RID", "--add-tag", "k=1", "--add-tag", "k=2"], USAGE),
    (["experiment", "list", "--bogus"], USAGE),
    (["projections", "rebuild", "--bogus"], USAGE),
    (["folder", "attach"], USAGE),
    (["folder", "attach", "-w", "ws", "--path", "/nonexistent"], USAGE),
    (["--verbose=yes", "run", "list"], USAGE),
    # bad output format and JMESPath
    (["run", "list", "-o", "xml"], USAGE),
    (["run", "list", "--output", "csv"], USAGE),
    (["run", "list", "--query", "[?"], USAGE),
    (["run", "list", "[?"], USAGE),
    (["run", "list", "-e", "exp", "--query", "foo(@)"], USAGE),
    (["run", "show", "-r", "RID", "--query", "[?a"], USAGE),
    (["run", "list", "-e", "exp", "[0]", "--query", "[1]"], USAGE),
    # values the ledger refuses
    (["run", "list", "--tags", "a", "--tags", "a"], ERROR),
    (["run", "update", "-r", "RID", "--display-name", ""], ERROR),
    (["run", "update", "-r", "RID", "--add-tag", "x=\x00"], ERROR),
    (["run", "update", "-r", "RID", "--add-tag", "k" * 300], ERROR),
    (["run", "update", "-r", "RID", "--add-property", "k=" + "v" * 9000], ERROR),
    (["run", "cancel", "-r", "RID"], ERROR),
    (["run", "submit-script", "-e", "exp", "missing.py"], ERROR),
    (["run", "submit-script", "-e", "\x00", "missing.py"], ERROR),
    (["run", "submit-script", "-e", "exp", "--source-directory", "/nonexistent", "x.py"], ERROR),
    # lone surrogates: bytes that are not UTF-8 as Python decodes them from argv
    (["run", "update", "-r", "RID", "--add-tag", "x=\udcff"], USAGE),
    (["run", "show", "-r", "\ud800"], USAGE),
    # missing runs and experiments
    (["run", "show", "-r", "nope"], NOT_FOUND),
    (["run", "show", "-r", "RID", "-e", "other"], NOT_FOUND),
    (["run", "list", "-e", "nope"], NOT_FOUND),
    (["run", "list", "--parent-run-id", "nope"], NOT_FOUND),
    (["run", "update", "-r", "nope", "--add-tag", "a"], NOT_FOUND),
    (["run", "cancel", "-r", "nope"], NOT_FOUND),
    (["run", "wait", "-r", "nope"], NOT_FOUND),
    (["run", "metrics", "-r", "nope"], NOT_FOUND),
    (["run", "history", "-r", "nope"], NOT_FOUND),
    (["run", "monitor-logs", "-r", "nope"], NOT_FOUND),
    # files: missing, unwritable, not an export
    (["export"], USAGE),
    (["export", "adir"], USAGE),
    (["export", "/nonexistent/dir/ledger.rlx"], ERROR),
    (["import"], USAGE),
    (["import", "missing.rlx"], USAGE),
    (["import", "adir"], USAGE),
    (["import", "garbage.rlx"], ERROR),
    (["import", "empty.rlx"], ERROR),
    # bad store URLs (replacing the prepared one)
    (["--store", "bogus://x", "run", "list"], ERROR),
    (["--store", "", "run", "list"], ERROR),
    (["--store", "sqlite://host/x.db", "run", "list"], ERROR),
    (["--store", "sqlite:////proc/no-such-dir/ledger.db", "run", "list"], ERROR),
    (["--store", "sqlite:///adir", "run", "list"], ERROR),
    (["--store", "sqlite:///garbage.rlx", "run", "list"], ERROR),
    (["--store", "sqlite:///x.db?timeout=abc", "run", "list"], ERROR),
    (["--store", "sqlite:///x.db?bogus=1", "run", "list"], ERROR),
    (["--store", "postgresql://u@localhost:abc/db", "run", "list"], ERROR),
    (["--store", "postgresql://u@localhost:99999/db", "run", "list"], ERROR),
    (["--store", "postgresql://u@localhost/", "run", "list"], ERROR),
    (["folder", "attach", "-w", "ws", "--store", "bogus://"], ERROR),
]


Prepared = tuple[Path, str, dict[str, str]]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    """A folder holding a SQLite ledger (a Completed and a Running run of experiment ``exp``)
    and the files the bad lines name; returns the folder, the store URL and the run ids."""
    folder = tmp_path_factory.mktemp("bad-lines")
    store = f"sqlite:///{folder / 'ledger.db'}"
    ws = Workspace(store=store)
    with Experiment(ws, "exp").start_logging() as run:
        run.log("loss", 0.5)
    running = Experiment(ws, "exp").start_logging()
    ws.flush()
    (folder / "garbage.rlx").write_bytes(b"\x00\x01 not an export")
    (folder / "empty.rlx").write_bytes(b"")
    (folder / "adir").mkdir()
    yield folder, store, {"RID": run.id, "RUNNING": running.id}


def _ids(case: tuple[list[str], int]) -> str:
    return " ".join(case[0])[:60].encode("ascii", "backslashreplace").decode() or "empty"


@pytest.mark.parametrize("case", BAD_LINES, ids=[_ids(c) for c in BAD_LINES])
def test_bad_command_line(case: tuple[list[str], int], prepared: Prepared,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    args, expected = case
    folder, store, ids = prepared
    monkeypatch.chdir(folder)
    for name in [n for n in os.environ if n.startswith("RUNLEDGER_")]:
        monkeypatch.delenv(name)
    line = ["--store", store, *[ids.get(a, a) for a in args]]
    result = make_runner().invoke(cli, line)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception))
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.exit_code == expected, result.stderr
    error_lines = [x for x in result.stderr.splitlines() if x.startswith("Error: ")]
    assert len(error_lines) == 1, result.stderr
    if expected != USAGE:  # a usage error also prints the usage lines, as click does
        assert result.stderr == error_lines[0] + "\n"


def run_console(args: list[str | bytes], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    return subprocess.run([*runledger_command(), *args], cwd=cwd, env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=False)


# (argv after the command, environment, configuration file content, exit code)
PROCESS_LINES: dict[str, tuple[list[str | bytes], dict[str, str], bytes | None, int]] = {
    "argv-not-utf8": ([b"run", b"show", b"-r", b"\xff\xfe"], {}, None, USAGE),
    "command-not-utf8": ([b"\xff"], {}, None, USAGE),
    "flush-interval-abc": (["run", "list"], {"RUNLEDGER_FLUSH_INTERVAL": "abc"}, None, ERROR),
    "synchronous-bogus": (["run", "list"], {"RUNLEDGER_SQLITE_SYNCHRONOUS": "bogus"}, None,
                          ERROR),
    "store-env-bogus": (["run", "list"], {"RUNLEDGER_STORE": "bogus://"}, None, ERROR),
    "config-env-missing": (["run", "list"], {"RUNLEDGER_CONFIG": "/nonexistent.json"}, None,
                           ERROR),
    "config-not-json": (["run", "list"], {}, b"{not json", ERROR),
    "config-not-utf8": (["run", "list"], {}, b'{"name": "\xff"}', ERROR),
    "config-not-object": (["run", "list"], {}, b"[1, 2]", ERROR),
    "config-store-int": (["run", "list"], {}, b'{"store": 5}', ERROR),
    "config-store-bad": (["run", "list"], {}, b'{"store": "bogus://"}', ERROR),
}


@pytest.mark.parametrize("case", sorted(PROCESS_LINES))
def test_bad_process_input(case: str, tmp_path: Path) -> None:
    args, env, config, expected = PROCESS_LINES[case]
    if config is not None:
        (tmp_path / "runledger.json").write_bytes(config)
    completed = run_console(args, tmp_path, **env)
    assert "Traceback" not in completed.stderr
    assert completed.returncode == expected, completed.stderr
    assert [x for x in completed.stderr.splitlines() if x.startswith("Error: ")] != []
    if expected != USAGE:
        assert len(completed.stderr.splitlines()) == 1, completed.stderr


def test_a_closed_output_pipe_is_no_traceback(tmp_path: Path) -> None:
    ws = Workspace(store=f"sqlite:///{tmp_path / 'ledger.db'}")
    for _ in range(30):
        with Experiment(ws, "exp").start_logging() as run:
            run.tag("quality", "x" * 200)
    ws.flush()
    process = subprocess.Popen(
        [*runledger_command(), "--store", f"sqlite:///{tmp_path / 'ledger.db'}", "run", "list"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader went away, as `runledger run list | head -1` does
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=120) == ERROR
    assert "Traceback" not in stderr


def test_the_list_is_about_sixty_lines() -> None:
    assert len(BAD_LINES) + len(PROCESS_LINES) >= 60
    assert {code for _, code in BAD_LINES} == {ERROR, USAGE, NOT_FOUND}


def test_debug_shows_the_traceback_of_the_same_errors(
        prepared: Prepared, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, store, _ = prepared
    monkeypatch.chdir(folder)
    for args, expected in [(["run", "show", "-r", "nope"], NOT_FOUND),
                           (["export", "/nonexistent/dir/ledger.rlx"], ERROR),
                           (["--store", "postgresql://u@localhost:abc/db", "run", "list"], ERROR)]:
        result = make_runner().invoke(cli, ["--store", store, "--debug", *args])
        assert result.exit_code == expected
        assert "Traceback (most recent call last)" in result.stderr
        assert result.stderr.splitlines()[-1].startswith("Error: ")
