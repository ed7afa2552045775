"""A text accepted is a text every store can hold and every query can read (issue 15, item 1).

Before the one validator (``ledger.domain.text``), ``run.fail("bad\\x00data")`` was stored on
PostgreSQL and then every query of the ledger failed; a lone surrogate given to ``log()``,
``tag()`` or ``add_properties()`` of a run not yet written failed only at flush, and every later
flush of the process raised ``UnicodeEncodeError`` (healthy runs lost). Now each such call is
refused when it is made, with a ``ValidationError`` naming the run and the field, and nothing is
written; text recorded on the user's behalf (an exception's message, a script's stderr) is made
safe and marked so.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ledger_contract import event_count, open_reader

from ledger import Experiment, Run, ScriptRunConfig, ValidationError, Workspace
from ledger.domain.text import (
    LIMITS,
    MAX_METRIC_STRING_LENGTH,
    QUOTE_PREFIX,
    SANITISED_MARK,
    TRUNCATED_MARK,
    check_text,
    quote,
    safe_text,
)

NUL = "bad\x00data"
SURROGATE = "bad\ud800data"

# Every SDK call that stores a text, with the bad text in the field it names.
CALLS: dict[str, Callable[[Run, str], Any]] = {
    "fail-message": lambda r, t: r.fail(t),
    "fail-code": lambda r, t: r.fail("boom", error_code=t),
    "log-string": lambda r, t: r.log("m", t),
    "log-name": lambda r, t: r.log(t, 1.0),
    "log-description": lambda r, t: r.log("m", 1.0, description=t),
    "log-list": lambda r, t: r.log_list("m", ["ok", t]),
    "log-row": lambda r, t: r.log_row("m", x=t),
    "log-table": lambda r, t: r.log_table("m", {"x": [1, 2], "y": ["a", t]}),
    "log-table-column": lambda r, t: r.log_table("m", {t: [1]}),
    "tag-key": lambda r, t: r.tag(t, "v"),
    "tag-value": lambda r, t: r.tag("k", t),
    "set-tags": lambda r, t: r.set_tags({"a": "1", "b": t}),
    "property-key": lambda r, t: r.add_properties({t: "v"}),
    "property-value": lambda r, t: r.add_properties({"k": t}),
    "display-name": lambda r, t: setattr(r, "display_name", t),
    "description": lambda r, t: setattr(r, "description", t),
    "update": lambda r, t: r.update(tags={"k": "v"}, description=t),
    "child-name": lambda r, t: r.child_run(name=t),
    "children-tags": lambda r, t: r.create_children(tag_key="k", tag_values=["a", t]),
}


def _healthy(ws: Workspace, exp: Experiment) -> None:
    """Every query of the ledger still works, and a healthy run is stored."""
    good = exp.start_logging()
    good.log("ok", 1.0)
    good.tag("t", "v")
    good.complete()
    rows = list(Run.list(exp, include_children=True))
    assert good in rows
    assert good.get_metrics() == {"ok": 1.0}
    ws._session.index.rebuild()
    assert good in list(Run.list(exp, include_children=True))


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
@pytest.mark.parametrize("published", [False, True], ids=["unpublished", "published"])
def test_unstorable_text_is_refused_when_the_call_is_made(
        ws: Workspace, exp: Experiment, bad: str, published: bool) -> None:
    for label, call in CALLS.items():
        run = exp.start_logging()
        if published:
            run.flush()
        before = event_count(ws)
        with pytest.raises(ValidationError) as caught:
            call(run, bad)
        message = str(caught.value)
        assert run.id in message, (label, message)
        assert event_count(ws) == before, label  # nothing written, the flush works
        run.complete()
    _healthy(ws, exp)
    # Another process reads every run back.
    reader = open_reader(ws)
    try:
        assert reader.max_position() == event_count(ws)
    finally:
        reader.close()


def test_failing_with_an_exception_holding_nul_records_it_safely(
        ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    run.fail(ValueError(NUL + SURROGATE))
    error = run.get_details()["error"]["error"]  # the seed shape
    assert error["code"] == "UserError"
    assert error["exceptionType"] == "ValueError"
    assert "\x00" not in error["message"] and SANITISED_MARK in error["message"]
    assert error["message"].startswith("User program failed with ValueError: bad")
    _healthy(ws, exp)


def test_a_run_failing_in_a_with_block_with_a_huge_nul_message_is_failed(
        exp: Experiment) -> None:
    with pytest.raises(RuntimeError), exp.start_logging() as run:
        raise RuntimeError("\x00" * 1_000_000)
    error = run.get_details()["error"]["error"]
    assert run.get_status() == "Failed"
    assert len(error["message"]) <= LIMITS["message"]
    assert error["message"].endswith(TRUNCATED_MARK)


def test_sizes_are_bounded_and_messages_quote_a_prefix(ws: Workspace, exp: Experiment) -> None:
    run = exp.start_logging()
    before = event_count(ws)
    huge = "x" * 10_000_000
    for call in (lambda: run.log("m", huge), lambda: run.log("m", 1, description=huge),
                 lambda: run.tag("k", huge), lambda: run.fail(huge),
                 lambda: run.log(huge, [1]), lambda: run.tag(huge)):
        with pytest.raises(ValidationError) as caught:
            call()
        assert len(str(caught.value)) < 500, str(caught.value)[:200]
    # At the limit is accepted, one more is refused.
    run.log("m", "s" * MAX_METRIC_STRING_LENGTH)
    with pytest.raises(ValidationError, match="8001 characters"):
        run.log("m", "s" * (MAX_METRIC_STRING_LENGTH + 1))
    run.complete()
    assert event_count(ws) > before
    assert run.get_metrics()["m"] == "s" * MAX_METRIC_STRING_LENGTH


def test_objects_whose_str_or_repr_fail_are_refused_with_a_typed_error(exp: Experiment) -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no str")

        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    run = exp.start_logging()
    with pytest.raises(ValidationError, match="Broken"):
        run.tag("k", Broken())
    with pytest.raises(ValidationError, match="Broken"):
        run.log("m", Broken())
    with pytest.raises(ValidationError, match="Broken"):
        run.fail(Broken())  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        run.log(["unhashable"], 1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        run.log_list({"a": 1}, [1])  # type: ignore[arg-type]
    run.complete()
    assert run.get_status() == "Completed"


def test_check_text_and_safe_text() -> None:
    class Text(str):
        pass

    assert type(check_text(Text("a"), "f")) is str
    assert safe_text("fine") == "fine"
    assert safe_text("a\x00b") == "a\ufffdb" + SANITISED_MARK
    assert safe_text("a\udc80b") == "a?b" + SANITISED_MARK
    long = safe_text("y" * 100_000, "value")
    assert len(long) == LIMITS["value"] and long.endswith(TRUNCATED_MARK)
    assert len(quote("z" * 1000)) < QUOTE_PREFIX + 40
    assert quote(object.__new__(type("R", (), {"__repr__": lambda self: 1 / 0})))  # no raise


def test_a_script_whose_last_stderr_line_holds_nul_fails_with_a_safe_message(
        shared_store_url: str, ws: Workspace, exp: Experiment, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # shared_store_url: a submitted script runs in another process, memory:// is left out.
    script = tmp_path / "bad_stderr.py"
    script.write_text(textwrap.dedent("""
        import sys
        sys.stderr.buffer.write(b"fatal: bad\\x00byte \\xff\\xfe here\\n")
        sys.exit(3)
    """))
    monkeypatch.chdir(tmp_path)
    run = exp.submit(ScriptRunConfig(source_directory=str(tmp_path), script=script.name))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    message = details["error"]["error"]["message"]
    assert "exit code 3" in message and "fatal: bad" in message
    assert "\x00" not in message and SANITISED_MARK in message
    _healthy(ws, exp)
