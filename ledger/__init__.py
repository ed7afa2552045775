"""runledger: an embeddable, event-sourced ledger of machine-learning runs.

Code written for the Azure ML SDK v1 run API ports by changing its import line::

    from ledger import Workspace, Experiment, Run, ScriptRunConfig
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from ledger.sdk.experiment import Experiment
    from ledger.sdk.run import HistoryEntry, Run
    from ledger.sdk.script import ScriptRunConfig
    from ledger.sdk.workspace import Workspace

# The SDK is imported when one of its names is first used (PEP 562), so that importing
# ``ledger.cli`` (``runledger --help``) or ``projections`` does not load it.
_SDK_NAMES = {
    "Experiment": "ledger.sdk.experiment",
    "HistoryEntry": "ledger.sdk.run",
    "Run": "ledger.sdk.run",
    "ScriptRunConfig": "ledger.sdk.script",
    "Workspace": "ledger.sdk.workspace",
}

VERSION = "0.1.0"
__version__ = VERSION

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


def __getattr__(name: str) -> Any:
    """Import an SDK name on first use (``ledger.Workspace``...)."""
    module = _SDK_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'ledger' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
