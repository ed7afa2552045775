"""runledger: an embeddable, event-sourced ledger of machine-learning runs.

Code written for the Azure ML SDK v1 run API ports by changing its import line::

    from ledger import Workspace, Experiment, Run, ScriptRunConfig
"""

from ledger._version import __version__
from ledger.domain.errors import (
    ConcurrencyError,
    ExperimentNotFoundError,
    InvalidTransitionError,
    LedgerError,
    PropertyImmutableError,
    RunFailedError,
    RunFinishedError,
    RunNotFoundError,
    StoreConfigError,
    StoreError,
    ValidationError,
)
from ledger.domain.status import RunStatus
from ledger.sdk.experiment import Experiment
from ledger.sdk.run import HistoryEntry, Run
from ledger.sdk.script import ScriptRunConfig
from ledger.sdk.workspace import Workspace

VERSION = __version__  # one version source: the distribution metadata (ledger/_version.py)

__all__ = [
    "VERSION",
    "ConcurrencyError",
    "Experiment",
    "ExperimentNotFoundError",
    "HistoryEntry",
    "InvalidTransitionError",
    "LedgerError",
    "PropertyImmutableError",
    "Run",
    "RunFailedError",
    "RunFinishedError",
    "RunNotFoundError",
    "RunStatus",
    "ScriptRunConfig",
    "StoreConfigError",
    "StoreError",
    "ValidationError",
    "Workspace",
    "__version__",
]
