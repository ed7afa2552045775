"""The installed ``runledger`` console script, run as a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from ledger import Workspace


def runledger_command() -> list[str]:
    """The installed console script; ``python -m ledger.cli`` when it is not installed."""
    script = shutil.which("runledger")
    return [script] if script else [sys.executable, "-m", "ledger.cli"]


def test_seed_query_through_the_console_script(store: str, workspace: Workspace,
                                               seed_runs: dict[str, str]) -> None:
    env = {**os.environ, "RUNLEDGER_STORE": store}
    completed = subprocess.run(
        [*runledger_command(), "run", "list", "--experiment-name", "experiment",
         "[?properties.author=='azureml-user' && tags.quality=='fantastic run']"],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    runs = json.loads(completed.stdout)
    assert [r["runId"] for r in runs] == [seed_runs["fantastic"]]


def test_not_found_exit_status_through_the_console_script(store: str) -> None:
    completed = subprocess.run(
        [*runledger_command(), "--store", store, "run", "cancel", "-r", "no-such-run"],
        capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 3  # the Azure CLI's code for a resource that does not exist
    assert completed.stderr == "Error: Run 'no-such-run' was not found in this ledger\n"
