"""Flushing on SIGTERM and SIGHUP, then dying of the signal as if it had not been caught.

``docker stop``, systemd and Kubernetes stop a process with SIGTERM; a closed terminal sends
SIGHUP. Their default action ends the process at once, skipping ``atexit``: every buffered value
and every unpublished run would be lost. When the first ledger session of a process opens, the SDK
installs a handler for each of them **if the signal still has its default disposition and this
is the main thread** (a handler the application installed is left alone, and so is a signal it
ignores). The handler:

1. restores the default disposition (a second signal ends the process at once);
2. flushes every session of the process in a helper thread (bounded by the store's timeouts),
   waiting for it up to :data:`FLUSH_WAIT` seconds: if the interrupted code holds a lock the flush
   needs, the handler returns and the helper finishes once the lock is released;
3. sends the process the same signal again, so it ends as if the signal had not been caught
   (exit status ``-SIGTERM`` as seen by ``subprocess``, 143 in a shell).

A Python handler runs only when the main thread next checks for signals. A signal caught just
before the main thread enters a blocking wait in C that no signal ends (``multiprocessing``'s
lock ``acquire``, which a pool worker waits in for its next task) is never handled: the process
neither flushes nor ends (seen as a pool worker that ``terminate()`` could not stop). So the SDK
also asks Python to write each caught signal's number to a pipe (``signal.set_wakeup_fd``, when
nothing else uses it, asyncio say), and a watcher thread reading it gives the main thread a
no-op :data:`NUDGE` signal when the handler has not run :data:`NUDGE_AFTER` seconds later: the
wait is interrupted, and Python runs the pending handler.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

logger = logging.getLogger("runledger")

#: The signals the SDK flushes on.
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
#: Seconds the handler waits for the flush before letting the interrupted code go on.
FLUSH_WAIT = 5.0
#: The signal that wakes a main thread whose handler is pending (its handler does nothing).
NUDGE = getattr(signal, "SIGURG", None)
#: Seconds after a signal was caught before the watcher wakes the main thread.
NUDGE_AFTER = 0.5

_installed: set[int] = set()


def _no_flush() -> None:
    return None


# Given by ``install()`` (the session module is above this one: it is never imported here).
_flush_sessions: Callable[[], None] = _no_flush


def block_in_this_thread() -> None:
    """Keep SIGTERM and SIGHUP off the calling thread (the SDK's own threads call it first).

    The kernel gives a process's signal to any thread that does not block it. Python runs the
    handler in the main thread only, when it next runs Python code: a signal given to another
    thread while the main thread waits in C (a ``multiprocessing`` worker waiting for a task)
    would never be handled, and the process would neither flush nor end.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


def unblock_after_fork() -> None:
    """In a forked child: let the signals the SDK handles reach its one thread again.

    A child starts with the signal mask of the thread that forked it; forked while that thread
    had them blocked, a ``multiprocessing`` worker would never see the pool's SIGTERM and would
    wait for a task forever. Only the signals whose handler is the SDK's are unblocked.
    """
    mine = [signum for signum in SIGNALS if signum in _installed]
    if mine and hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, mine)


@contextlib.contextmanager
def blocked() -> Iterator[None]:
    """Block SIGTERM and SIGHUP in the calling thread while the block runs, so the threads it
    starts (a connection pool's) inherit the mask; a signal arriving meanwhile waits, then is
    handled."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _no_op(signum: int, frame: FrameType | None) -> None:
    return None


# The read end of this process's wake-up pipe (``None``: no watcher).
_wakeup_reader: int | None = None


def _watch(reader: int, main: int) -> None:
    """Read the numbers of the signals Python caught; when one of the SDK's is still waiting
    for its handler :data:`NUDGE_AFTER` seconds later, wake the main thread with :data:`NUDGE`.

    A byte from another process (a child forked a moment ago writes here until it has a pipe of
    its own) costs at most a needless nudge, which interrupts nothing for good.
    """
    block_in_this_thread()
    while True:
        try:
            data = os.read(reader, 64)
        except OSError:
            return
        if not data:
            return
        for signum in set(data):
            if signum not in SIGNALS:
                continue
            time.sleep(NUDGE_AFTER)
            if signal.getsignal(signum) is _handle and NUDGE is not None:
                with contextlib.suppress(OSError):
                    signal.pthread_kill(main, NUDGE)


def _start_watcher() -> None:
    """Give this process a wake-up pipe and its watcher (main thread only; see the module's
    docstring), unless the wake-up fd is someone else's or the platform lacks a part of it."""
    global _wakeup_reader
    if NUDGE is None or not hasattr(signal, "pthread_kill"):
        return
    if signal.getsignal(NUDGE) not in (signal.SIG_DFL, _no_op):
        return  # the application's own use of the signal
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    try:
        previous = signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
    except (ValueError, OSError):
        os.close(reader)
        os.close(writer)
        return
    if previous not in (-1, _wakeup_writer[0]):
        signal.set_wakeup_fd(previous)  # asyncio's, say: left as it was
        os.close(reader)
        os.close(writer)
        return
    signal.signal(NUDGE, _no_op)
    _wakeup_reader, _wakeup_writer[0], _wakeup_pid[0] = reader, writer, os.getpid()
    threading.Thread(target=_watch, args=(reader, threading.main_thread().ident),
                     name="runledger-signal-watch", daemon=True).start()


# The write end of the wake-up pipe (-1: none) and the process that made it: a child tells its
# parent's inherited pipe from its own by the pid.
_wakeup_writer = [-1]
_wakeup_pid = [0]


def restart_watcher_after_fork() -> None:
    """In a forked child: a wake-up pipe and watcher of its own (the inherited pipe is the
    parent's, and the watcher thread did not survive the fork)."""
    if _wakeup_writer[0] == -1 or _wakeup_pid[0] == os.getpid() or not _installed:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(OSError):
        os.close(_wakeup_writer[0])
    if _wakeup_reader is not None:
        with contextlib.suppress(OSError):
            os.close(_wakeup_reader)
    signal.set_wakeup_fd(-1)
    _wakeup_writer[0] = -1
    _start_watcher()


def install(flush: Callable[[], None] | None = None) -> list[int]:
    """Install the flushing handler on each signal whose handler is still the default.

    Does nothing off the main thread (Python allows handlers only there).

    Args:
        flush: flushes every session of the process, logging what it cannot write (kept from
            an earlier call when not given).

    Returns:
        The signals it installed a handler for in this call.
    """
    global _flush_sessions
    if flush is not None:
        _flush_sessions = flush
    if threading.current_thread() is not threading.main_thread():
        return []
    done = []
    for signum in SIGNALS:
        if signum in _installed:
            continue
        try:
            if signal.getsignal(signum) is not signal.SIG_DFL:
                continue  # the application's own handler, or SIG_IGN: left alone
            signal.signal(signum, _handle)
        except (ValueError, OSError):  # not the main interpreter, or not allowed here
            continue
        _installed.add(signum)
        done.append(signum)
    if done and _wakeup_writer[0] == -1:
        _start_watcher()
    return done


def _flush_then_die(signum: int) -> None:
    block_in_this_thread()
    try:
        _flush_sessions()
    except BaseException as error:  # still die of the signal
        logger.error("runledger: flush on signal %s failed: %s", signum, error)
    finally:
        os.kill(os.getpid(), signum)


def _handle(signum: int, frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_DFL)
    _installed.discard(signum)
    helper = threading.Thread(target=_flush_then_die, args=(signum,),
                              name="runledger-signal-flush", daemon=True)
    helper.start()
    helper.join(FLUSH_WAIT)
