"""Waiting for a run to end, and following its log files: ``Run.wait_for_completion()``.

Library code prints nothing, except where the seed API prints: ``wait_for_completion(
show_output=True)`` prints the run id, the script's output as it is written, and a summary.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from ledger.domain.errors import RunFailedError
from ledger.domain.status import RunStatus
from ledger.sdk.files import LogTail

if TYPE_CHECKING:
    from ledger.sdk.session import LedgerSession

# Statuses wait_for_completion() keeps waiting through.
WAIT_STATUSES = frozenset({
    RunStatus.NOT_STARTED, RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.STARTING,
    RunStatus.RUNNING, RunStatus.NOT_RESPONDING,
})
POST_PROCESSING_STATUSES = frozenset({RunStatus.FINALIZING, RunStatus.CANCEL_REQUESTED})


def _echo(text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


class WaitingMixin:
    """``Run.wait_for_completion()``."""

    if TYPE_CHECKING:
        _run_id: str
        _session: LedgerSession

        def get_status(self) -> str: ...

        def get_details(self) -> dict[str, Any]: ...

        def get_properties(self) -> dict[str, str | None]: ...

        def get_portal_url(self) -> str: ...

    def wait_for_completion(self, show_output: bool = False,
                            wait_post_processing: bool = False,
                            raise_on_error: bool = True) -> dict[str, Any]:
        """Wait until the run has ended, then return its details.

        Args:
            show_output: print the run id, the script's output as it comes, then a summary.
            wait_post_processing: also wait through Finalizing and CancelRequested.
            raise_on_error: raise if the run Failed.

        Raises:
            RunFailedError: the run Failed and ``raise_on_error`` is set.
        """
        if show_output:
            print(f"RunId: {self._run_id}")
            print(f"Web View: {self.get_portal_url()}")
        waiting = set(WAIT_STATUSES)
        if wait_post_processing:
            waiting |= POST_PROCESSING_STATUSES
        # Logs are read through the store (run files), never from a path recorded in the ledger.
        log = LogTail(self._session.app, self._run_id) if show_output else None
        delay = 0.02
        while RunStatus(self.get_status()) in waiting:
            if log is not None:
                _echo("".join(text for _name, text in log.read_new()))
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        if log is not None:
            _echo("".join(text for _name, text in log.read_new()))
        details = self.get_details()
        if show_output:
            print("\nExecution Summary\n=================")
            print(f"RunId: {self._run_id}")
            print(f"Status: {details['status']}\n")
        if raise_on_error and details["status"] == RunStatus.FAILED.value:
            raise RunFailedError(self._run_id, details.get("error", {}))
        return details
