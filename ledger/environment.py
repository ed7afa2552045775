"""``from ledger.environment import Environment``: the seed's ``azureml.core.environment`` path."""

from ledger.sdk.environment import DockerSection, Environment, PythonSection

__all__ = ["DockerSection", "Environment", "PythonSection"]
