"""The ``runledger`` command line: ``az ml run ...`` for a runledger ledger.

Every Azure CLI example of the seed document works with ``az ml`` replaced by ``runledger``::

    runledger run list --experiment-name experiment "[?properties.author=='azureml-user']"
    runledger run show -r RUN_ID
    runledger run cancel -r RUN_ID -w workspace_name -e experiment_name
    runledger run update -r RUN_ID --add-tag quality='fantastic run'
    runledger run submit-script -c sklearn -e testexperiment train.py

Modules: ``main`` (the command tree and error handling), ``options`` (the shared options),
``output`` (``-o`` formats and ``--query``), ``access`` (the SDK calls and the run rows),
``runs``, ``run_actions``, ``scripts``, ``experiments`` and ``maintenance`` (the commands).
"""

from ledger.cli.main import cli

__all__ = ["cli"]
