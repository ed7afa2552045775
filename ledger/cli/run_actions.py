"""``runledger run cancel|update|wait``: changing runs and waiting for them."""

from __future__ import annotations

from collections.abc import Iterable

import click

from ledger.cli import access
from ledger.cli.options import (
    KeyValue,
    common_options,
    experiment_option,
    run_option,
    workspace_options,
)
from ledger.cli.runs import show_result
from ledger.domain.errors import RunFailedError
from ledger.domain.status import RunStatus
from ledger.sdk.run import UNSET

CANCELED_MESSAGE = "Experiment run canceled successfully."


@click.command("cancel")
@run_option("Id of the run to cancel.")
@experiment_option(help="Experiment of the run (checked, if given).")
@workspace_options
def cancel_run(run_id: str, experiment_name: str | None) -> None:
    """Cancel a run (a submitted script's process is stopped).

        runledger run cancel -r RUN_ID -w workspace_name -e experiment_name
    """
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    run.cancel()
    click.echo(CANCELED_MESSAGE)


def _unique(pairs: Iterable[tuple[str, str | None]], option: str) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for key, value in pairs:
        if key in result and result[key] != value:
            raise click.BadParameter(f"key {key!r} given twice with different values",
                                     param_hint=option)
        result[key] = value
    return result


@click.command("update")
@run_option("Id of the run to update.")
@experiment_option(help="Experiment of the run (checked, if given).")
@click.option("--add-tag", "add_tags", multiple=True, type=KeyValue(), metavar="KEY[=VALUE]",
              help="Set a tag (KEY alone: a tag without a value). Repeatable.")
@click.option("--remove-tag", "remove_tags", multiple=True, metavar="KEY",
              help="Remove a tag (ignored if the run does not have it). Repeatable.")
@click.option("--add-property", "add_properties", multiple=True,
              type=KeyValue(value_required=True), metavar="KEY=VALUE",
              help="Add an immutable property (an existing key must keep its value). "
                   "Repeatable.")
@click.option("--display-name", metavar="TEXT", help="New display name.")
@click.option("--description", metavar="TEXT", help="New description.")
@common_options
def update_run(run_id: str, experiment_name: str | None,
               add_tags: tuple[tuple[str, str | None], ...], remove_tags: tuple[str, ...],
               add_properties: tuple[tuple[str, str | None], ...], display_name: str | None,
               description: str | None) -> None:
    """Change a run's tags, properties, display name or description; show its details.

    Everything is checked before anything is written: a property that would change value is
    refused (properties are permanent) and nothing of the command is recorded.

        runledger run update -r RUN_ID --add-tag quality='fantastic run'
    """
    if not (add_tags or remove_tags or add_properties or display_name is not None
            or description is not None):
        raise click.UsageError("Nothing to update: give --add-tag, --remove-tag, "
                               "--add-property, --display-name or --description.")
    tags = _unique(add_tags, "--add-tag")
    properties = _unique(add_properties, "--add-property")
    both = sorted(set(tags) & set(remove_tags))
    if both:
        raise click.BadParameter(f"tag {both[0]!r} both added and removed",
                                 param_hint="--remove-tag")
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    run.update(tags=tags, remove_tags=list(remove_tags), properties=properties,
               display_name=UNSET if display_name is None else display_name,
               description=UNSET if description is None else description)
    show_result(access.run_details(run))


@click.command("wait")
@run_option("Id of the run to wait for.")
@experiment_option(help="Experiment of the run (checked, if given).")
@click.option("--wait-post-processing", is_flag=True,
              help="Also wait while the run is Finalizing or CancelRequested.")
@common_options
def wait_run(run_id: str, experiment_name: str | None, wait_post_processing: bool) -> None:
    """Wait until a run has ended, then show its details (exit status 1 if it Failed)."""
    run = access.get_run(access.open_workspace(), run_id, experiment_name)
    run.wait_for_completion(wait_post_processing=wait_post_processing, raise_on_error=False)
    details = access.run_details(run)
    show_result(details)
    if details.get("status") == RunStatus.FAILED.value:
        raise RunFailedError(run.id, details.get("error", {}))

