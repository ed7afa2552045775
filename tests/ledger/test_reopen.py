"""Reopening the ledger in a new process gives back what was written, and what a process
``flush()``ed survives its ``kill -9``.

A script in a new process (``python -c``) reopens the SQLite file and must see the same runs,
statuses, properties, tags, errors, parents and metrics the writing process saw live. A process
killed with SIGKILL right after ``flush()`` returned loses nothing it flushed; a process that exits
normally without flushing still stores what it buffered (the interpreter-exit flush).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ledger_contract import live_state, open_reader, stored_state

from ledger import Experiment, Run, Workspace

READ_BACK = r"""
import json, sys
from ledger import Workspace, Run
ws = Workspace(store=sys.argv[1])
out = {}
for run_id in sys.argv[2:]:
    run = Run.get(ws, run_id)
    details = run.get_details()
    out[run_id] = {
        "status": run.get_status(), "properties": run.get_properties(), "tags": run.get_tags(),
        "display_name": run.display_name, "description": run.description,
        "parent": details.get("parentRunId"), "error": (details.get("error") or {}).get("error"),
        "metrics": run.get_metrics(),
    }
print(json.dumps(out))
"""


def python(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -c`` in a new process (in the test's working folder)."""
    return subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True,
                          timeout=timeout)


def same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def test_a_new_process_sees_what_was_seen_live(url: str) -> None:
    ws = Workspace(store=url)
    exp = Experiment(ws, "reopen")
    completed = exp.start_logging(display_name="the good one", description="complete")
    completed.add_properties({"author": "azureml-user", "seed": 7})
    completed.tag("quality", "great run")
    completed.tag("quality", "fantastic run")
    completed.tag("worth another look")
    completed.log("loss", 0.5)
    completed.log("loss", float("nan"))
    completed.log("acc", float("inf"))
    completed.log_list("list", [1, 2, 3])
    completed.log_row("row", x=1, y="a")
    completed.log_table("table", {"c": [1, 2]})
    completed.complete()
    failed = exp.start_logging()
    failed.fail(ValueError("boom"), error_code="E1")
    canceled = exp.start_logging()
    canceled.cancel()
    running = exp.start_logging()
    running.set_tags({"a": 1, "b": None})
    running.remove_tags("a")
    child = running.child_run()
    child.log("c", True)
    ws.flush()
    runs = [completed, failed, canceled, running, child]
    live = {run.id: live_state(run) for run in runs}

    result = python(READ_BACK, url, *live)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    for run_id, state in live.items():
        assert same(seen[run_id], state), (seen[run_id], state)
    assert seen[completed.id]["tags"] == {"quality": "fantastic run", "worth another look": None}
    assert seen[completed.id]["properties"] == {"author": "azureml-user", "seed": "7"}
    assert seen[failed.id]["error"]["message"] == "User program failed with ValueError: boom"
    assert seen[child.id]["parent"] == running.id
    assert [seen[r.id]["status"] for r in runs] == [
        "Completed", "Failed", "Canceled", "Running", "Running"]


def test_what_another_process_wrote_is_seen_here(url: str) -> None:
    script = (
        "import sys\n"
        "from ledger import Workspace, Experiment\n"
        "exp = Experiment(Workspace(store=sys.argv[1]), 'elsewhere')\n"
        "run = exp.start_logging()\n"
        "run.add_properties({'author': 'other-process'})\n"
        "run.tag('from', 'a subprocess')\n"
        "for i in range(100):\n"
        "    run.log('i', i)\n"
        "run.complete()\n"
        "print(run.id)\n"
    )
    result = python(script, url)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    run = Run.get(Workspace(store=url), run_id)
    assert run.get_status() == "Completed"
    assert run.get_properties() == {"author": "other-process"}
    assert run.get_tags() == {"from": "a subprocess"}
    assert run.get_metrics() == {"i": list(range(100))}
    assert run.get_history()[0].actor.pid != os.getpid()


def test_flushed_data_survives_kill_9(url: str) -> None:
    script = (
        "import sys, time\n"
        "from ledger import Workspace, Experiment\n"
        "exp = Experiment(Workspace(store=sys.argv[1]), 'killed')\n"
        "run = exp.start_logging()\n"
        "run.add_properties({'p': 'v'})\n"
        "run.tag('t')\n"
        "for i in range(5000):\n"
        "    run.log('loss', i / 5000)\n"
        "run.log_row('row', a=1)\n"
        "run.flush()\n"
        "run.tag('after', 'flush')  # a stored run appends a tag when it is set\n"
        "print(run.id, flush=True)\n"
        "time.sleep(120)\n"
    )
    # The with block closes the pipes (no ResourceWarning) and reaps the process.
    with subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            run_id = process.stdout.readline().strip()
            assert run_id, process.stderr.read() if process.stderr else ""
            os.kill(process.pid, signal.SIGKILL)
            assert process.wait(timeout=30) == -signal.SIGKILL
        finally:
            if process.poll() is None:
                process.kill()
    ws = Workspace(store=url)
    app = open_reader(ws)
    try:
        state = stored_state(app, run_id)
    finally:
        app.close()
    assert state["status"] == "Running"
    assert state["properties"] == {"p": "v"}
    assert state["tags"] == {"t": None, "after": "flush"}
    assert state["metrics"] == {"loss": [i / 5000 for i in range(5000)], "row": {"a": 1}}


def test_buffered_data_is_stored_at_normal_interpreter_exit(url: str) -> None:
    """No ``flush()``, no ``complete()``: what was buffered is stored when the process exits."""
    script = (
        "import sys\n"
        "from ledger import Workspace, Experiment\n"
        "exp = Experiment(Workspace(store=sys.argv[1]), 'exits')\n"
        "run = exp.start_logging()\n"
        "run.tag('left', 'open')\n"
        "for i in range(10):\n"
        "    run.log('x', i)\n"
        "print(run.id)\n"
    )
    result = python(script, url)
    assert result.returncode == 0, result.stderr
    run = Run.get(Workspace(store=url), result.stdout.strip())
    assert run.get_status() == "Running"
    assert run.get_tags() == {"left": "open"}
    assert run.get_metrics() == {"x": list(range(10))}
