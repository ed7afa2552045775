"""Processes of submitted scripts, identified by pid *and* start time (``psutil``).

A pid alone names a process only while it lives: once it exits the kernel may give the same pid
to an unrelated process. runledger records each supervisor's and script's start time beside its
pid, and never signals a pid whose process started at another time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil

#: Start times recorded and read back agree to psutil's resolution (clock ticks); a reused pid
#: started at least this much later.
START_TIME_TOLERANCE = 0.05
STOP_TIMEOUT = 30.0


def start_time(pid: int) -> float | None:
    """Return when a process started (Unix seconds), or ``None`` if there is none.

    Args:
        pid: the process id.
    """
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def same_process(pid: int, started: float | None) -> psutil.Process | None:
    """Return the process ``pid`` if it runs (not a zombie) and started at ``started``.

    Args:
        pid: the process id.
        started: its recorded start time, or ``None`` to accept any process with this pid.

    Returns:
        The process, or ``None`` when it has exited or the pid now names another process.
    """
    if pid <= 0:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if started is not None and abs(process.create_time() - started) > START_TIME_TOLERANCE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None
    return process


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # Zombies still count for killpg(0): only running members matter.
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(
                    process.info["pid"]) == pgid:
                return True
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return False


def stop_tree(pid: int, started: float | None, grace: float = 3.0,
              timeout: float = STOP_TIMEOUT) -> bool:
    """Stop a script's whole process tree and return once it is gone.

    The tree is the process ``pid`` (if it is still the process that started at ``started``),
    its descendants, and the members of its process group (a script is started as the leader of
    a new group). SIGTERM first; SIGKILL to whatever is left after ``grace`` seconds.

    Args:
        pid: the script's pid (and process group id).
        started: its recorded start time (``None``: not known, the pid is trusted).
        grace: seconds between SIGTERM and SIGKILL.
        timeout: the most this waits in all.

    Returns:
        True when nothing of the tree runs any more; False if something outlived ``timeout``.
    """
    leader = same_process(pid, started)
    members: list[psutil.Process] = []
    if leader is not None:
        members.append(leader)
        with contextlib.suppress(psutil.Error):
            members.extend(leader.children(recursive=True))
    # The group is ours only if its leader is (or was, and its pid is not reused): when the
    # leader has exited and the pid names another process, the group id is not signalled.
    group_ours = leader is not None or start_time(pid) is None
    deadline = time.monotonic() + timeout

    def signal_all(signum: int) -> None:
        if group_ours:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signum)
        for member in members:
            with contextlib.suppress(psutil.Error):
                member.send_signal(signum)

    def gone() -> bool:
        running = [m for m in members if _running(m)]
        return not running and not (group_ours and _group_alive(pid))

    signal_all(signal.SIGTERM)
    term_deadline = min(deadline, time.monotonic() + grace)
    while not gone() and time.monotonic() < term_deadline:
        time.sleep(0.02)
    if gone():
        return True
    signal_all(signal.SIGKILL)
    while not gone():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _running(process: psutil.Process) -> bool:
    """Whether a process runs still (a zombie has stopped: it only waits to be reaped)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
