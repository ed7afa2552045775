"""Inclusion proofs of a run's events, consistency proofs, signed digests, and exports that carry
their digest: what an auditor checks with no access to the ledger."""

from __future__ import annotations

import base64
import copy
import itertools
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import msgpack
import pytest
from audit_helpers import RawLog, populate

from ledger import Workspace, audit
from ledger.domain.digest import Digest, generate_keypair, load_private_key, load_public_key
from ledger.domain.errors import AuditError, DigestError, RunNotFoundError, SignatureError
from ledger.domain.ids import metric_stream_id, run_stream_id
from ledger.domain.merkle import ProofError
from ledger.transfer import (
    ExportDigestError,
    TransferError,
    check_export,
    export_ledger,
    import_ledger,
)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Any, Any, Any]:
    """A private key, its public key, and another public key."""
    generate_keypair(tmp_path / "a.key", tmp_path / "a.pub")
    generate_keypair(tmp_path / "b.key", tmp_path / "b.pub")
    return (load_private_key(tmp_path / "a.key"), load_public_key(tmp_path / "a.pub"),
            load_public_key(tmp_path / "b.pub"))


# ---------------------------------------------------------------------- inclusion proofs
def test_a_run_is_proven_with_all_its_events(ws: Workspace, raw: RawLog) -> None:
    ids = populate(ws, 4)
    d1 = audit.digest(ws)
    doc = json.loads(json.dumps(audit.prove(ws, ids[1], d1)))  # as written to a file
    checked = audit.check_proof(doc, d1)
    run_stream, metric_stream = str(run_stream_id(ids[1])), str(metric_stream_id(ids[1]))
    expected = [row for row in raw.rows() if row[1] in (run_stream, metric_stream)]
    assert checked.events == len(expected) == len(doc["events"])
    assert checked.streams == {
        "run": sum(1 for row in expected if row[1] == run_stream),
        "metrics": sum(1 for row in expected if row[1] == metric_stream)}
    assert checked.streams["metrics"] > 0
    # Each leaf is the event as stored: its record decodes to the stored row.
    for event, row in zip(doc["events"], expected, strict=True):
        record = msgpack.unpackb(base64.b64decode(event["leaf"]), raw=False)
        assert [record[0], str(UUID(bytes=record[1])), *record[2:]] == list(row)


def test_a_proof_against_a_later_digest_covers_later_events(ws: Workspace) -> None:
    ids = populate(ws, 2)
    d1 = audit.digest(ws)
    from ledger import Run

    Run.get(ws, ids[0]).tag("late", "yes")
    d2 = audit.digest(ws)
    assert audit.check_proof(audit.prove(ws, ids[0], d2), d2).events == \
        audit.check_proof(audit.prove(ws, ids[0], d1), d1).events + 1



def test_runs_after_gaps_in_the_notification_ids_are_proven(ws: Workspace,
                                                            raw: RawLog) -> None:
    """PostgreSQL's sequence skips the ids of rolled-back inserts: the leaves are the stored
    events in order whatever their ids, and a run after a gap is proven at its own leaves."""
    first = populate(ws, 2)
    d1 = audit.digest(ws)
    for name in ("second", "third"):
        start = max(raw.ids()) + 1
        ids = populate(ws, 2, name=name)
        raw.shift_from(start, 1000)  # not sealed yet: a log with a gap, not a changed one
        first += ids
    d2 = audit.digest(ws)
    assert d2.tree_size == len(raw.ids())
    assert audit.verify(ws, [d1, d2]).ok
    rows = raw.rows()
    for run_id in first:
        doc = json.loads(json.dumps(audit.prove(ws, run_id, d2)))
        checked = audit.check_proof(doc, d2)
        streams = (str(run_stream_id(run_id)), str(metric_stream_id(run_id)))
        expected = [(leaf, row) for leaf, row in enumerate(rows) if row[1] in streams]
        assert checked.events == len(expected)
        assert [event["leaf_index"] for event in doc["events"]] == [
            leaf for leaf, _row in expected]
        assert [msgpack.unpackb(base64.b64decode(event["leaf"]), raw=False)[0]
                for event in doc["events"]] == [row[0] for _leaf, row in expected]
    ids = [row[0] for row in rows]
    gaps = sum(1 for a, b in itertools.pairwise(ids) if b != a + 1)
    assert gaps >= 1  # the ids did skip (on PostgreSQL its sequence then goes on below them)
    assert raw.execute("SELECT COUNT(*) FROM {p}rl_seal_ids")[0][0] == 1 + gaps

def _tampered(doc: dict[str, Any], how: str) -> dict[str, Any]:
    bad = copy.deepcopy(doc)
    first = bad["events"][0]
    if how == "a proof node changed":
        node = bytearray.fromhex(first["proof"][0])
        node[0] ^= 1
        first["proof"][0] = node.hex()
    elif how == "a proof node missing":
        first["proof"].pop()
    elif how == "an extra proof node":
        first["proof"].append("00" * 32)
    elif how == "the leaf changed":
        leaf = bytearray(base64.b64decode(first["leaf"]))
        leaf[-1] ^= 1
        first["leaf"] = base64.b64encode(bytes(leaf)).decode()
    elif how == "another leaf index":
        first["leaf_index"] += 1
    elif how == "an index out of range":
        first["leaf_index"] = bad["tree_size"]
    elif how == "the proof of another leaf":
        first["proof"] = bad["events"][1]["proof"]
    elif how == "a wrong tree size":
        bad["tree_size"] -= 1
    elif how == "an event left out":
        del bad["events"][1]
    elif how == "an event twice":
        bad["events"].append(bad["events"][0])
    elif how == "no events":
        bad["events"] = []
    return bad


@pytest.mark.parametrize("how", [
    "a proof node changed", "a proof node missing", "an extra proof node", "the leaf changed",
    "another leaf index", "an index out of range", "the proof of another leaf",
    "a wrong tree size", "an event left out", "an event twice", "no events"])
def test_a_tampered_proof_is_refused(ws: Workspace, how: str) -> None:
    ids = populate(ws, 3)
    d1 = audit.digest(ws)
    doc = audit.prove(ws, ids[1], d1)
    audit.check_proof(doc, d1)
    with pytest.raises(ProofError):
        audit.check_proof(_tampered(doc, how), d1)


def test_a_proof_of_another_run_is_refused(ws: Workspace) -> None:
    ids = populate(ws, 3)
    d1 = audit.digest(ws)
    doc = audit.prove(ws, ids[1], d1)
    doc["run_id"] = ids[2]
    with pytest.raises(ProofError, match="not of run"):
        audit.check_proof(doc, d1)


def test_a_proof_against_another_digest_is_refused(ws: Workspace) -> None:
    ids = populate(ws, 3)
    d1 = audit.digest(ws)
    doc = audit.prove(ws, ids[0], d1)
    other = Digest(d1.tree_size, bytes(32))
    with pytest.raises(ProofError):
        audit.check_proof(doc, other)


def test_not_a_proof_document_is_refused(ws: Workspace) -> None:
    populate(ws, 1)
    d1 = audit.digest(ws)
    with pytest.raises(DigestError):
        audit.check_proof({"format": "something else"}, d1)
    with pytest.raises(DigestError):
        audit.check_proof([], d1)


def test_proving_an_unknown_run_or_a_future_digest_is_refused(ws: Workspace) -> None:
    ids = populate(ws, 1)
    d1 = audit.digest(ws)
    with pytest.raises(RunNotFoundError):
        audit.prove(ws, "no-such-run", d1)
    with pytest.raises(AuditError, match="has sealed"):
        audit.prove(ws, ids[0], Digest(d1.tree_size + 10, d1.root_hash))


# ---------------------------------------------------------------------- consistency
def test_consistency_between_two_digests(ws: Workspace, raw: RawLog) -> None:
    populate(ws, 2)
    d1 = audit.digest(ws)
    populate(ws, 2, name="more")
    d2 = audit.digest(ws)
    doc = json.loads(json.dumps(audit.consistency(ws, d1, d2)))
    audit.check_consistency(doc, d1, d2)
    audit.check_consistency(audit.consistency(ws, d2, d2), d2, d2)
    with pytest.raises(ProofError):
        audit.check_consistency(doc, d1, Digest(d2.tree_size, d1.root_hash))
    with pytest.raises(ProofError):
        audit.consistency(ws, d2, d1)
    bad = copy.deepcopy(doc)
    bad["proof"][0] = "11" * 32
    with pytest.raises(ProofError):
        audit.check_consistency(bad, d1, d2)
    with pytest.raises(DigestError):
        audit.check_consistency({"proof": doc["proof"]}, d1, d2)


def test_a_rewritten_history_has_no_consistency_proof(ws: Workspace, raw: RawLog) -> None:
    populate(ws, 2)
    d1 = audit.digest(ws)
    rows = raw.rows()
    raw.update(rows[3][0], topic=rows[3][3] + "x")
    ws._session.index.rebuild()  # the attacker recomputes the sealing tables too
    populate(ws, 1, name="more")
    d2 = audit.digest(ws)  # a digest of the rewritten log
    with pytest.raises(ProofError):
        audit.consistency(ws, d1, d2)


# ---------------------------------------------------------------------- signatures
def test_signed_digests(ws: Workspace, keys: tuple[Any, Any, Any]) -> None:
    private, public, other = keys
    ids = populate(ws, 2)
    d1 = audit.digest(ws, sign_key=private)
    assert d1.signature is not None and d1.public_key is not None
    d1 = Digest.from_json(json.loads(json.dumps(d1.to_json())))
    assert audit.verify(ws, [d1], public_key=public).ok
    audit.check_proof(audit.prove(ws, ids[0], d1), d1, public_key=public)
    with pytest.raises(SignatureError):
        audit.verify(ws, [d1], public_key=other)
    changed = Digest(d1.tree_size, d1.root_hash, d1.time, "sqlite:///elsewhere.db",
                     d1.signature, d1.public_key)
    with pytest.raises(SignatureError):
        changed.check_signature(public)
    unsigned = audit.digest(ws)
    with pytest.raises(SignatureError, match="not signed"):
        audit.check_proof(audit.prove(ws, ids[0], unsigned), unsigned, public_key=public)


@pytest.mark.parametrize("data", [
    [], {"root_hash": "00" * 32}, {"tree_size": -1, "root_hash": "00" * 32},
    {"tree_size": True, "root_hash": "00" * 32}, {"tree_size": 3, "root_hash": "zz"},
    {"tree_size": 3, "root_hash": "00" * 31}, {"tree_size": 3, "root_hash": "00" * 32,
                                               "signature": "00"},
    {"tree_size": 3, "root_hash": "00" * 32, "time": 5}])
def test_malformed_digests_are_refused(data: Any) -> None:
    with pytest.raises(DigestError):
        Digest.from_json(data)


# ---------------------------------------------------------------------- exports
def test_an_export_carries_its_digest_and_import_checks_it(
        ws: Workspace, tmp_path: Path, store_factory: Any, keys: tuple[Any, Any, Any]) -> None:
    private, public, other = keys
    populate(ws, 3)
    d1 = audit.digest(ws, sign_key=private)
    path = tmp_path / "x.rlx"
    export_ledger(ws._session.app, path, sign_key=private)
    carried = check_export(path, public)
    assert carried is not None
    assert (carried.tree_size, carried.root_hash) == (d1.tree_size, d1.root_hash)
    with pytest.raises(SignatureError):
        check_export(path, other)
    report = audit.verify_export(str(path), [d1], public_key=public)
    assert report.ok and len(report.checks) == 2

    # One byte of one event changed in the file: refused, and nothing imported.
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0x01
    broken = tmp_path / "broken.rlx"
    broken.write_bytes(bytes(data))
    target = Workspace(store=store_factory("sqlite"))
    with pytest.raises(TransferError):
        import_ledger(target._session.app, broken)
    assert target._session.app.max_position() == 0
    report_or_error: Any
    try:
        report_or_error = audit.verify_export(str(broken), [d1])
    except TransferError as error:  # the flipped byte broke the msgpack framing
        report_or_error = error
    assert isinstance(report_or_error, TransferError) or not report_or_error.ok

    # The good file imports.
    assert import_ledger(target._session.app, path, public_key=public).added == d1.tree_size


def test_an_export_whose_events_no_longer_match_its_trailer(ws: Workspace, tmp_path: Path,
                                                            store_factory: Any) -> None:
    populate(ws, 2)
    path = tmp_path / "x.rlx"
    export_ledger(ws._session.app, path)
    # Rewrite the file with one event's topic changed, keeping the framing valid.
    with open(path, "rb") as handle:
        items = list(msgpack.Unpacker(handle, raw=False, strict_map_key=False))
    items[5][3] = items[5][3] + "x"
    packer = msgpack.Packer(use_bin_type=True)
    path.write_bytes(b"".join(packer.pack(item) for item in items))
    with pytest.raises(ExportDigestError):
        check_export(path)
    target = Workspace(store=store_factory("sqlite"))
    with pytest.raises(ExportDigestError):
        import_ledger(target._session.app, path)
    assert target._session.app.max_position() == 0
    report = audit.verify_export(str(path))
    assert not report.ok and report.bad_range == (0, report.checks[0].tree_size)


def test_an_export_of_an_older_runledger_still_imports(ws: Workspace, tmp_path: Path,
                                                       store_factory: Any) -> None:
    populate(ws, 1)
    path = tmp_path / "x.rlx"
    export_ledger(ws._session.app, path)
    with open(path, "rb") as handle:
        items = list(msgpack.Unpacker(handle, raw=False, strict_map_key=False))
    del items[-1]["digest"]
    packer = msgpack.Packer(use_bin_type=True)
    path.write_bytes(b"".join(packer.pack(item) for item in items))
    assert check_export(path) is None
    target = Workspace(store=store_factory("sqlite"))
    assert import_ledger(target._session.app, path).added == len(items) - 2
    with pytest.raises(DigestError, match="carries no digest"):
        audit.verify_export(str(path))
    d1 = audit.digest(ws)
    assert audit.verify_export(str(path), [d1]).ok


def test_proofs_from_the_stored_tree_at_every_size(ws: Workspace, raw: RawLog) -> None:
    """Consistency proofs from every earlier size, and every run's inclusion proofs, built from
    the stored subtrees (levels from 4 up, lower ones recomputed), check against roots computed
    here from the raw rows."""
    from ledger.domain import merkle
    from ledger.domain.log_record import encode_record

    ids = populate(ws, 12)
    final = audit.digest(ws)
    hashes = [merkle.leaf_hash(encode_record(n, UUID(o), v, t, s)) for n, o, v, t, s in raw.rows()]
    assert final.tree_size == len(hashes) > 64
    assert final.root_hash == merkle.root(hashes)
    for size in range(1, final.tree_size + 1):
        old = Digest(size, merkle.root(hashes[:size]))
        audit.check_consistency(audit.consistency(ws, old, final), old, final)
    for run_id in ids:
        assert audit.check_proof(audit.prove(ws, run_id, final), final).events >= 5
