"""``runledger run submit-script`` and ``run monitor-logs``: real script runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import Experiment, Run, Workspace
from ledger.sdk.waiting import LogFollower
from tests.cli.conftest import Invoke, stdout_json


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A source folder with ``train.py`` (prints its arguments) and ``crash.py`` (exits 3)."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text(
        "import sys\nprint('training with', sys.argv[1:], flush=True)\n")
    (folder / "crash.py").write_text("import sys\nprint('about to crash')\nsys.exit(3)\n")
    return folder


def test_submit_script_waits_and_records_the_runconfig(invoke: Invoke, source: Path,
                                                       workspace: Workspace) -> None:
    result = invoke("run", "submit-script", "-c", "sklearn", "-e", "testexperiment",
                    "--source-directory", str(source), "train.py", "--alpha", "0.5")
    assert result.exit_code == 0, result.stderr
    assert "RunId:" in result.stdout and "Execution Summary" in result.stdout
    run_id = result.stdout.split("RunId: ", 1)[1].split()[0]
    run = Run.get(workspace, run_id)
    assert run.get_status() == "Completed"
    assert run.experiment.name == "testexperiment"
    assert run.get_properties()["runledger.runconfig"] == "sklearn"
    assert '"status": "Completed"' in result.stdout

    logs = invoke("run", "monitor-logs", "-r", run_id)
    assert logs.exit_code == 0, logs.stderr
    assert "training with ['--alpha', '0.5']" in logs.stdout


def test_submit_script_async_returns_at_once(invoke: Invoke, source: Path,
                                             workspace: Workspace) -> None:
    details = stdout_json(invoke("run", "submit-script", "-e", "testexperiment", "--async",
                                 "--source-directory", str(source), "train.py"))
    assert details["runType"] == "azureml.scriptrun"
    assert details["status"] in {"Starting", "Running", "Completed"}
    waited = stdout_json(invoke("run", "wait", "-r", details["runId"]))
    assert waited["status"] == "Completed"


def test_submit_script_failure_exits_1(invoke: Invoke, source: Path) -> None:
    result = invoke("run", "submit-script", "-e", "testexperiment", "--source-directory",
                    str(source), "crash.py")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Run '") and "failed" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_submit_script_errors(invoke: Invoke, source: Path) -> None:
    result = invoke("run", "submit-script", "-e", "testexperiment", "--source-directory",
                    str(source), "missing.py")
    assert result.exit_code == 1
    assert "missing.py" in result.stderr and "Traceback" not in result.stderr
    assert invoke("run", "submit-script", "train.py").exit_code == 2  # no -e


def test_monitor_logs_without_logs(invoke: Invoke, workspace: Workspace) -> None:
    with Experiment(workspace, "experiment").start_logging() as run:
        pass
    result = invoke("run", "monitor-logs", "-r", run.id)
    assert result.exit_code == 0
    assert result.stdout == f"Run {run.id} has no log files.\n"
    assert invoke("run", "monitor-logs", "-r", "missing").exit_code == 3


def test_monitor_logs_follows_details_log_files(invoke: Invoke, workspace: Workspace,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("line from a\n")
    second.write_text("héllo from b\n")
    with Experiment(workspace, "experiment").start_logging() as run:
        pass
    details = run.get_details()
    details["logFiles"] = {"a": str(first), "b": f"file://{second}"}
    monkeypatch.setattr(Run, "get_details", lambda self: details)
    result = invoke("run", "monitor-logs", "-r", run.id)
    assert result.stdout == "\n==> a <==\nline from a\n\n==> b <==\nhéllo from b\n"


def test_follower_reads_only_what_was_appended(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    follower = LogFollower(path)
    assert follower.read_new() == ""  # not there yet
    path.write_bytes(b"caf" + "é".encode()[:1])
    assert follower.read_new() == "caf"  # half a character waits for the rest
    with path.open("ab") as handle:
        handle.write("é".encode()[1:] + b"!\n")
    assert follower.read_new() == "é!\n"
    assert follower.read_new() == ""
