"""``runledger audit ...``: the auditor's walk-through of docs/audit.md, from the CLI alone."""

from __future__ import annotations

import json
from pathlib import Path

from ledger import Experiment, Workspace
from ledger.cli.main import cli
from tests.cli.conftest import Invoke, make_runner, stdout_json


def _runs(workspace: Workspace, count: int, name: str = "audited") -> list[str]:
    exp = Experiment(workspace, name)
    ids = []
    for i in range(count):
        with exp.start_logging() as run:
            run.tag("i", str(i))
            run.log("loss", 1.0 / (i + 1))
        ids.append(run.id)
    workspace.flush()
    return ids


def _tamper_one_state(workspace: Workspace) -> None:
    """Flip a byte of the 5th stored event, with SQL (SQLite or PostgreSQL)."""
    index = workspace._session.index
    dialect, app = index._dialect, workspace._session.app
    if dialect.kind == "sqlite":
        table, column = "stored_events", "rowid"
    else:
        table = f'"{index._datastore.schema}"."{app.recorder.events_table_name}"'
        column = "notification_id"
    with dialect.transaction(index._datastore, commit=True) as (_wrapped, cursor):
        cursor.execute(f"SELECT {column}, state FROM {table} ORDER BY {column} LIMIT 1 OFFSET 4")
        position, state = cursor.fetchone()
        changed = bytearray(state)
        changed[-1] ^= 1
        cursor.execute(dialect.sql(f"UPDATE {table} SET state = ? WHERE {column} = ?"),
                       (bytes(changed), position))


def test_digest_verify_prove_check_consistency(invoke: Invoke, workspace: Workspace,
                                                tmp_path: Path) -> None:
    ids = _runs(workspace, 3)
    keygen = invoke("audit", "keygen", "--private-key", str(tmp_path / "k"),
                    "--public-key", str(tmp_path / "k.pub"))
    assert keygen.exit_code == 0, keygen.stderr
    assert (tmp_path / "k").stat().st_mode & 0o077 == 0

    d1 = stdout_json(invoke("audit", "digest", "--sign", str(tmp_path / "k")))
    assert set(d1) == {"tree_size", "root_hash", "time", "store", "signature", "public_key"}
    (tmp_path / "d1.json").write_text(json.dumps(d1))
    report = stdout_json(invoke("audit", "verify", "--digest", str(tmp_path / "d1.json"),
                                "--public-key", str(tmp_path / "k.pub")))
    assert report["ok"] and report["events_checked"] == d1["tree_size"]

    proof = invoke("audit", "prove", "-r", ids[1], "--digest", str(tmp_path / "d1.json"),
                   "--out", str(tmp_path / "proof.json"))
    assert proof.exit_code == 0, proof.stderr
    # check-proof needs no ledger: run it against an unrelated, empty store.
    offline = make_runner().invoke(cli, [
        "--store", f"sqlite:///{tmp_path / 'nothing.db'}", "audit", "check-proof",
        str(tmp_path / "proof.json"), "--digest", str(tmp_path / "d1.json"),
        "--public-key", str(tmp_path / "k.pub")])
    checked = stdout_json(offline)
    assert checked["ok"] and checked["run_id"] == ids[1] and checked["events"] >= 3

    _runs(workspace, 2, "later")
    d2 = stdout_json(invoke("audit", "digest"))
    (tmp_path / "d2.json").write_text(json.dumps(d2))
    consistent = invoke("audit", "consistency", str(tmp_path / "d1.json"),
                        str(tmp_path / "d2.json"), "--out", str(tmp_path / "c.json"))
    assert consistent.exit_code == 0, consistent.stderr
    assert "extends" in consistent.stdout
    saved = make_runner().invoke(cli, [
        "--store", "memory://", "audit", "consistency", str(tmp_path / "d1.json"),
        str(tmp_path / "d2.json"), "--proof", str(tmp_path / "c.json")])
    assert saved.exit_code == 0, saved.stderr
    swapped = invoke("audit", "consistency", str(tmp_path / "d2.json"),
                     str(tmp_path / "d1.json"))
    assert swapped.exit_code == 1 and "larger than" in swapped.stderr

    # Tampering: verify exits 1 naming the leaf; the proof of the unchanged file still checks.
    _tamper_one_state(workspace)
    tampered = invoke("audit", "verify", "--digest", str(tmp_path / "d1.json"),
                      "--digest", str(tmp_path / "d2.json"))
    assert tampered.exit_code == 1
    assert "TAMPERED" in tampered.stderr and "leaf index 4" in tampered.stderr
    assert json.loads(tampered.stdout)["first_bad_position"] == 4
    bad_key = invoke("audit", "verify", "--digest", str(tmp_path / "d2.json"),
                     "--public-key", str(tmp_path / "k.pub"))
    assert bad_key.exit_code == 1 and "not signed" in bad_key.stderr


def test_export_is_verified_offline_and_import_refuses_a_changed_file(
        invoke: Invoke, workspace: Workspace, tmp_path: Path) -> None:
    _runs(workspace, 2)
    assert invoke("audit", "keygen", "--private-key", str(tmp_path / "k"),
                  "--public-key", str(tmp_path / "k.pub")).exit_code == 0
    d1 = stdout_json(invoke("audit", "digest"))
    (tmp_path / "d1.json").write_text(json.dumps(d1))
    dump = tmp_path / "x.rlx"
    assert invoke("export", str(dump), "--sign", str(tmp_path / "k")).exit_code == 0
    runner = make_runner()
    ok = runner.invoke(cli, ["--store", "memory://", "audit", "verify", str(dump),
                             "--digest", str(tmp_path / "d1.json"),
                             "--public-key", str(tmp_path / "k.pub")])
    assert ok.exit_code == 1 and "not signed" in ok.stderr  # d1 itself is unsigned
    ok = runner.invoke(cli, ["--store", "memory://", "audit", "verify", str(dump),
                             "--digest", str(tmp_path / "d1.json")])
    assert stdout_json(ok)["ok"]

    import msgpack

    with open(dump, "rb") as handle:
        items = list(msgpack.Unpacker(handle, raw=False, strict_map_key=False))
    items[3][3] += "x"
    changed = tmp_path / "changed.rlx"
    packer = msgpack.Packer(use_bin_type=True)
    changed.write_bytes(b"".join(packer.pack(item) for item in items))
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    refused = runner.invoke(cli, ["--store", target, "import", str(changed)])
    assert refused.exit_code == 1 and "was changed" in refused.stderr
    assert Workspace(store=target)._session.app.max_position() == 0
    offline = runner.invoke(cli, ["--store", "memory://", "audit", "verify", str(changed)])
    assert offline.exit_code == 1 and "TAMPERED" in offline.stderr
    signed = runner.invoke(cli, ["--store", target, "import", str(dump),
                                 "--public-key", str(tmp_path / "k.pub")])
    assert signed.exit_code == 0, signed.stderr


def test_verify_needs_a_digest(invoke: Invoke) -> None:
    result = invoke("audit", "verify")
    assert result.exit_code == 2 and "--digest" in result.stderr
