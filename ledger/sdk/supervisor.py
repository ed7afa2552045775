"""The supervisor of a submitted script run: ``python -m ledger.sdk.supervisor SPEC``.

``Experiment.submit()`` (``ledger.sdk.script``) starts one supervisor per script run, detached in
its own session, so the run keeps going and gets finalized even if the submitting process exits.
The supervisor:

1. starts the script as its own child, in a new process group, in the source directory, with
   ``RUNLEDGER_RUN_ID``, ``RUNLEDGER_STORE``, ``RUNLEDGER_EXPERIMENT`` and ``RUNLEDGER_WORKSPACE``
   set (so ``Run.get_context()`` finds the run), its stdout and stderr captured into the run's
   log file ``azureml-logs/70_driver_log.txt`` *as a file of the run*: appended in parts every
   ``LOG_FLUSH_INTERVAL`` seconds while the script runs (``ledger.sdk.files.LogAppender``), so
   any process on any host can follow it through the store;
2. records its own pid and host and the script's pid as properties, and marks the run Running;
3. writes a heartbeat every ``HEARTBEAT_INTERVAL`` seconds, in a row outside the event log
   (``ledger.persistence.heartbeats``): a reader that finds the Running run's heartbeat three
   intervals old records the run NotResponding (``ledger.sdk.liveness``), and the supervisor, if
   it was only paused, records it Running again;
4. polls the run's status every ``POLL_INTERVAL`` seconds: on CancelRequested (or SIGTERM/SIGINT
   to the supervisor, or ``max_run_duration_seconds`` exceeded) it stops the script's whole process
   tree (SIGTERM, then SIGKILL after ``KILL_GRACE`` seconds; ``ledger.sdk.processes``) and, once
   nothing of it runs, marks the run Canceled; when the
   run was ended by another process (``run.fail()`` from the submitter, say) it stops the script
   and leaves the status as it is;
5. when the script exits, marks the run Completed (exit code 0) or Failed (error code
   ``ScriptExecution.ExitCode``, with the exit code and the last line of stderr), unless the run
   has ended already.

When the script has ended (completed, failed, canceled or stopped), each log is also recorded as
a whole file of the run (``FileUploaded``, with its SHA-256) and the script's ``./outputs`` folder
is uploaded under ``outputs/`` (up to ``ledger.sdk.files.OUTPUTS_LIMIT``), before the run's final
status is recorded: a reader that sees the run ended finds its logs and outputs.

Its own messages go to the run's control log (``azureml-logs/60_control_log.txt``) and to its
stdout (a host file of the submitting side, for debugging only: never recorded in the ledger).
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import attrs

from ledger.domain.errors import InvalidTransitionError, LedgerError, ValidationError
from ledger.domain.files import CONTROL_LOG, DRIVER_LOG, media_type
from ledger.domain.ids import run_stream_id
from ledger.domain.names import (
    EXPERIMENT_ENV,
    PROP_SCRIPT_PID,
    PROP_SCRIPT_STARTED,
    PROP_SUPERVISOR_HOST,
    PROP_SUPERVISOR_PID,
    PROP_SUPERVISOR_STARTED,
    RUN_ID_ENV,
    STORE_ENV,
    SUPERVISED_RUN_ENV,
    WORKSPACE_ENV,
)
from ledger.domain.run import RunAggregate
from ledger.domain.status import RunStatus, can_transition
from ledger.domain.text import safe_text
from ledger.domain.values import Actor
from ledger.persistence.retry import RETRY
from ledger.sdk.files import OUTPUTS_FOLDER, LogAppender
from ledger.sdk.processes import start_time, stop_tree
from ledger.sdk.run import Run
from ledger.sdk.script import (
    EXIT_CODE_ERROR,
    KILL_GRACE,
    START_FAILED_ERROR,
    child_environment,
    stop_process_group,
)
from ledger.sdk.workspace import Workspace

POLL_INTERVAL = 0.15  # seconds between two looks at the run's status
# A supervisor outlasts a store that is down for a while: recording a script's end is retried
# with the one policy, for longer than a write conflict is.
STORE_RETRY = attrs.evolve(RETRY, deadline=120.0, attempts_max=1000)
HEARTBEAT_INTERVAL = 5.0  # seconds between two heartbeats (RUNLEDGER_HEARTBEAT_INTERVAL)
HEARTBEAT_ENV = "RUNLEDGER_HEARTBEAT_INTERVAL"
LOG_FLUSH_INTERVAL = 0.5  # seconds between two appended log parts (when there is output)
LOG_PART_SIZE = 1024 * 1024  # a part is appended at once when this much output waits
LOG_BUFFER_LIMIT = 64 * 1024 * 1024  # output kept while the store fails; older is dropped

_END_EVENTS = (RunAggregate.Completed, RunAggregate.Failed, RunAggregate.Canceled)
_TRACEBACK_HEAD = "Traceback (most recent call last):"
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


# ---------------------------------------------------------------------------------- the supervisor
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_control_sink: _LogSink | None = None


def _say(message: str) -> None:
    line = f"{_now()} supervisor[{os.getpid()}]: {message}"
    print(line, flush=True)
    if _control_sink is not None:
        _control_sink.write(CONTROL_LOG, (line + "\n").encode())


class _LogSink:
    """Buffers output per log name and appends it to the run's logs, a part at a time, from a
    thread of its own (so a slow store never blocks the script's pipes)."""

    def __init__(self, appender: LogAppender) -> None:
        self.appender = appender
        self.pending: dict[str, bytearray] = {}
        self.lock = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name="runledger-logs", daemon=True)
        self.thread.start()

    def write(self, name: str, data: bytes) -> None:
        with self.lock:
            buffer = self.pending.setdefault(name, bytearray())
            buffer += data
            if len(buffer) > LOG_BUFFER_LIMIT:  # the store has been failing for long
                dropped = len(buffer) - LOG_BUFFER_LIMIT // 2
                del buffer[:dropped]
                buffer[:0] = f"[runledger: {dropped} bytes of output dropped]\n".encode()
            if len(buffer) >= LOG_PART_SIZE:
                self.lock.notify()

    def _take(self) -> list[tuple[str, bytes]]:
        with self.lock:
            parts = [(name, bytes(data)) for name, data in self.pending.items() if data]
            self.pending = {}
        return parts

    def flush(self) -> bool:
        """Append what waits; on a store failure keep it for the next try. True if all went."""
        ok = True
        for name, data in self._take():
            try:
                self.appender.append(name, data)
            except LedgerError as error:
                ok = False
                print(f"{_now()} supervisor: cannot append to {name} ({error}); will retry",
                      flush=True)
                with self.lock:
                    self.pending[name] = bytearray(data) + self.pending.get(name, bytearray())
        return ok

    def _loop(self) -> None:
        while True:
            with self.lock:
                if not self.closed:
                    self.lock.wait(LOG_FLUSH_INTERVAL)
                closed = self.closed
            self.flush()
            if closed:
                return

    def close(self) -> None:
        """Append everything that waits (retrying a failing store a while) and stop."""
        with self.lock:
            self.closed = True
            self.lock.notify()
        self.thread.join(timeout=30)
        for _attempt in STORE_RETRY.attempts():  # the one policy, as the final status uses
            if self.flush():
                return


def failure_message(script: str, returncode: int, last_line: str | None) -> str:
    """Return the error message of a script that exited with a non-zero code.

    Args:
        script: the script (or command) as the user gave it.
        returncode: its exit code (negative: killed by that signal).
        last_line: the last non-empty line it wrote to stderr, if any.
    """
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        text = f"Script {script!r} was killed by {name} (exit code {returncode})"
    else:
        text = f"Script {script!r} failed with exit code {returncode}"
    return f"{text}: {last_line}" if last_line else text


class _StdoutPump(threading.Thread):
    """Copies the script's stdout into the driver log as it comes (no line buffering: a
    progress bar's carriage returns show at once)."""

    def __init__(self, pipe: IO[bytes], sink: _LogSink) -> None:
        super().__init__(name="runledger-stdout", daemon=True)
        self.pipe = pipe
        self.sink = sink

    def run(self) -> None:
        fd = self.pipe.fileno()
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            self.sink.write(DRIVER_LOG, data)
        self.pipe.close()


class _StderrPump(threading.Thread):
    """Copies the script's stderr into the driver log, remembering its last lines."""

    def __init__(self, pipe: IO[bytes], sink: _LogSink) -> None:
        super().__init__(name="runledger-stderr", daemon=True)
        self.pipe = pipe
        self.sink = sink
        self.tail: collections.deque[str] = collections.deque(maxlen=50)
        self.saw_traceback = False

    def run(self) -> None:
        for line in iter(self.pipe.readline, b""):
            self.sink.write(DRIVER_LOG, line)
            text = line.decode("utf-8", errors="replace").rstrip()
            if text.startswith(_TRACEBACK_HEAD):
                self.saw_traceback = True
            if text.strip():
                self.tail.append(text.strip())
        self.pipe.close()

    @property
    def last_line(self) -> str | None:
        return self.tail[-1] if self.tail else None

    @property
    def exception_type(self) -> str | None:
        """The type of the uncaught Python exception the script died of, if it looks so."""
        if not self.saw_traceback or not self.tail:
            return None
        match = _EXCEPTION_LINE.match(self.tail[-1])
        return match.group(1) if match else None


class Supervisor:
    """Runs one script for one run and records its end. See the module docstring.

    Args:
        spec: what ``ledger.sdk.script.submit_script`` wrote: ``run_id``, ``store``,
            ``workspace``, ``experiment``, ``argv``, ``cwd``, ``script``,
            ``max_run_duration_seconds``.
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.run_id = str(spec["run_id"])
        self.script_label = str(spec.get("script") or spec["argv"][-1])
        self.workspace = Workspace(workspace_name=spec.get("workspace"), store=str(spec["store"]))
        self.run = Run.get(self.workspace, self.run_id)
        self.process: subprocess.Popen[bytes] | None = None
        self.pump: _StderrPump | None = None
        self.stdout_pump: _StdoutPump | None = None
        self.appender = LogAppender(self.workspace._session.app, self.run_id)
        self.sink = _LogSink(self.appender)
        global _control_sink
        _control_sink = self.sink
        self.cwd = Path(str(spec["cwd"]))
        self.heartbeat_interval = float(os.environ.get(HEARTBEAT_ENV) or HEARTBEAT_INTERVAL)
        self._stop_beating = threading.Event()
        self.script_started: float | None = None
        _say(f"supervising run {self.run_id!r} on {socket.gethostname()}")
        self.signalled: int | None = None
        max_duration = spec.get("max_run_duration_seconds")
        self.max_duration: float | None = float(max_duration) if max_duration else None

    # ------------------------------------------------------------------ status
    def _status(self) -> RunStatus | None:
        try:
            return RunStatus(self.run.get_status())
        except LedgerError as error:  # a busy or flaky store: look again at the next poll
            _say(f"cannot read the run's status ({error}); will retry")
            return None

    def _apply(self, command: Callable[[RunAggregate, Actor], Any], what: str) -> Any:
        """Apply a command to the run, retrying (``STORE_RETRY``) while the store fails."""
        def attempt() -> Any:
            try:
                return self.run._command(command)
            except InvalidTransitionError as error:
                _say(f"{what}: {error}")
                return None
            except LedgerError as error:
                _say(f"{what}: {error}; retrying")
                raise

        try:
            return STORE_RETRY.call(attempt, retry_if=lambda error: isinstance(error, LedgerError))
        except LedgerError as error:
            _say(f"{what}: giving up: {error}")
            raise

    def _cancel(self) -> None:
        self._record_files()

        def command(agg: RunAggregate, actor: Actor) -> None:
            if not agg.status.is_terminal:
                agg.cancel(actor)

        self._apply(command, "marking the run Canceled")
        _say("run marked Canceled")

    def _finish(self, returncode: int) -> None:
        _say(f"script exited with code {returncode}; recording its logs, outputs and end")
        self._record_files()
        pump = self.pump
        last_line = pump.last_line if pump is not None else None
        exception_type = pump.exception_type if pump is not None else None
        # Recorded on the user's behalf: made safe (NUL, lone surrogates) and marked, not refused.
        message = safe_text(failure_message(self.script_label, returncode,
                                            safe_text(last_line, "value") if last_line else None))
        if exception_type is not None:
            exception_type = safe_text(exception_type, "name")

        def command(agg: RunAggregate, actor: Actor) -> str:
            if agg.status.is_terminal:
                return f"left {agg.status.value} (ended by another process)"
            if agg.status is RunStatus.CANCEL_REQUESTED:
                agg.cancel(actor)
                return "marked Canceled (cancel requested)"
            if returncode == 0:
                if not can_transition(agg.status, RunStatus.COMPLETED):
                    agg.start(actor)
                agg.complete(actor)
                return "marked Completed"
            agg.fail(EXIT_CODE_ERROR, message, exception_type, actor)
            return f"marked Failed: {message}"

        outcome = self._apply(command, "recording the script's end")
        _say(f"script exited with code {returncode}; run {outcome}")

    def _ended_by_script(self) -> bool:
        """Whether the run's end was recorded by the script's own processes (the script called
        ``complete()`` or ``fail()`` on its context run): then it is left to exit by itself."""
        if self.process is None:
            return False
        try:
            events = self.workspace.ledger.application.stream_events(run_stream_id(self.run_id))
        except LedgerError:
            return False
        ends = [e for e in events if isinstance(e, _END_EVENTS)]
        actor = Actor.from_dict(getattr(ends[-1], "actor", {}) or {}) if ends else None
        if actor is None or actor.host != socket.gethostname():
            return False
        if actor.pid == self.process.pid:
            return True
        try:
            return os.getpgid(actor.pid) == self.process.pid
        except OSError:
            return False

    # ------------------------------------------------------------------ the script
    def _start_script(self) -> bool:
        spec = self.spec
        base = {k: v for k, v in os.environ.items() if k != SUPERVISED_RUN_ENV}
        env = child_environment(base, {
            RUN_ID_ENV: self.run_id,
            STORE_ENV: str(spec["store"]),
            EXPERIMENT_ENV: str(spec["experiment"]),
            WORKSPACE_ENV: str(spec.get("workspace") or ""),
            "PYTHONUNBUFFERED": "1",
        })
        argv = [str(a) for a in spec["argv"]]
        try:
            self.process = subprocess.Popen(
                argv, cwd=str(spec["cwd"]), env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                close_fds=True)
        except OSError as error:
            message = safe_text(f"Could not start script {self.script_label!r}: {error}")
            error_type = type(error).__name__
            _say(message)

            def fail(agg: RunAggregate, actor: Actor) -> None:
                if not agg.status.is_terminal:
                    agg.fail(START_FAILED_ERROR, message, error_type, actor)

            self._apply(fail, "recording the failed start")
            return False
        assert self.process.stderr is not None and self.process.stdout is not None
        self.pump = _StderrPump(self.process.stderr, self.sink)
        self.pump.start()
        self.stdout_pump = _StdoutPump(self.process.stdout, self.sink)
        self.stdout_pump.start()
        _say(f"started script pid {self.process.pid}: {argv}")
        self.script_started = start_time(self.process.pid)
        supervisor_started = start_time(os.getpid())
        properties = {
            PROP_SUPERVISOR_PID: str(os.getpid()),
            PROP_SUPERVISOR_HOST: socket.gethostname(),
            PROP_SCRIPT_PID: str(self.process.pid),
            PROP_SUPERVISOR_STARTED: repr(supervisor_started),
            PROP_SCRIPT_STARTED: repr(self.script_started),
        }
        self._beat()  # before the run shows Running: a Running script run always has a beat
        threading.Thread(target=self._beat_loop, name="runledger-heartbeat",
                         daemon=True).start()

        def started(agg: RunAggregate, actor: Actor) -> None:
            agg.add_properties(properties, actor)
            if can_transition(agg.status, RunStatus.RUNNING):
                agg.start(actor)

        self._apply(started, "recording the start")
        return True

    def _beat(self) -> None:
        try:
            self.workspace._session.app.heartbeats.beat(
                self.run_id, self.heartbeat_interval, socket.gethostname(), os.getpid())
        except LedgerError as error:
            print(f"{_now()} supervisor: cannot write the heartbeat ({error})", flush=True)

    def _beat_loop(self) -> None:
        while not self._stop_beating.wait(self.heartbeat_interval):
            self._beat()

    def _stop_script(self) -> int:
        """Stop the script's whole tree; return its exit code once nothing of it runs."""
        process = self.process
        assert process is not None
        if not stop_tree(process.pid, self.script_started, grace=KILL_GRACE):
            _say("some of the script's processes outlived SIGKILL")
        returncode = process.wait()
        self._join_pumps()
        return returncode

    def _join_pumps(self) -> None:
        for pump in (self.pump, self.stdout_pump):
            if pump is not None:
                pump.join(timeout=2.0)

    def _record_files(self) -> None:
        """Append the last output, record each log as a whole file of the run, and upload the
        script's ./outputs folder (whatever the script's end). Failures are told, not raised:
        the run's end is recorded regardless."""
        self.sink.close()
        global _control_sink
        _control_sink = None
        app = self.workspace._session.app
        try:
            entries = []
            for name, parts in sorted(self.appender.parts.items()):
                info = app.blobs.concatenate(parts)
                entries.append((name, info.size, info.sha256, media_type(name)))

            def record(agg: RunAggregate, actor: Actor) -> None:
                fresh = [e for e in entries if e[0] not in agg.files]
                if fresh:
                    agg.add_files(fresh, actor)

            if entries:
                self._apply(record, "recording the logs")
        except LedgerError as error:
            print(f"{_now()} supervisor: cannot record the logs as files: {error}", flush=True)
        try:
            self.run._upload_outputs(self.cwd / OUTPUTS_FOLDER)
        except (LedgerError, OSError) as error:
            print(f"{_now()} supervisor: cannot upload {OUTPUTS_FOLDER}/: {error}", flush=True)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signalled = signum

    # ------------------------------------------------------------------ main loop
    def supervise(self) -> int:
        """Run the script to its end (or its cancellation) and record the outcome.

        Returns:
            The supervisor's exit code (0, or 1 if it could not record the outcome).
        """
        try:
            return self._supervise()
        finally:
            self._stop_beating.set()

    def _supervise(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        status = self._status()
        if status is not None and status.is_terminal:
            _say(f"run is already {status.value}; nothing to do")
            self.sink.close()
            return 0
        if status is RunStatus.CANCEL_REQUESTED:
            _say("cancel requested before the script started")
            self._cancel()
            return 0
        if not self._start_script():
            self._record_files()
            return 1
        process = self.process
        assert process is not None
        started = time.monotonic()
        while True:
            returncode = process.poll()
            if returncode is not None:
                break
            if self.signalled is not None:
                _say(f"received signal {self.signalled}; stopping the script")
                self._stop_script()
                self._cancel()
                return 0
            if self.max_duration is not None and time.monotonic() - started > self.max_duration:
                _say(f"max_run_duration_seconds ({self.max_duration:g}) exceeded; stopping")
                self._stop_script()
                self._cancel()
                return 0
            status = self._status()
            if status is RunStatus.NOT_RESPONDING:  # a reader thought this supervisor dead
                self._beat()
                self._apply(lambda agg, actor: agg.set_status(RunStatus.RUNNING, actor)
                            if agg.status is RunStatus.NOT_RESPONDING else None,
                            "recording the run Running again")
                _say("run was marked NotResponding; responding again: Running")
                continue
            if status is RunStatus.CANCEL_REQUESTED:
                _say("cancel requested; stopping the script")
                self._stop_script()
                self._cancel()
                return 0
            if status is not None and status.is_terminal:
                if self._ended_by_script():
                    _say(f"the script marked its run {status.value}; waiting for it to exit")
                    returncode = process.wait()
                    break
                _say(f"run was marked {status.value} by another process; stopping the script")
                returncode = self._stop_script()
                _say(f"script stopped (exit code {returncode}); run left {status.value}")
                self._record_files()
                return 0
            time.sleep(POLL_INTERVAL)
        # The script exited: stop whatever it left behind in its group, then record the end.
        stop_process_group(process.pid, lambda: True, grace=0.5)
        self._join_pumps()
        try:
            self._finish(returncode)
        except LedgerError:
            return 1
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m ledger.sdk.supervisor '<json spec>'``.

    Args:
        argv: the arguments (default ``sys.argv[1:]``): one JSON object (see ``Supervisor``).

    Returns:
        The process exit code.

    Raises:
        ValidationError: the arguments are not one JSON object.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise ValidationError("usage: python -m ledger.sdk.supervisor '<json spec>'")
    try:
        spec = json.loads(args[0])
    except json.JSONDecodeError as error:
        raise ValidationError(f"supervisor spec is not JSON: {error}") from error
    if not isinstance(spec, dict):
        raise ValidationError("supervisor spec must be a JSON object")
    _say(f"supervising run {spec.get('run_id')!r}")
    return Supervisor(spec).supervise()


if __name__ == "__main__":
    sys.exit(main())
