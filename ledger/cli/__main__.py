"""``python -m ledger.cli``: the ``runledger`` command without its console script."""

from ledger.cli.main import cli

cli(prog_name="runledger")
