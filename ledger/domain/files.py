"""Run files, as the domain sees them: safe names, media types, and the log-part event.

A run's files are content-addressed: each upload records a ``FileUploaded`` event on the run
(``ledger.domain.run``) naming the file and the SHA-256 of its content, which is stored once per
distinct content (``ledger.persistence.blobs``). A submitted script's logs grow while it runs: each
part appended to a log is a ``LogAppended`` event in a stream of the run's own (like its metrics,
so the run's stream stays short however much the script prints), whose bytes are a blob too.

Names (:func:`check_file_name`) are relative POSIX paths, normalised (``a//b/./c`` is ``a/b/c``,
NFC unicode), with no ``..`` segment, no leading ``/``, no drive (``C:``), no backslash, no NUL or
other control character; each segment at most 255 UTF-8 bytes, the whole at most 1,024 characters.
A name that passes can be joined to any target folder without leaving it.
"""

from __future__ import annotations

import mimetypes
import unicodedata
import uuid
from typing import Any

from eventsourcing.domain import DomainEvent
from eventsourcing.utils import register_topic

from ledger.domain.errors import ValidationError
from ledger.domain.ids import LEDGER_NAMESPACE

MAX_FILE_NAME_LENGTH = 1024
MAX_SEGMENT_BYTES = 255

#: The seed SDK's names of a submitted script's logs.
DRIVER_LOG = "azureml-logs/70_driver_log.txt"
CONTROL_LOG = "azureml-logs/60_control_log.txt"
#: Prefixes of files that are logs (``get_details()["logFiles"]``, ``download-logs``).
LOG_PREFIXES = ("azureml-logs/", "logs/")


def _where(run_id: str | None) -> str:
    return f" of run {run_id!r}" if run_id else ""


def check_file_name(name: Any, run_id: str | None = None, what: str = "file name") -> str:
    """Return the normalised form of a run file name, or refuse it.

    Args:
        name: the name the caller gave (``outputs/model.pkl``).
        run_id: the run, for the error message.
        what: what the name is, for the error message.

    Returns:
        The name normalised: NFC, ``/``-separated, without empty or ``.`` segments.

    Raises:
        ValidationError: not a string; empty; absolute; with a drive, a backslash, a ``..``
            segment, a NUL or control character, a lone surrogate; too long.
    """
    if not isinstance(name, str):
        raise ValidationError(
            f"{what}{_where(run_id)} must be a string, not {type(name).__name__}: {name!r}")
    shown = repr(name[:80])
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"{what} {shown}{_where(run_id)} is not valid unicode (a lone surrogate)") from None
    for char in name:
        if unicodedata.category(char) == "Cc":
            raise ValidationError(
                f"{what} {shown}{_where(run_id)} contains the control character {char!r}")
    if "\\" in name:
        raise ValidationError(
            f"{what} {shown}{_where(run_id)} contains a backslash: use '/' between folders")
    name = unicodedata.normalize("NFC", name)
    if name.startswith("/"):
        raise ValidationError(f"{what} {shown}{_where(run_id)} is absolute: give a relative name")
    segments = [s for s in name.split("/") if s not in ("", ".")]
    if not segments:
        raise ValidationError(f"{what} {shown}{_where(run_id)} names no file")
    if ".." in segments:
        raise ValidationError(f"{what} {shown}{_where(run_id)} contains '..'")
    if len(segments[0]) >= 2 and segments[0][1] == ":":
        raise ValidationError(f"{what} {shown}{_where(run_id)} starts with a drive")
    for segment in segments:
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise ValidationError(
                f"{what} {shown}{_where(run_id)} has a segment longer than "
                f"{MAX_SEGMENT_BYTES} bytes")
    normalised = "/".join(segments)
    if len(normalised) > MAX_FILE_NAME_LENGTH:
        raise ValidationError(
            f"{what} {shown}{_where(run_id)} is {len(normalised)} characters long; at most "
            f"{MAX_FILE_NAME_LENGTH} are allowed")
    return normalised


def check_prefix(prefix: Any, run_id: str | None = None) -> str:
    """Return a normalised name prefix (``outputs/``), the empty string for none.

    A trailing ``/`` is kept: ``outputs/`` matches files in the folder only, ``outputs`` also
    ``outputs.txt``, as the seed's plain string prefix does.

    Raises:
        ValidationError: not a string, or unsafe as a name (see :func:`check_file_name`).
    """
    if prefix is None or prefix == "":
        return ""
    checked = check_file_name(prefix, run_id, "prefix")
    return checked + "/" if str(prefix).endswith("/") else checked


#: Media types of the files ML runs upload most, looked up before the host's ``mimetypes``:
#: the same on every host (``/etc/mime.types`` varies: some map ``.pt`` to a SNES page table),
#: and no 12-17 ms read of the host's tables on a process's first upload.
KNOWN_MEDIA_TYPES = {
    ".pt": "application/octet-stream", ".pth": "application/octet-stream",
    ".ckpt": "application/octet-stream", ".bin": "application/octet-stream",
    ".safetensors": "application/octet-stream", ".onnx": "application/octet-stream",
    ".pkl": "application/octet-stream", ".pickle": "application/octet-stream",
    ".joblib": "application/octet-stream", ".npy": "application/octet-stream",
    ".npz": "application/zip", ".h5": "application/x-hdf5", ".hdf5": "application/x-hdf5",
    ".parquet": "application/vnd.apache.parquet", ".zip": "application/zip",
    ".gz": "application/gzip", ".tar": "application/x-tar",
    ".txt": "text/plain", ".log": "text/plain", ".md": "text/markdown", ".csv": "text/csv",
    ".tsv": "text/tab-separated-values", ".json": "application/json",
    ".jsonl": "application/jsonl", ".yaml": "application/yaml", ".yml": "application/yaml",
    ".toml": "application/toml", ".py": "text/x-python", ".html": "text/html",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".svg": "image/svg+xml", ".webp": "image/webp", ".bmp": "image/bmp", ".tif": "image/tiff",
    ".tiff": "image/tiff", ".pdf": "application/pdf",
}


def media_type(name: str) -> str:
    """Return the media type of a file from its name (``application/octet-stream`` if unknown).

    The suffixes of :data:`KNOWN_MEDIA_TYPES` (any case) are answered from it; others from the
    host's ``mimetypes``.
    """
    dot = name.rfind(".")
    if dot > name.rfind("/"):
        known = KNOWN_MEDIA_TYPES.get(name[dot:].lower())
        if known is not None:
            return known
    guessed, _encoding = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def is_log_name(name: str) -> bool:
    """Whether a run file is one of its logs (seed layout: ``azureml-logs/``, ``logs/``)."""
    return name.startswith(LOG_PREFIXES)


def log_stream_id(run_id: str) -> uuid.UUID:
    """Return the UUID of the stream holding the parts of a run's growing log files."""
    return uuid.uuid5(LEDGER_NAMESPACE, "logs:" + run_id)


class LogAppended(DomainEvent):
    """A part was appended to one of a run's growing log files.

    ``offset`` is where the part starts in the log, ``size`` its length in bytes and ``sha256``
    the digest of its bytes, stored as a blob before this event was appended (so a part is never
    visible before its bytes are stored).
    """

    TOPIC = "runledger:Run.LogAppended"
    run_id: str
    name: str
    offset: int
    size: int
    sha256: str
    actor: dict[str, Any]


register_topic(LogAppended.TOPIC, LogAppended)
