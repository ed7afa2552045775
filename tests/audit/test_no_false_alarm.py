"""Untampered ledgers verify: after concurrent writers, export and import, rebuilds, and any
interleaving of writes, catch-ups and digests (a hypothesis state machine of the honest path)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
from audit_helpers import RawLog, populate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Experiment, Run, Workspace, audit
from ledger.domain import merkle
from ledger.domain.log_record import encode_record
from ledger.transfer import export_ledger, import_ledger


def recomputed_root(raw: RawLog) -> bytes:
    """The root of the stored events, computed here from the raw rows (an independent path)."""
    from uuid import UUID

    return merkle.root([merkle.leaf_hash(encode_record(n, UUID(o), v, t, s))
                        for n, o, v, t, s in raw.rows()])


def test_digest_is_the_root_of_the_stored_events(ws: Workspace, raw: RawLog) -> None:
    populate(ws, 4)
    d = audit.digest(ws)
    assert d.tree_size == len(raw.rows())
    assert d.root_hash == recomputed_root(raw)
    assert d.store == ws._session.app.store.display_url


def test_an_empty_ledger_has_the_empty_digest(ws: Workspace) -> None:
    d = audit.digest(ws)
    assert (d.tree_size, d.root_hash) == (0, merkle.EMPTY_ROOT)
    assert audit.verify(ws, [d]).ok


def test_concurrent_writers_then_verify(ws: Workspace, raw: RawLog) -> None:
    exp = Experiment(ws, "threads")
    errors: list[BaseException] = []
    digests = []

    def writer(k: int) -> None:
        try:
            for i in range(8):
                run = exp.start_logging()
                run.tag("w", str(k))
                run.log("m", i)
                run.complete()
        except BaseException as error:  # reported below
            errors.append(error)

    def sealer() -> None:
        try:
            for _ in range(4):
                digests.append(audit.digest(ws))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=sealer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    digests.append(audit.digest(ws))
    assert digests[-1].tree_size == len(raw.rows())
    report = audit.verify(ws, digests)
    assert report.ok, report.message
    ordered = sorted(digests, key=lambda d: d.tree_size)
    for old, new in itertools.pairwise(ordered):
        if old.tree_size:
            audit.check_consistency(audit.consistency(ws, old, new), old, new)


def test_export_import_and_rebuild_raise_no_alarm(ws: Workspace, raw: RawLog,
                                                  store_factory: object, tmp_path: Path,
                                                  backend: str) -> None:
    ids = populate(ws, 5)
    d1 = audit.digest(ws)
    path = tmp_path / "ledger.rlx"
    export_ledger(ws._session.app, path)
    assert audit.verify_export(str(path), [d1]).ok

    # A rebuild recomputes the same tree.
    ws._session.index.rebuild()
    again = audit.digest(ws)
    assert (again.tree_size, again.root_hash) == (d1.tree_size, d1.root_hash)
    assert audit.verify(ws, [d1]).ok

    # The import target seals its own log, which verifies against its own digest, and holds
    # the same runs.
    target_url = store_factory("sqlite" if backend == "memory" else backend)  # type: ignore[operator]
    target = Workspace(store=target_url)
    import_ledger(target._session.app, path)
    d_target = audit.digest(target)
    assert d_target.tree_size == d1.tree_size
    assert audit.verify(target, [d_target]).ok
    doc = audit.prove(target, ids[0], d_target)
    assert audit.check_proof(doc, d_target).events == len(doc["events"])


@pytest.mark.slow
def test_any_interleaving_of_writes_catch_ups_rebuilds_and_digests_verifies(
        ws: Workspace, raw: RawLog) -> None:
    exp = Experiment(ws, "model")
    digests: list[audit.Digest] = []
    runs: list[str] = []
    steps = st.lists(st.sampled_from(["run", "tag", "metrics", "digest", "query", "rebuild"]),
                     min_size=1, max_size=12)

    @settings(max_examples=15 if raw.dialect.kind == "sqlite" else 5, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(steps)
    def check(actions: list[str]) -> None:
        for action in actions:
            if action == "run" or not runs:
                run = exp.start_logging()
                run.flush()
                runs.append(run.id)
            elif action == "tag":
                Run.get(ws, runs[-1]).tag("k", str(len(digests)))
            elif action == "metrics":
                Run.get(ws, runs[-1]).log("x", 1.0)
            elif action == "digest":
                digests.append(audit.digest(ws))
            elif action == "query":
                list(exp.get_runs())
            else:
                ws._session.index.rebuild()
        ws.flush()
        final = audit.digest(ws)
        assert final.tree_size == len(raw.rows())
        assert final.root_hash == recomputed_root(raw)
        report = audit.verify(ws, [*digests, final])
        assert report.ok, report.message
        if digests and digests[-1].tree_size:
            proof = audit.consistency(ws, digests[-1], final)
            audit.check_consistency(proof, digests[-1], final)

    check()


def test_the_fast_reader_reads_what_the_recorder_reads(ws: Workspace, raw: RawLog) -> None:
    """verify reads the events table with plain SELECTs: the same rows, in the same order, as
    the application recorder's select_notifications, and the same roots as merkle.root."""
    from ledger.audit import proofs
    from ledger.domain.log_record import pack_id

    populate(ws, 3)
    sealed = proofs._Sealed.of(ws, catch_up=False)
    fast = [(n, o, v, t, bytes(s)) for n, o, v, t, s in proofs._events_of(sealed)]
    slow = [(n, pack_id(o), v, t, bytes(s))
            for n, o, v, t, s in proofs.store_events(sealed.app, page=7)]
    assert fast == slow and len(fast) == len(raw.rows())
    small = [(n, o, v, t, bytes(s)) for n, o, v, t, s in proofs.raw_store_events(
        sealed.app, sealed.dialect, sealed.datastore, page=5)]
    assert small == fast
    sizes = [1, 2, 7, len(fast)]
    _hashes, ids, roots = proofs._recompute(fast, sizes)
    assert ids == [row[0] for row in fast]
    for size in sizes:
        assert roots[size] == merkle.root([merkle.leaf_hash(encode_record(*row))
                                           for row in fast[:size]])
