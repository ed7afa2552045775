"""``runledger projections rebuild``."""

from __future__ import annotations

from tests.cli.conftest import Invoke, stdout_json


def test_rebuild_keeps_the_answers(invoke: Invoke, seed_runs: dict[str, str]) -> None:
    before = stdout_json(invoke("run", "list", "-e", "experiment", "--include-children"))
    result = invoke("projections", "rebuild")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Projections rebuilt: ")
    assert int(result.stdout.split()[2]) > 0
    assert stdout_json(invoke("run", "list", "-e", "experiment", "--include-children")) == before
