"""``from ledger.script_run_config import ScriptRunConfig``: the seed's
``azureml.core.script_run_config`` path."""

from ledger.sdk.script import ScriptRunConfig

__all__ = ["ScriptRunConfig"]
