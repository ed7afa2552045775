"""``from ledger.experiment import Experiment``: the seed's ``azureml.core.experiment`` path."""

from ledger.sdk.experiment import Experiment, ViewType

__all__ = ["Experiment", "ViewType"]
