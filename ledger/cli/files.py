"""``runledger run files|download|download-logs``: a run's files (``ledger.sdk.files``)."""

from __future__ import annotations

import click

from ledger.cli import access
from ledger.cli.options import common_options, experiment_option, run_option
from ledger.cli.runs import show_result


@click.command("files")
@run_option("Id of the run whose files to list.")
@experiment_option(help="Experiment of the run (checked, if given).")
@common_options
def list_files(run_id: str, experiment_name: str | None) -> None:
    """List a run's files: name, size, sha256, when and by whom each was uploaded.

    A log still growing (a script that runs) has no sha256 yet.
    """
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    show_result([{"name": f.name, "size": f.size, "sha256": f.sha256,
                  "uploadedAt": f.as_dict()["uploadedAt"], "uploadedBy": f.uploaded_by.user}
                 for f in run.get_files()])


@click.command("download")
@run_option("Id of the run whose files to download.")
@experiment_option(help="Experiment of the run (checked, if given).")
@click.option("--prefix", "-p", metavar="PREFIX",
              help="Only files whose names start with PREFIX (outputs/).")
@click.option("--output-directory", "-d", "directory", required=True,
              type=click.Path(file_okay=False), help="Folder to write the files into.")
@common_options
def download(run_id: str, experiment_name: str | None, prefix: str | None,
             directory: str) -> None:
    """Download a run's files into a folder (each checked against its sha256)."""
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    show_result(run.download_files(prefix=prefix, output_directory=directory))


@click.command("download-logs")
@run_option("Id of the run whose logs to download.")
@experiment_option(help="Experiment of the run (checked, if given).")
@click.option("--output-directory", "-d", "directory", required=True,
              type=click.Path(file_okay=False), help="Folder to write the logs into.")
@common_options
def download_logs(run_id: str, experiment_name: str | None, directory: str) -> None:
    """Download a run's log files (azureml-logs/..., logs/...) into a folder."""
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    show_result(run.get_all_logs(destination=directory))



