"""The Studio's seams for what other branches bring: run files, logs as run files, the audit
verify status and archived experiments. Each is one small function the pages call, so filling it
in after the merge changes this module only.

Now (this branch): logs are the script run's log files recorded in its properties (the
``logFiles`` of ``get_details()``), read by their seed name, never by a path from the request;
runs have no other files; the verify status and archiving are not available.

After the merge:

- ``run_files``: ``ledger/sdk/files.py`` (wip/files) lists a run's files
  (``Run.get_files()`` -> ``RunFile``); return those, and serve downloads by name through its
  reader (``Run.read_file(name)``), the name matched against that list.
- ``run_logs`` / ``read_log``: log files become run files (``azureml-logs/...``): list them from
  the run's files, and tail them with ``LogTail`` (``log_parts(app, run_id, after)``).
- ``verify_status``: ``ledger/audit/`` (wip/audit): verify the log against the latest digest.
- ``archived_experiments``: wip/audittime's archive: the names of archived experiments.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from ledger.sdk.details import log_files

if TYPE_CHECKING:
    from ledger.sdk.workspace import Workspace
    from projections.read_models import RunRow

ARCHIVING_AVAILABLE = False
MAX_LOG_BYTES = 2_000_000


@attrs.frozen
class FileEntry:
    """A file shown on a run's page: its name and size in bytes (``None``: unknown)."""

    name: str
    size: int | None


@attrs.frozen
class VerifyStatus:
    """Whether the ledger verifies against its latest digest."""

    available: bool
    ok: bool | None
    message: str


def run_logs(row: RunRow) -> list[FileEntry]:
    """Return a run's log files by their seed names (``azureml-logs/70_driver_log.txt``...)."""
    entries = []
    for name, location in sorted(log_files(row.properties).items()):
        path = Path(location)
        entries.append(FileEntry(name=name, size=path.stat().st_size if path.is_file()
                                 else None))
    return entries


def read_log(row: RunRow, name: str) -> str | None:
    """Return the last :data:`MAX_LOG_BYTES` of a run's log file, found by its seed name.

    Args:
        row: the run.
        name: the log's name as :func:`run_logs` lists it; anything else (a path, ``..``)
            matches nothing.

    Returns:
        The text (invalid UTF-8 replaced), or ``None`` when the run has no log of that name or
        the file is gone.
    """
    location = log_files(row.properties).get(name)
    if location is None:
        return None
    path = Path(location)
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        size = path.stat().st_size
        handle.seek(max(0, size - MAX_LOG_BYTES))
        return handle.read().decode("utf-8", errors="replace")


def run_files(workspace: Workspace, row: RunRow) -> list[FileEntry]:
    """Return a run's files (none before wip/files is merged; see the module docstring)."""
    del workspace, row
    return []


def verify_status(workspace: Workspace) -> VerifyStatus:
    """Return the ledger's verify status (not available before wip/audit is merged)."""
    del workspace
    return VerifyStatus(available=False, ok=None,
                        message="Audit proofs are not in this build yet.")


def archived_experiments(workspace: Workspace) -> frozenset[str]:
    """Return the names of archived experiments (none before archiving is merged)."""
    del workspace
    return frozenset()


__all__ = ["FileEntry", "VerifyStatus", "archived_experiments", "read_log",
                      "run_files", "run_logs", "verify_status"]
