"""The version has one source: pyproject.toml, read back from the installed distribution."""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

import pytest

import ledger
import ledger._version

REPO = Path(__file__).resolve().parents[1]


def test_the_version_is_the_distributions() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert importlib.metadata.version("runledger-ml") == declared
    assert ledger.__version__ == ledger.VERSION == declared


def test_a_source_tree_never_installed_says_its_version_is_unknown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    try:
        assert importlib.reload(ledger._version).__version__ == "0+unknown"
    finally:
        monkeypatch.undo()
        importlib.reload(ledger._version)
    assert ledger._version.__version__ == importlib.metadata.version("runledger-ml")
