"""The supervisor of a submitted script run: ``python -m ledger.sdk.supervisor SPEC``.

``Experiment.submit()`` (``ledger.sdk.script``) starts one supervisor per script run, detached in
its own session, so the run keeps going and gets finalized even if the submitting process exits.
The supervisor:

1. starts the script as its own child, in a new process group, in the source directory, with
   ``RUNLEDGER_RUN_ID``, ``RUNLEDGER_STORE``, ``RUNLEDGER_EXPERIMENT`` and ``RUNLEDGER_WORKSPACE``
   set (so ``Run.get_context()`` finds the run), its stdout and stderr appended to the driver log;
2. records its own pid and host and the script's pid as properties, and marks the run Running;
3. polls the run's status every ``POLL_INTERVAL`` seconds: on CancelRequested (or SIGTERM/SIGINT
   to the supervisor, or ``max_run_duration_seconds`` exceeded) it stops the script's whole process
   group (SIGTERM, then SIGKILL after ``KILL_GRACE`` seconds) and marks the run Canceled; when the
   run was ended by another process (``run.fail()`` from the submitter, say) it stops the script
   and leaves the status as it is;
4. when the script exits, marks the run Completed (exit code 0) or Failed (error code
   ``ScriptExecution.ExitCode``, with the exit code and the last line of stderr), unless the run
   has ended already.

Its own messages go to the control log (``60_control_log.txt``, next to the driver log).
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

from ledger.domain.errors import InvalidTransitionError, LedgerError, ValidationError
from ledger.domain.ids import run_stream_id
from ledger.domain.run import RunAggregate
from ledger.domain.status import RunStatus, can_transition
from ledger.domain.text import safe_text
from ledger.domain.values import Actor
from ledger.sdk.script import (
    EXIT_CODE_ERROR,
    EXPERIMENT_ENV,
    PROP_SCRIPT_PID,
    PROP_SUPERVISOR_HOST,
    PROP_SUPERVISOR_PID,
    RUN_ID_ENV,
    START_FAILED_ERROR,
    STORE_ENV,
    SUPERVISED_RUN_ENV,
    WORKSPACE_ENV,
    child_environment,
    stop_process_group,
)

POLL_INTERVAL = 0.15  # seconds between two looks at the run's status
FINALIZE_ATTEMPTS = 60  # the final status is retried this many times (0.5 s apart)

_END_EVENTS = (RunAggregate.Completed, RunAggregate.Failed, RunAggregate.Canceled)
_TRACEBACK_HEAD = "Traceback (most recent call last):"
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


# ---------------------------------------------------------------------------------- the supervisor
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _say(message: str) -> None:
    print(f"{_now()} supervisor[{os.getpid()}]: {message}", flush=True)


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


class _StderrPump(threading.Thread):
    """Copies the script's stderr into the driver log, remembering its last lines."""

    def __init__(self, pipe: IO[bytes], log: IO[bytes], lock: threading.Lock) -> None:
        super().__init__(name="runledger-stderr", daemon=True)
        self.pipe = pipe
        self.log = log
        self.lock = lock
        self.tail: collections.deque[str] = collections.deque(maxlen=50)
        self.saw_traceback = False

    def run(self) -> None:
        for line in iter(self.pipe.readline, b""):
            with self.lock:
                try:
                    self.log.write(line)
                    self.log.flush()
                except OSError:
                    pass
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
            ``workspace``, ``experiment``, ``argv``, ``cwd``, ``script``, ``log_file``,
            ``max_run_duration_seconds``.
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        from ledger.sdk.run import Run
        from ledger.sdk.workspace import Workspace

        self.spec = spec
        self.run_id = str(spec["run_id"])
        self.script_label = str(spec.get("script") or spec["argv"][-1])
        self.workspace = Workspace(workspace_name=spec.get("workspace"), store=str(spec["store"]))
        self.run = Run.get(self.workspace, self.run_id)
        self.process: subprocess.Popen[bytes] | None = None
        self.pump: _StderrPump | None = None
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
        """Apply a command to the run, retrying while the store fails."""
        for attempt in range(FINALIZE_ATTEMPTS):
            try:
                return self.run._command(command)
            except InvalidTransitionError as error:
                _say(f"{what}: {error}")
                return None
            except LedgerError as error:
                if attempt == FINALIZE_ATTEMPTS - 1:
                    _say(f"{what}: giving up: {error}")
                    raise
                _say(f"{what}: {error}; retrying")
                time.sleep(0.5)
        return None

    def _cancel(self) -> None:
        def command(agg: RunAggregate, actor: Actor) -> None:
            if not agg.status.is_terminal:
                agg.cancel(actor)

        self._apply(command, "marking the run Canceled")
        _say("run marked Canceled")

    def _finish(self, returncode: int) -> None:
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
            events = self.run._session.app.stream_events(run_stream_id(self.run_id))
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
        log_path = Path(str(spec["log_file"]))
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "ab")  # noqa: SIM115 - open for the script's whole life
        self.log_lock = threading.Lock()
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
                argv, cwd=str(spec["cwd"]), env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
        except OSError as error:
            message = safe_text(f"Could not start script {self.script_label!r}: {error}")
            error_type = type(error).__name__
            _say(message)

            def fail(agg: RunAggregate, actor: Actor) -> None:
                if not agg.status.is_terminal:
                    agg.fail(START_FAILED_ERROR, message, error_type, actor)

            self._apply(fail, "recording the failed start")
            return False
        assert self.process.stderr is not None
        self.pump = _StderrPump(self.process.stderr, self.log, self.log_lock)
        self.pump.start()
        _say(f"started script pid {self.process.pid}: {argv}")
        properties = {
            PROP_SUPERVISOR_PID: str(os.getpid()),
            PROP_SUPERVISOR_HOST: socket.gethostname(),
            PROP_SCRIPT_PID: str(self.process.pid),
        }

        def started(agg: RunAggregate, actor: Actor) -> None:
            agg.add_properties(properties, actor)
            if can_transition(agg.status, RunStatus.RUNNING):
                agg.start(actor)

        self._apply(started, "recording the start")
        return True

    def _stop_script(self) -> int:
        process = self.process
        assert process is not None
        stop_process_group(process.pid, lambda: process.poll() is not None)
        returncode = process.wait()
        if self.pump is not None:
            self.pump.join(timeout=2.0)
        return returncode

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signalled = signum

    # ------------------------------------------------------------------ main loop
    def supervise(self) -> int:
        """Run the script to its end (or its cancellation) and record the outcome.

        Returns:
            The supervisor's exit code (0, or 1 if it could not record the outcome).
        """
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        status = self._status()
        if status is not None and status.is_terminal:
            _say(f"run is already {status.value}; nothing to do")
            return 0
        if status is RunStatus.CANCEL_REQUESTED:
            _say("cancel requested before the script started")
            self._cancel()
            return 0
        if not self._start_script():
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
                return 0
            time.sleep(POLL_INTERVAL)
        # The script exited: stop whatever it left behind in its group, then record the end.
        stop_process_group(process.pid, lambda: True, grace=0.5)
        if self.pump is not None:
            self.pump.join(timeout=2.0)
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
