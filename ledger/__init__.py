"""runledger: an embeddable, event-sourced ledger of machine-learning runs.

Code written for the Azure ML SDK v1 run API ports by changing its import line::

    from ledger import Workspace, Experiment, Run, ScriptRunConfig

The names are loaded on first use (PEP 562), so ``import ledger.domain`` or ``import
projections`` does not load the SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ledger._version import VERSION, __version__

if TYPE_CHECKING:
    from ledger.domain.errors import (
        ConcurrencyError,
        EnvironmentNotFoundError,
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
    from ledger.domain.search import SearchSyntaxError
    from ledger.domain.status import RunStatus
    from ledger.sdk.compute import ComputeTarget
    from ledger.sdk.environment import Environment, RunConfiguration
    from ledger.sdk.experiment import Experiment, ViewType
    from ledger.sdk.history import HistoryEntry
    from ledger.sdk.run import Run
    from ledger.sdk.script import ScriptRun, ScriptRunConfig
    from ledger.sdk.search import to_dataframe
    from ledger.sdk.workspace import Workspace

_ERRORS = "ledger.domain.errors"
_LAZY = {
    "ConcurrencyError": _ERRORS,
    "EnvironmentNotFoundError": _ERRORS,
    "ExperimentNotFoundError": _ERRORS,
    "InvalidTransitionError": _ERRORS,
    "LedgerError": _ERRORS,
    "PropertyImmutableError": _ERRORS,
    "RunFailedError": _ERRORS,
    "RunFinishedError": _ERRORS,
    "RunNotFoundError": _ERRORS,
    "StoreConfigError": _ERRORS,
    "StoreError": _ERRORS,
    "ValidationError": _ERRORS,
    "RunStatus": "ledger.domain.status",
    "ComputeTarget": "ledger.sdk.compute",
    "Environment": "ledger.sdk.environment",
    "Experiment": "ledger.sdk.experiment",
    "RunConfiguration": "ledger.sdk.environment",
    "ViewType": "ledger.sdk.experiment",
    "HistoryEntry": "ledger.sdk.history",
    "Run": "ledger.sdk.run",
    "ScriptRun": "ledger.sdk.script",
    "ScriptRunConfig": "ledger.sdk.script",
    "Workspace": "ledger.sdk.workspace",
    "SearchSyntaxError": "ledger.domain.search",
    "to_dataframe": "ledger.sdk.search",
}

__all__ = [
    "VERSION",
    "ComputeTarget",
    "ConcurrencyError",
    "Environment",
    "EnvironmentNotFoundError",
    "Experiment",
    "ExperimentNotFoundError",
    "HistoryEntry",
    "InvalidTransitionError",
    "LedgerError",
    "PropertyImmutableError",
    "Run",
    "RunConfiguration",
    "RunFailedError",
    "RunFinishedError",
    "RunNotFoundError",
    "RunStatus",
    "ScriptRun",
    "ScriptRunConfig",
    "SearchSyntaxError",
    "StoreConfigError",
    "StoreError",
    "ValidationError",
    "ViewType",
    "Workspace",
    "__version__",
    "to_dataframe",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ledger' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
