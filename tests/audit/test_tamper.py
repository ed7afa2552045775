"""Adversarial tests: the stored events are changed with SQL after a digest was taken, and
``verify`` catches every change, naming the first changed position when it can be proven."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from audit_helpers import RawLog, Row, forged_row, populate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Workspace, audit
from ledger.domain.digest import Digest
from ledger.domain.errors import AuditError

Tamper = Callable[[RawLog, list[Row], int], None]


def flip_state_byte(raw: RawLog, rows: list[Row], at: int) -> None:
    state = bytearray(rows[at][4])
    state[len(state) // 2] ^= 0x01
    raw.update(rows[at][0], state=bytes(state))


def change_topic(raw: RawLog, rows: list[Row], at: int) -> None:
    raw.update(rows[at][0], topic=rows[at][3] + "x")


def change_version(raw: RawLog, rows: list[Row], at: int) -> None:
    raw.update(rows[at][0], originator_version=rows[at][2] + 1000)


def change_originator(raw: RawLog, rows: list[Row], at: int) -> None:
    stream = rows[at][1]
    raw.update(rows[at][0], originator_id=stream[:-1] + ("0" if stream[-1] != "0" else "1"))


def delete_row(raw: RawLog, rows: list[Row], at: int) -> None:
    raw.delete(rows[at][0])


def swap_rows(raw: RawLog, rows: list[Row], at: int) -> None:
    other = (at + 3) % len(rows)
    first, second = rows[at], rows[other]
    # Through a temporary stream, since (originator_id, originator_version) is unique.
    raw.update(first[0], originator_id="00000000-0000-0000-0000-000000000000")
    raw.update(second[0], originator_id=first[1], originator_version=first[2],
               topic=first[3], state=first[4])
    raw.update(first[0], originator_id=second[1], originator_version=second[2],
               topic=second[3], state=second[4])


def insert_forged(raw: RawLog, rows: list[Row], at: int) -> None:
    raw.shift_from(rows[at][0], 1)
    raw.insert(forged_row(rows[at][0], rows[at]))


def truncate_tail(raw: RawLog, rows: list[Row], at: int) -> None:
    raw.delete_from(rows[at][0])


TAMPERINGS: dict[str, Tamper] = {
    "one byte of a state": flip_state_byte,
    "a topic": change_topic,
    "a version": change_version,
    "an originator id": change_originator,
    "a deleted row": delete_row,
    "two rows swapped": swap_rows,
    "a forged event inserted, the rest renumbered": insert_forged,
    "the tail truncated": truncate_tail,
}


def _setup(ws: Workspace, raw: RawLog) -> tuple[list[Row], Digest]:
    populate(ws)
    d1 = audit.digest(ws)
    rows = raw.rows()
    assert d1.tree_size == len(rows) > 30
    assert audit.verify(ws, [d1]).ok
    return rows, d1


@pytest.mark.parametrize("kind", sorted(TAMPERINGS))
def test_every_tampering_is_caught_at_its_position(ws: Workspace, raw: RawLog,
                                                   kind: str) -> None:
    rows, d1 = _setup(ws, raw)
    at = len(rows) // 3
    TAMPERINGS[kind](raw, rows, at)
    report = audit.verify(ws, [d1])
    assert not report.ok
    assert report.first_bad_position == at, report.message
    assert report.sealing_authenticated is True
    assert f"leaf index {at}" in report.message
    if kind == "the tail truncated":
        assert report.first_bad_notification_id is None
        assert "log ends" in report.message
    else:
        assert report.first_bad_notification_id == raw.rows()[at][0]


def test_a_change_of_the_first_and_of_the_last_event_is_named(ws: Workspace,
                                                              raw: RawLog) -> None:
    rows, d1 = _setup(ws, raw)
    for at in (0, len(rows) - 1):
        flip_state_byte(raw, rows, at)
        assert audit.verify(ws, [d1]).first_bad_position == at
        raw.update(rows[at][0], state=rows[at][4])
        assert audit.verify(ws, [d1]).ok


def test_the_first_of_several_changes_is_named(ws: Workspace, raw: RawLog) -> None:
    rows, d1 = _setup(ws, raw)
    for at in (25, 9, 17):
        change_topic(raw, rows, at)
    assert audit.verify(ws, [d1]).first_bad_position == 9


def test_rewriting_the_events_and_recomputing_the_sealing_tables_is_caught(
        ws: Workspace, raw: RawLog) -> None:
    _rows, d1 = _setup(ws, raw)
    more = populate(ws, 2, name="later")
    assert more
    d2 = audit.digest(ws)
    at = d1.tree_size + 3
    # The attacker changes an event after d1's size, then rebuilds every read model (the
    # sealing tables included) from the changed log, so the tables agree with the events.
    change_topic(raw, raw.rows(), at)
    ws._session.index.rebuild()
    assert audit.digest(ws).root_hash != d2.root_hash
    report = audit.verify(ws, [d2])
    assert not report.ok and report.first_bad_position is None
    assert report.sealing_authenticated is False
    assert report.bad_range == (0, d2.tree_size)
    assert "sealing tables were also rewritten" in report.message
    # With the older digest as well, the change is narrowed to after d1.
    report = audit.verify(ws, [d1, d2])
    assert not report.ok and report.bad_range == (d1.tree_size, d2.tree_size)
    assert [c.ok for c in report.checks] == [True, False]
    # Nor can the ledger prove a run's events against d2 any more.
    with pytest.raises(AuditError, match="does not have the digest's root"):
        audit.prove(ws, more[0], d2)


def test_dropping_the_sealing_tables_hides_where_but_not_that(ws: Workspace,
                                                              raw: RawLog) -> None:
    rows, d1 = _setup(ws, raw)
    for table in ("rl_seal_nodes", "rl_seal_tiles", "rl_seal_ids", "rl_seal_checkpoints"):
        raw.execute(raw.dialect.drop_table(table))
    # The events are intact: verify trusts no table, so no false alarm.
    assert audit.verify(ws, [d1]).ok
    flip_state_byte(raw, rows, 7)
    report = audit.verify(ws, [d1])
    assert not report.ok and report.first_bad_position is None
    assert report.sealing_authenticated is False and report.bad_range == (0, d1.tree_size)


def test_rewritten_sealing_leaves_cannot_mislead_verify(ws: Workspace, raw: RawLog) -> None:
    rows, d1 = _setup(ws, raw)
    # The attacker overwrites every sealed leaf hash: a dishonest table must not make a good
    # log look bad, nor name a wrong position for a bad one.
    raw.execute("UPDATE {p}rl_seal_tiles SET hashes = ?", [b"\x00" * 32 * 16])
    assert audit.verify(ws, [d1]).ok
    change_version(raw, rows, 11)
    report = audit.verify(ws, [d1])
    assert not report.ok
    assert report.first_bad_position in (None, 11)


def test_rewritten_sealing_nodes_do_not_move_the_named_position(ws: Workspace,
                                                                raw: RawLog) -> None:
    rows, d1 = _setup(ws, raw)
    raw.execute("UPDATE {p}rl_seal_nodes SET hash = ? WHERE level = 4", [b"\x11" * 32])
    change_topic(raw, rows, 20)
    report = audit.verify(ws, [d1])
    assert not report.ok and report.first_bad_position in (None, 20)


def test_a_change_after_the_digest_is_not_covered_by_it(ws: Workspace, raw: RawLog) -> None:
    """The documented limit: a digest protects only the events it covers."""
    _rows, d1 = _setup(ws, raw)
    populate(ws, 1, name="after")
    change_topic(raw, raw.rows(), d1.tree_size + 1)
    assert audit.verify(ws, [d1]).ok


def test_a_digest_from_the_future_is_a_truncated_log(ws: Workspace, raw: RawLog) -> None:
    _rows, d1 = _setup(ws, raw)
    longer = Digest(d1.tree_size + 5, d1.root_hash)
    report = audit.verify(ws, [longer])
    assert not report.ok and report.checks[0].recomputed_root is None


@st.composite
def tamperings(draw: st.DrawFn) -> list[tuple[str, int]]:
    return draw(st.lists(st.tuples(st.sampled_from(sorted(TAMPERINGS)),
                                   st.integers(min_value=0, max_value=10_000)),
                         min_size=1, max_size=3))


@pytest.mark.slow
def test_random_tamperings_are_all_caught(ws: Workspace, raw: RawLog) -> None:
    rows, d1 = _setup(ws, raw)

    @settings(max_examples=40 if raw.dialect.kind == "sqlite" else 12, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(tamperings())
    def check(changes: list[tuple[str, int]]) -> None:
        try:
            for kind, where in changes:
                current = raw.rows()
                if not current:
                    break
                TAMPERINGS[kind](raw, current, where % len(current))
            now = raw.rows()
            # The first leaf that differs from the sealed log (or is missing).
            first = next((i for i, (a, b) in enumerate(zip(rows, now, strict=False)) if a != b),
                         min(len(rows), len(now)))
            report = audit.verify(ws, [d1])
            if first >= len(rows):  # the changes undid each other (a swap done twice)
                assert report.ok
                return
            assert not report.ok, changes
            assert report.first_bad_position == first, (changes, report.message)
        finally:
            raw.restore(rows)
        assert audit.verify(ws, [d1]).ok

    check()
