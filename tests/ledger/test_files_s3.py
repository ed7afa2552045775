"""Run files in an S3 bucket (``?files=s3://bucket/prefix``), through fsspec and s3fs, against
moto's S3 server (a real HTTP endpoint in this process): what users with artifacts in an object
store rely on. Skipped when s3fs or moto's server is not installed (both are in the ``dev``
extra)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from ledger import Experiment, Run, Workspace
from ledger.application import LedgerApplication
from ledger.domain.errors import FileDamagedError
from ledger.persistence.blobs import CHUNK_SIZE
from ledger.persistence.store import parse_store_url
from ledger.transfer import export_ledger, import_ledger

pytest.importorskip("s3fs", reason="s3fs is not installed")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
boto3 = pytest.importorskip("boto3", reason="boto3 is not installed")

BUCKET = "runledger-files"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free local port; the AWS variables point every client (this
    process's and the ones it starts) at it."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(_AWS_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.environ.pop("AWS_ENDPOINT_URL", None)


_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    """A fresh prefix in the bucket; yields (boto3 client, prefix)."""
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    prefix = "t-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]
    yield client, prefix


def _objects(client: Any, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _with_files(store_url: str, files: str) -> str:
    return f"{store_url}{'&' if '?' in store_url else '?'}files={quote(files, safe='')}"


def test_files_in_s3_round_trip_once_stored_and_read_by_another_process(
        store_url: str, bucket: tuple[Any, str], tmp_path: Path) -> None:
    client, prefix = bucket
    store = _with_files(store_url, f"s3://{BUCKET}/{prefix}")
    ws = Workspace(store=store)
    contents = {"empty.bin": b"", "small.txt": "héllo\n".encode(),
                "big.bin": os.urandom(2 * CHUNK_SIZE + 5)}
    with Experiment(ws, "s3").start_logging() as run:
        for name, data in contents.items():
            run.upload_file(f"outputs/{name}", io.BytesIO(data))
        run.upload_file("outputs/again.bin", io.BytesIO(contents["big.bin"]))  # same content
    keys = _objects(client, prefix)
    assert not [k for k in keys if ".partial-" in k]  # no temporary object left behind
    chunks = [k for k in keys if k.startswith(f"{prefix}/chunks/")]
    manifests = [k for k in keys if k.startswith(f"{prefix}/blobs/")]
    assert len(chunks) == 3 + 1  # big.bin's three chunks and small.txt's, each stored once
    assert len(manifests) == 3  # empty, small, big (again.bin shares big's)
    assert {k.rsplit("/", 1)[1] for k in manifests} == {
        hashlib.sha256(d).hexdigest() for d in contents.values()}
    if store_url == "memory://":
        return  # another process cannot open an in-process ledger
    reader = textwrap.dedent("""
        import hashlib, json, sys
        from ledger import Run, Workspace
        run = Run.get(Workspace(store=sys.argv[1]), sys.argv[2])
        print(json.dumps({n: hashlib.sha256(run.read_file(n)).hexdigest()
                          for n in run.get_file_names()}))
    """)
    done = subprocess.run([sys.executable, "-c", reader, store, run.id], capture_output=True,
                          text=True, timeout=120, check=True, env=dict(os.environ))
    assert __import__("json").loads(done.stdout) == {
        **{f"outputs/{n}": hashlib.sha256(d).hexdigest() for n, d in contents.items()},
        "outputs/again.bin": hashlib.sha256(contents["big.bin"]).hexdigest()}


def test_a_damaged_or_missing_object_is_a_clear_error_naming_the_run_and_file(
        store_url: str, bucket: tuple[Any, str], tmp_path: Path) -> None:
    client, prefix = bucket
    ws = Workspace(store=_with_files(store_url, f"s3://{BUCKET}/{prefix}"))
    model, notes = os.urandom(CHUNK_SIZE + 1), b"notes"
    with Experiment(ws, "s3").start_logging() as run:
        run.upload_file("model.bin", io.BytesIO(model))
        run.upload_file("notes.txt", io.BytesIO(notes))
    first_chunk = hashlib.sha256(model[:CHUNK_SIZE]).hexdigest()
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/chunks/{first_chunk[:2]}/{first_chunk}",
                      Body=b"tampered")
    notes_sha = hashlib.sha256(notes).hexdigest()
    client.delete_object(Bucket=BUCKET, Key=f"{prefix}/chunks/{notes_sha[:2]}/{notes_sha}")
    fresh = Run.get(ws, run.id)
    for name in ("model.bin", "notes.txt"):
        target = tmp_path / name
        with pytest.raises(FileDamagedError, match=rf"{run.id}.*{name}|{name}.*{run.id}"):
            fresh.download_file(name, str(target))
        assert not target.exists()  # nothing written


def test_export_from_s3_and_import_into_a_database_carry_the_files(
        bucket: tuple[Any, str], tmp_path: Path) -> None:
    _client, prefix = bucket
    ws = Workspace(store=f"sqlite:///{tmp_path / 'ledger.db'}?files=s3://{BUCKET}/{prefix}")
    data = os.urandom(CHUNK_SIZE + 7)
    with Experiment(ws, "s3").start_logging() as run:
        run.upload_file("model.bin", io.BytesIO(data))
    export_ledger(ws._session.app, tmp_path / "export")
    target = LedgerApplication(parse_store_url(f"sqlite:///{tmp_path / 'copy.db'}"))
    try:
        import_ledger(target, tmp_path / "export")
        sha = target.get_run(run.id).files["model.bin"]["sha256"]
        assert b"".join(target.blobs.read(sha)) == data
    finally:
        target.close()
