"""``runledger run submit-script|monitor-logs``: running scripts and following their logs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ledger.cli import access
from ledger.cli.options import common_options, experiment_option, run_option, workspace_options
from ledger.cli.runs import show_result
from ledger.domain.errors import RunFailedError
from ledger.domain.names import PROP_LOG_FILE, PROP_RUNCONFIG
from ledger.domain.status import RunStatus
from ledger.sdk.details import log_files as named_log_files
from ledger.sdk.experiment import Experiment
from ledger.sdk.run import Run
from ledger.sdk.waiting import LogFollower

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


def log_files(details: dict[str, Any]) -> dict[str, Path]:
    """The run's log files by name: its ``logFiles``, else the driver log a submitted script
    records as a property."""
    files: dict[str, Any] = dict(details.get("logFiles") or {})
    if not files:
        recorded = details.get("properties") or {}
        files = named_log_files({PROP_LOG_FILE: recorded.get(PROP_LOG_FILE)})
    return {name: Path(str(where).removeprefix("file://")) for name, where in sorted(
        files.items())}


def stream_logs(run: Run, files: dict[str, Path], follow: bool) -> None:
    """Print the log files; with ``follow``, keep printing what is appended until the run ends."""
    followers = {name: LogFollower(path) for name, path in files.items()}
    current: str | None = None
    while True:
        ended = RunStatus(run.get_status()).is_terminal  # before reading: nothing is missed
        for name, follower in followers.items():
            text = follower.read_new()
            if not text:
                continue
            if len(followers) > 1 and name != current:
                click.echo(f"\n==> {name} <==")
            current = name
            click.echo(text, nl=False)
        if ended or not follow:
            return
        time.sleep(POLL_SECONDS)


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
    files = log_files(run.get_details())
    if not files:
        click.echo(f"Run {run_id} has no log files.")
        return
    stream_logs(run, files, follow)
