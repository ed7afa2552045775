"""``runledger run files|download|download-logs`` on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from ledger import Experiment, Workspace
from ledger.application import LedgerApplication
from ledger.persistence.store import parse_store_url
from ledger.sdk.files import LogAppender
from tests.cli.conftest import Invoke, stdout_json


def test_files_lists_name_size_sha256_and_who(invoke: Invoke, workspace: Workspace) -> None:
    with Experiment(workspace, "e").start_logging() as run:
        run.upload_file("outputs/b.bin", io.BytesIO(b"\x00\x01"))
        run.upload_file("outputs/a.txt", io.BytesIO(b"abc"))
    listed = stdout_json(invoke("run", "files", "-r", run.id))
    assert [f["name"] for f in listed] == ["outputs/a.txt", "outputs/b.bin"]
    assert listed[0]["size"] == 3
    assert listed[0]["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert listed[0]["uploadedAt"].endswith("Z") and listed[0]["uploadedBy"]
    table = invoke("run", "files", "-r", run.id, "-o", "table").stdout
    assert "outputs/a.txt" in table and hashlib.sha256(b"abc").hexdigest() in table
    missing = invoke("run", "files", "-r", "no-such-run")
    assert missing.exit_code == 3 and "Traceback" not in missing.stderr


def test_download_with_a_prefix_and_download_logs(invoke: Invoke, workspace: Workspace,
                                                  tmp_path: Path) -> None:
    with Experiment(workspace, "e").start_logging() as run:
        run.upload_file("outputs/model.bin", io.BytesIO(b"weights"))
        run.upload_file("other/x.txt", io.BytesIO(b"x"))
    store = workspace._store
    app = LedgerApplication(parse_store_url(store.url))
    try:
        LogAppender(app, run.id).append("azureml-logs/70_driver_log.txt", b"hello log\n")
    finally:
        app.close()
    out = tmp_path / "out"
    written = stdout_json(invoke("run", "download", "-r", run.id, "--prefix", "outputs/",
                                 "-d", str(out)))
    assert written == [str(out / "outputs" / "model.bin")]
    assert (out / "outputs" / "model.bin").read_bytes() == b"weights"
    assert not (out / "other").exists()
    logs = tmp_path / "logs"
    assert stdout_json(invoke("run", "download-logs", "-r", run.id, "-d", str(logs))) == [
        str(logs / "azureml-logs" / "70_driver_log.txt")]
    assert (logs / "azureml-logs" / "70_driver_log.txt").read_text() == "hello log\n"
    bad = invoke("run", "download", "-r", run.id, "--prefix", "../x", "-d", str(out))
    assert bad.exit_code == 1 and ".." in bad.stderr and "Traceback" not in bad.stderr
