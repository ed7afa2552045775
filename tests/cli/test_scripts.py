"""``runledger run submit-script`` and ``run monitor-logs``: real script runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import Experiment, Run, Workspace
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
    assert invoke("run", "monitor-logs", "-r", "missing").exit_code == 3  # no such run


def test_monitor_logs_never_opens_a_path_read_from_the_ledger(
        invoke: Invoke, workspace: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not print me\n")
    with Experiment(workspace, "experiment").start_logging() as run:
        # What an older runledger recorded, or what anyone who can write a run can set.
        run.add_properties({"runledger.log_file": str(secret)})
    result = invoke("run", "monitor-logs", "-r", run.id)
    assert result.exit_code == 0
    assert str(secret) in result.stdout and "not read" in result.stdout
    assert "do not print me" not in result.stdout


def test_monitor_logs_reads_the_logs_through_the_store(invoke: Invoke,
                                                       workspace: Workspace) -> None:
    from ledger.application import LedgerApplication
    from ledger.persistence.store import parse_store_url
    from ledger.sdk.files import LogAppender

    run = Experiment(workspace, "experiment").start_logging()
    run.complete()
    store = workspace._store
    other = LedgerApplication(store if store.kind == "memory" else parse_store_url(store.url))
    try:  # another process (the supervisor) appends, in parts, a character split between two
        appender = LogAppender(other, run.id)
        appender.append("azureml-logs/70_driver_log.txt", b"line from a, caf" + b"\xc3")
        appender.append("azureml-logs/70_driver_log.txt", b"\xa9\n")
        appender.append("azureml-logs/60_control_log.txt", "héllo from b\n".encode())
    finally:
        other.close()
    result = invoke("run", "monitor-logs", "-r", run.id)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ("\n==> azureml-logs/70_driver_log.txt <==\nline from a, café\n"
                             "\n==> azureml-logs/60_control_log.txt <==\nhéllo from b\n")
