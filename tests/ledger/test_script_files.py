"""A submitted script's logs and ``./outputs`` become files of its run, on SQLite and PostgreSQL.

Real supervisors and scripts; everything is read back by another application or another process
(never through a host path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger import Experiment, Run, ScriptRunConfig, Workspace
from ledger.application import LedgerApplication
from ledger.persistence.store import parse_store_url
from ledger.sdk.files import LogTail

ROOT = Path(__file__).resolve().parents[2]
DRIVER = "azureml-logs/70_driver_log.txt"
CONTROL = "azureml-logs/60_control_log.txt"

TRAIN = textwrap.dedent("""
    import os, sys, time
    from ledger import Run
    run = Run.get_context()
    os.makedirs("outputs/deep", exist_ok=True)
    with open("outputs/model.bin", "wb") as f:
        f.write(bytes(range(256)))
    with open("outputs/deep/notes.txt", "w") as f:
        f.write("ünïcode notes")
    print(f"training on {run.id}", flush=True)  # one write: stderr cannot cut into it
    print("to stderr", file=sys.stderr, flush=True)
    mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
    if mode == "fail":
        raise ValueError("bad data")
    if mode == "slow":
        for step in range(600):
            print(f"step {step}", flush=True)
            time.sleep(0.1)
""")


# Every supervisor a test started must have exited after it (tests/ledger/conftest.py).
pytestmark = pytest.mark.usefixtures("no_leftover_supervisors")


@pytest.fixture
def exp(shared_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Experiment:
    """A submitted script runs in another process: not generated for memory://."""
    for name in ("RUNLEDGER_RUN_ID", "RUNLEDGER_EXPERIMENT", "RUNLEDGER_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(TRAIN)
    monkeypatch.chdir(source)
    return Experiment(Workspace(store=shared_store_url), "scripts")


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


_READER = textwrap.dedent("""
    import json, sys
    from ledger import Run, Workspace
    run = Run.get(Workspace(store=sys.argv[1]), sys.argv[2])
    files = {f.name: f.sha256 for f in run.get_files()}
    print(json.dumps({"files": files,
                      "driver": run.read_file("azureml-logs/70_driver_log.txt").decode(),
                      "model": run.read_file("outputs/model.bin").hex(),
                      "notes": run.read_file("outputs/deep/notes.txt").decode(),
                      "status": run.get_status()}))
""")


def read_from_another_process(run: Run) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", _READER, run.experiment.workspace._store.url,
                           run.id], check=True, capture_output=True, env=env, cwd="/")
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_completed_script_leaves_its_logs_and_outputs_as_run_files(exp: Experiment) -> None:
    run = exp.submit(ScriptRunConfig(source_directory=".", script="train.py"))
    assert run.wait_for_completion()["status"] == "Completed"
    seen = read_from_another_process(run)
    assert seen["status"] == "Completed"
    files = seen["files"]
    assert isinstance(files, dict)
    assert {DRIVER, CONTROL, "outputs/model.bin", "outputs/deep/notes.txt"} <= set(files)
    assert all(files.values()), "every file, logs included, is recorded whole with its sha256"
    driver = str(seen["driver"])
    assert f"training on {run.id}" in driver and "to stderr" in driver
    assert seen["model"] == bytes(range(256)).hex()
    assert seen["notes"] == "ünïcode notes"
    assert "logs/azureml" not in json.dumps(run.get_properties())  # no host path recorded
    import zipfile

    with zipfile.ZipFile(run.restore_snapshot(path="../restored")) as archive:
        assert archive.read("train.py").decode() == TRAIN  # the source as submitted
        assert not any(n.startswith("outputs/") for n in archive.namelist())
    details = run.get_details_with_logs()
    assert f"training on {run.id}" in details["logFiles"][DRIVER]
    assert "supervising run" in details["logFiles"][CONTROL]
    assert "script exited with code 0" in details["logFiles"][CONTROL]
    root = Path("../all-logs").resolve()
    written = {Path(p).resolve().relative_to(root).as_posix() for p in run.get_all_logs(root)}
    assert {CONTROL, DRIVER} <= written
    assert f"training on {run.id}" in (root / DRIVER).read_text()


def test_a_failed_script_still_leaves_its_outputs_and_traceback(exp: Experiment) -> None:
    run = exp.submit(ScriptRunConfig(source_directory=".", script="train.py",
                                     arguments=["fail"]))
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Failed"
    seen = read_from_another_process(run)
    assert "ValueError: bad data" in str(seen["driver"])
    assert seen["model"] == bytes(range(256)).hex()


def test_logs_stream_while_the_script_runs_and_a_canceled_run_keeps_its_outputs(
        exp: Experiment, tmp_path: Path) -> None:
    run = exp.submit(ScriptRunConfig(source_directory=".", script="train.py",
                                     arguments=["slow"]))
    store = exp.workspace._store
    other = LedgerApplication(parse_store_url(store.url))  # another reader, as another host
    try:
        tail = LogTail(other, run.id, [DRIVER])
        text: list[str] = []

        def seen_steps() -> bool:
            text.extend(t for _name, t in tail.read_new())
            return "step 3" in "".join(text)

        wait_until(seen_steps, what="the script's output in the store")
        assert run.get_status() == "Running"  # read while it runs, not after
        assert DRIVER in run.get_file_names()
    finally:
        other.close()
    run.cancel()
    assert run.get_status() == "Canceled"
    seen = read_from_another_process(run)
    assert "step 3" in str(seen["driver"])
    assert seen["model"] == bytes(range(256)).hex()


def test_wait_for_completion_shows_the_output(exp: Experiment,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = exp.submit(ScriptRunConfig(source_directory=".", script="train.py"))
    run.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert f"RunId: {run.id}" in out
    assert f"training on {run.id}" in out and "to stderr" in out, (
        out, run.read_file(DRIVER), run.get_file_names())
    assert out.index("training on") < out.index("Execution Summary")
