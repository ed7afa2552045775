"""Submitted script runs: the seed document's examples with ``ScriptRunConfig`` and
``Experiment.submit()``, run for real (a supervisor process and a script process per run).

Every test copies the scripts of ``tests/ledger/scripts/`` into its working folder, so
``ScriptRunConfig(source_directory='.', ...)`` reads as in the seed document.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger import (
    Experiment,
    Run,
    RunFailedError,
    RunNotFoundError,
    ScriptRunConfig,
    ValidationError,
    Workspace,
)
from ledger.domain.names import PROP_LOG_FILE, PROP_SCRIPT_PID, PROP_SUPERVISOR_PID
from ledger.sdk.context import context_run
from ledger.sdk.script import (
    pid_alive,
    running_supervisors,
)

SCRIPTS = Path(__file__).parent / "scripts"
REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT_ID = re.compile(r"^explore-runs_\d{10}_[0-9a-f]{8}$")


def _has_run_index() -> bool:
    try:
        import projections.index  # noqa: F401
    except ImportError:
        return False
    return True


needs_index = pytest.mark.skipif(
    not _has_run_index(), reason="projections.index (get_children) is not available yet")


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.05)


# Every supervisor a test started must have exited after it (tests/ledger/conftest.py).
pytestmark = pytest.mark.usefixtures("no_leftover_supervisors")


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace in an SQLite file, the test scripts in the working folder."""
    for name in ("RUNLEDGER_RUN_ID", "RUNLEDGER_EXPERIMENT", "RUNLEDGER_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    for script in SCRIPTS.glob("*.py"):
        shutil.copy(script, Path.cwd() / script.name)
    return Workspace(store=f"sqlite:///{tmp_path / 'ledger.db'}")


@pytest.fixture
def exp(ws: Workspace) -> Experiment:
    """The seed's experiment."""
    return Experiment(workspace=ws, name="explore-runs")


def script_pid(run: Run) -> int:
    """The pid of a run's script, once its supervisor has recorded it."""
    wait_until(lambda: PROP_SCRIPT_PID in run.get_properties(), what="the script's pid")
    return int(str(run.get_properties()[PROP_SCRIPT_PID]))


def heartbeats() -> int:
    path = Path("heartbeat.txt")
    return len(path.read_text().splitlines()) if path.exists() else 0


def assert_really_stopped(run: Run) -> None:
    """The script of ``run`` is gone and writes no more heartbeats."""
    pid = script_pid(run)
    wait_until(lambda: not pid_alive(pid), timeout=5, what=f"script pid {pid} to exit")
    beats = heartbeats()
    time.sleep(0.4)  # four heartbeats' time
    assert heartbeats() == beats, "the canceled script still writes heartbeats"


def wait_for_heartbeat() -> None:
    wait_until(lambda: heartbeats() > 0 and Path("hello_with_delay.pid").exists(),
               what="the script's first heartbeat")


# ---------------------------------------------------------------------------------- ScriptRunConfig
def test_script_run_config_validation(ws: Workspace) -> None:
    with pytest.raises(ValidationError, match="script"):
        ScriptRunConfig(source_directory=".")
    with pytest.raises(ValidationError, match="must be a list"):
        ScriptRunConfig(".", "child.py", arguments="--fruit Apple")
    with pytest.raises(ValidationError, match="unknown keyword"):
        ScriptRunConfig(".", "child.py", compute="gpu")
    assert ScriptRunConfig(".", "child.py").target == "local"
    assert ScriptRunConfig(".", "child.py",
                           compute_target=ws.compute_targets["gpu-cluster"]).target == "gpu-cluster"

    exp = Experiment(ws, "explore-runs")
    with pytest.raises(ValidationError, match="ScriptRunConfig"):
        exp.submit("child.py")
    with pytest.raises(ValidationError, match="not found"):
        exp.submit(ScriptRunConfig(source_directory=".", script="missing.py"))
    with pytest.raises(ValidationError, match="not a folder"):
        exp.submit(ScriptRunConfig(source_directory="no-such-dir", script="child.py"))
    memory = Experiment(Workspace(store="memory://"), "explore-runs")
    with pytest.raises(ValidationError, match="memory://"):
        memory.submit(ScriptRunConfig(source_directory=".", script="child.py"))


# ---------------------------------------------------------------------------------- submit
def test_submit_runs_the_script_and_completes_it(exp: Experiment) -> None:
    src = ScriptRunConfig(source_directory=".", script="child.py", arguments=["--fruit", "Kiwi"],
                          compute_target="gpu-cluster")
    run = exp.submit(src, tags={"fruit": "kiwi"})

    assert SCRIPT_ID.match(run.id), run.id
    assert run.type == "azureml.scriptrun"
    assert run.get_status() in ("Starting", "Running")
    assert run.get_tags() == {"fruit": "kiwi"}
    details = run.wait_for_completion()
    assert details["status"] == "Completed"
    assert details["target"] == "gpu-cluster"
    assert "endTimeUtc" in details and "startTimeUtc" in details
    assert run.get_metrics() == {"fruit": "Kiwi"}  # no parent: nothing else logged
    assert "azureml-logs/70_driver_log.txt" in run.get_file_names()
    log = run.read_file("azureml-logs/70_driver_log.txt").decode()
    assert f"child {run.id}: Kiwi" in log
    assert PROP_LOG_FILE not in run.get_properties()  # no host path in the ledger


def test_cancel_stops_the_script(exp: Experiment, capsys: pytest.CaptureFixture[str]) -> None:
    # The seed: submit, print the status, cancel, print the status.
    src = ScriptRunConfig(source_directory=".", script="hello_with_delay.py")
    local_run = exp.submit(src)
    print(local_run.get_status())
    wait_for_heartbeat()

    local_run.cancel()
    print(local_run.get_status())

    first, second = capsys.readouterr().out.split()
    assert first in ("Starting", "Running")
    assert second == "Canceled"
    assert local_run.get_status() == "Canceled"
    assert_really_stopped(local_run)
    assert "Hello from" in local_run.read_file("azureml-logs/70_driver_log.txt").decode()


def test_cancel_right_after_submit(exp: Experiment) -> None:
    local_run = exp.submit(ScriptRunConfig(source_directory=".", script="hello_with_delay.py"))
    local_run.cancel()
    assert local_run.get_status() == "Canceled"
    time.sleep(0.3)
    assert local_run.get_status() == "Canceled"


def test_fail_from_the_submitter_stops_the_script(exp: Experiment) -> None:
    src = ScriptRunConfig(source_directory=".", script="hello_with_delay.py")
    local_run = exp.submit(src)
    wait_for_heartbeat()

    local_run.fail()
    print(local_run.get_status())

    assert local_run.get_status() == "Failed"
    assert_really_stopped(local_run)
    wait_until(lambda: not running_supervisors(), what="the supervisor to exit")
    assert local_run.get_status() == "Failed"  # the supervisor left it as it was
    assert local_run.get_details()["error"]["error"]["code"] == "UserError"


def test_cancel_when_the_supervisor_is_gone(exp: Experiment) -> None:
    local_run = exp.submit(ScriptRunConfig(source_directory=".", script="hello_with_delay.py"))
    wait_for_heartbeat()
    pid = script_pid(local_run)
    supervisor = int(str(local_run.get_properties()[PROP_SUPERVISOR_PID]))
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not running_supervisors(), what="the supervisor to die")

    started = time.monotonic()
    local_run.cancel()
    assert time.monotonic() - started < 5
    assert local_run.get_status() == "Canceled"
    assert not pid_alive(pid)
    assert_really_stopped(local_run)


def test_failing_script(exp: Experiment) -> None:
    run = exp.submit(ScriptRunConfig(source_directory=".", script="failing.py"))
    with pytest.raises(RunFailedError, match="bad training data") as raised:
        run.wait_for_completion(raise_on_error=True)
    assert raised.value.run_id == run.id
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    error = details["error"]["error"]
    assert error["code"] == "ScriptExecution.ExitCode"
    assert "exit code 1" in error["message"]
    assert error["message"].endswith("ValueError: bad training data")
    assert error["exceptionType"] == "ValueError"
    assert run.get_metrics() == {"loss": 0.5}  # logged before the crash, flushed at exit
    log = run.read_file("azureml-logs/70_driver_log.txt").decode()
    assert "training..." in log and "Traceback" in log


def test_script_that_completes_its_own_run_is_not_killed(exp: Experiment) -> None:
    run = exp.submit(ScriptRunConfig(source_directory=".", script="completes_itself.py"))
    assert run.wait_for_completion()["status"] == "Completed"
    wait_until(lambda: not running_supervisors(), what="the supervisor to exit")
    assert Path("after_complete.txt").read_text() == "Completed"
    assert run.get_metrics() == {"accuracy": 0.9}


def test_max_run_duration_cancels(exp: Experiment) -> None:
    run = exp.submit(ScriptRunConfig(source_directory=".", script="hello_with_delay.py",
                                     max_run_duration_seconds=0.5))
    run.wait_for_completion(wait_post_processing=True)
    assert run.get_status() == "Canceled"
    assert_really_stopped(run)


def test_run_finalized_after_the_submitter_exits(ws: Workspace, exp: Experiment,
                                                 tmp_path: Path) -> None:
    submitter = textwrap.dedent(f"""
        from ledger import Experiment, ScriptRunConfig, Workspace
        ws = Workspace(store={f"sqlite:///{tmp_path / 'ledger.db'}"!r})
        run = Experiment(ws, "explore-runs").submit(
            ScriptRunConfig(source_directory=".", script="finish_later.py"))
        print(run.id)
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-c", submitter], env=env, capture_output=True,
                          text=True, timeout=20, check=True)
    run = Run.get(ws, done.stdout.strip())
    assert run.get_status() in ("Starting", "Running")  # the submitter is gone, the run is not

    assert run.wait_for_completion()["status"] == "Completed"
    assert run.get_metrics() == {"finished": 1}
    supervisor = int(str(run.get_properties()[PROP_SUPERVISOR_PID]))
    wait_until(lambda: not pid_alive(supervisor), what="the detached supervisor to exit")


# ---------------------------------------------------------------------------------- children
@needs_index
def test_hello_with_children(exp: Experiment, capsys: pytest.CaptureFixture[str]) -> None:
    src = ScriptRunConfig(source_directory=".", script="hello_with_children.py")

    local_run = exp.submit(src)
    local_run.wait_for_completion(show_output=True)
    print(local_run.get_status())

    out = capsys.readouterr().out
    assert f"RunId: {local_run.id}" in out and "Execution Summary" in out
    assert out.rstrip().endswith("Completed")
    children = list(local_run.get_children())
    assert len(children) == 5
    assert {c.get_status() for c in children} == {"Completed"}
    assert {c.type for c in children} == {"experiment_run"}
    assert sorted(c.get_metrics()["Hello from child run"] for c in children) == [0, 1, 2, 3, 4]
    assert all(c.parent is not None and c.parent.id == local_run.id for c in children)


@needs_index
def test_parent_submits_child_scripts(exp: Experiment) -> None:
    run = exp.submit(ScriptRunConfig(source_directory=".", script="parent.py"))
    details = run.wait_for_completion()

    assert details["status"] == "Completed"
    metrics = run.get_metrics()
    assert metrics["Status"] == ["Launching Apple", "Launching Banana", "Launching Orange"]
    assert metrics["children_done"] == 3
    children = list(run.get_children())
    assert len(children) == 3
    for child in children:
        assert SCRIPT_ID.match(child.id)
        assert child.type == "azureml.scriptrun"
        child_details = child.get_details()
        assert child_details["status"] == "Completed"
        assert child_details["target"] == "gpu-cluster"
        assert child.get_metrics()["parent_id"] == run.id  # child_run.parent.id, from inside
    assert sorted(c.get_metrics()["fruit"] for c in children) == ["Apple", "Banana", "Orange"]


@needs_index
def test_submit_child_from_the_submitting_process(exp: Experiment) -> None:
    with exp.start_logging() as parent_run:
        child = parent_run.submit_child(ScriptRunConfig(".", "child.py",
                                                        arguments=["--fruit", "Fig"]))
        assert child.parent is not None and child.parent.id == parent_run.id
        child.wait_for_completion()
    assert child.get_metrics() == {"parent_id": parent_run.id, "fruit": "Fig"}
    assert [c.id for c in parent_run.get_children()] == [child.id]


# ---------------------------------------------------------------------------------- get_context
def test_get_context_outside_a_script(ws: Workspace) -> None:
    with pytest.raises(RunNotFoundError, match="not a submitted script"):
        Run.get_context(allow_offline=False)
    run = Run.get_context()
    assert run is Run.get_context()
    assert run.experiment.name == "offline"
    assert run.get_status() == "Running"
    run.log("offline", 1)
    run.complete()
    assert Path(".runledger/ledger.db").exists()  # Workspace.from_config()'s default store


def test_get_context_in_a_submitted_process(ws: Workspace, exp: Experiment,
                                            monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    submitted = exp.start_logging()
    submitted.flush()
    monkeypatch.setenv("RUNLEDGER_RUN_ID", submitted.id)
    monkeypatch.setenv("RUNLEDGER_STORE", f"sqlite:///{tmp_path / 'ledger.db'}")
    run = context_run()
    assert run.id == submitted.id and run is context_run()
    monkeypatch.setenv("RUNLEDGER_RUN_ID", "no-such-run")
    with pytest.raises(RunNotFoundError):
        context_run()
    submitted.complete()
