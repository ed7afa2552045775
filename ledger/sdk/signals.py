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
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

logger = logging.getLogger("runledger")

#: The signals the SDK flushes on.
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
#: Seconds the handler waits for the flush before letting the interrupted code go on.
FLUSH_WAIT = 5.0

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
