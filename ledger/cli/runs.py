"""``runledger run list|show|history|metrics``: reading runs."""

from __future__ import annotations

from functools import partial
from typing import Any

import click

from ledger.audit.timeline import When
from ledger.cli import access
from ledger.cli.audit_history import Moment, list_runs_as_of
from ledger.cli.options import (
    KeyValue,
    common_options,
    experiment_option,
    run_option,
    state,
)
from ledger.cli.output import emit
from ledger.domain.status import RunStatus
from ledger.sdk.details import az_record

STATUSES = [status.value for status in RunStatus]
DEFAULT_LAST = 10  # the Azure CLI's default of `az ml run list --last`

AZ_KEYS_HELP = ("Give each run as the Azure CLI's record: snake_case keys (run_id, run_number, "
                "experiment_name, status, start_time_utc, end_time_utc, tags, properties, "
                "target, run_type, parent_run_id, display_name...). Applied before --query.")


def show_result(data: Any) -> None:
    """Print a command's result with the invocation's ``-o`` and ``--query``."""
    options = state()
    emit(data, options.output_format, options.query)


@click.command("list")
@experiment_option(help="Experiment whose runs to list (default: the runs of every experiment).")
@click.option("--parent-run-id", metavar="RUN_ID",
              help="List the children of this run instead (every descendant with "
                   "--include-children).")
@click.option("--last", type=click.IntRange(min=0), default=DEFAULT_LAST, metavar="N",
              help="Only the N newest runs, counted before --query filters them. Default: 10, "
                   "as the Azure CLI's; 0: every run.")
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False), metavar="STATUS",
              help=f"Only runs with this status: {', '.join(STATUSES)}.")
@click.option("--tags", "tags", multiple=True, type=KeyValue(), metavar="KEY[=VALUE]",
              help="Only runs with this tag: KEY=VALUE (equal value) or KEY (any value). "
                   "Repeatable; every one must match.")
@click.option("--properties", "properties", multiple=True, type=KeyValue(),
              metavar="KEY[=VALUE]",
              help="Only runs with this property: KEY=VALUE or KEY. Repeatable.")
@click.option("--filter", "search", metavar="FILTER",
              help="Only runs for which FILTER holds, in MLflow's search grammar: comparisons "
                   "joined by AND, for example \"metrics.loss < 0.2 and params.lr = '0.01' and "
                   "attributes.status = 'Completed'\" (see docs/search.md). Applied before "
                   "--last.")
@click.option("--order-by", "order_by", multiple=True, metavar="KEY [ASC|DESC]",
              help="Order the runs by KEY instead of newest first, for example "
                   "'metrics.loss ASC' (empty values last). Repeatable: the first is the most "
                   "significant. Needs --experiment-name.")
@click.option("--include-children", is_flag=True,
              help="Also list child runs (by default only top-level runs, or only the direct "
                   "children with --parent-run-id).")
@click.option("--minimal", is_flag=True,
              help="Give each run's id, experiment, number, status, parent and times only.")
@click.option("--include-archived", is_flag=True, help="Also list archived runs.")
@click.option("--as-of", "as_of", type=Moment(), metavar="T",
              help="Answer as the ledger would have at T (an integer log position, or an "
                   "ISO-8601 time with a zone), each run as it was then.")
@click.option("--az-keys", is_flag=True, help=AZ_KEYS_HELP)
@click.argument("query_argument", metavar="[QUERY]", required=False)
@common_options
def list_runs(experiment_name: str | None, parent_run_id: str | None, last: int,
              status: str | None, tags: tuple[tuple[str, str | None], ...],
              properties: tuple[tuple[str, str | None], ...], include_children: bool,
              minimal: bool, include_archived: bool, as_of: When | None, az_keys: bool,
              query_argument: str | None, search: str | None = None,
              order_by: tuple[str, ...] = ()) -> None:
    """List runs, newest first, as run details (the keys of `run show`).

    QUERY is a JMESPath expression, as with --query (the seed document writes it without
    --query), for example:

        runledger run list -e experiment "[?properties.author=='azureml-user']"
    """
    options = state()
    if query_argument is not None:
        if options.query is not None:
            raise click.UsageError("Give the JMESPath query once: as QUERY or with --query.")
        options.query = query_argument
    if search is not None or order_by:
        if parent_run_id is not None or as_of is not None:
            raise click.UsageError("--filter and --order-by do not combine with "
                                   "--parent-run-id or --as-of.")
        if order_by and experiment_name is None:
            raise click.UsageError("--order-by needs --experiment-name.")
    workspace = access.open_workspace()
    canonical_status = next((s for s in STATUSES if status and s.lower() == status.lower()),
                            None)
    lister = access.list_runs if as_of is None else partial(list_runs_as_of, when=as_of)
    searched: dict[str, Any] = {}
    if search is not None or order_by:
        searched = {"search": search, "order_by": list(order_by)}
    runs = lister(workspace, experiment_name=experiment_name,
                  parent_run_id=parent_run_id, include_children=include_children,
                  status=canonical_status, tags=list(tags), properties=list(properties),
                  last=last or None, include_archived=include_archived, **searched)
    if minimal:
        runs = [access.minimal(r) for r in runs]
    show_result([az_record(r) for r in runs] if az_keys else runs)


@click.command("show")
@run_option()
@experiment_option(help="Experiment of the run (checked, if given).")
@click.option("--az-keys", is_flag=True, help=AZ_KEYS_HELP.replace("each run", "the run"))
@common_options
def show_run(run_id: str, experiment_name: str | None, az_keys: bool) -> None:
    """Show a run's details (`Run.get_details()`, plus its number).

        runledger run show -r RUN_ID
    """
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    details = access.run_details(run)
    show_result(az_record(details) if az_keys else details)


@click.command("history")
@run_option()
@experiment_option(help="Experiment of the run (checked, if given).")
@click.option("--metrics/--no-metrics", "include_metrics", default=True,
              help="List the metric batches too (default) or not.")
@common_options
def run_history(run_id: str, experiment_name: str | None, include_metrics: bool) -> None:
    """Show a run's audit trail: every recorded change, oldest first, with who made it."""
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    show_result([entry.as_dict() for entry in run.get_history(include_metrics=include_metrics)])


@click.command("metrics")
@run_option()
@experiment_option(help="Experiment of the run (checked, if given).")
@click.option("--name", "-n", metavar="NAME", help="Only this metric.")
@click.option("--recursive", is_flag=True,
              help="Also the metrics of every descendant run, by run id.")
@common_options
def run_metrics(run_id: str, experiment_name: str | None, name: str | None,
                recursive: bool) -> None:
    """Show a run's metrics (`Run.get_metrics()`): a value logged once is the value, several
    times a list; rows and tables are {column: values}."""
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    show_result(run.get_metrics(name=name, recursive=recursive))
