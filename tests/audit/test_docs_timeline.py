"""Every ```python block of docs/audit-timeline.md runs as written, each in an empty folder with
the embedded default store (as the docs test of every docs page will run them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit-timeline.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_example_runs(number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.persistence.store import default_store_url
    from ledger.sdk import session as session_module

    folder = tmp_path / f"example{number}"
    folder.mkdir()
    monkeypatch.chdir(folder)
    try:
        exec(compile(BLOCKS[number], f"{DOC.name}[{number}]", "exec"), {"__name__": "__doc__"})
    finally:
        url = default_store_url(folder)
        for session in list(session_module._live_sessions):
            if session.store.url == url:
                session.close()
        with session_module._sessions_lock:
            for key in [k for k, s in session_module._sessions.items() if s.store.url == url]:
                del session_module._sessions[key]
