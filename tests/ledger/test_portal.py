"""The Studio's faces in the SDK: ``get_portal_url()``, the notebook summaries (escaped),
``ledger.widgets.RunDetails`` and the ``Web View:`` line of ``wait_for_completion``."""

from __future__ import annotations

import pytest

from ledger import Experiment, ValidationError, Workspace
from ledger.widgets import RunDetails

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def workspace(store_url: str) -> Workspace:
    return Workspace(store=store_url)


def test_portal_url_follows_the_setting(workspace: Workspace,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    run = Experiment(workspace, "exp").start_logging()
    assert run.get_portal_url() == f"http://127.0.0.1:5000/runs/{run.id}"
    monkeypatch.setenv("RUNLEDGER_STUDIO_URL", "http://studio.local:8080/")
    assert run.get_portal_url() == f"http://studio.local:8080/runs/{run.id}"
    run.complete()


def test_notebook_summaries_escape_every_value(workspace: Workspace) -> None:
    with pytest.raises(ValidationError):
        Experiment(workspace, "exp " + XSS)  # experiment names cannot hold markup at all
    exp = Experiment(workspace, "exp")
    run = exp.start_logging(display_name=XSS)
    html = run._repr_html_()
    assert run.id in html and "Running" in html and run.get_portal_url() in html
    assert "<img" not in html
    experiment_html = exp._repr_html_()
    assert "<img" not in experiment_html and "/experiments/exp" in experiment_html
    run.log(XSS, 0.5)
    widget = RunDetails(run)
    assert "<img" not in widget._repr_html_()
    run.complete()


def test_run_details_prints_text_outside_a_notebook(workspace: Workspace,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = Experiment(workspace, "exp").start_logging(display_name="nice")
    run.log("loss", 0.5)
    run.log("loss", 0.25)
    run.complete()
    RunDetails(run).show()
    out = capsys.readouterr().out
    assert "Status: Completed" in out
    assert "metric loss: 0.25" in out
    assert f"Web View: {run.get_portal_url()}" in out


def test_wait_for_completion_prints_the_web_view_line(workspace: Workspace,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = Experiment(workspace, "exp").start_logging()
    run.complete()
    run.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert f"Web View: {run.get_portal_url()}" in out.splitlines()[1]
