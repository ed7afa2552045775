"""``runledger studio``: prints its URL on 127.0.0.1, serves the pages, stops on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from studio_helpers import free_port

from ledger import Experiment, Workspace


def test_runledger_studio_serves_until_interrupted(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    ws = Workspace(store=store)
    Experiment(ws, "from-cli").start_logging().complete()
    ws.ledger.close()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "studio", "--store", store, "--port", str(port),
         "--read-only"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            page = response.read().decode()
        assert "from-cli" in page and "read-only" in page
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err


def test_studio_help_names_its_options() -> None:
    result = subprocess.run([sys.executable, "-m", "ledger.cli", "studio", "--help"],
                            capture_output=True, text=True, check=True)
    for option in ("--store", "--port", "--host", "--read-only"):
        assert option in result.stdout
