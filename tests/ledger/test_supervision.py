"""Supervision of submitted scripts: heartbeats, NotResponding, cancel without a supervisor, and
pids that were reused (real supervisors and scripts, on SQLite)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger import Experiment, ScriptRunConfig, Workspace
from ledger.sdk.processes import same_process, start_time
from ledger.sdk.run import SCRIPT_RUN_TYPE, Run
from ledger.sdk.script import (
    PROP_SCRIPT_PID,
    PROP_SCRIPT_STARTED,
    PROP_SUPERVISOR_HOST,
    PROP_SUPERVISOR_PID,
    PROP_SUPERVISOR_STARTED,
    running_supervisors,
)

SCRIPTS = Path(__file__).parent / "scripts"
BEAT = 0.2  # seconds between heartbeats in these tests: NotResponding after 3 * 0.2 + 2 s


# Every supervisor a test started must have exited after it (tests/ledger/conftest.py).
pytestmark = pytest.mark.usefixtures("no_leftover_supervisors")


@pytest.fixture
def exp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Experiment:
    for name in ("RUNLEDGER_RUN_ID", "RUNLEDGER_EXPERIMENT", "RUNLEDGER_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNLEDGER_HEARTBEAT_INTERVAL", str(BEAT))
    for script in SCRIPTS.glob("*.py"):
        shutil.copy(script, Path.cwd() / script.name)
    return Experiment(Workspace(store=f"sqlite:///{tmp_path / 'ledger.db'}"), "supervision")


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def running_script(exp: Experiment) -> tuple[Run, int, int]:
    run = exp.submit(ScriptRunConfig(source_directory=".", script="hello_with_delay.py"))
    wait_until(lambda: PROP_SCRIPT_PID in run.get_properties() and run.get_status() == "Running"
               and Path("hello_with_delay.pid").exists(), what="the script to run")
    properties = run.get_properties()
    return run, int(str(properties[PROP_SUPERVISOR_PID])), int(str(properties[PROP_SCRIPT_PID]))


def test_a_dead_supervisor_shows_not_responding_and_cancel_still_stops_the_tree(
        exp: Experiment) -> None:
    run, supervisor, script = running_script(exp)
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not running_supervisors(), what="the supervisor to die")
    wait_until(lambda: run.get_status() == "NotResponding", timeout=3 * BEAT + 5,
               what="NotResponding")
    noticed = [e for e in run.get_history() if e.kind == "StatusChanged"
               and e.payload["status"] == "NotResponding"]
    assert len(noticed) == 1 and noticed[0].actor.pid == os.getpid()  # who noticed, audited
    assert same_process(script, None) is not None  # the script itself still runs
    run.cancel()
    assert run.get_status() == "Canceled"
    assert same_process(script, None) is None  # gone when cancel() returned


def test_a_paused_supervisor_is_not_responding_then_running_again(exp: Experiment) -> None:
    run, supervisor, _script = running_script(exp)
    os.kill(supervisor, signal.SIGSTOP)
    try:
        wait_until(lambda: run.get_status() == "NotResponding", timeout=3 * BEAT + 5,
                   what="NotResponding")
    finally:
        os.kill(supervisor, signal.SIGCONT)
    wait_until(lambda: run.get_status() == "Running", what="Running again")
    run.cancel()
    assert run.get_status() == "Canceled"


@pytest.mark.parametrize("attempt", range(10))
def test_cancel_returns_only_when_the_orphaned_script_is_gone(exp: Experiment,
                                                              attempt: int) -> None:
    run, supervisor, script = running_script(exp)
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not running_supervisors(), what="the supervisor to die")
    run.cancel()
    assert same_process(script, None) is None
    beats = Path("heartbeat.txt").read_text().count("\n")
    time.sleep(0.3)
    assert Path("heartbeat.txt").read_text().count("\n") == beats


def test_a_reused_pid_is_never_signalled(exp: Experiment) -> None:
    # An unrelated process now holds the pids the run recorded (its supervisor's and script's),
    # but it started at another time than the recorded ones.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 start_new_session=True)
    try:
        started = start_time(bystander.pid)
        assert started is not None
        run = Run._create(exp, run_type=SCRIPT_RUN_TYPE)
        run.add_properties({
            PROP_SUPERVISOR_PID: str(bystander.pid), PROP_SCRIPT_PID: str(bystander.pid),
            PROP_SUPERVISOR_HOST: socket.gethostname(),
            PROP_SUPERVISOR_STARTED: repr(started - 100), PROP_SCRIPT_STARTED: repr(started - 100),
        })
        run.flush()
        began = time.monotonic()
        run.cancel()
        assert time.monotonic() - began < 5  # the supervisor is known to be gone: no waiting
        assert run.get_status() == "Canceled"
        time.sleep(0.2)
        assert bystander.poll() is None, "the bystander was signalled"
    finally:
        bystander.kill()
        bystander.wait()


def test_listings_show_not_responding_after_the_supervisor_was_killed(
        exp: Experiment, tmp_path: Path) -> None:
    # A user's view: the supervisor is kill -9'ed and nobody asks the run's status; another
    # process lists the runs. The listing (CLI, get_runs, the index's status filter) must show
    # NotResponding, as get_status() does, and the change is one event of the log.
    run, supervisor, _script = running_script(exp)
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not running_supervisors(), what="the supervisor to die")
    app = exp.workspace.ledger.application
    wait_until(lambda: run.id in app.heartbeats.lapsed(), timeout=3 * BEAT + 5,
               what="the heartbeat to lapse")
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    listed = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "--store", store, "run", "list", "-e",
         "supervision", "--status", "NotResponding", "--minimal"],
        capture_output=True, text=True, timeout=60, check=True)
    assert run.id in listed.stdout, listed.stdout + listed.stderr
    assert [r.get_status() for r in exp.get_runs() if r.id == run.id] == ["NotResponding"]
    assert [r.run_id for r in exp.workspace.ledger.index.find_runs(
        experiment_name="supervision", status="Running")] == []
    assert run.get_status() == "NotResponding"
    noticed = [e for e in run.get_history() if e.kind == "StatusChanged"
               and e.payload["status"] == "NotResponding"]
    assert len(noticed) == 1 and noticed[0].actor.pid != os.getpid()  # the listing process
    run.cancel()
    assert [r.get_status() for r in exp.get_runs()] == ["Canceled"]
    assert app.heartbeats.last(run.id) is None  # an ended run's beat is forgotten


def test_a_live_supervisor_stays_running_in_listings(exp: Experiment) -> None:
    run, _supervisor, _script = running_script(exp)
    time.sleep(3 * BEAT + 2.5)  # longer than a lapse: the beats must have kept it fresh
    assert [r.get_status() for r in exp.get_runs()] == ["Running"]
    assert not [e for e in run.get_history() if e.kind == "StatusChanged"
                and e.payload["status"] == "NotResponding"]
    run.cancel()
