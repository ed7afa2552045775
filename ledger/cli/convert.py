"""``runledger convert mlflow``: bring the runs of another tracking system into this ledger."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from ledger.cli import access
from ledger.cli.options import common_options
from ledger.cli.runs import show_result

if TYPE_CHECKING:
    from ledger.importers.mlflow import ConvertSummary


@click.group("convert")
def convert_group() -> None:
    """Bring the runs of another tracking system (MLflow) into this ledger."""


def _progress() -> tuple[Callable[[ConvertSummary], None], Callable[[], None]]:
    """A rich progress display on standard error (nothing when it is not a terminal)."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        return (lambda summary: None), (lambda: None)
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                        TimeElapsedColumn(), console=console, transient=True)
    task = progress.add_task("Importing MLflow runs", total=None)
    progress.start()

    def update(summary: ConvertSummary) -> None:
        progress.update(task, description=(
            f"Importing MLflow runs: {summary.runs} read ({summary.created} new, "
            f"{summary.updated} updated), {summary.metric_values:,} metric values, "
            f"{summary.artifacts:,} artifacts added"))

    return update, progress.stop


@convert_group.command("mlflow")
@click.option("--tracking-uri", required=True, metavar="URI",
              help="The MLflow tracking store: sqlite:///mlflow.db, postgresql://..., an mlruns "
                   "folder or a file: URI.")
@click.option("--experiment", "experiments", multiple=True, metavar="NAME",
              help="Import only this MLflow experiment (repeatable). Default: every active one.")
@click.option("--artifacts", is_flag=True,
              help="Also copy each run's artifacts into the run's files, under their MLflow "
                   "paths (files a run already has are not copied again).")
@common_options
def convert_mlflow_command(tracking_uri: str, experiments: tuple[str, ...],
                           artifacts: bool) -> None:
    """Import the runs of an MLflow tracking store: experiments, runs, params, tags, metric
    histories, and with --artifacts the artifacts; only what this ledger lacks, so importing
    again adds only what is new.

    Needs MLflow's client: pip install 'runledger-ml[mlflow]'. Prints a summary of what was
    read and added; a progress display is drawn on standard error when it is a terminal.
    The mapping is docs/importing-mlflow.md.

        runledger convert mlflow --tracking-uri sqlite:///mlflow.db --artifacts
    """
    from ledger.importers.mlflow import convert_mlflow

    workspace = access.open_workspace()
    update, stop = _progress()
    try:
        summary = convert_mlflow(workspace, tracking_uri, experiments, artifacts=artifacts,
                                 progress=update)
    finally:
        stop()
    show_result({
        "source": summary.source, "experiments": summary.experiments, "runs": summary.runs,
        "created": summary.created, "updated": summary.updated,
        "metricValuesAdded": summary.metric_values, "metricValuesRead": summary.read_values,
        "artifactsCopied": summary.artifacts, "artifactsDiffering": summary.artifacts_differing,
    })
