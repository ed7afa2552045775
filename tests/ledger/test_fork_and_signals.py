"""Fork, multiprocessing and signal safety (issue 15, items 3 and 4).

Before: a forked child that flushed stored its parent's buffered values a second time; children
of a ``multiprocessing`` pool logging to the parent's run stored 0 of 400 values with no error;
forking while the background flusher ran hung some children and duplicated values; SIGTERM and
SIGHUP lost every buffered value and unwritten run. Now the parent flushes before a fork, a child
starts with empty buffers and fresh locks and connections and writes what it logs once, a ``Run``
pickles as its store and id, and SIGTERM/SIGHUP flush and then end the process as the signal
would have.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from mp_workers import dump_threads_on_sigusr1, log_values

from ledger import Experiment, Run, ValidationError, Workspace
from ledger.sdk import signals

REPO_ROOT = Path(__file__).resolve().parents[2]
FORK = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")


def _wait_child(pid: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"child {pid} hung after fork")


def _values(run: Run, name: str) -> list[int]:
    value = run.get_metrics(name).get(name, [])
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------------------------- fork
@FORK
def test_a_forked_child_never_writes_its_parents_buffer(
        shared_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLEDGER_FLUSH_INTERVAL", "3600")
    ws = Workspace(store=shared_store_url)
    run = Experiment(ws, "fork").start_logging()  # unpublished until the fork flushes it
    for i in range(100):
        run.log("parent", i)
    pid = os.fork()
    if pid == 0:  # the child: log, flush, leave without running the parent's atexit
        code = 0
        try:
            assert run._metrics.count == 0
            for i in range(50):
                run.log("child", i)
            run.tag("child", "yes")
            run.flush()
        except BaseException as error:  # pragma: no cover - reported by the exit code
            print("child failed:", repr(error), file=sys.stderr)
            code = 1
        os._exit(code)
    assert _wait_child(pid) == 0
    for i in range(100, 120):
        run.log("parent", i)
    run.complete()
    assert _values(run, "parent") == list(range(120))  # once each
    assert _values(run, "child") == list(range(50))
    assert run.get_tags()["child"] == "yes"


@FORK
def test_forking_while_the_background_flusher_runs_neither_hangs_nor_doubles(
        shared_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLEDGER_FLUSH_INTERVAL", "0.005")
    ws = Workspace(store=shared_store_url)
    run = Experiment(ws, "busy").start_logging()
    run.flush()
    stop = threading.Event()
    logged = []

    def keep_logging() -> None:
        i = 0
        while not stop.is_set():
            run.log("parent", i)
            logged.append(i)
            i += 1
            time.sleep(0.0005)

    logger = threading.Thread(target=keep_logging)
    logger.start()
    try:
        for child in range(8):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    for i in range(10):
                        run.log("child", child * 10 + i)
                    run.flush()
                except BaseException as error:  # pragma: no cover
                    print("child failed:", repr(error), file=sys.stderr)
                    code = 1
                os._exit(code)
            assert _wait_child(pid) == 0
    finally:
        stop.set()
        logger.join()
    run.complete()
    assert _values(run, "parent") == logged
    assert sorted(_values(run, "child")) == list(range(80))


# ---------------------------------------------------------------------------------- pools
@FORK
def test_a_forked_multiprocessing_pool_logging_to_one_run_loses_and_doubles_nothing(
        shared_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _pool_logs_each_value_once(shared_store_url, "fork", monkeypatch)


def test_a_spawned_multiprocessing_pool_logging_to_one_run_loses_and_doubles_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # spawn is store-independent (a child opens the store afresh): SQLite covers it; its
    # children's imports cost seconds.
    _pool_logs_each_value_once(f"sqlite:///{tmp_path / 'ledger.db'}", "spawn", monkeypatch)


def _pool_logs_each_value_once(shared_url: str, method: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLEDGER_FLUSH_INTERVAL", "3600")  # only the children's ends flush
    ws = Workspace(store=shared_url)
    run = Experiment(ws, "pool").start_logging()
    tasks = [(run, first, 50) for first in range(0, 400, 50)]
    context = multiprocessing.get_context(method)
    hung: list[int] = []

    def kill_hung_workers() -> None:  # so a regression fails the test instead of hanging it
        for worker in list(pool._pool):  # type: ignore[attr-defined]
            if worker.is_alive():
                hung.append(worker.pid)
                # Each thread's signal state: whether SIGTERM is pending, blocked, caught.
                for task in sorted(Path(f"/proc/{worker.pid}/task").glob("*")):
                    status = (task / "status").read_text().splitlines()
                    print(task.name, *(line for line in status if line.startswith(
                        ("SigPnd", "ShdPnd", "SigBlk", "SigCgt"))), file=sys.stderr)
                os.kill(worker.pid, signal.SIGUSR1)  # its threads' stacks, to stderr
                time.sleep(1)
                os.kill(worker.pid, signal.SIGKILL)

    # Leaving the block terminates the workers (SIGTERM).
    with context.Pool(2, initializer=dump_threads_on_sigusr1) as pool:
        assert sum(pool.map(log_values, tasks)) == 400
        watchdog = threading.Timer(60, kill_hung_workers)
        watchdog.start()
    watchdog.cancel()
    assert not hung, f"pool workers {hung} did not end on SIGTERM"
    run.complete()
    values = _values(run, "p")
    assert sorted(values) == list(range(400)), f"{len(values)} of 400 values stored"


def test_a_run_of_a_memory_ledger_cannot_be_sent_to_another_process(exp: Experiment) -> None:
    import pickle

    if exp.workspace._store.kind != "memory":
        run = exp.start_logging()
        again = pickle.loads(pickle.dumps(run))
        assert again.id == run.id and again.get_status() == "Running"
        return
    with pytest.raises(ValidationError, match="memory"):
        pickle.dumps(exp.start_logging())


# ---------------------------------------------------------------------------------- signals
_SCRIPT = textwrap.dedent("""
    import signal, sys, time
    from ledger import Experiment, Workspace
    if sys.argv[2] == "app-handler":
        def handler(signum, frame):
            print("app handler", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, handler)
    ws = Workspace(store=sys.argv[1])
    run = Experiment(ws, "signals").start_logging()   # never flushed before the signal
    for i in range(500):
        run.log("v", i)
    run.tag("t", "x")
    print(run.id, flush=True)
    if sys.argv[2] == "caught-elsewhere":
        # The signal is caught by another thread while the main thread waits in C, in a wait
        # no signal to another thread ends (a pool worker's, for its next task).
        import multiprocessing, threading
        lock = multiprocessing.Lock()
        lock.acquire()
        def catch_it_here():
            time.sleep(0.5)
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        threading.Thread(target=catch_it_here).start()
        lock.acquire()
    time.sleep(60)
""")


def _start(url: str, mode: str) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, RUNLEDGER_FLUSH_INTERVAL="3600",
               PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen([sys.executable, "-c", _SCRIPT, url, mode], env=env,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    run_id = process.stdout.readline().strip()
    assert run_id, "the script did not start"
    return process, run_id


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_a_terminating_signal_flushes_then_ends_the_process_as_uncaught(
        shared_store_url: str, signum: int) -> None:
    process, run_id = _start(shared_store_url, "default")
    process.send_signal(signum)
    assert process.wait(timeout=30) == -signum
    process.stdout.close()  # type: ignore[union-attr]
    run = Run.get(Workspace(store=shared_store_url), run_id)
    assert _values(run, "v") == list(range(500))
    assert run.get_tags() == {"t": "x"}


def test_a_signal_the_main_thread_did_not_see_still_flushes_and_ends_the_process(
        shared_store_url: str) -> None:
    # Python runs a handler in the main thread, when it next checks for signals: waiting in
    # multiprocessing's lock, it never would. The SDK's watcher wakes it.
    process, run_id = _start(shared_store_url, "caught-elsewhere")
    try:
        assert process.wait(timeout=30) == -signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
    run = Run.get(Workspace(store=shared_store_url), run_id)
    assert _values(run, "v") == list(range(500))


def test_a_handler_the_application_installed_is_left_alone(tmp_path: Path) -> None:
    # Which handler runs does not depend on the store: SQLite covers it.
    shared_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    process, run_id = _start(shared_url, "app-handler")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 3
    assert process.stdout.read().strip() == "app handler"  # type: ignore[union-attr]
    process.stdout.close()  # type: ignore[union-attr]
    run = Run.get(Workspace(store=shared_url), run_id)
    assert _values(run, "v") == list(range(500))  # its sys.exit ran atexit's flush


def test_no_handler_is_installed_off_the_main_thread() -> None:
    installed: list[list[int]] = []
    thread = threading.Thread(target=lambda: installed.append(signals.install()))
    thread.start()
    thread.join()
    assert installed == [[]]


@FORK
def test_a_child_forked_while_the_signals_are_blocked_still_ends_on_sigterm(
        shared_store_url: str) -> None:
    # A child starts with the forking thread's signal mask: forked inside a blocked region (the
    # SDK opens stores in one), it would never see SIGTERM and would run on.
    ws = Workspace(store=shared_store_url)
    run = Experiment(ws, "masked").start_logging()
    run.flush()
    if signal.SIGTERM not in signals._installed:
        pytest.skip("the SDK's SIGTERM handler is not installed in this process "
                    "(another handler was there first)")
    with signals.blocked():
        pid = os.fork()
        if pid == 0:  # the child: wait, as an idle pool worker does
            time.sleep(20)
            os._exit(0)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the child forked with SIGTERM blocked did not end on SIGTERM")
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
