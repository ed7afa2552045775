"""Fixtures of the CLI tests: a ledger in a temporary SQLite file, prepared with the SDK, and a
helper invoking ``runledger`` in-process with click's ``CliRunner``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger import Experiment, Workspace
from ledger.cli.main import cli

Invoke = Callable[..., Result]


def make_runner() -> CliRunner:
    """A runner keeping standard error apart from standard output (any click >= 8.1)."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        return CliRunner()


@pytest.fixture
def store(shared_store_url: str) -> str:
    """The URL of an empty ledger of the backend under test (SQLite, PostgreSQL).

    Never ``memory://``: a memory ledger lives in one process and CLI commands open their own.
    """
    return shared_store_url


@pytest.fixture
def workspace(store: str) -> Workspace:
    """The workspace of ``store``, for preparing runs with the SDK."""
    return Workspace(store=store)


@pytest.fixture
def invoke(store: str) -> Invoke:
    """Invoke ``runledger --store STORE ARGS...``; returns click's result."""
    runner = make_runner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, ["--store", store, *args], input=input, catch_exceptions=False)

    return run


def stdout_json(result: Result) -> Any:
    """The JSON a command printed (asserting it succeeded)."""
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def seed_runs(workspace: Workspace) -> dict[str, str]:
    """The runs of the seed document's queries, in experiment ``experiment``.

    Returns:
        Run ids by role: ``fantastic`` (author azureml-user, quality 'fantastic run'),
        ``plain`` (author azureml-user, quality 'ok'), ``look`` (author someone, tagged
        'worth another look'), ``child`` (a child of ``fantastic``), ``running`` (still Running,
        no author).
    """
    exp = Experiment(workspace, "experiment")
    ids: dict[str, str] = {}
    with exp.start_logging(display_name="first") as run:
        run.add_properties({"author": "azureml-user"})
        run.tag("quality", "fantastic run")
        run.log("accuracy", 0.9)
        run.log("accuracy", 0.95)
        run.log("loss", 0.1)
        with run.child_run() as child:
            child.log("loss", 0.5)
        ids["fantastic"], ids["child"] = run.id, child.id
    with exp.start_logging() as run:
        run.add_properties({"author": "azureml-user"})
        run.tag("quality", "ok")
        ids["plain"] = run.id
    with exp.start_logging() as run:
        run.add_properties({"author": "someone"})
        run.tag("worth another look")
        ids["look"] = run.id
    running = exp.start_logging()
    ids["running"] = running.id
    workspace.flush()
    return ids
