"""The ``runledger`` command line: ``az ml run ...`` for a runledger ledger.

Every Azure CLI example of the seed document works with ``az ml`` replaced by ``runledger``::

    runledger run list --experiment-name experiment "[?properties.author=='azureml-user']"
    runledger run show -r RUN_ID
    runledger run cancel -r RUN_ID -w workspace_name -e experiment_name
    runledger run update -r RUN_ID --add-tag quality='fantastic run'
    runledger run submit-script -c sklearn -e testexperiment train.py

Modules: ``main`` (the command tree: one line per command in its lazy tables), ``lazy`` (the
group that imports a command's module only when it is used, so ``runledger --help`` imports no
SDK), ``boundary`` (exit codes and the one ``Error:`` line), ``options`` (the shared options),
``logs`` (``--debug``/``--verbose``/``--only-show-errors``), ``output`` (``-o`` formats and
``--query``), ``access`` (the SDK calls and the run rows), ``reference`` (docs/cli.md), and the
commands: ``runs``, ``run_actions``, ``scripts``, ``experiments``, ``folder`` and
``maintenance``.
"""

from ledger.cli.main import cli

__all__ = ["cli"]
