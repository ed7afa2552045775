"""Source snapshots: the folder a run was started from, zipped, stored once by SHA-256.

``submit()`` snapshots the ``ScriptRunConfig``'s source directory and ``start_logging(
snapshot_directory=...)`` the folder given; ``run.take_snapshot(path)`` does it by hand. What goes
in follows Azure ML: every folder's ``.amlignore`` if it has one, else its ``.gitignore``, in
gitignore syntax (``pathspec``) and with git's precedence: a folder's patterns are relative to that
folder, and the deepest ignore file with a pattern matching a path decides for it (a nested
``!keep.log`` brings back what the top ``*.log`` leaves out; a folder left out is not entered, as
git does). ``.git/`` and ``.runledger/`` (an embedded ledger) are never in. A
snapshot larger than :data:`SNAPSHOT_LIMIT` bytes (the seed's 300 MB;
``RUNLEDGER_SNAPSHOT_LIMIT_MB``) or with more than :data:`MAX_SNAPSHOT_FILES` files is refused
with ``SnapshotTooLargeError`` before anything is written.

The zip is reproducible (entries sorted, fixed timestamps), so the same source gives the same
SHA-256 and the same snapshot id (a UUID derived from it): it is stored once however many runs
share it. The run records ``azureml.snapshot_id``, ``runledger.snapshot_sha256`` and
``runledger.snapshot_size`` as properties, and, when the folder is in a git checkout,
``azureml.git.repository_uri``, ``azureml.git.branch``, ``azureml.git.commit`` and
``azureml.git.dirty`` (the seed's names). ``restore_snapshot()`` writes the zip back, checked.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pathspec

from ledger.domain.errors import BlobError, FileDamagedError, ValidationError
from ledger.domain.ids import LEDGER_NAMESPACE

if TYPE_CHECKING:
    from ledger.application import LedgerApplication

SNAPSHOT_LIMIT = 300 * 1024 * 1024
SNAPSHOT_LIMIT_ENV = "RUNLEDGER_SNAPSHOT_LIMIT_MB"
MAX_SNAPSHOT_FILES = 2000
ALWAYS_IGNORED = (".git/", ".runledger/")

PROP_SNAPSHOT_ID = "azureml.snapshot_id"
PROP_SNAPSHOT_SHA256 = "runledger.snapshot_sha256"
PROP_SNAPSHOT_SIZE = "runledger.snapshot_size"
PROP_GIT_REPOSITORY = "azureml.git.repository_uri"
PROP_GIT_BRANCH = "azureml.git.branch"
PROP_GIT_COMMIT = "azureml.git.commit"
PROP_GIT_DIRTY = "azureml.git.dirty"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class SnapshotTooLargeError(ValidationError):
    """A folder to snapshot holds more than the snapshot limit (bytes or files)."""


def _limit() -> int:
    raw = os.environ.get(SNAPSHOT_LIMIT_ENV)
    if not raw:
        return SNAPSHOT_LIMIT
    try:
        return int(float(raw) * 1024 * 1024)
    except ValueError:
        raise ValidationError(f"{SNAPSHOT_LIMIT_ENV} must be a number of MB, not {raw!r}") \
            from None


def snapshot_files(folder: str | os.PathLike[str],
                   exclude: frozenset[Path] = frozenset()) -> list[tuple[str, Path]]:
    """List the files a snapshot of ``folder`` holds (each folder's ``.amlignore``, else its
    ``.gitignore``; see the module docstring).

    Args:
        folder: the source folder.
        exclude: resolved paths left out whatever the ignore files say (the ledger's own
            database files, when they sit in the folder).

    Returns:
        ``(name in the zip, path)`` pairs, sorted by name.

    Raises:
        ValidationError: not a folder.
        SnapshotTooLargeError: more than the limit of bytes or files.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValidationError(f"Cannot snapshot {os.fspath(folder)!r}: not a folder")
    always = pathspec.GitIgnoreSpec.from_lines(ALWAYS_IGNORED)
    # The ignore files in force in the folder being walked: (its prefix, its patterns), from
    # the root down; os.walk visits a folder after its parent, so the parent's entry is there.
    specs: dict[str, list[tuple[str, pathspec.GitIgnoreSpec]]] = {}
    found: list[tuple[str, Path]] = []
    total = 0
    limit = _limit()
    for directory, dirs, files in os.walk(root):
        relative_dir = Path(directory).relative_to(root).as_posix()
        prefix = "" if relative_dir == "." else relative_dir + "/"
        parent = prefix.rstrip("/").rpartition("/")[0]
        in_force = list(specs.get(parent + "/" if parent else "", [])) if prefix else []
        own = _ignore_spec(Path(directory))
        if own is not None:
            in_force.append((prefix, own))
        specs[prefix] = in_force

        def ignored(relative: str, in_force: list[tuple[str, pathspec.GitIgnoreSpec]] = in_force
                    ) -> bool:
            if always.match_file(relative):
                return True
            for base, spec in reversed(in_force):  # the deepest file with a say decides
                decided = spec.check_file(relative[len(base):]).include
                if decided is not None:
                    return decided
            return False

        dirs[:] = sorted(d for d in dirs if not ignored(prefix + d + "/")
                         and not Path(directory, d).is_symlink())
        for name in sorted(files):
            relative = prefix + name
            path = Path(directory, name)
            if ignored(relative) or not path.is_file() or path.resolve() in exclude:
                continue
            found.append((relative, path))
            total += path.stat().st_size
            if total > limit:
                raise SnapshotTooLargeError(
                    f"Cannot snapshot {str(root)!r}: it holds more than {limit} bytes (the "
                    f"snapshot limit, {SNAPSHOT_LIMIT_ENV}); list what to leave out in "
                    ".amlignore or .gitignore")
            if len(found) > MAX_SNAPSHOT_FILES:
                raise SnapshotTooLargeError(
                    f"Cannot snapshot {str(root)!r}: it holds more than {MAX_SNAPSHOT_FILES} "
                    "files; list what to leave out in .amlignore or .gitignore")
    return sorted(found)


def _ignore_spec(directory: Path) -> pathspec.GitIgnoreSpec | None:
    """The patterns of a folder's ``.amlignore``, else of its ``.gitignore`` (None: neither)."""
    for ignore_file in (".amlignore", ".gitignore"):
        if (directory / ignore_file).is_file():
            lines = (directory / ignore_file).read_text(errors="replace").splitlines()
            return pathspec.GitIgnoreSpec.from_lines(lines)
    return None


def snapshot_id_of(sha256: str) -> str:
    """Return the snapshot id of a zip's SHA-256 (the same source always has the same id)."""
    return str(uuid.uuid5(LEDGER_NAMESPACE, "snapshot:" + sha256))


def take_snapshot(app: LedgerApplication, folder: str | os.PathLike[str]) -> dict[str, str]:
    """Zip ``folder``, store the zip, and return the properties a run records for it.

    Raises:
        ValidationError: not a folder.
        SnapshotTooLargeError: too many bytes or files (nothing is stored).
        StoreError: the store failed.
    """
    database = app.store.path
    exclude = frozenset() if database is None else frozenset(
        database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm", "-journal"))
    files = snapshot_files(folder, exclude)
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, path in files:
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (path.stat().st_mode & 0o777) << 16
                with open(path, "rb") as source, archive.open(info, "w") as target:
                    while True:
                        data = source.read(1024 * 1024)
                        if not data:
                            break
                        target.write(data)
        handle.seek(0)
        stored = app.blobs.write(handle)
    properties = {PROP_SNAPSHOT_ID: snapshot_id_of(stored.sha256),
                  PROP_SNAPSHOT_SHA256: stored.sha256, PROP_SNAPSHOT_SIZE: str(stored.size)}
    properties.update(git_properties(folder))
    return properties


def _git(folder: str | os.PathLike[str], *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", os.fspath(folder), *args], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_properties(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Return the seed's ``azureml.git.*`` properties of a folder in a git checkout ({} else).

    ``azureml.git.dirty`` is ``"True"`` when tracked files have uncommitted changes.
    """
    if _git(folder, "rev-parse", "--is-inside-work-tree") != "true":
        return {}
    properties: dict[str, str] = {}
    commit = _git(folder, "rev-parse", "HEAD")
    if commit:
        properties[PROP_GIT_COMMIT] = commit
    branch = _git(folder, "rev-parse", "--abbrev-ref", "HEAD")
    if branch:
        properties[PROP_GIT_BRANCH] = branch
    remote = _git(folder, "config", "--get", "remote.origin.url")
    if remote:
        properties[PROP_GIT_REPOSITORY] = remote
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    if status is not None:
        properties[PROP_GIT_DIRTY] = str(bool(status))
    return properties


def write_snapshot(app: LedgerApplication, run_id: str, sha256: str, snapshot_id: str,
                   folder: str | os.PathLike[str] | None) -> str:
    """Write a stored snapshot zip into ``folder`` (default: the working directory), checked.

    Returns:
        The path of the zip written (``<snapshot id>.zip``).

    Raises:
        FileDamagedError: the stored zip is missing or damaged (nothing is written).
    """
    root = Path(folder) if folder is not None else Path.cwd()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{snapshot_id}.zip"
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
        dir=root, prefix=f".{snapshot_id}.", suffix=".partial", delete=False)
    try:
        with handle:
            for data in app.blobs.read(sha256):
                handle.write(data)
        os.replace(handle.name, target)
    except BlobError as error:
        os.unlink(handle.name)
        raise FileDamagedError(run_id, f"snapshot {snapshot_id}", str(error)) from error
    except BaseException:
        os.unlink(handle.name)
        raise
    return str(target)


def find_snapshot(properties: dict[str, Any]) -> tuple[str, str] | None:
    """Return ``(snapshot id, sha256)`` recorded in a run's properties, if any."""
    snapshot_id, sha256 = properties.get(PROP_SNAPSHOT_ID), properties.get(PROP_SNAPSHOT_SHA256)
    if snapshot_id and sha256:
        return str(snapshot_id), str(sha256)
    return None
