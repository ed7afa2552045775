"""Fork and multiprocessing safety: a child process never writes what its parent buffered, and
writes what it logs itself exactly once.

What happens at ``os.fork()`` (``multiprocessing`` with the ``fork`` start method, too):

- *Before* the fork, the parent flushes every session of the process (best effort: a failure is
  logged, the values stay buffered in the parent). So every run the child inherits is stored,
  and what was buffered is the parent's to write, once.
- *In the child*, each inherited session starts again: empty write buffers (the parent's
  unpublished runs and metric buffers are dropped: the parent writes them), fresh locks (a lock
  the background flusher held at the fork would never be released), no query index, and a new
  store connection opened on first use. The parent's connections are abandoned, never closed or
  used by the child (closing a PostgreSQL connection sends the server a goodbye on the socket the
  parent still uses). Runs the child inherited drop their buffered values and locks too.
- A child of ``multiprocessing`` ends with ``os._exit()``, which skips ``atexit``: the SDK
  registers a ``multiprocessing`` finalizer in each child so what it buffered is flushed when its
  work ends.

``spawn`` (and ``forkserver``) children share nothing: a ``Run`` given to one is pickled as its
store and id, and the child loads it (``Run.get``); pickling a run first flushes the parent's
buffered writes, so the child finds the run stored. A ``memory://`` ledger lives in one process
and cannot be shared with a child.
"""

from __future__ import annotations

import logging
import multiprocessing.util as mp_util
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ledger.domain.errors import ValidationError
from ledger.sdk import signals

if TYPE_CHECKING:
    from ledger.config import LedgerSettings
    from ledger.sdk.run import Run
    from ledger.sdk.session import LedgerSession
    from ledger.sdk.workspace import Workspace

logger = logging.getLogger("runledger")

# Every Run object of the process, so a child can empty the buffers it inherited.
_runs: weakref.WeakSet[Run] = weakref.WeakSet()
# What a child abandoned of its parent (connections, pools): kept referenced so they are never
# finalised (closed) by the child.
_abandoned: list[Any] = []


def track_run(run: Run) -> None:
    """Remember a run object, so that a forked child empties what it inherited of it."""
    _runs.add(run)


# Taken while a run built from a query row makes its lock and metric buffer on first use; a
# child gets a new one (another thread may have held it at the fork).
_lazy_state_lock = threading.Lock()


def lazy_state_lock() -> threading.Lock:
    """Return the lock under which a run makes its write state on first use."""
    return _lazy_state_lock


# Given by ``install()`` (the session module is above this one: it is never imported here).
def _no_sessions() -> list[LedgerSession]:
    return []


def _no_flush() -> None:
    return None


_sessions: Callable[[], list[LedgerSession]] = _no_sessions
_flush_sessions: Callable[[], None] = _no_flush


def _before_fork() -> None:
    pid = os.getpid()
    for session in _sessions():
        if session.pid != pid or session.store.kind == "memory":
            continue
        try:
            session.flush_all()
        except Exception as error:  # the fork goes on; the values stay buffered in the parent
            logger.warning("runledger: could not flush to %s before fork: %s",
                           session.store.display_url, error)


def _after_fork_in_child() -> None:
    global _lazy_state_lock
    signals.unblock_after_fork()
    signals.restart_watcher_after_fork()
    _lazy_state_lock = threading.Lock()
    for session in _sessions():
        session.reset_after_fork(_abandoned)
    for run in list(_runs):
        run._lock = threading.RLock()
        run._metrics.take()  # the parent's values: the parent writes them


def _register_child_flush(_obj: Any) -> None:
    # Runs in a multiprocessing child after it cleared its parent's finalizers.
    mp_util.Finalize(None, _flush_sessions, exitpriority=100)


def install(sessions: Callable[[], list[LedgerSession]], flush: Callable[[], None]) -> None:
    """Install the fork handlers (once per process; idempotent).

    Args:
        sessions: returns the open sessions of the process (``ledger.sdk.session``).
        flush: flushes every session of the process, logging what it cannot write.
    """
    global _installed, _sessions, _flush_sessions
    _sessions, _flush_sessions = sessions, flush
    if _installed:
        return
    _installed = True
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    # multiprocessing runs these in each child it starts, after clearing the parent's finalizers.
    mp_util.register_after_fork(_after_fork_in_child, _register_child_flush)


_installed = False


# ---------------------------------------------------------------------- pickling a Run
def reduce_run(run: Run) -> tuple[Any, tuple[Any, ...]]:
    """Return how to pickle a run: its store and id (the child loads it with ``Run.get``).

    Flushes the parent's buffered writes first, so the child finds the run stored.

    Raises:
        ValidationError: the run is in a ``memory://`` ledger, which no other process can see.
        StoreError: the flush failed.
    """
    workspace = run.experiment.workspace
    store = workspace._store
    if store.kind == "memory":
        raise ValidationError(
            f"Run {run.id!r} is in a memory:// ledger, which lives in this process only: it "
            "cannot be passed to another process (use sqlite:///path.db or PostgreSQL)")
    run._session.flush_all()
    # The classes travel by reference (their module and name), so nothing here imports them.
    return _load_run, (type(run), type(workspace), workspace._settings, run.id)


def _load_run(run_class: type[Run], workspace_class: type[Workspace],
              settings: LedgerSettings, run_id: str) -> Run:
    return run_class.get(workspace_class(_settings=settings), run_id)
