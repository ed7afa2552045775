"""The ```python blocks of docs/audit.md run as written, in an empty folder (the standalone
verifier recomputes the root of an export with msgpack and hashlib alone)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def test_every_python_block_of_the_audit_doc_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/audit.md has a python example"
    for number, code in enumerate(blocks):
        folder = tmp_path / f"block{number}"
        folder.mkdir()
        done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "OK:" in done.stdout
