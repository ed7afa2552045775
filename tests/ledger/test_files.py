"""Run files on every store: upload, list, download, names, damage, export/import, crashes.

Everything is read back by a second, independent application (or a second process), so what is
checked is what was stored.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger import Experiment, Workspace
from ledger.application import LedgerApplication
from ledger.domain.errors import (
    FileDamagedError,
    FileExistsInRunError,
    RunFileNotFoundError,
    RunFinishedError,
    ValidationError,
)
from ledger.persistence.blobs import CHUNK_SIZE
from ledger.persistence.store import parse_store_url
from ledger.transfer import export_ledger, import_ledger

ROOT = Path(__file__).resolve().parents[2]

UNSAFE_NAMES = [
    "../escape.txt", "a/../../escape.txt", "/etc/passwd", "C:/windows/x", "a\\..\\b",
    "nul\x00byte", "new\nline", "bell\x07", "", "/", ".", "./..", "a/\udc80",
    "x" * 2000, ("y" * 300) + "/z",
]


def _sizes_and_contents() -> dict[str, bytes]:
    rng = __import__("random").Random(7)
    return {
        "empty.bin": b"",
        "binary.bin": bytes(range(256)) * 3 + b"\x00\xff\r\n",
        "one_mb.bin": rng.randbytes(1024 * 1024),
        "just_over_a_chunk.bin": rng.randbytes(CHUNK_SIZE + 1),
    }


def test_files_round_trip_byte_exact_as_another_process_reads_them(
        exp: Experiment, tmp_path: Path, reader: Callable[[], LedgerApplication]) -> None:
    contents = _sizes_and_contents()
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    run = exp.start_logging()
    for name in contents:
        run.upload_file(f"outputs/{name}", str(tmp_path / name))
    run.upload_file("données/ünïcødé 文件.txt", io.BytesIO("héllo".encode()))
    run.complete()

    expected = sorted([f"outputs/{n}" for n in contents] + ["données/ünïcødé 文件.txt"])
    assert run.get_file_names() == expected
    # Another application rebuilds the same list from the events.
    app = reader()
    stored = app.get_run(run.id).files
    assert sorted(stored) == expected
    for name, data in contents.items():
        entry = stored[f"outputs/{name}"]
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert b"".join(app.blobs.read(entry["sha256"])) == data
        target = tmp_path / "back" / name
        target.parent.mkdir(exist_ok=True)
        assert run.download_file(f"outputs/{name}", str(target)) == str(target)
        assert target.read_bytes() == data
    written = run.download_files(prefix="données/", output_directory=str(tmp_path / "all"))
    assert [Path(p).read_text() for p in written] == ["héllo"]


def test_every_upload_is_an_event_in_the_history_with_its_digest(exp: Experiment) -> None:
    with exp.start_logging() as run:
        run.upload_file("a.txt", io.BytesIO(b"abc"))
    uploads = [e for e in run.get_history() if e.kind == "FileUploaded"]
    assert [e.payload["name"] for e in uploads] == ["a.txt"]
    assert uploads[0].payload["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert uploads[0].payload["size"] == 3
    assert uploads[0].payload["media_type"] == "text/plain"
    assert uploads[0].actor.pid == os.getpid()


def test_identical_content_is_stored_once_across_runs(exp: Experiment) -> None:
    data = os.urandom(3 * CHUNK_SIZE)
    first, second = exp.start_logging(), exp.start_logging()
    first.upload_file("model.bin", io.BytesIO(data))
    second.upload_file("copy/model.bin", io.BytesIO(data))
    app = exp.workspace._session.app
    manifests = [m for m in app.blobs.iter_manifests()
                 if m.sha256 == hashlib.sha256(data).hexdigest()]
    assert len(manifests) == 1 and len(manifests[0].chunks) == 3
    assert second.read_file("copy/model.bin") == data


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_names_are_refused_and_nothing_is_recorded(exp: Experiment, name: str) -> None:
    run = exp.start_logging()
    with pytest.raises(ValidationError, match=run.id):
        run.upload_file(name, io.BytesIO(b"x"))
    assert run.get_file_names() == []
    assert not [e for e in run.get_history() if e.kind == "FileUploaded"]


def test_names_are_normalised(exp: Experiment) -> None:
    run = exp.start_logging()
    run.upload_file("outputs//./a.txt", io.BytesIO(b"x"))
    run.upload_file("e\u0301.txt", io.BytesIO(b"y"))  # decomposed é: stored composed (NFC)
    assert run.get_file_names() == ["outputs/a.txt", "\u00e9.txt"]
    with pytest.raises(FileExistsInRunError):
        run.upload_file("\u00e9.txt", io.BytesIO(b"z"))


def test_a_name_the_run_has_is_refused_and_batches_are_all_or_nothing(
        exp: Experiment, tmp_path: Path) -> None:
    run = exp.start_logging()
    run.upload_file("a.txt", io.BytesIO(b"first"))
    with pytest.raises(FileExistsInRunError, match=r"a\.txt"):
        run.upload_file("a.txt", io.BytesIO(b"second"))
    with pytest.raises(FileExistsInRunError):
        run.upload_files(["b.txt", "a.txt"], [io.BytesIO(b"b"), io.BytesIO(b"a")])
    with pytest.raises(ValidationError):
        run.upload_files(["c.txt", "../d.txt"], [io.BytesIO(b"c"), io.BytesIO(b"d")])
    with pytest.raises(ValidationError):
        run.upload_files(["c.txt", "c.txt"], [io.BytesIO(b"c"), io.BytesIO(b"d")])
    assert run.get_file_names() == ["a.txt"]
    assert run.read_file("a.txt") == b"first"
    with pytest.raises(ValidationError, match="not a file"):
        run.upload_file("missing.txt", str(tmp_path / "missing.txt"))
    with pytest.raises(ValidationError, match="binary"):
        run.upload_file("text.txt", io.StringIO("text"))  # type: ignore[arg-type]


def test_upload_folder_keeps_the_tree_and_download_files_strips_the_prefix(
        exp: Experiment, tmp_path: Path) -> None:
    src = tmp_path / "plots"
    (src / "sub").mkdir(parents=True)
    (src / "a.png").write_bytes(b"A")
    (src / "sub" / "b.png").write_bytes(b"B")
    run = exp.start_logging()
    run.upload_folder("outputs/plots", str(src))
    assert run.get_file_names() == ["outputs/plots/a.png", "outputs/plots/sub/b.png"]
    out = tmp_path / "out"
    kept = run.download_files(prefix="outputs/", output_directory=str(out))
    assert sorted(Path(p).relative_to(out).as_posix() for p in kept) == [
        "outputs/plots/a.png", "outputs/plots/sub/b.png"]
    stripped = run.download_files(prefix="outputs/", output_directory=str(tmp_path / "s"),
                                  append_prefix=False)
    assert sorted(Path(p).relative_to(tmp_path / "s").as_posix() for p in stripped) == [
        "plots/a.png", "plots/sub/b.png"]


def test_download_never_writes_through_a_link_out_of_the_folder(
        exp: Experiment, tmp_path: Path) -> None:
    run = exp.start_logging()
    run.upload_file("outputs/secret.txt", io.BytesIO(b"payload"))
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "outputs").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValidationError, match="outside"):
        run.download_files(output_directory=str(target))
    assert list(outside.iterdir()) == []
    # A link where the file goes is replaced, never written through.
    (target / "outputs").unlink()
    (target / "outputs").mkdir()
    victim = outside / "victim.txt"
    victim.write_text("untouched")
    (target / "outputs" / "secret.txt").symlink_to(victim)
    run.download_files(output_directory=str(target))
    assert victim.read_text() == "untouched"
    assert (target / "outputs" / "secret.txt").read_bytes() == b"payload"
    assert not (target / "outputs" / "secret.txt").is_symlink()


def test_a_damaged_or_missing_content_is_a_clear_error_and_writes_nothing(
        exp: Experiment, tmp_path: Path) -> None:
    run = exp.start_logging()
    data = os.urandom(2 * CHUNK_SIZE)
    run.upload_file("model.bin", io.BytesIO(data))
    run.upload_file("gone.bin", io.BytesIO(b"soon missing"))
    blobs = exp.workspace._session.app.blobs
    model = blobs.info(hashlib.sha256(data).hexdigest())
    gone = blobs.info(hashlib.sha256(b"soon missing").hexdigest())
    with blobs._cursor(commit=True) as cursor:
        cursor.execute(blobs._sql("UPDATE {p}rl_blob_chunks SET data = ? WHERE sha256 = ?"),
                       (b"\x00" * 10, model.chunks[1]))
        cursor.execute(blobs._sql("DELETE FROM {p}rl_blob_chunks WHERE sha256 = ?"),
                       (gone.chunks[0],))
    folder = tmp_path / "dl"
    folder.mkdir()
    for name in ("model.bin", "gone.bin"):
        target = folder / name
        with pytest.raises(FileDamagedError) as caught:
            run.download_file(name, str(target))
        assert run.id in str(caught.value) and name in str(caught.value)
        assert not target.exists()
        assert list(folder.iterdir()) == []  # no partial file left either
    with pytest.raises(RunFileNotFoundError, match=r"nope\.bin"):
        run.download_file("nope.bin", str(tmp_path / "nope.bin"))


def test_log_image_uploads_a_png_and_logs_its_location(exp: Experiment, tmp_path: Path) -> None:
    class Plot:  # what log_image needs of matplotlib's pyplot: savefig
        def savefig(self, file: io.BytesIO, format: str) -> None:
            file.write(b"\x89PNG\r\n\x1a\n" + format.encode())

    png = tmp_path / "tanh.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfile")
    run = exp.start_logging()
    run.log_image("Hyperbolic Tangent", plot=Plot())
    run.log_image("from file", path=str(png))
    with pytest.raises(ValidationError, match="exactly one"):
        run.log_image("neither")
    metrics = run.get_metrics()
    names = run.get_file_names()
    assert len(names) == 2 and all(n.endswith(".png") for n in names)
    for metric, prefix in (("Hyperbolic Tangent", "Hyperbolic Tangent_"),
                           ("from file", "from file_")):
        location = metrics[metric]
        assert location.startswith(f"aml://artifactId/ExperimentRun/dcid.{run.id}/{prefix}")
        file_name = location.rsplit("/", 1)[-1]
        assert file_name in names
        assert run.get_files()[names.index(file_name)].media_type == "image/png"
    assert run.read_file(metrics["Hyperbolic Tangent"].rsplit("/", 1)[-1]).endswith(b"png")
    run.complete()
    with pytest.raises(RunFinishedError):
        run.log_image("late", path=str(png))


def test_start_logging_uploads_outputs_on_complete(
        exp: Experiment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "deep").mkdir(parents=True)
    (tmp_path / "outputs" / "model.pkl").write_bytes(b"weights")
    (tmp_path / "outputs" / "deep" / "x.txt").write_text("x")
    with exp.start_logging() as run:
        run.upload_file("outputs/model.pkl", io.BytesIO(b"uploaded first"))  # kept, not redone
    assert run.get_file_names() == ["outputs/deep/x.txt", "outputs/model.pkl"]
    assert run.read_file("outputs/model.pkl") == b"uploaded first"
    monkeypatch.setenv("RUNLEDGER_OUTPUTS_LIMIT_MB", "0.000001")
    with exp.start_logging() as over:
        pass
    assert over.get_file_names() == []


def test_export_and_import_carry_files_byte_exact(
        exp: Experiment, tmp_path: Path, store_url: str) -> None:
    contents = _sizes_and_contents()
    with exp.start_logging() as run:
        for name, data in contents.items():
            run.upload_file(name, io.BytesIO(data))
        run.upload_file("dup.bin", io.BytesIO(contents["one_mb.bin"]))
    exp.workspace.flush()
    source = exp.workspace._session.app
    path = tmp_path / "ledger.export"
    summary = export_ledger(source, path)
    assert summary.blobs >= len(contents)
    target = LedgerApplication(parse_store_url(f"sqlite:///{tmp_path / 'copy.db'}"))
    try:
        first = import_ledger(target, path)
        again = import_ledger(target, path)
        assert first.blobs_added >= len(contents) and again.blobs_added == 0
        assert again.added == 0
        stored = target.get_run(run.id).files
        for name, data in contents.items():
            assert b"".join(target.blobs.read(stored[name]["sha256"])) == data
        assert b"".join(target.blobs.read(stored["dup.bin"]["sha256"])) == contents["one_mb.bin"]
    finally:
        target.close()
    copy = Workspace(store=f"sqlite:///{tmp_path / 'copy.db'}")
    copied = Experiment(copy, exp.name).get_runs().__next__()
    assert copied.read_file("binary.bin") == contents["binary.bin"]


def test_an_old_export_without_files_still_imports(exp: Experiment, tmp_path: Path) -> None:
    import msgpack

    with exp.start_logging() as run:
        run.log("x", 1)
    exp.workspace.flush()
    app = exp.workspace._session.app
    buffer = io.BytesIO()
    export_ledger(app, buffer)
    buffer.seek(0)
    items = list(msgpack.Unpacker(buffer, raw=False, strict_map_key=False))
    items[0]["version"] = 1
    old = b"".join(msgpack.packb(i, use_bin_type=True) for i in items
                   if not (isinstance(i, dict) and ("chunk" in i or "blob" in i)))
    target = LedgerApplication(parse_store_url("memory://"))
    try:
        summary = import_ledger(target, io.BytesIO(old))
        assert summary.added == summary.events > 0
        assert target.get_run(run.id).status.value == "Completed"
    finally:
        target.close()


# ---------------------------------------------------------------------------------- processes
_UPLOADER = textwrap.dedent("""
    import json, os, sys, time
    from ledger import Workspace, Run
    store, run_id, size, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    ws = Workspace(store=store)
    run = Run.get(ws, run_id)

    def slow_stream():
        block = os.urandom(1024 * 1024)
        for i in range(size // len(block)):
            yield block
            if mode == "slow" and i == 3:
                print("uploading", flush=True)
                time.sleep(60)

    class Stream:
        def __init__(self):
            self.it = slow_stream(); self.rest = b""
        def read(self, n):
            while len(self.rest) < n:
                try: self.rest += next(self.it)
                except StopIteration: break
            out, self.rest = self.rest[:n], self.rest[n:]
            return out

    def hwm_bytes():
        # VmHWM: this process image's own peak RSS (ru_maxrss keeps the parent's across exec)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    if mode == "path":
        path = sys.argv[5]
        start = time.perf_counter()
        run.upload_file("big.bin", path)
        up = time.perf_counter() - start
        run.download_file("big.bin", path + ".back")
        print(json.dumps({"peak": hwm_bytes(), "upload_s": up}), flush=True)
    else:
        run.upload_file("big.bin", Stream())
""")


def _script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture
def file_store(shared_store_url: str) -> str:
    """A store another process can open (not generated for memory://)."""
    return shared_store_url


def test_kill_9_during_an_upload_leaves_no_half_visible_file(
        file_store: str, tmp_path: Path) -> None:
    ws = Workspace(store=file_store)
    run = Experiment(ws, "crash").start_logging()
    run.flush()
    child = subprocess.Popen([sys.executable, "-c", _UPLOADER, file_store, run.id,
                              str(64 * 1024 * 1024), "slow"],
                             stdout=subprocess.PIPE, env=_script_env())
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"uploading"  # 4 chunks are being stored
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    reader = Workspace(store=file_store)
    again = __import__("ledger").Run.get(reader, run.id)
    assert again.get_file_names() == []
    assert not [e for e in again.get_history() if e.kind == "FileUploaded"]
    # The upload can be made again under the same name.
    again.upload_file("big.bin", io.BytesIO(b"complete"))
    assert again.read_file("big.bin") == b"complete"


@pytest.mark.parametrize("megabytes", [1, pytest.param(200, marks=pytest.mark.slow)])
def test_memory_stays_flat_uploading_and_downloading_a_big_file(
        file_store: str, tmp_path: Path, megabytes: int) -> None:
    ws = Workspace(store=file_store)
    run = Experiment(ws, "big").start_logging()
    run.flush()
    path = tmp_path / "big.bin"
    with open(path, "wb") as handle:
        for _ in range(megabytes):
            handle.write(os.urandom(1024 * 1024))
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc/self/status (VmHWM), Linux only")
    baseline = json.loads(subprocess.run(
        [sys.executable, "-c", "import json\n"
         "from ledger import Run, Workspace\n"
         f"run = Run.get(Workspace(store={file_store!r}), {run.id!r})\n"
         "run.upload_file('small.bin', __import__('io').BytesIO(b'x'))\n"
         "run.download_file('small.bin', 'small.back')\n"
         "print([int(l.split()[1]) * 1024 for l in open('/proc/self/status') "
         "if l.startswith('VmHWM:')][0])"],
        check=True, capture_output=True, env=_script_env(), cwd=tmp_path).stdout)
    done = subprocess.run([sys.executable, "-c", _UPLOADER, file_store, run.id, "0", "path",
                           str(path)], check=True, capture_output=True, env=_script_env())
    figures = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert _digest(Path(str(path) + ".back")) == _digest(path)
    # Chunks are 1 MiB: the upload and the download hold a few at most, whatever the size
    # (the baseline process did the same with a 1-byte file).
    assert figures["peak"] - baseline < 32 * 1024 * 1024, (figures, baseline)
    assert {f.name: f.size for f in run.get_files()}["big.bin"] == megabytes * 1024 * 1024


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()



# ---------------------------------------------------------------------------------- files=
def test_a_files_folder_holds_the_contents_and_export_still_carries_them(
        tmp_path: Path) -> None:
    pytest.importorskip("fsspec", reason="the files extra (fsspec) is not installed")
    folder = tmp_path / "contents"
    store = f"sqlite:///{tmp_path / 'ledger.db'}?files={folder}"
    ws = Workspace(store=store)
    data = os.urandom(2 * CHUNK_SIZE + 3)
    with Experiment(ws, "fs").start_logging() as run:
        run.upload_file("model.bin", io.BytesIO(data))
        run.upload_file("copy.bin", io.BytesIO(data))
    chunk_files = sorted(p for p in (folder / "chunks").rglob("*") if p.is_file())
    assert len(chunk_files) == 3  # stored once, in the folder
    app = ws._session.app
    assert not hasattr(app.blobs, "_cursor")  # nothing of the contents in the database
    reader = Workspace(store=store)
    again = __import__("ledger").Run.get(reader, run.id)
    assert again.read_file("model.bin") == data
    path = tmp_path / "export"
    export_ledger(app, path)
    target = LedgerApplication(parse_store_url(f"sqlite:///{tmp_path / 'copy.db'}"))
    try:
        import_ledger(target, path)
        sha = target.get_run(run.id).files["model.bin"]["sha256"]
        assert b"".join(target.blobs.read(sha)) == data  # now in the target's database
    finally:
        target.close()
    chunk_files[0].unlink()
    with pytest.raises(FileDamagedError, match=r"model\.bin"):
        again.download_file("model.bin", str(tmp_path / "out.bin"))
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize("chunks", [0, 1, 7, 8, 9, 16, 17, 40])
def test_a_content_of_any_number_of_chunks_is_stored_and_read_back_exact(
        exp: Experiment, reader: Callable[[], LedgerApplication], chunks: int) -> None:
    # Small chunks, so that several batches of CHUNKS_PER_COMMIT are committed, and the
    # content's digest is checked against hashlib on every size: none, one chunk (its digest is
    # the chunk's), a partial last chunk, whole batches and a remainder.
    rng = __import__("random").Random(chunks)
    data = rng.randbytes(chunks * 1000 + (chunks % 3) * 17)
    blobs = exp.workspace._session.app.blobs
    info = blobs.write(io.BytesIO(data), chunk_size=1000)
    assert info.sha256 == hashlib.sha256(data).hexdigest() and info.size == len(data)
    assert len(info.chunks) == -(-len(data) // 1000)
    other = reader().blobs
    assert b"".join(other.read(info.sha256)) == data
    assert other.info(info.sha256).chunks == info.chunks


def test_a_store_error_while_writing_chunks_stores_no_content(
        exp: Experiment, monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.domain.errors import StoreError

    blobs = exp.workspace._session.app.blobs
    calls: list[int] = []
    put = blobs._put_chunks

    def failing(batch: list[tuple[str, bytes]]) -> None:
        calls.append(len(batch))
        if len(calls) == 2:  # the second batch
            raise StoreError("disk full")
        put(batch)

    monkeypatch.setattr(blobs, "_put_chunks", failing)
    data = os.urandom(30 * 1000)
    with pytest.raises(StoreError, match="disk full"):
        blobs.write(io.BytesIO(data), chunk_size=1000)
    assert not blobs.exists(hashlib.sha256(data).hexdigest())  # no manifest: nothing visible
    assert len(calls) == 2  # the batches after the failure were not written


@pytest.mark.parametrize(("name", "expected"), [
    ("outputs/model.pt", "application/octet-stream"),
    ("checkpoints/epoch_3.CKPT", "application/octet-stream"),
    ("weights.safetensors", "application/octet-stream"),
    ("table.parquet", "application/vnd.apache.parquet"),
    ("plots/loss.PNG", "image/png"),
    ("azureml-logs/70_driver_log.txt", "text/plain"),
    ("a.dir.pt/README", "application/octet-stream"),  # a dot in a folder is no suffix
])
def test_media_types_of_ml_files_are_the_same_on_every_host(name: str, expected: str) -> None:
    # The host's mimetypes tables differ (some call .pt a SNES page table): the files ML runs
    # upload most are answered from our own table.
    from ledger.domain.files import media_type

    assert media_type(name) == expected
