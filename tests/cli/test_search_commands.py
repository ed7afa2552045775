"""``runledger run list --filter ... --order-by ...``."""

from __future__ import annotations

from ledger import Experiment, Workspace
from tests.cli.conftest import Invoke, stdout_json


def make_runs(workspace: Workspace) -> list[str]:
    exp = Experiment(workspace=workspace, name="search")
    made = []
    for loss, lr in [(0.5, "0.1"), (0.2, "0.01"), (0.3, "0.01")]:
        run = exp.start_logging()
        run.log("loss", loss)
        run.add_properties({"lr": lr})
        run.complete()
        made.append(run.id)
    workspace.flush()
    return made


def test_list_with_a_filter_and_an_ordering(invoke: Invoke, workspace: Workspace) -> None:
    a, b, c = make_runs(workspace)
    found = stdout_json(invoke("run", "list", "-e", "search", "--filter",
                               "metrics.loss < 0.4 and params.lr = '0.01'"))
    assert [r["runId"] for r in found] == [c, b]
    ordered = stdout_json(invoke("run", "list", "-e", "search", "--order-by", "metrics.loss"))
    assert [r["runId"] for r in ordered] == [b, c, a]
    first = stdout_json(invoke("run", "list", "-e", "search", "--order-by", "metrics.loss DESC",
                               "--last", "1"))
    assert [r["runId"] for r in first] == [a]
    # Every experiment, newest first.
    everywhere = stdout_json(invoke("run", "list", "--filter", "params.lr = '0.1'"))
    assert [r["runId"] for r in everywhere] == [a]


def test_a_bad_filter_is_an_error_naming_the_token(invoke: Invoke,
                                                    workspace: Workspace) -> None:
    make_runs(workspace)
    result = invoke("run", "list", "-e", "search", "--filter", "metrics.loss < 'x'")
    assert result.exit_code == 1
    assert "position 15 (\"'x'\")" in result.stderr
    usage = invoke("run", "list", "--order-by", "metrics.loss")
    assert usage.exit_code == 2 and "--order-by needs --experiment-name" in usage.stderr
