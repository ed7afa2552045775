"""``from ledger.run import Run``: the seed's ``azureml.core.run`` path (``Run``, ``get_run``,
``_OfflineRun``)."""

from ledger.sdk.context import _OfflineRun, get_run
from ledger.sdk.run import Run

__all__ = ["Run", "_OfflineRun", "get_run"]
