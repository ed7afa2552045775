"""Run files: upload, list, download, images, logs (the seed SDK's file API, as ``RunFilesMixin``).

Storage (``ledger.persistence.blobs``): each content is stored once by SHA-256 in the ledger's own
database, streamed in 1 MiB chunks, and committed before the ``FileUploaded`` event that names it
on the run: the event is the commit point, so a process killed during an upload leaves no
half-visible file. Names are checked by ``ledger.domain.files.check_file_name`` and are
write-once per run (uploading a name the run already has raises ``FileExistsInRunError``, as the
seed does). Downloads are checked against the recorded SHA-256 while they are written to a
temporary file beside the target, renamed into place only when whole and intact; a damaged or
missing content raises ``FileDamagedError`` naming the run and the file, and writes nothing.

Logs of submitted scripts grow while the script runs: the supervisor appends parts
(``LogAppended`` events in the run's log stream, see :class:`LogAppender`), which any process on
any host reads back through the store (:class:`LogTail`, ``wait_for_completion(show_output=True)``,
``runledger run monitor-logs``); when the script ends the whole log is also recorded as an
ordinary file of the run. No code here opens a filesystem path read from the ledger.

``start_logging()`` runs upload the ``./outputs`` folder of the process's working directory (if
it exists) under ``outputs/`` when they complete, skipping names already uploaded, up to
:data:`OUTPUTS_LIMIT` bytes in all (``RUNLEDGER_OUTPUTS_LIMIT_MB``); past it nothing of the folder
is uploaded and a warning is printed on stderr.
"""

from __future__ import annotations

import builtins
import codecs
import contextlib
import io
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs
from eventsourcing.persistence import IntegrityError

from ledger.domain.errors import (
    BlobError,
    ConcurrencyError,
    FileDamagedError,
    FileExistsInRunError,
    RunFileNotFoundError,
    ValidationError,
)
from ledger.domain.files import (
    LogAppended,
    check_file_name,
    check_prefix,
    is_log_name,
    log_stream_id,
    media_type,
)
from ledger.domain.values import Actor, check_description, current_actor
from ledger.persistence.errors import store_errors

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from ledger.domain.run import RunAggregate
    from ledger.sdk.session import LedgerSession

OUTPUTS_FOLDER = "outputs"
OUTPUTS_LIMIT = 1024 * 1024 * 1024
OUTPUTS_LIMIT_ENV = "RUNLEDGER_OUTPUTS_LIMIT_MB"
IMAGE_MEDIA_TYPE = "image/png"
# Properties an older runledger recorded a script's host log paths under: shown as plain text,
# never opened (anyone who can write a run could point them anywhere).
_OLD_LOG_PROPERTIES = (("runledger.control_log_file", "azureml-logs/60_control_log.txt"),
                       ("runledger.log_file", "azureml-logs/70_driver_log.txt"))
_MAX_ATTEMPTS = 100


@attrs.frozen
class RunFile:
    """One file of a run.

    Attributes:
        name: its name in the run (``outputs/model.pkl``).
        size: its length in bytes.
        sha256: the hex SHA-256 of its content (``None`` for a log still growing).
        media_type: its media type, guessed from the name at upload.
        uploaded_at: when its upload was recorded (UTC), or its last part for a growing log.
        uploaded_by: who recorded it.
    """

    name: str
    size: int
    sha256: str | None
    media_type: str
    uploaded_at: datetime
    uploaded_by: Actor

    def as_dict(self) -> dict[str, Any]:
        """Return the file as JSON-ready data (``uploadedAt`` ISO-8601 UTC)."""
        from ledger.sdk.details import iso_utc

        return {"name": self.name, "size": self.size, "sha256": self.sha256,
                "mediaType": self.media_type, "uploadedAt": iso_utc(self.uploaded_at),
                "uploadedBy": self.uploaded_by.as_dict()}


# ---------------------------------------------------------------------------------- log parts
def log_parts(app: LedgerApplication, run_id: str, after: int = 0) -> list[LogAppended]:
    """Return the parts appended to a run's growing logs after stream version ``after``.

    Raises:
        StoreError: the store failed.
    """
    with store_errors(f"Reading {app.store.display_url}"):
        events = list(app.events.get(log_stream_id(run_id), gt=after or None))
    return [e for e in events if isinstance(e, LogAppended)]


class LogAppender:
    """Appends parts to a run's growing log files (used by a script's supervisor).

    Each part's bytes are stored as a blob before its ``LogAppended`` event is appended, so a
    part is visible whole or not at all. Safe to use from several threads.

    Args:
        app: the ledger.
        run_id: the run.
    """

    def __init__(self, app: LedgerApplication, run_id: str) -> None:
        self.app = app
        self.run_id = run_id
        self.stream = log_stream_id(run_id)
        self._lock = threading.Lock()
        parts = log_parts(app, run_id)
        self._version = parts[-1].originator_version if parts else 0
        self.sizes: dict[str, int] = {}
        self.parts: dict[str, list[str]] = {}
        for part in parts:
            self.sizes[part.name] = part.offset + part.size
            self.parts.setdefault(part.name, []).append(part.sha256)

    def append(self, name: str, data: bytes) -> None:
        """Append ``data`` to the log ``name`` (nothing for empty data).

        Raises:
            ValidationError: a bad name.
            StoreError: the store failed.
            ConcurrencyError: other writers kept appending to the same stream.
        """
        name = check_file_name(name, self.run_id, "log name")
        if not data:
            return
        info = self.app.blobs.write_bytes(bytes(data))
        actor = current_actor().as_dict()
        with self._lock:
            for _attempt in range(_MAX_ATTEMPTS):
                offset = self.sizes.get(name, 0)
                event = LogAppended(  # type: ignore[call-arg]
                    originator_id=self.stream, originator_version=self._version + 1,
                    timestamp=LogAppended.create_timestamp(), run_id=self.run_id, name=name,
                    offset=offset, size=info.size, sha256=info.sha256, actor=actor)
                try:
                    self.app.save_all(event)
                except IntegrityError:
                    for part in log_parts(self.app, self.run_id, self._version):
                        self._version = part.originator_version
                        self.sizes[part.name] = part.offset + part.size
                        self.parts.setdefault(part.name, []).append(part.sha256)
                    continue
                self._version += 1
                self.sizes[name] = offset + info.size
                self.parts.setdefault(name, []).append(info.sha256)
                return
        raise ConcurrencyError(f"Could not append to log {name!r} of run {self.run_id!r}")


class LogTail:
    """Follows a run's logs through the store, from any process or host.

    ``read_new()`` returns the text appended since the previous call: first the logs' growing
    parts (``LogAppended``); a log recorded only as a whole file (a run imported from an older
    ledger, say) is read whole once the run has ended.

    Args:
        app: the ledger.
        run_id: the run.
        names: only these logs (default: every log).
    """

    def __init__(self, app: LedgerApplication, run_id: str,
                 names: Iterable[str] | None = None) -> None:
        self.app = app
        self.run_id = run_id
        self.names = set(names) if names is not None else None
        self.version = 0
        self.decoders: dict[str, Any] = {}

    def read_new(self) -> list[tuple[str, str]]:
        """Return ``(log name, text)`` pieces appended since the last call, in order.

        Raises:
            FileDamagedError: a part's content is missing or damaged.
            StoreError: the store failed.
        """
        pieces: list[tuple[str, str]] = []
        for part in log_parts(self.app, self.run_id, self.version):
            self.version = part.originator_version
            if self.names is not None and part.name not in self.names:
                continue
            decoder = self.decoders.get(part.name)
            if decoder is None:
                decoder = self.decoders[part.name] = codecs.getincrementaldecoder("utf-8")(
                    errors="replace")
            try:
                data = b"".join(self.app.blobs.read(part.sha256))
            except BlobError as error:
                raise FileDamagedError(self.run_id, part.name, str(error)) from error
            text = decoder.decode(data)
            if text:
                pieces.append((part.name, text))
        return pieces


# ---------------------------------------------------------------------------------- writing
def _outputs_limit() -> int:
    raw = os.environ.get(OUTPUTS_LIMIT_ENV)
    if not raw:
        return OUTPUTS_LIMIT
    try:
        return int(float(raw) * 1024 * 1024)
    except ValueError:
        raise ValidationError(f"{OUTPUTS_LIMIT_ENV} must be a number of MB, not {raw!r}") from None


def folder_files(name: str, path: str | os.PathLike[str],
                 run_id: str | None) -> list[tuple[str, Path]]:
    """List the regular files of a folder with their run file names under ``name``.

    Symbolic links to files are followed (their target is uploaded); links to folders are not
    walked (no cycles, nothing outside the folder by surprise).

    Raises:
        ValidationError: not a folder, or a name that is not safe.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValidationError(f"upload_folder of run {run_id!r}: {str(path)!r} is not a folder")
    prefix = check_file_name(name, run_id, "folder name") if name not in ("", ".") else ""
    found: list[tuple[str, Path]] = []
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for file_name in sorted(files):
            full = Path(directory, file_name)
            if not full.is_file():
                continue
            relative = full.relative_to(root).as_posix()
            found.append((check_file_name(f"{prefix}/{relative}" if prefix else relative,
                                          run_id), full))
    return found


def store_content(app: LedgerApplication, run_id: str, name: str,
                  source: str | os.PathLike[str] | IO[bytes]) -> tuple[str, int, str, str]:
    """Store one file's content (streamed, by SHA-256) before the event that will name it.

    The content stays invisible until a ``FileUploaded`` event of the run names it
    (``RunAggregate.add_files``); a process stopped in between leaves only unreferenced chunks.

    Args:
        app: the ledger.
        run_id: the run, for error messages.
        name: the file's name in the run, already checked (``check_file_name``).
        source: a path to read, or a binary stream (read to its end, not closed).

    Returns:
        ``(name, size, sha256, media type)``, as ``add_files`` takes it.

    Raises:
        ValidationError: the path cannot be read, or the stream is not binary.
        StoreError: the store failed.
    """
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as handle:
                info = app.blobs.write(handle)
        else:
            info = app.blobs.write(source)
    except TypeError as error:
        raise ValidationError(f"upload of {name!r} to run {run_id!r}: {error}") from None
    except OSError as error:
        raise ValidationError(f"upload of {name!r} to run {run_id!r}: cannot read "
                              f"{error.filename or source!r}: {error.strerror}") from error
    return (name, info.size, info.sha256, media_type(name))


class RunFilesMixin:
    """The file methods of ``Run`` (``ledger.sdk.run.Run`` inherits them)."""

    if TYPE_CHECKING:
        _run_id: str
        _session: LedgerSession
        _outputs_folder: Path | None
        _log_events: tuple[Any, builtins.list[Any]] | None
        _token: Any

        def _refreshed(self) -> RunAggregate: ...

        def _command(self, command: Any, *, publish_first: bool = False) -> Any: ...

        def log(self, name: str, value: Any, description: str = "",
                step: int | None = None) -> None: ...

        def get_details(self) -> dict[str, Any]: ...

        @property
        def type(self) -> str: ...

    # ------------------------------------------------------------------ uploading
    def upload_file(self, name: str, path_or_stream: str | os.PathLike[str] | IO[bytes],
                    datastore_name: str | None = None) -> RunFile:
        """Upload one file to the run under ``name``. Returns when durable.

        Args:
            name: the file's name in the run (a relative path such as ``outputs/model.pkl``).
            path_or_stream: a path to read, or a binary stream (read to its end, not closed).
            datastore_name: accepted for compatibility (files go to the ledger's store).

        Returns:
            The recorded file.

        Raises:
            ValidationError: an unsafe name, a missing path, a text stream.
            FileExistsInRunError: the run already has a file of this name.
            StoreError: the store failed (nothing visible was recorded).
        """
        recorded = self.upload_files([name], [path_or_stream])
        return recorded[0]

    def upload_files(self, names: Sequence[str],
                     paths: Sequence[str | os.PathLike[str] | IO[bytes]],
                     return_artifacts: bool = False, timeout_seconds: int | None = None,
                     datastore_name: str | None = None) -> builtins.list[RunFile]:
        """Upload several files at once: every file is recorded, or none. Returns when durable.

        Args:
            names: the files' names in the run.
            paths: a path or binary stream per name.

        Returns:
            The recorded files, in the order given.

        Raises:
            ValidationError: names and paths of different lengths, an unsafe name, a missing
                path, a name given twice.
            FileExistsInRunError: the run already has one of the names (nothing is recorded).
            StoreError: the store failed.
        """
        if isinstance(names, (str, bytes)) or isinstance(paths, (str, bytes)):
            raise ValidationError(f"upload_files of run {self._run_id!r}: names and paths must "
                                  "be lists (use upload_file for one file)")
        names, paths = list(names), list(paths)
        if len(names) != len(paths):
            raise ValidationError(f"upload_files of run {self._run_id!r}: {len(names)} names "
                                  f"for {len(paths)} paths")
        checked = [check_file_name(n, self._run_id) for n in names]
        for source in paths:
            if isinstance(source, (str, os.PathLike)):
                if not Path(source).is_file():
                    raise ValidationError(
                        f"upload of run {self._run_id!r}: {os.fspath(source)!r} is not a file")
            elif not hasattr(source, "read"):
                raise ValidationError(
                    f"upload of run {self._run_id!r}: give a path or a binary stream, not "
                    f"{type(source).__name__}")
            elif isinstance(source, io.TextIOBase):
                raise ValidationError(
                    f"upload of run {self._run_id!r}: the stream is a text stream; open it in "
                    "binary mode ('rb')")
        self._check_new_names(checked)
        return self._record_uploads(checked, paths)

    def upload_folder(self, name: str, path: str | os.PathLike[str],
                      datastore_name: str | None = None) -> builtins.list[RunFile]:
        """Upload every file of a folder (recursively) under the prefix ``name``, atomically.

        Args:
            name: the prefix of the files' names (``outputs/plots``).
            path: the folder.

        Returns:
            The recorded files, sorted by name.

        Raises:
            ValidationError: not a folder, an unsafe name.
            FileExistsInRunError: the run already has one of the names (nothing is recorded).
            StoreError: the store failed.
        """
        found = folder_files(name, path, self._run_id)
        if not found:
            return []
        names = [n for n, _p in found]
        self._check_new_names(names)
        return self._record_uploads(names, [p for _n, p in found])

    def _check_new_names(self, names: Sequence[str]) -> None:
        existing = set(self._refreshed().files)
        existing |= {p.name for p in log_parts(self._session.app, self._run_id)}
        seen: set[str] = set()
        for name in names:
            if name in existing or name in seen:
                raise FileExistsInRunError(self._run_id, name)
            seen.add(name)

    def _record_uploads(self, names: Sequence[str],
                        sources: Sequence[str | os.PathLike[str] | IO[bytes]]) -> (
            builtins.list[RunFile]):
        entries = [store_content(self._session.app, self._run_id, name, source)
                   for name, source in zip(names, sources, strict=True)]
        # The contents are committed: this event makes them visible, all at once or not at all.
        self._command(lambda agg, actor: agg.add_files(entries, actor), publish_first=True)
        files = self._refreshed().files
        return [_run_file(name, files[name]) for name, *_rest in entries]

    def log_image(self, name: str, path: str | os.PathLike[str] | None = None,
                  plot: Any = None, description: str = "") -> None:
        """Log an image: upload it as a PNG file of the run and log a metric pointing at it.

        The file is ``<name>_<unix ms>.png`` (the seed's naming); ``get_metrics()[name]`` is
        ``aml://artifactId/ExperimentRun/dcid.<run id>/<file>`` (the seed's shape).

        Args:
            name: the image's metric name.
            path: a PNG file to upload...
            plot: ...or a matplotlib figure or ``pyplot`` module (saved with ``savefig``;
                matplotlib is needed only then).
            description: the metric's description.

        Raises:
            ValidationError: neither or both of ``path`` and ``plot``; a bad name.
            RunFinishedError: the run has ended.
        """
        if (path is None) == (plot is None):
            raise ValidationError(f"log_image {name!r} of run {self._run_id!r}: give a path "
                                  "or a plot, exactly one")
        check_description(description, self._run_id)
        base = check_file_name(name.replace("/", "_") if isinstance(name, str) else name,
                               self._run_id, "image name")
        self._refreshed().check_active("log an image")
        file_name = f"{base}_{int(time.time() * 1000)}.png"
        if plot is not None:
            saver = getattr(plot, "savefig", None)
            if not callable(saver):
                raise ValidationError(f"log_image {name!r} of run {self._run_id!r}: plot has no "
                                      "savefig() (give a matplotlib figure or pyplot)")
            buffer = io.BytesIO()
            saver(buffer, format="png")
            buffer.seek(0)
            self.upload_file(file_name, buffer)
        else:
            assert path is not None
            self.upload_file(file_name, path)
        self.log(name, f"aml://artifactId/ExperimentRun/dcid.{self._run_id}/{file_name}",
                 description=description)

    # ------------------------------------------------------------------ listing
    def get_files(self) -> builtins.list[RunFile]:
        """Return the run's files (growing logs included), sorted by name.

        Raises:
            StoreError: the store failed.
        """
        agg = self._refreshed()
        files = {name: _run_file(name, entry) for name, entry in agg.files.items()}
        for name, (size, moment, actor) in _growing_logs(
                log_parts(self._session.app, self._run_id)).items():
            if name not in files:
                files[name] = RunFile(name=name, size=size, sha256=None,
                                      media_type=media_type(name), uploaded_at=moment,
                                      uploaded_by=actor)
        return [files[name] for name in sorted(files)]

    def get_file_names(self) -> builtins.list[str]:
        """Return the names of the run's files, sorted.

        Raises:
            StoreError: the store failed.
        """
        return [f.name for f in self.get_files()]

    # ------------------------------------------------------------------ downloading
    def _file_chunks(self, name: str) -> Iterator[bytes]:
        """Yield a file's bytes, checked (raising ``FileDamagedError`` at the end if not)."""
        agg = self._refreshed()
        app = self._session.app
        entry = agg.files.get(name)
        try:
            if entry is not None:
                if app.blobs.info(entry["sha256"]).size != entry["size"]:
                    raise BlobError(f"the stored content is not {entry['size']} bytes long")
                yield from app.blobs.read(entry["sha256"])
                return
            parts = [p for p in log_parts(app, self._run_id) if p.name == name]
            if not parts:
                raise RunFileNotFoundError(self._run_id, name)
            for part in parts:
                yield from app.blobs.read(part.sha256)
        except BlobError as error:
            raise FileDamagedError(self._run_id, name, str(error)) from error

    def iter_file(self, name: str) -> Iterator[bytes]:
        """Yield a file's content a stored chunk at a time (at most
        ``ledger.persistence.blobs.CHUNK_SIZE`` bytes each), so that serving or copying a
        large file keeps memory flat. Each chunk is checked against its digest before it is
        yielded, the whole against its SHA-256 after the last one.

        Args:
            name: the file's name in the run.

        Returns:
            The chunks (read as the iterator is consumed).

        Raises:
            RunFileNotFoundError: no such file (from the first ``next``).
            FileDamagedError: the content is missing or damaged (from the ``next`` that reads
                the bad part: a caller must not trust what it wrote before the end).
            ValidationError: an unsafe name.
        """
        return self._file_chunks(check_file_name(name, self._run_id))

    def read_file(self, name: str) -> bytes:
        """Return a (small) file's content, checked against its SHA-256.

        Raises:
            RunFileNotFoundError: no such file.
            FileDamagedError: the content is missing or damaged.
        """
        return b"".join(self._file_chunks(check_file_name(name, self._run_id)))

    def download_file(self, name: str, output_file_path: str | os.PathLike[str] | None = None,
                      _validate_checksum: bool = False) -> str:
        """Download one file of the run. The hash is always checked.

        Args:
            name: the file's name in the run.
            output_file_path: where to write it (an existing folder: the file goes into it
                under its base name); default: its base name in the working directory.

        Returns:
            The path written.

        Raises:
            RunFileNotFoundError: the run has no such file.
            FileDamagedError: the stored content is missing or damaged (nothing is written).
            ValidationError: an unsafe name.
        """
        name = check_file_name(name, self._run_id)
        base = name.rsplit("/", 1)[-1]
        target = Path(output_file_path) if output_file_path is not None else Path(base)
        if target.is_dir():
            target = target / base
        self._write_file(name, target)
        return str(target)

    def download_files(self, prefix: str | None = None,
                       output_directory: str | os.PathLike[str] | None = None,
                       output_paths: Sequence[str] | None = None, batch_size: int = 100,
                       append_prefix: bool = True,
                       timeout_seconds: int | None = None) -> builtins.list[str]:
        """Download the run's files whose names start with ``prefix`` into a folder.

        Every file lands inside ``output_directory``: names are safe by construction, and a
        symbolic link inside the folder that would lead outside it is refused.

        Args:
            prefix: only files whose names start with it (``outputs/``); default: all.
            output_directory: the folder (created if missing); default: the working directory.
            append_prefix: keep the prefix in the written paths (else it is stripped).

        Returns:
            The paths written, sorted by name.

        Raises:
            FileDamagedError: a stored content is missing or damaged (files before it are
                written, it is not).
            ValidationError: an unsafe prefix, or a link leading outside the folder.
        """
        wanted = check_prefix(prefix, self._run_id)
        root = Path(output_directory) if output_directory is not None else Path.cwd()
        root.mkdir(parents=True, exist_ok=True)
        written = []
        for name in self.get_file_names():
            if not name.startswith(wanted):
                continue
            relative = name
            if not append_prefix and wanted:
                relative = name[len(wanted):].lstrip("/") or name.rsplit("/", 1)[-1]
            target = safe_target(root, relative, self._run_id)
            self._write_file(name, target)
            written.append(str(target))
        return written

    def _write_file(self, name: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
            dir=target.parent, prefix=f".{target.name[:40]}.", suffix=".partial", delete=False)
        try:
            with handle:
                for data in self._file_chunks(name):
                    handle.write(data)
            os.replace(handle.name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(handle.name)
            raise

    # ------------------------------------------------------------------ logs
    def _log_names(self) -> builtins.list[str]:
        return [name for name in self.get_file_names() if is_log_name(name)]

    def _log_file_locations(self, agg: RunAggregate) -> dict[str, str]:
        """``get_details()["logFiles"]``: each log's name and where it is (a run file URI;
        for runs of an older runledger, the host path it recorded, as plain text)."""
        locations = {key_name: str(agg.properties[key]) for key, key_name in
                     _OLD_LOG_PROPERTIES if agg.properties.get(key)}
        names = [n for n in agg.files if is_log_name(n)]
        names.extend(_growing_logs(self._current_log_parts()))
        for name in sorted(set(names)):
            locations[name] = f"runledger://runs/{self._run_id}/files/{name}"
        return dict(sorted(locations.items()))

    def _current_log_parts(self) -> builtins.list[LogAppended]:
        """The run's log parts; no query while the store's read token is the one taken before
        they were read (``Run.get`` reads them with the run).

        Called right after ``_refreshed()``, which leaves ``_token`` the current token.
        """
        app = self._session.app
        token = self._token
        cached = self._log_events
        if token is not None and cached is not None and cached[0] == token:
            events = cached[1]
        else:
            events = log_parts(app, self._run_id)
            self._log_events = (token, events)
        return [e for e in events if isinstance(e, LogAppended)]

    def get_details_with_logs(self) -> dict[str, Any]:
        """Return ``get_details()`` with each log's content in place of its location.

        Logs recorded by an older runledger as host paths are not read: their value stays the
        path (no code opens a path read from the ledger).

        Raises:
            FileDamagedError: a log's content is missing or damaged.
        """
        details = self.get_details()
        logs = dict(details.get("logFiles") or {})
        for name, where in logs.items():
            if where.startswith("runledger://"):
                logs[name] = self.read_file(name).decode("utf-8", errors="replace")
        details["logFiles"] = logs
        return details

    def get_all_logs(self, destination: str | os.PathLike[str] | None = None) -> (
            builtins.list[str]):
        """Download every log of the run (``azureml-logs/...``, ``logs/...``, growing ones
        included) into ``destination`` (default: the working directory), keeping their names
        as paths; returns the paths written.

        Raises:
            FileDamagedError: a log's content is missing or damaged.
        """
        root = Path(destination) if destination is not None else Path.cwd()
        root.mkdir(parents=True, exist_ok=True)
        written = []
        for name in self._log_names():
            target = safe_target(root, name, self._run_id)
            self._write_file(name, target)
            written.append(str(target))
        return written

    def follow_logs(self, write: Callable[[str, str], Any], *, follow: bool = True,
                    poll: float = 0.25, names: Iterable[str] | None = None) -> None:
        """Write the run's logs as they grow, until the run ends (or once, without ``follow``).

        Reads through the store (the logs' appended parts), so it works from any host.

        Args:
            write: called with each log name and piece of text, in order.
            follow: keep going until the run has ended.
            poll: seconds between two looks.
            names: only these logs (default: every log).
        """
        from ledger.domain.status import RunStatus

        tail = LogTail(self._session.app, self._run_id, names)
        while True:
            ended = RunStatus(self._refreshed().status.value).is_terminal
            for name, text in tail.read_new():
                write(name, text)
            if ended or not follow:
                return
            time.sleep(poll)

    # ------------------------------------------------------------------ snapshots
    def take_snapshot(self, file_or_folder_path: str | os.PathLike[str]) -> str:
        """Snapshot a folder (``.amlignore``, else ``.gitignore``) as the run's source; see
        ``ledger.sdk.snapshots``. Returns the snapshot id.

        Raises:
            ValidationError: not a folder, or the run already has another snapshot.
            SnapshotTooLargeError: past the snapshot limit (nothing is recorded).
        """
        from ledger.sdk.snapshots import PROP_SNAPSHOT_ID, take_snapshot

        properties = take_snapshot(self._session.app, file_or_folder_path)
        recorded = self._refreshed().properties.get(PROP_SNAPSHOT_ID)
        if recorded is not None and recorded != properties[PROP_SNAPSHOT_ID]:
            raise ValidationError(f"Run {self._run_id!r} already has snapshot {recorded}; a run "
                                  "has one snapshot")
        self._command(lambda agg, actor: agg.add_properties(properties, actor),
                      publish_first=True)
        return properties[PROP_SNAPSHOT_ID]

    def get_snapshot_id(self) -> str | None:
        """Return the id of the run's source snapshot (``None`` if it has none)."""
        from ledger.sdk.snapshots import PROP_SNAPSHOT_ID

        return self._refreshed().properties.get(PROP_SNAPSHOT_ID)

    def restore_snapshot(self, snapshot_id: str | None = None,
                         path: str | os.PathLike[str] | None = None) -> str:
        """Write a snapshot's zip into the folder ``path`` (default: the working directory).

        Args:
            snapshot_id: the snapshot (default: this run's); any run's snapshot of the ledger.
            path: the folder to write ``<snapshot id>.zip`` into.

        Returns:
            The zip's path.

        Raises:
            ValidationError: no such snapshot.
            FileDamagedError: the stored zip is damaged (nothing is written).
        """
        from ledger.sdk.snapshots import PROP_SNAPSHOT_ID, find_snapshot, write_snapshot

        found = find_snapshot(self._refreshed().properties)
        if snapshot_id is not None and (found is None or found[0] != snapshot_id):
            index = self._session.before_query()
            found = None
            for row in index.find_runs(properties={PROP_SNAPSHOT_ID: snapshot_id},
                                       include_children=True):
                other = self._session.app.get_run(row.run_id)
                found = find_snapshot(other.properties)
                break
        if found is None:
            raise ValidationError(
                f"restore_snapshot of run {self._run_id!r}: "
                + (f"no snapshot {snapshot_id!r}" if snapshot_id else "the run has no snapshot"))
        return write_snapshot(self._session.app, self._run_id, found[1], found[0], path)

    # ------------------------------------------------------------------ outputs
    def _upload_outputs(self, folder: Path) -> None:
        """Upload ``folder`` under ``outputs/`` (names already uploaded are skipped), unless
        it holds more than the outputs limit (then a warning on stderr, nothing uploaded)."""
        try:
            with os.scandir(folder) as entries:
                if next(entries, None) is None:
                    return  # the usual case, and complete() is on every run's path: no walk
        except (FileNotFoundError, NotADirectoryError):
            return
        found = folder_files(OUTPUTS_FOLDER, folder, self._run_id)
        existing = set(self._refreshed().files)
        found = [(n, p) for n, p in found if n not in existing]
        if not found:
            return
        total = sum(p.stat().st_size for _n, p in found)
        limit = _outputs_limit()
        if total > limit:
            print(f"runledger: not uploading {folder} for run {self._run_id}: "
                  f"{total} bytes exceeds the outputs limit of {limit} bytes "
                  f"({OUTPUTS_LIMIT_ENV})", file=sys.stderr)
            return
        self._record_uploads([n for n, _p in found], [p for _n, p in found])


def safe_target(root: Path, name: str, run_id: str | None) -> Path:
    """Return where the run file ``name`` goes under ``root``, refusing any way out of it.

    Raises:
        ValidationError: the name is unsafe, or a link inside ``root`` leads outside it.
    """
    name = check_file_name(name, run_id)
    base = root.resolve()
    target = root.joinpath(*name.split("/"))
    parent = target.parent
    if parent.exists() or parent.is_symlink():
        resolved = parent.resolve()
    else:
        # The missing folders will be created inside whatever part exists: check that part.
        existing = parent
        while not existing.exists() and not existing.is_symlink():
            existing = existing.parent
        resolved = existing.resolve()
    if resolved != base and base not in resolved.parents:
        raise ValidationError(f"download of {name!r} from run {run_id!r}: a link in "
                              f"{str(root)!r} leads outside it; not writing there")
    if target.is_dir() and not target.is_symlink():
        raise ValidationError(f"download of {name!r} from run {run_id!r}: {str(target)!r} is a "
                              "folder")
    return target


def _run_file(name: str, entry: Mapping[str, Any]) -> RunFile:
    return RunFile(name=name, size=int(entry["size"]), sha256=str(entry["sha256"]),
                   media_type=str(entry["media_type"]), uploaded_at=entry["uploaded_at"],
                   uploaded_by=Actor.from_dict(entry.get("uploaded_by") or {}))


def _growing_logs(parts: Iterable[LogAppended]) -> dict[str, tuple[int, datetime, Actor]]:
    logs: dict[str, tuple[int, datetime, Actor]] = {}
    for part in parts:
        logs[part.name] = (part.offset + part.size, part.timestamp,
                           Actor.from_dict(part.actor or {}))
    return logs
