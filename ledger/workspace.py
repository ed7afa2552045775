"""``from ledger.workspace import Workspace``: the seed's ``azureml.core.workspace`` path."""

from ledger.sdk.workspace import Workspace

__all__ = ["Workspace"]
