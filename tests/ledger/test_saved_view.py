"""The ``SavedView`` aggregate and its read model: validated before anything is recorded,
updates only when something changes, projected into ``rl_saved_views``."""

from __future__ import annotations

import pytest

from ledger.application import LedgerApplication
from ledger.domain.errors import ValidationError
from ledger.domain.saved_view import MAX_QUERY_LENGTH, SavedViewAggregate
from ledger.domain.values import current_actor
from ledger.persistence.store import parse_store_url
from projections.index import RunIndex
from projections.studio_queries import StudioQueries


@pytest.fixture
def app(store_url: str) -> LedgerApplication:
    application = LedgerApplication(parse_store_url(store_url))
    yield application  # type: ignore[misc]
    application.close()


@pytest.mark.parametrize("name, query", [
    ("", "a=1"), ("ok", 5), ("ok", "x" * (MAX_QUERY_LENGTH + 1)), ("ok", "a=1\nb"),
    ("n\x00", "a=1")])
def test_bad_views_are_refused_and_nothing_is_written(app: LedgerApplication, name: object,
                                                      query: object) -> None:
    before = app.max_position()
    with pytest.raises(ValidationError):
        SavedViewAggregate.create("exp", name, query, current_actor())  # type: ignore[arg-type]
    assert app.max_position() == before


def test_views_are_projected_and_updated(app: LedgerApplication) -> None:
    actor = current_actor()
    view = SavedViewAggregate.create("exp", "best", "tag=best", actor)
    other = SavedViewAggregate.create("other", "all", "", actor)
    app.save_all(view, other)
    index = RunIndex(app)
    index.catch_up()
    queries = StudioQueries(index)
    assert [(v.name, v.query) for v in queries.saved_views("exp")] == [("best", "tag=best")]
    loaded = app.repository.get(view.id)
    loaded.update("best", "tag=best", actor)  # no change: no event
    assert not loaded.pending_events
    with pytest.raises(ValidationError):
        loaded.update("", "x", actor)
    assert not loaded.pending_events
    loaded.update("best runs", "tag=best&sort=name", actor)
    app.save_all(loaded)
    index.catch_up()
    found = queries.saved_view(view.view_id)
    assert found is not None
    assert (found.name, found.query, found.experiment) == ("best runs", "tag=best&sort=name",
                                                           "exp")
    assert found.updated_at > found.created_at
    assert queries.saved_view("00000000-0000-0000-0000-000000000000") is None
    index.rebuild()
    assert queries.saved_view(view.view_id) == found
