"""``runledger run submit-script|monitor-logs``: running scripts and following their logs."""

from __future__ import annotations

import click

from ledger.cli import access
from ledger.cli.options import common_options, experiment_option, run_option, workspace_options
from ledger.cli.runs import show_result
from ledger.domain.errors import RunFailedError
from ledger.domain.names import PROP_RUNCONFIG
from ledger.domain.status import RunStatus
from ledger.sdk.experiment import Experiment
from ledger.sdk.run import Run

POLL_SECONDS = 0.25


@click.command("submit-script",
               context_settings={"ignore_unknown_options": True,
                                 "allow_interspersed_args": False})
@experiment_option(required=True, help="Experiment to submit the run to (created if needed).")
@click.option("--run-configuration-name", "-c", "runconfig", metavar="NAME",
              help="Name of a run configuration. Recorded as the run's property "
                   "runledger.runconfig; runledger runs every script locally and reads no "
                   "runconfig file.")
@click.option("--source-directory", default=".", show_default=True,
              type=click.Path(file_okay=False, dir_okay=True),
              help="Folder the script runs in; SCRIPT is relative to it.")
@click.option("--async", "no_wait", is_flag=True,
              help="Return at once with the run's details instead of streaming its output "
                   "until it ends.")
@common_options
@click.argument("script")
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def submit_script(experiment_name: str, runconfig: str | None, source_directory: str,
                  no_wait: bool, script: str, arguments: tuple[str, ...]) -> None:
    """Submit SCRIPT (with ARGUMENTS) as a run, wait for it and show its details.

    Options go before SCRIPT; everything after it is passed to the script:

        runledger run submit-script -c sklearn -e testexperiment train.py --alpha 0.5

    The exit status is 1 if the run Failed.
    """
    from ledger.sdk.script import ScriptRunConfig

    workspace = access.open_workspace()
    config = ScriptRunConfig(source_directory=source_directory, script=script,
                             arguments=list(arguments))
    run = Experiment(workspace, experiment_name).submit(config)
    if runconfig:
        run.add_properties({PROP_RUNCONFIG: runconfig})
    if not no_wait:
        run.wait_for_completion(show_output=True, raise_on_error=False)
    details = access.run_details(run)
    show_result(details)
    if details.get("status") == RunStatus.FAILED.value:
        raise RunFailedError(run.id, details.get("error", {}))


def stream_logs(run: Run, follow: bool) -> None:
    """Print the run's logs (read through the store: ``Run.follow_logs``); with ``follow``,
    keep printing what is appended until the run ends."""
    current: list[str] = []

    def write(name: str, text: str) -> None:
        if current != [name]:
            click.echo(f"\n==> {name} <==")
            current[:] = [name]
        click.echo(text, nl=False)

    run.follow_logs(write, follow=follow, poll=POLL_SECONDS)


@click.command("monitor-logs")
@run_option("Id of the run whose logs to show.")
@experiment_option(help="Experiment of the run (checked, if given).")
@click.option("--follow/--no-follow", default=True,
              help="Keep printing new output until the run ends (default), or print what is "
                   "there and return.")
@workspace_options
def monitor_logs(run_id: str, experiment_name: str | None, follow: bool) -> None:
    """Print a run's log files, following them until the run ends."""
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    logs = run.get_details().get("logFiles") or {}
    if not any(str(where).startswith("runledger://") for where in logs.values()):
        # Runs of an older runledger recorded host paths: shown, never opened.
        for name, where in sorted(logs.items()):
            click.echo(f"{name}: {where} (a host path recorded by an older runledger; "
                       "not read)")
        if not logs:
            click.echo(f"Run {run_id} has no log files.")
        if not follow or RunStatus(run.get_status()).is_terminal:
            return
    stream_logs(run, follow)
