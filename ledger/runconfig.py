"""``from ledger.runconfig import RunConfiguration``: the seed's ``azureml.core.runconfig``
path."""

from ledger.sdk.environment import DockerConfiguration, RunConfiguration

__all__ = ["DockerConfiguration", "RunConfiguration"]
