"""Submitted script runs: ``ScriptRunConfig``, ``Experiment.submit()``, ``Run.get_context()``.

``exp.submit(ScriptRunConfig(source_directory, script, arguments))`` creates a run of type
``azureml.scriptrun`` with an id ``<experiment>_<unix seconds>_<8 hex>`` (status Starting) and
returns at once. The script runs on this machine whatever its compute target (whose name is
recorded as the run's target), under a detached supervisor process (``ledger.sdk.supervisor``) that
marks the run Running, stops the script when the run is canceled or ended by someone else, and
marks it Completed or Failed when the script exits -- even if the submitting process has exited.

Inside the script, ``Run.get_context()`` returns the submitted run; the script should not end it
(its supervisor does). The script's output is captured into the run's log file
``azureml-logs/70_driver_log.txt``, a file of the run stored in the ledger (``ledger.sdk.files``):
``run.get_file_names()``, ``wait_for_completion(show_output=True)`` and ``runledger run
monitor-logs`` read it through the store, from any host. The supervisor's own stdout also goes to
``logs/<run id>/60_control_log.txt`` next to an SQLite store (under ``./.runledger/`` of the
submitting process for other stores), for debugging a supervisor that cannot reach the store; that
path is not recorded in the ledger (a runledger before 0.2 recorded host paths as the properties
``runledger.log_file`` / ``runledger.control_log_file``: they are shown as text, never opened).

Scripts need a store other processes can open: a ``memory://`` store cannot run scripts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ledger.domain.errors import InvalidTransitionError, ValidationError
from ledger.domain.ids import new_script_run_id
from ledger.domain.names import (
    CONTROL_LOG_NAME,
    PROP_ENVIRONMENT_NAME,
    PROP_ENVIRONMENT_VERSION,
    PROP_RUN_DEFINITION,
    PROP_SCRIPT,
    PROP_SCRIPT_PID,
    PROP_SCRIPT_STARTED,
    PROP_SUPERVISOR_HOST,
    PROP_SUPERVISOR_PID,
    PROP_SUPERVISOR_STARTED,
    RUN_ID_ENV,
    SCRIPT_RUN_TYPE,
    SUPERVISED_RUN_ENV,
)
from ledger.domain.status import RunStatus
from ledger.persistence.store import StoreConfig
from ledger.sdk.environment import Environment, RunConfiguration
from ledger.sdk.processes import same_process, start_time, stop_tree
from ledger.sdk.run import Run

if TYPE_CHECKING:
    from ledger.sdk.experiment import Experiment

__all__ = [
    "ScriptRun",
    "ScriptRunConfig",
    "cancel_script_run",
    "running_supervisors",
    "submit_script",
]

EXIT_CODE_ERROR = "ScriptExecution.ExitCode"
START_FAILED_ERROR = "ScriptExecution.StartFailed"

KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL

CANCEL_TIMEOUT = 10.0  # how long cancel() waits for the supervisor to stop the script

# The keyword arguments of the seed SDK's ScriptRunConfig this one accepts besides its own.
_SEED_ONLY_KWARGS = frozenset({
    "_telemetry_values", "distributed_job_config", "resume_from", "docker_runtime_config",
})
_PYTHON_NAMES = frozenset({"python", "python3", f"python3.{sys.version_info.minor}"})
_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class ScriptRunConfig:
    """What to run for a submitted run: a script of a source directory, with its arguments.

    The signature is the seed SDK's. Every compute target runs the script locally, with the
    interpreter running this process; the target's name is recorded as the run's target.

    Args:
        source_directory: the folder the script runs in (its working directory).
        script: the script's path, relative to ``source_directory``.
        arguments: the script's command-line arguments (non-strings are passed as ``str()``).
        run_config: a ``RunConfiguration`` (default: a new one); its ``target`` is used when
            ``compute_target`` is not given, its ``environment`` when ``environment`` is not.
            ``self.run_config`` is always a ``RunConfiguration`` holding the script, arguments,
            target and environment.
        compute_target: a target name (``ws.compute_targets["gpu-cluster"]``) or an object with
            a ``name``.
        environment: an ``Environment``: registered at submission and recorded on the run; the
            script runs in this interpreter, or in ``environment.python.interpreter_path`` when
            ``python.user_managed_dependencies`` is set (conda and Docker are recorded, not
            built: see ``ledger.sdk.environment``).
        **kwargs: ``command`` (a command line, list or string, instead of ``script`` and
            ``arguments``; a leading ``python`` means this interpreter),
            ``max_run_duration_seconds`` (the run is canceled when it runs longer), and the seed
            SDK's other keywords (accepted and ignored).

    Raises:
        ValidationError: neither or both of ``script`` and ``command``, arguments that are not a
            list, an unknown keyword, a bad compute target or maximum duration.
    """

    def __init__(self, source_directory: str | os.PathLike[str] = ".",
                 script: str | os.PathLike[str] | None = None,
                 arguments: Sequence[Any] | None = None, run_config: Any = None,
                 compute_target: Any = None, environment: Any = None, **kwargs: Any) -> None:
        command = kwargs.pop("command", None)
        max_duration = kwargs.pop("max_run_duration_seconds", None)
        unknown = sorted(set(kwargs) - _SEED_ONLY_KWARGS)
        if unknown:
            raise ValidationError(f"ScriptRunConfig() got unknown keyword argument(s) {unknown}")
        if script is None and command is None:
            raise ValidationError("ScriptRunConfig needs a script (or a command) to run")
        if script is not None and command is not None:
            raise ValidationError("ScriptRunConfig takes a script or a command, not both")
        if arguments is not None and (isinstance(arguments, (str, bytes))
                                      or not isinstance(arguments, Sequence)):
            raise ValidationError(
                f"ScriptRunConfig arguments must be a list, not {type(arguments).__name__}: "
                f"{arguments!r}")
        if command is not None:
            if arguments:
                raise ValidationError("ScriptRunConfig: put the arguments in the command")
            if isinstance(command, str):
                command = shlex.split(command)
            if isinstance(command, bytes) or not isinstance(command, Sequence) or not command:
                raise ValidationError(
                    f"ScriptRunConfig command must be a non-empty list or string, not {command!r}")
        if max_duration is not None and (isinstance(max_duration, bool) or not isinstance(
                max_duration, (int, float)) or max_duration <= 0):
            raise ValidationError(
                f"max_run_duration_seconds must be a positive number, not {max_duration!r}")
        if not isinstance(source_directory, (str, os.PathLike)):
            raise ValidationError(
                f"source_directory must be a path, not {type(source_directory).__name__}")
        self.source_directory: str = os.fspath(source_directory)
        self.script: str | None = os.fspath(script) if script is not None else None
        self.arguments: list[Any] = list(arguments or [])
        self.command: list[Any] | None = list(command) if command is not None else None
        if environment is not None and not isinstance(environment, Environment):
            raise ValidationError(
                f"ScriptRunConfig environment must be an Environment, not "
                f"{type(environment).__name__}: {environment!r}")
        self.compute_target = compute_target
        self.target: str = _target_name(compute_target, run_config)
        config = run_config if isinstance(run_config, RunConfiguration) else RunConfiguration()
        config.script = self.script
        config.arguments = self.arguments
        config.command = self.command
        config.target = self.target
        if environment is not None:
            config.environment = environment
        if max_duration is not None:
            config.max_run_duration_seconds = max_duration
        self.run_config: RunConfiguration = config
        self.max_run_duration_seconds: float | None = (
            max_duration if max_duration is not None else config.max_run_duration_seconds)

    @property
    def environment(self) -> Environment:
        """The environment the script runs with (``run_config.environment``)."""
        return self.run_config.environment

    @environment.setter
    def environment(self, value: Environment) -> None:
        if not isinstance(value, Environment):
            raise ValidationError(
                f"ScriptRunConfig environment must be an Environment, not "
                f"{type(value).__name__}: {value!r}")
        self.run_config.environment = value

    def __repr__(self) -> str:
        what = f"script={self.script!r}" if self.script is not None else f"command={self.command!r}"
        return (f"ScriptRunConfig(source_directory={self.source_directory!r}, {what}, "
                f"arguments={self.arguments!r}, compute_target={self.target!r})")

    def _interpreter(self) -> str:
        """This interpreter, or a user-managed environment's ``interpreter_path``."""
        python = self.run_config.environment.python
        if python.user_managed_dependencies and python.interpreter_path not in _PYTHON_NAMES:
            return python.interpreter_path
        return sys.executable

    def _argv(self) -> list[str]:
        if self.command is not None:
            argv = [str(a) for a in self.command]
            if argv[0] in _PYTHON_NAMES:
                argv[0] = self._interpreter()
            return argv
        assert self.script is not None
        return [self._interpreter(), self.script, *(str(a) for a in self.arguments)]

    def _run_definition(self, environment: Environment) -> dict[str, Any]:
        """What ``get_details()["runDefinition"]`` shows of the run."""
        return {
            "script": self.script,
            "command": shlex.join(str(a) for a in self.command) if self.command else None,
            "arguments": [str(a) for a in self.arguments],
            "target": self.target,
            "framework": self.run_config.framework,
            "communicator": self.run_config.communicator,
            "nodeCount": self.run_config.node_count,
            "maxRunDurationSeconds": self.max_run_duration_seconds,
            "environment": {"name": environment.name, "version": environment.version},
        }

    def _label(self) -> str:
        if self.script is not None:
            return self.script
        return shlex.join(str(a) for a in self.command or [])


def _target_name(compute_target: Any, run_config: Any) -> str:
    target = compute_target if compute_target is not None else getattr(run_config, "target", None)
    if target is None:
        return "local"
    name = target if isinstance(target, str) else getattr(target, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(
            f"compute_target must be a target name or have a name, not {compute_target!r}")
    return name


# ---------------------------------------------------------------------------------- processes
def pid_alive(pid: int, env_name: str | None = None, env_value: str | None = None) -> bool:
    """Return whether a process is alive (not a zombie) and, if asked, has ``env_name`` set
    to ``env_value`` in its environment (a guard against reused pids).

    Without ``/proc`` the environment cannot be checked and only existence counts.

    Args:
        pid: the process id.
        env_name: a variable the process must have been started with...
        env_value: ...with this value.

    Returns:
        True if the process exists, is not a zombie and matches.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return env_name is None  # somebody else's process: not ours to judge
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        return True
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
            return False
    except (OSError, IndexError):
        return False  # gone between the two looks
    if env_name is None:
        return True
    try:
        entries = (proc / "environ").read_bytes().split(b"\0")
    except OSError:
        # Unreadable while a process is exiting (its memory is being torn down): it is still
        # there, and whose it is cannot be told; callers with a recorded start time use
        # ledger.sdk.processes instead.
        return True
    return f"{env_name}={env_value}".encode() in entries


def stop_process_group(pgid: int, is_done: Callable[[], bool], grace: float = KILL_GRACE) -> None:
    """Stop a whole process group: SIGTERM, then SIGKILL if its leader lingers past ``grace``.

    Members left after the leader has gone are killed too.

    Args:
        pgid: the process group (the pid of its leader, started with ``start_new_session``).
        is_done: tells whether the leader has exited.
        grace: seconds between SIGTERM and SIGKILL.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError:
        return
    deadline = time.monotonic() + grace
    while not is_done() and time.monotonic() < deadline:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def ledger_root() -> str:
    """Return the folder holding the ``ledger`` package (added to children's ``PYTHONPATH``).

    Returns:
        An absolute path.
    """
    return str(Path(__file__).resolve().parent.parent.parent)


def child_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """Return the environment of a supervisor or script process.

    Args:
        base: the environment to start from (usually ``os.environ``).
        extra: variables to set on top of it.

    Returns:
        ``base`` updated with ``extra``, the ``ledger`` package made importable (its folder
        appended to ``PYTHONPATH``).
    """
    env = dict(base)
    env.update(extra)
    root = ledger_root()
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        paths.append(root)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


# ---------------------------------------------------------------------------------- submitting
_supervisors: dict[str, subprocess.Popen[bytes]] = {}
_supervisors_lock = threading.Lock()


def running_supervisors() -> dict[str, int]:
    """Return the supervisors this process started that are still running.

    Finished ones are reaped (so none is left a zombie).

    Returns:
        ``{run_id: supervisor pid}``.
    """
    with _supervisors_lock:
        for run_id, process in list(_supervisors.items()):
            if process.poll() is not None:
                del _supervisors[run_id]
        return {run_id: process.pid for run_id, process in _supervisors.items()}


def _portable_store_url(store: StoreConfig) -> str:
    """The store's URL as any process in any folder opens it (SQLite paths made absolute)."""
    url = store.url
    if store.kind == "sqlite" and store.path is not None:
        query = urlsplit(store.url).query
        url = f"sqlite:///{store.path}" + (f"?{query}" if query else "")
    if store.files:  # a relative files= folder, made absolute as the store parsed it
        base, _, query = url.partition("?")
        options = [(k, v) for k, v in parse_qsl(query) if k != "files"]
        options.append(("files", store.files))
        url = f"{base}?{urlencode(options)}"
    return url


def _log_directory(store: StoreConfig, run_id: str) -> Path:
    root = (store.path.parent if store.path is not None else Path.cwd() / ".runledger") / "logs"
    return (root / _UNSAFE_PATH_CHARS.sub("_", run_id)).resolve()


def submit_script(experiment: Experiment, config: Any, tags: Any = None,
                  parent: Run | None = None, **kwargs: Any) -> Run:
    """Submit a script as a run of an experiment; return at once with the run (Starting).

    The run is created and made durable, then a detached supervisor starts the script (see
    ``ledger.sdk.supervisor``).

    Args:
        experiment: the experiment the run belongs to.
        config: a ``ScriptRunConfig``.
        tags: the run's initial tags.
        parent: the parent run, for ``Run.submit_child()``.
        **kwargs: accepted for compatibility and ignored.

    Returns:
        The new run. If its supervisor cannot be started, the run is returned Failed (error code
        ``ScriptExecution.StartFailed``).

    Raises:
        ValidationError: not a ``ScriptRunConfig``; a ``memory://`` store; no such source
            directory or script.
        StoreError: the store failed.
    """
    if not isinstance(config, ScriptRunConfig):
        raise ValidationError(
            f"submit() takes a ScriptRunConfig, not {type(config).__name__}: {config!r}")
    workspace = experiment.workspace
    store: StoreConfig = workspace._store
    if store.kind == "memory":
        raise ValidationError(
            "Cannot submit a script to a memory:// store: the script runs in another process, "
            "which cannot see this process's memory. Use a store file (sqlite:///path.db) or "
            "PostgreSQL.")
    source = Path(config.source_directory).resolve()
    if not source.is_dir():
        raise ValidationError(
            f"ScriptRunConfig source_directory {config.source_directory!r} is not a folder "
            f"(resolved to {str(source)!r})")
    if config.script is not None and not (source / config.script).is_file():
        raise ValidationError(
            f"Script {config.script!r} not found in source_directory {str(source)!r}")
    from ledger.sdk.snapshots import take_snapshot

    # Before the run exists: a source past the snapshot limit refuses the submit, writing nothing.
    snapshot = take_snapshot(workspace._session.app, source)
    environment = config.run_config.environment.register(workspace)
    definition = json.dumps(config._run_definition(environment), sort_keys=True)
    run_id = new_script_run_id(experiment.name)
    log_dir = _log_directory(store, run_id)
    log_dir.mkdir(parents=True, exist_ok=True)
    control_log = log_dir / CONTROL_LOG_NAME
    run = Run._create(experiment, run_id=run_id, run_type=SCRIPT_RUN_TYPE, target=config.target,
                      tags=tags, parent=parent, start=False, status=RunStatus.STARTING)
    run.add_properties({PROP_SCRIPT: config._label(), **snapshot,
                        PROP_RUN_DEFINITION: definition,
                        PROP_ENVIRONMENT_NAME: environment.name,
                        PROP_ENVIRONMENT_VERSION: environment.version})
    run.flush()  # the supervisor must find the run
    spec = {
        "run_id": run_id,
        "store": _portable_store_url(store),
        "workspace": workspace.name,
        "experiment": experiment.name,
        "argv": config._argv(),
        "cwd": str(source),
        "script": config._label(),
        "max_run_duration_seconds": config.max_run_duration_seconds,
    }
    env = child_environment(os.environ, {**environment.environment_variables,
                                         SUPERVISED_RUN_ENV: run_id})
    try:
        with open(control_log, "ab") as control:
            process = subprocess.Popen(
                [sys.executable, "-m", "ledger.sdk.supervisor", json.dumps(spec)],
                cwd=str(source), env=env, stdin=subprocess.DEVNULL, stdout=control,
                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    except OSError as error:
        run.fail(f"Could not start the supervisor of script {config._label()!r}: {error}",
                 START_FAILED_ERROR)
        return run
    running_supervisors()  # reap the finished ones
    with _supervisors_lock:
        _supervisors[run_id] = process
    return run


# ---------------------------------------------------------------------------------- the run class
@Run.register_type(SCRIPT_RUN_TYPE)
class ScriptRun(Run):
    """A submitted script run (type ``azureml.scriptrun``), as the seed SDK's ``ScriptRun``.

    ``Experiment.submit()`` returns one; loading or listing a run of this type gives one.
    """

    def cancel(self) -> None:
        """Cancel the run: request it, then wait until its script is stopped (see
        ``cancel_script_run``). Returns when durable.

        Raises:
            InvalidTransitionError: the run has already ended.
        """
        cancel_script_run(self)


# ---------------------------------------------------------------------------------- canceling
def _supervisor_alive(run: Run) -> bool | None:
    """Whether the run's supervisor is running: True, False, or None when it cannot be told
    (not started here, not yet recorded, or on another host)."""
    with _supervisors_lock:
        process = _supervisors.get(run.id)
    if process is not None:
        return process.poll() is None
    properties = run.get_properties()
    pid, host = properties.get(PROP_SUPERVISOR_PID), properties.get(PROP_SUPERVISOR_HOST)
    if pid is None or host != _hostname() or not pid.isdigit():
        return None
    started = _recorded_time(properties.get(PROP_SUPERVISOR_STARTED))
    if started is None:  # recorded by an older runledger: the environment tells it apart
        return pid_alive(int(pid), SUPERVISED_RUN_ENV, run.id)
    return same_process(int(pid), started) is not None


def _recorded_time(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _hostname() -> str:
    return socket.gethostname()


def _stop_orphaned_script(run: Run) -> None:
    """Stop the script tree of a run whose supervisor is gone, if it runs on this host; return
    once nothing of it runs (a pid that now names another process is never signalled)."""
    properties = run.get_properties()
    pid, host = properties.get(PROP_SCRIPT_PID), properties.get(PROP_SUPERVISOR_HOST)
    if pid is None or host != _hostname() or not pid.isdigit():
        return
    script_pid = int(pid)
    started = _recorded_time(properties.get(PROP_SCRIPT_STARTED))
    if started is None:
        # Recorded by an older runledger: only a process started with the run's id is ours.
        if not pid_alive(script_pid, RUN_ID_ENV, run.id):
            return
        started = start_time(script_pid)
    stop_tree(script_pid, started, grace=KILL_GRACE)


def cancel_script_run(run: Run, timeout: float = CANCEL_TIMEOUT) -> None:
    """Cancel a submitted script run: request it, then wait until its script is stopped.

    The run becomes CancelRequested; its supervisor stops the script's process group and marks
    it Canceled. If the supervisor is gone (or does not answer within ``timeout`` seconds), the
    script is stopped here when it runs on this host, and the run is marked Canceled directly.

    Args:
        run: a run of type ``azureml.scriptrun``.
        timeout: how long to wait for the supervisor.

    Raises:
        InvalidTransitionError: the run has already ended.
    """
    run.request_cancel()
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if RunStatus(run.get_status()).is_terminal:
            return
        if _supervisor_alive(run) is False or time.monotonic() >= deadline:
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
    # Recorded first: if this process is itself in the script's process group (a script
    # canceling its own run), stopping the group ends this process too.
    with contextlib.suppress(InvalidTransitionError):  # it may have ended in the meantime
        run._end(lambda agg, actor: agg.cancel(actor) if not agg.status.is_terminal else None)
    _stop_orphaned_script(run)
