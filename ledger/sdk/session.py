"""One open ledger in this process: its application, its query index and its background flusher.

Every ``Workspace`` on the same store URL in a process shares one ``LedgerSession``.

Write path. A run created in this process is *unpublished* until its first flush point: its
commands (start, tags, properties, child creation...) are validated and applied to its aggregate at
once, and its events are appended in one transaction, together with those of every other
unpublished run of the session (group commit), at the next flush point: ``flush()``,
``complete()``/``fail()``/``cancel()``, a query through the session (read-your-writes), the
background flusher (every ``flush_interval`` seconds), or interpreter exit. Once published, each
command on a run appends its events when it is called. Metric values are buffered the same way,
many to an event. Nobody else can know an unpublished run, so publishing never conflicts.

Locks. Each run has its own lock; the session has a publish lock and a leaf lock for its lists. A
thread holding a run's lock never takes the publish lock or another run's lock; publishing takes
the publish lock, then the locks of the runs it publishes in creation order. So no deadlock.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ledger.application import LedgerApplication
from ledger.config import LedgerSettings
from ledger.sdk import forking, signals

if TYPE_CHECKING:
    from ledger.domain.run import RunAggregate
    from ledger.sdk.run import Run
    from ledger.sdk.run_metrics import MetricsMixin
    from projections.index import RunIndex

logger = logging.getLogger("runledger")


class LedgerSession:
    """The process-wide state of one open ledger.

    Args:
        settings: the ledger's settings (``ledger.config.resolve_settings``): its store, the
            background flush interval, the metric batch size and the user recorded as actor.
    """

    def __init__(self, settings: LedgerSettings) -> None:
        self.settings = settings
        self.store = store = settings.store
        self.pid = os.getpid()
        with signals.blocked():  # the pool threads it may start must not take the signals
            self._app: LedgerApplication | None = LedgerApplication(store)
        self._index: RunIndex | None = None
        self._fresh_state()
        self.last_flush_error: BaseException | None = None
        self.flush_interval = settings.flush_interval
        self._start_flusher()
        _live_sessions.add(self)
        forking.install(_sessions_of_this_process, flush_sessions)
        signals.install(flush_sessions)

    def _fresh_state(self) -> None:
        self._index_lock = threading.Lock()
        self._app_lock = threading.Lock()
        self._publish_lock = threading.RLock()
        self._flush_lock = threading.RLock()
        self._list_lock = threading.Lock()
        self._unpublished: list[Run] = []
        self._unflushed_metrics: dict[int, MetricsMixin] = {}

    def _start_flusher(self) -> None:
        self._stop = threading.Event()
        # The thread holds the session weakly, so an unused session (a memory:// ledger of a
        # test, say) is collected and its thread ends.
        self._flusher = threading.Thread(target=_flush_loop, args=(weakref.ref(self),),
                                         name="runledger-flusher", daemon=True)
        self._flusher.start()

    @property
    def app(self) -> LedgerApplication:
        """The ledger's application (opened again on first use in a forked child)."""
        app = self._app
        if app is None:
            with self._app_lock:
                if self._app is None:
                    with signals.blocked():
                        self._app = LedgerApplication(self.store)
                    self._start_flusher()
                app = self._app
        return app

    def reset_after_fork(self, abandoned: list[Any]) -> None:
        """In a forked child: start again with empty buffers, fresh locks and no connection
        (see ``ledger.sdk.forking``). The parent's connections are kept in ``abandoned``, never
        closed nor used here."""
        abandoned.extend(x for x in (self._app, self._index) if x is not None)
        self._app = None
        self._index = None
        self.pid = os.getpid()
        self.last_flush_error = None
        self._fresh_state()

    # ------------------------------------------------------------------ the query index
    @property
    def index(self) -> RunIndex:
        """The query index, created on first use."""
        if self._index is None:
            with self._index_lock:
                if self._index is None:
                    from projections.index import RunIndex

                    self._index = RunIndex(self.app)
        return self._index

    def before_query(self) -> RunIndex:
        """Make every write of this process visible to queries, record NotResponding for the
        script runs whose supervisor stopped beating (``ledger.sdk.liveness``), then catch the
        index up.

        Returns:
            The caught-up index.
        """
        from ledger.sdk.liveness import record_lapsed

        self.flush_all()
        index = self.index
        index.catch_up()
        written = record_lapsed(self, index)
        if written:
            index.catch_up(written)
        return index

    def load_run(self, run_id: str) -> RunAggregate:
        """Load a run from the store, after publishing this process's new runs (it may be one).

        Raises:
            RunNotFoundError: no run has this id.
            StoreError: the store failed.
        """
        if self._unpublished:
            self.publish()
        return self.app.get_run(run_id)

    def load_run_with_logs(self, run_id: str) -> tuple[RunAggregate, list[Any], Any]:
        """``load_run``, with the events of the run's log stream and the store's read token
        taken just before the read (``LedgerApplication.read_token``: ``None`` when the store
        has none).

        Raises:
            RunNotFoundError: no run has this id.
            StoreError: the store failed.
        """
        if self._unpublished:
            self.publish()
        app = self.app
        token = app.read_token()
        aggregate, logs = app.get_run_and_logs(run_id)
        return aggregate, logs, token

    # ------------------------------------------------------------------ pending writes
    def add_unpublished(self, run: Run) -> None:
        """Remember a run created here whose events are not yet appended."""
        with self._list_lock:
            self._unpublished.append(run)

    def add_unflushed_metrics(self, run: MetricsMixin) -> None:
        """Remember a run that has buffered metric values."""
        with self._list_lock:
            self._unflushed_metrics[id(run)] = run

    def publish(self) -> int:
        """Append the events of every unpublished run in one transaction.

        Must not be called while holding a run's lock.

        Returns:
            The position of the write (0 if nothing was pending).

        Raises:
            StoreError: the store failed (the runs stay unpublished, nothing is lost).
        """
        with self._publish_lock:
            with self._list_lock:
                runs = self._unpublished
                self._unpublished = []
            if not runs:
                return 0
            locks = [run._lock for run in runs]
            for lock in locks:
                lock.acquire()
            try:
                pending = [(run._agg, run._agg.collect_events()) for run in runs
                           if run._agg is not None]
                try:
                    position = self.app.save_all(*(e for _, events in pending for e in events))
                except BaseException:
                    # Nothing was written: put the events back, to be appended next time.
                    for aggregate, events in pending:
                        aggregate.pending_events[:0] = events
                    with self._list_lock:
                        self._unpublished[:0] = runs
                    raise
                for run in runs:
                    run._published = True
                return position
            finally:
                for lock in reversed(locks):
                    lock.release()

    def flush_metrics(self) -> None:
        """Append the buffered metrics of every run of this session."""
        with self._list_lock:
            runs = list(self._unflushed_metrics.values())
            self._unflushed_metrics.clear()
        for done, run in enumerate(runs):
            try:
                run._flush_metrics()
            except BaseException:
                # The runs not reached keep their values: flush them next time.
                with self._list_lock:
                    for later in runs[done:]:
                        self._unflushed_metrics[id(later)] = later
                raise

    def flush_all(self) -> None:
        """Publish every unpublished run and append every buffered metric value.

        Raises:
            StoreError: the store failed.
        """
        # One flush at a time: a flush that finds nothing left to take must still wait for the
        # one in progress, which may be writing what this caller buffered.
        with self._flush_lock:
            if self._unpublished:
                self.publish()
            if self._unflushed_metrics:
                self.flush_metrics()

    def flush_in_background(self) -> None:
        """One round of the background flusher: flush, and log (not raise) a failure."""
        try:
            self.flush_all()
            self.last_flush_error = None
        except Exception as error:  # keep flushing later; the data stays buffered
            self.last_flush_error = error
            logger.warning("runledger: background flush to %s failed: %s",
                           self.store.display_url, error)

    def close(self) -> None:
        """Flush everything, stop the background flusher and close the store."""
        self._stop.set()
        try:
            self.flush_all()
        finally:
            if self._index is not None:
                self._index.close()
            if self._app is not None:
                self._app.close()
            _live_sessions.discard(self)


def _flush_loop(session_ref: weakref.ref[LedgerSession]) -> None:
    signals.block_in_this_thread()
    session = session_ref()
    if session is None:
        return
    stop, interval = session._stop, session.flush_interval
    del session
    while not stop.wait(interval):
        session = session_ref()
        if session is None:
            return
        session.flush_in_background()
        del session


_live_sessions: weakref.WeakSet[LedgerSession] = weakref.WeakSet()
_sessions: dict[tuple[int, str], LedgerSession] = {}
_sessions_lock = threading.Lock()


def open_session(settings: LedgerSettings) -> LedgerSession:
    """Return this process's session for a store, opening it on first use.

    ``memory://`` stores are never shared: each call opens a new, empty ledger. Workspaces of
    one process on one store share its session, with the settings of the first to open it.

    Raises:
        StoreError: the store cannot be opened.
    """
    store = settings.store
    if store.kind == "memory":
        return LedgerSession(settings)
    key = (os.getpid(), store.url)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            # After a fork, the parent's sessions (their threads and connections) are unusable.
            for stale in [k for k in _sessions if k[0] != key[0]]:
                del _sessions[stale]
            session = _sessions[key] = LedgerSession(settings)
        return session


def _sessions_of_this_process() -> list[LedgerSession]:
    return list(_live_sessions)


def flush_sessions() -> None:
    """Flush every session of this process; log (not raise) what could not be written."""
    _flush_at_exit()


def _flush_at_exit() -> None:
    for session in list(_live_sessions):
        if session.pid != os.getpid():
            continue
        try:
            session.flush_all()
        except Exception as error:  # nothing to raise to at exit; say what was lost
            logger.error("runledger: could not flush to %s at exit: %s",
                         session.store.display_url, error)


atexit.register(_flush_at_exit)

