"""The README's first command, ``python -m ledger.demo``: it starts, monitors, tags and queries runs
on the embedded default ledger of an empty folder, and the CLI lines it suggests work on that
ledger."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path


def test_the_demo_runs_and_its_suggested_commands_work(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    demo = subprocess.run([sys.executable, "-m", "ledger.demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    assert "after: Completed" in out
    assert "1 run(s) with author=azureml-user and quality=fantastic run" in out
    assert "1 run(s) tagged 'worth another look'" in out
    assert "best run by loss:" in out
    assert (tmp_path / ".runledger").is_dir()
    suggested = [line.strip() for line in out.splitlines()
                 if line.strip().startswith("runledger ")]
    assert len(suggested) == 3
    for line in suggested:
        argv = shlex.split(line)
        result = subprocess.run([sys.executable, "-m", "ledger.cli", *argv[1:]], cwd=tmp_path,
                                env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (line, result.stderr)
        assert result.stdout.strip(), line
