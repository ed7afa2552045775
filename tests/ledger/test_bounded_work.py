"""Bounded work per call (issue 15, item 7): ``create_children(count=10**6)`` took 288 s and
5.6 GB; now a call creates at most ``MAX_CHILDREN_PER_CALL`` (10,000) children in one atomic
write, and a bigger request is refused at once, reading no more of an iterable than it needs.
"""

from __future__ import annotations

import itertools

import pytest
from ledger_contract import event_count

from ledger import Experiment, ValidationError, Workspace
from ledger.sdk.children import MAX_CHILDREN_PER_CALL


def test_too_many_children_are_refused_and_nothing_is_written(
        ws: Workspace, exp: Experiment) -> None:
    parent = exp.start_logging()
    parent.flush()
    before = event_count(ws)
    with pytest.raises(ValidationError, match=parent.id) as caught:
        parent.create_children(count=10**6)
    assert "10,000" in str(caught.value)
    with pytest.raises(ValidationError, match="10,000"):
        parent.create_children(tag_key="k", tag_values=itertools.count())  # endless
    assert event_count(ws) == before
    assert list(parent.get_children()) == []
    parent.complete()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["memory"])
def test_the_maximum_is_created_in_one_call(ws: Workspace, exp: Experiment) -> None:
    parent = exp.start_logging()
    children = parent.create_children(count=MAX_CHILDREN_PER_CALL)
    assert len(children) == MAX_CHILDREN_PER_CALL
    assert sum(1 for _ in parent.get_children()) == MAX_CHILDREN_PER_CALL
