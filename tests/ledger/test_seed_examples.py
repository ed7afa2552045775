"""The seed how-to's Python examples run unchanged but for their import line.

Every example of the seed document (``../shared/seed/``, "Start, monitor and cancel training runs
in Python") that does not submit a script, copied verbatim, and the issue's own example: the import
line becomes ``ledger``; where the seed's run came from ``exp.submit(src)``, it comes from
``exp.start_logging()``. What each example prints is checked. ``Workspace.from_config()`` finds the
store under test through ``RUNLEDGER_STORE``, so the examples run on every backend.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

import pytest
from ledger_contract import open_reader, stored_state

from ledger import PropertyImmutableError, Workspace
from ledger.application import LedgerApplication


@pytest.fixture(autouse=True)
def _store_from_the_environment(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLEDGER_STORE", store_url)


@pytest.fixture
def read_back() -> Iterator[Any]:
    """Open an independent reader on the store of a workspace (closed at teardown)."""
    opened: list[LedgerApplication] = []

    def open_for(ws: Workspace) -> LedgerApplication:
        ws.flush()
        app = open_reader(ws)
        opened.append(app)
        return app

    yield open_for
    for app in opened:
        app.close()


def children_in_log(app: LedgerApplication, parent_id: str) -> list[str]:
    """The ids of the runs whose Created event names ``parent_id`` as parent, in log order."""
    ids, after = [], 0
    while True:
        page = app.read_log(after, 500, topics=["runledger:Run.Created"])
        if not page:
            return ids
        for notification in page:
            event = app.decode(notification)
            if event.parent_run_id == parent_id:
                ids.append(event.run_id)
        after = page[-1].id


def printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import ledger  # was: import azureml.core

    print(ledger.VERSION)  # was: print(azureml.core.VERSION)

    assert printed(capsys) == [ledger.__version__]
    assert ledger.__version__ == ledger.VERSION


def test_start_and_monitor_runs(capsys: pytest.CaptureFixture[str], read_back: Any) -> None:
    from ledger import Experiment, Workspace  # was: from azureml.core import ...

    ws = Workspace.from_config()
    exp = Experiment(workspace=ws, name="explore-runs")

    notebook_run = exp.start_logging()
    notebook_run.log(name="message", value="Hello from run!")

    print(notebook_run.get_status())

    print(notebook_run.get_details())

    notebook_run.complete()
    print(notebook_run.get_status())

    first = notebook_run
    with exp.start_logging() as notebook_run:
        notebook_run.log(name="message", value="Hello from run!")
        print(notebook_run.get_status())

    print(notebook_run.get_status())

    out = printed(capsys)
    assert out[0] == "Running"
    details = ast.literal_eval(out[1])
    assert details["runId"] == first.id and details["status"] == "Running"
    assert details["target"] == "local" and details["startTimeUtc"].endswith("Z")
    assert "endTimeUtc" not in details
    assert out[2:] == ["Completed", "Running", "Completed"]
    app = read_back(ws)
    for run in (first, notebook_run):
        state = stored_state(app, run.id)
        assert state["status"] == "Completed"
        assert state["metrics"] == {"message": "Hello from run!"}


def test_create_child_runs(capsys: pytest.CaptureFixture[str], read_back: Any) -> None:
    from ledger import Experiment, Workspace

    ws = Workspace.from_config()
    exp = Experiment(workspace=ws, name="explore-runs")

    with exp.start_logging() as parent_run:
        for c,count in enumerate(range(5)):  # noqa: B007
            with parent_run.child_run() as child:
                child.log(name="Hello from child run", value=c)

    app = read_back(ws)
    children = children_in_log(app, parent_run.id)
    assert len(children) == 5
    assert stored_state(app, parent_run.id)["status"] == "Completed"
    for c, child_id in enumerate(children):
        state = stored_state(app, child_id)
        assert state["status"] == "Completed"
        assert state["metrics"] == {"Hello from child run": c}

    print(parent_run.get_children())

    assert printed(capsys)[0].startswith("<generator object")


def test_query_child_runs() -> None:
    """``get_children()`` yields the five children (needs the projections' query index)."""
    from ledger import Experiment, Workspace

    ws = Workspace.from_config()
    exp = Experiment(workspace=ws, name="explore-runs")
    with exp.start_logging() as parent_run:
        for c,count in enumerate(range(5)):  # noqa: B007
            with parent_run.child_run() as child:
                child.log(name="Hello from child run", value=c)

    children = list(parent_run.get_children())
    assert len(children) == 5
    assert {c.get_status() for c in children} == {"Completed"}
    assert all(c.parent.id == parent_run.id for c in children)


def test_add_properties_and_tags(capsys: pytest.CaptureFixture[str], read_back: Any) -> None:
    from ledger import Experiment, Workspace

    ws = Workspace.from_config()
    exp = Experiment(workspace=ws, name="explore-runs")
    local_run = exp.start_logging()  # the seed's local_run = exp.submit(src)

    local_run.add_properties({"author":"azureml-user"})
    print(local_run.get_properties())

    try:
        local_run.add_properties({"author":"different-user"})
    except Exception as e:
        print(e)
        error = e

    local_run.tag("quality", "great run")
    print(local_run.get_tags())

    local_run.tag("quality", "fantastic run")
    print(local_run.get_tags())

    local_run.tag("worth another look")
    print(local_run.get_tags())

    out = printed(capsys)
    assert out[0] == "{'author': 'azureml-user'}"
    assert isinstance(error, PropertyImmutableError)
    for part in ("author", "azureml-user", "different-user", local_run.id):
        assert part in out[1]
    assert out[2:] == ["{'quality': 'great run'}", "{'quality': 'fantastic run'}",
                       "{'quality': 'fantastic run', 'worth another look': None}"]
    state = stored_state(read_back(ws), local_run.id)
    assert state["properties"] == {"author": "azureml-user"}
    assert state["tags"] == {"quality": "fantastic run", "worth another look": None}


def test_query_properties_and_tags() -> None:
    """The seed's two queries (need the projections' query index)."""
    from ledger import Experiment, Workspace

    ws = Workspace.from_config()
    exp = Experiment(workspace=ws, name="explore-runs")
    local_run = exp.start_logging()
    local_run.add_properties({"author":"azureml-user"})
    local_run.tag("quality", "fantastic run")
    local_run.tag("worth another look")
    other = exp.start_logging()
    other.add_properties({"author":"azureml-user"})
    other.tag("quality", "great run")

    first = list(exp.get_runs(properties={"author":"azureml-user"},tags={"quality":"fantastic run"}))  # noqa: E501
    second = list(exp.get_runs(properties={"author":"azureml-user"},tags="worth another look"))

    assert [r.id for r in first] == [local_run.id]
    assert [r.id for r in second] == [local_run.id]


def test_issue_example(capsys: pytest.CaptureFixture[str], read_back: Any) -> None:
    import ledger
    from ledger import Experiment, Workspace

    ws = Workspace.from_config()                 # no config anywhere: an embedded ledger in ./.runledger/  # noqa: E501
    exp = Experiment(workspace=ws, name="explore-runs")
    run = exp.start_logging()
    run.log(name="message", value="Hello from run!")
    print(run.get_status())                      # Running
    print(run.get_details())
    run.complete(); print(run.get_status())      # Completed  # noqa: E702

    with exp.start_logging() as run:             # Completed on normal exit
        run.log("loss", 0.25, step=1)
        with run.child_run() as child:           # children are runs too
            child.log("x", 1)

    run.add_properties({"author": "azureml-user"})
    with pytest.raises(PropertyImmutableError):
        run.add_properties({"author": "different-user"})   # raises PropertyImmutableError, writes nothing  # noqa: E501
    run.tag("quality", "great run"); run.tag("quality", "fantastic run"); run.tag("worth another look")  # noqa: E501, E702
    print(run.get_tags())   # {'quality': 'fantastic run', 'worth another look': None}
    print(ledger.VERSION)

    out = printed(capsys)
    assert out[0] == "Running"
    assert ast.literal_eval(out[1])["status"] == "Running"
    assert out[2] == "Completed"
    assert out[3] == "{'quality': 'fantastic run', 'worth another look': None}"
    assert out[4] == ledger.VERSION
    app = read_back(ws)
    assert stored_state(app, run.id)["status"] == "Completed"
    assert stored_state(app, run.id)["metrics"] == {"loss": 0.25}
    assert stored_state(app, child.id)["status"] == "Completed"
    assert stored_state(app, child.id)["parent"] == run.id
    assert stored_state(app, run.id)["properties"] == {"author": "azureml-user"}
