"""The ``runledger`` command tree, and how errors end it.

::

    runledger [--store URL] [-w NAME] [-o FORMAT] [--query JMESPATH]
      run list | show | cancel | update | history | metrics | wait | submit-script | monitor-logs
      experiment list
      projections rebuild

Every ``ledger.LedgerError`` ends the command with one line on standard error (``Error: ...``)
and exit status 1; usage errors exit with status 2 (click's default).
"""

from __future__ import annotations

from typing import Any

import click

from ledger import VERSION
from ledger.cli.experiments import list_experiments
from ledger.cli.maintenance import export_command, import_command, rebuild_projections
from ledger.cli.options import common_options
from ledger.cli.run_actions import cancel_run, failure_message, update_run, wait_run
from ledger.cli.runs import list_runs, run_history, run_metrics, show_run
from ledger.cli.scripts import monitor_logs, submit_script
from ledger.cli.studio import studio_command
from ledger.domain.errors import LedgerError, RunFailedError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def error_line(error: LedgerError) -> str:
    """The one line that tells a ``LedgerError`` on standard error."""
    if isinstance(error, RunFailedError):
        return failure_message(error.run_id, error.error)
    return " ".join(str(error).split()) or type(error).__name__


class LedgerGroup(click.Group):
    """A command group that turns every ``LedgerError`` into a clean ``Error:`` line."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a ``LedgerError`` becomes a ``click.ClickException`` (exit 1)."""
        try:
            return super().invoke(ctx)
        except LedgerError as error:
            raise click.ClickException(error_line(error)) from None


@click.group("runledger", cls=LedgerGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(VERSION, "--version", prog_name="runledger",
                      help="Show the version and exit.")
@common_options
def cli() -> None:
    """runledger: an event-sourced ledger of machine-learning runs.

    The commands mirror the Azure ML CLI's `az ml run ...`. The store, workspace and output
    options may be given here or on each command.
    """


@cli.group("run", context_settings=CONTEXT_SETTINGS)
def run_group() -> None:
    """List, show, change, wait for, and submit runs."""


@cli.group("experiment", context_settings=CONTEXT_SETTINGS)
def experiment_group() -> None:
    """List experiments."""


@cli.group("projections", context_settings=CONTEXT_SETTINGS)
def projections_group() -> None:
    """Maintain the query index (the read models built from the event log)."""


for _command in (list_runs, show_run, cancel_run, update_run, run_history, run_metrics, wait_run,
                 submit_script, monitor_logs):
    run_group.add_command(_command)
experiment_group.add_command(list_experiments)
projections_group.add_command(rebuild_projections)
cli.add_command(export_command)
cli.add_command(import_command)
cli.add_command(studio_command)


if __name__ == "__main__":  # pragma: no cover
    cli()
