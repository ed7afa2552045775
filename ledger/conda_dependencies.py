"""``from ledger.conda_dependencies import CondaDependencies``: the seed's
``azureml.core.conda_dependencies`` path."""

from ledger.sdk.environment import CondaDependencies

__all__ = ["CondaDependencies"]
