"""The search grammar's reading of keys, values and orderings (ledger.domain.search)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ledger.domain.search import (
    Comparison,
    Key,
    OrderKey,
    SearchSyntaxError,
    parse_filter,
    parse_order_by,
)


def test_the_issue_example() -> None:
    parsed = parse_filter("metrics.loss < 0.2 and params.lr = '0.01' and tags.quality = "
                          "'fantastic run' and attributes.status = 'Completed'")
    assert parsed == (
        Comparison(Key("metric", "loss", "last", "number"), "<", 0.2),
        Comparison(Key("property", "lr"), "=", "0.01"),
        Comparison(Key("tag", "quality"), "=", "fantastic run"),
        Comparison(Key("attribute", "status", "last", "status"), "=", "Completed"),
    )


@pytest.mark.parametrize(("text", "key"), [
    ("metrics.min.loss", Key("metric", "loss", "min", "number")),
    ("metric.MAX.loss", Key("metric", "loss", "max", "number")),
    ("metrics.last.loss", Key("metric", "loss", "last", "number")),
    ("metrics.`min.loss`", Key("metric", "min.loss", "last", "number")),
    ("metrics.min.`a b`", Key("metric", "a b", "min", "number")),
    ("metrics.train/loss", Key("metric", "train/loss", "last", "number")),
    ("properties.model.lr", Key("property", "model.lr")),
    ('tags."my key"', Key("tag", "my key")),
    ("attr.run_name", Key("attribute", "display_name")),
    ("run.user_id", Key("attribute", "created_by")),
])
def test_keys(text: str, key: Key) -> None:
    assert parse_order_by([text]) == (OrderKey(key),)
    # A key prints as text that parses back to itself (best_run builds filters this way).
    assert parse_order_by([str(key)]) == (OrderKey(key),)


def test_values() -> None:
    (quoted,) = parse_filter("tags.note = 'it''s'")
    assert quoted.value == "it's"
    (listed,) = parse_filter("attributes.status NOT IN ('failed', \"CANCELED\")")
    assert (listed.op, listed.value) == ("NOT IN", ("Failed", "Canceled"))
    (millis,) = parse_filter("attributes.start_time >= 1764590400000")
    (iso,) = parse_filter("attributes.start_time >= '2025-12-01T12:00:00Z'")
    assert millis.value == iso.value == datetime(2025, 12, 1, 12, tzinfo=timezone.utc)
    (different,) = parse_filter("metrics.loss <> -1.5e-3")
    assert (different.op, different.value) == ("!=", -0.0015)
    assert parse_filter("  ") == () and parse_order_by(None) == ()
    assert parse_order_by("metrics.loss desc") == (
        OrderKey(Key("metric", "loss", "last", "number"), descending=True),)


@pytest.mark.parametrize(("text", "token"), [
    ("attributes.start_time > '2025-12-01'", "'2025-12-01'"),  # no zone
    ("metrics.loss < 1 and", ""),
    ("metrics.loss 1", "1"),
    ("tags.`open = 'x'", "`open = 'x'"),
    ("tags.x IN ('a' 'b')", "'b'"),
    ("(metrics.loss < 1)", "("),
])
def test_errors_name_the_token(text: str, token: str) -> None:
    with pytest.raises(SearchSyntaxError) as raised:
        parse_filter(text)
    assert raised.value.token == token
    assert text[raised.value.position:].startswith(token)
