"""``runledger audit history|as-of|diff|replay`` and ``run list --as-of``: runs through time.

::

    runledger audit history -r RUN [--since T] [--until T]   # every change, who, what
    runledger audit as-of -r RUN --at T                       # the run exactly as it was then
    runledger audit diff -r RUN --from T1 --to T2             # what changed between
    runledger audit replay --until T --into sqlite:///copy.db # a ledger as it stood at T
    runledger run list -e EXP --as-of T                       # the list as it would have been

A moment T is an integer log position (the ledger after the event at that position) or an
ISO-8601 time with a zone (``2026-11-27T10:00:00Z``): each stream as its own events recorded it
up to then. Times of different hosts are not ordered (clock skew); positions are. See
``ledger.audit.timeline``.

The commands are plain click commands, entries of the ``audit`` group's lazy table in
``ledger/cli/main.py``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click

from ledger.audit.timeline import (
    RunAsOf,
    When,
    find_runs_as_of,
    parse_when,
    replay,
)
from ledger.cli import access
from ledger.cli.options import common_options, experiment_option, run_option, state
from ledger.cli.output import emit
from ledger.domain.errors import ValidationError

if TYPE_CHECKING:
    from ledger.sdk.workspace import Workspace
    _MomentBase = click.ParamType[When]
else:
    _MomentBase = click.ParamType

MOMENT_HELP = ("an integer log position, or an ISO-8601 time with a zone "
               "(2026-11-27T10:00:00Z)")


class Moment(_MomentBase):
    """A moment: an integer position or an ISO-8601 time with a zone."""

    name = "moment"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> When:
        """Parse the argument (parsed moments pass through)."""
        if isinstance(value, (int, datetime)):
            return value
        try:
            return parse_when(str(value), f"--{param.name.replace('_', '-')}" if param
                              and param.name else "moment")
        except ValidationError as error:
            self.fail(str(error), param, ctx)


def _show(data: Any) -> None:
    options = state()
    emit(data, options.output_format, options.query)


def as_of_details(view: RunAsOf) -> dict[str, Any]:
    """A run's details as of a moment, with the moment, the position reached, and whether it
    was archived (and its number, when known)."""
    details = view.get_details()
    when = view.when
    details["asOf"] = when if isinstance(when, int) else when.astimezone(
        timezone.utc).isoformat().replace("+00:00", "Z")
    details["asOfPosition"] = view.position
    details["archived"] = view.archived
    if view.number is not None:
        details["number"] = view.number
    return details


@click.command("history")
@run_option()
@experiment_option(help="Experiment of the run (checked, if given).")
@click.option("--since", type=Moment(), metavar="T",
              help=f"Only changes after the run as of T: {MOMENT_HELP}.")
@click.option("--until", type=Moment(), metavar="T",
              help=f"Only changes up to the run as of T: {MOMENT_HELP}.")
@common_options
def audit_history(run_id: str, experiment_name: str | None, since: When | None,
                  until: When | None) -> None:
    """Show every recorded change of a run in log order: position, time, actor, what (tags,
    properties, status... old -> new), and the reason of corrections and archiving.

        runledger audit history -r RUN_ID --since 2026-11-27T10:00:00Z -o table
    """
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    _show([entry.as_dict() for entry in run.get_audit_history(since, until)])


@click.command("as-of")
@run_option()
@experiment_option(help="Experiment of the run (checked, if given).")
@click.option("--at", "at", type=Moment(), required=True, metavar="T", help=f"The moment: "
              f"{MOMENT_HELP}.")
@click.option("--metrics", "with_metrics", is_flag=True,
              help="Also the metrics recorded by then (get_metrics() shapes).")
@common_options
def audit_as_of(run_id: str, experiment_name: str | None, at: When, with_metrics: bool) -> None:
    """Show a run exactly as it was at a moment (the keys of `run show`, plus asOf,
    asOfPosition and archived).

        runledger audit as-of -r RUN_ID --at 2026-11-27T10:00:00Z
    """
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    view = run.as_of(at)
    details = as_of_details(view)
    if with_metrics:
        details["metrics"] = view.get_metrics()
    _show(details)


@click.command("diff")
@run_option()
@experiment_option(help="Experiment of the run (checked, if given).")
@click.option("--from", "since", type=Moment(), required=True, metavar="T1",
              help=f"The earlier moment: {MOMENT_HELP}.")
@click.option("--to", "until", type=Moment(), required=True, metavar="T2",
              help=f"The later moment: {MOMENT_HELP}.")
@common_options
def audit_diff(run_id: str, experiment_name: str | None, since: When, until: When) -> None:
    """Show what changed in a run between two moments: status, display name, description,
    archived, and properties, tags and metric counts, each old -> new.

        runledger audit diff -r RUN_ID --from 12 --to 2026-11-27T10:00:00Z
    """
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    _show(run.diff(since, until).as_dict())


@click.command("replay")
@click.option("--until", type=Moment(), required=True, metavar="T",
              help=f"The moment: {MOMENT_HELP}.")
@click.option("--into", "into", required=True, metavar="URL",
              help="Store URL of an empty ledger to write (sqlite:///copy.db, "
                   "postgresql://...).")
@common_options
def audit_replay(until: When, into: str) -> None:
    """Write a ledger as the source stood at a moment: its events up to then, unchanged, into
    an empty store (every run's state in the copy equals the source's as of T).

        runledger audit replay --until 2026-11-27T10:00:00Z --into sqlite:///copy.db
    """
    from ledger.application import LedgerApplication
    from ledger.persistence.store import parse_store_url

    source = access.open_workspace().ledger.application
    target = LedgerApplication(parse_store_url(into))
    try:
        summary = replay(source, target, until)
    finally:
        target.close()
    click.echo(f"Replayed {summary.events} events (as of "
               f"{until if isinstance(until, int) else until.isoformat()}) into "
               f"{summary.target}.")


# ---------------------------------------------------------------------- run list --as-of
def list_runs_as_of(workspace: Workspace, when: When, *, experiment_name: str | None,
                    parent_run_id: str | None, include_children: bool, status: str | None,
                    tags: list[tuple[str, str | None]],
                    properties: list[tuple[str, str | None]], last: int | None,
                    include_archived: bool) -> list[dict[str, Any]]:
    """The details of the runs ``run list --as-of T`` selects: the list as it would have been
    answered at T, each run as it was then (the same selection rules as ``run list``).

    Raises:
        ExperimentNotFoundError: the experiment does not exist.
        RunNotFoundError: the parent run does not exist (in the experiment).
        ValidationError: a filter key given twice, or a bad moment.
    """
    tag_filter, tag_keys = access.split_filter(tags, "--tags")
    property_filter, property_keys = access.split_filter(properties, "--properties")
    index = access.query_index(workspace)
    app = workspace.ledger.application

    def query(**kwargs: Any) -> Iterator[dict[str, Any]]:
        return (as_of_details(view) for view in find_runs_as_of(
            app, index, when, tags=tag_filter, properties=property_filter, status=status,
            include_archived=include_archived, **kwargs))

    if parent_run_id is not None:
        access.get_run(workspace, parent_run_id, experiment_name)
        details = query(parent_run_id=parent_run_id, recursive=include_children)
    elif experiment_name is not None:
        access.existing_experiment(workspace, experiment_name)
        details = query(experiment_name=experiment_name, include_children=include_children)
    else:
        per_experiment = [query(experiment_name=row.name, include_children=include_children)
                          for row in index.experiments()]
        details = heapq.merge(*per_experiment, key=lambda d: str(d.get("createdTimeUtc", "")),
                              reverse=True)
    chosen = (d for d in details
              if all(k in d.get("tags", {}) for k in tag_keys)
              and all(k in d.get("properties", {}) for k in property_keys))
    return list(itertools.islice(chosen, last) if last else chosen)
