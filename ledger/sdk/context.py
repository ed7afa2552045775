"""``Run.get_context()``: the run this process runs as.

In a submitted script it is the submitted run (found from ``RUNLEDGER_RUN_ID`` and
``RUNLEDGER_STORE``, which its supervisor sets); elsewhere an *offline* run. This module needs the
``Workspace``, above ``ledger.sdk.run`` in the SDK, so ``Run.get_context`` reaches it through
``Run._context_provider``, which this module sets when it is imported (``ledger.sdk`` imports it,
so it is set whenever any SDK module is loaded).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from types import TracebackType

from ledger.domain.errors import RunNotFoundError
from ledger.domain.names import RUN_ID_ENV, STORE_ENV, WORKSPACE_ENV
from ledger.domain.status import RunStatus
from ledger.sdk.experiment import Experiment
from ledger.sdk.run import Run
from ledger.sdk.workspace import Workspace

__all__ = ["OFFLINE_EXPERIMENT", "_OfflineRun", "context_run", "get_run"]

OFFLINE_EXPERIMENT = "offline"

_context_lock = threading.Lock()
_context_runs: dict[tuple[int, str, str], Run] = {}


class _OfflineRun(Run):
    """The run ``Run.get_context()`` gives outside a submitted script (the seed's class name, so
    that ``isinstance(run, _OfflineRun)`` tells a training script it runs interactively).

    Unlike the seed's, it records: it is a real run (type ``experiment_run``) of the experiment
    ``offline`` in ``Workspace.from_config()``'s ledger, Running until the interpreter exits
    (then Completed, or Failed when the program dies of an exception), and everything logged
    into it is kept there.
    """


def get_run(experiment: Experiment, run_id: str, rehydrate: bool = True,
            clean_up: bool = True) -> Run:
    """Return the run ``run_id`` of an experiment (the seed's ``azureml.core.run.get_run``).

    Raises:
        RunNotFoundError: the experiment has no run with this id.
    """
    return Run(experiment, run_id)


def context_run(allow_offline: bool = True) -> Run:
    """Return the run this process runs as: ``Run.get_context()``.

    In a submitted script (``RUNLEDGER_RUN_ID`` and ``RUNLEDGER_STORE`` set) it is the submitted
    run. Elsewhere, with ``allow_offline``, it is a new Running run of the experiment
    ``offline`` in ``Workspace.from_config()``, an ``_OfflineRun``, completed at interpreter
    exit (failed if the program dies of an exception). The same run is returned on every call
    in a process.

    Args:
        allow_offline: start an offline run when not in a submitted script.

    Returns:
        The run.

    Raises:
        RunNotFoundError: not in a submitted script and ``allow_offline`` is False, or the
            submitted run is not in the store.
        StoreConfigError: the store URL or configuration is not understood.
        StoreError: the store cannot be opened.
    """
    run_id = os.environ.get(RUN_ID_ENV)
    store = os.environ.get(STORE_ENV)
    if run_id and store:
        key = (os.getpid(), run_id, store)
        with _context_lock:
            cached = _context_runs.get(key)
            if cached is None:
                workspace = Workspace(workspace_name=os.environ.get(WORKSPACE_ENV) or None,
                                      store=store)
                cached = _context_runs[key] = Run.get(workspace, run_id)
            return cached
    if not allow_offline:
        error = RunNotFoundError("<context>")
        error.args = (
            f"Run.get_context(allow_offline=False): this process is not a submitted script run "
            f"({RUN_ID_ENV} is not set)",)
        raise error
    workspace = Workspace.from_config()
    key = (os.getpid(), OFFLINE_EXPERIMENT, workspace._store.url)
    with _context_lock:
        cached = _context_runs.get(key)
        if cached is None:
            cached = Run._create(Experiment(workspace, OFFLINE_EXPERIMENT))
            cached.__class__ = _OfflineRun  # the same run, seen as the seed's offline class
            _context_runs[key] = cached
            _OfflineFinalizer.install(cached)
        return cached


class _OfflineFinalizer:
    """Ends offline context runs when the interpreter exits: Completed, or Failed if the
    program died of an uncaught exception."""

    runs: list[Run] = []
    uncaught: BaseException | None = None
    _installed = False

    @classmethod
    def install(cls, run: Run) -> None:
        cls.runs.append(run)
        if cls._installed:
            return
        cls._installed = True
        previous = sys.excepthook

        def hook(exc_type: type[BaseException], exc: BaseException,
                 tb: TracebackType | None) -> None:
            cls.uncaught = exc
            previous(exc_type, exc, tb)

        sys.excepthook = hook
        atexit.register(cls.finish)

    @classmethod
    def finish(cls) -> None:
        for run in cls.runs:
            try:
                status = RunStatus(run.get_status())
                if status.is_terminal:
                    continue
                if status is RunStatus.CANCEL_REQUESTED:
                    run._end(lambda agg, actor: agg.cancel(actor))
                elif cls.uncaught is not None:
                    run.fail(cls.uncaught)
                else:
                    run.complete()
            except Exception as error:  # nothing to raise to at exit
                print(f"runledger: could not end offline run {run.id}: {error}", file=sys.stderr)


Run._context_provider = context_run
