"""The ``runledger`` command tree, and how errors end it.

::

    runledger [--store URL] [-w NAME] [-o FORMAT] [--query JMESPATH] [--debug] [--verbose] ...
      run list | show | cancel | update | history | metrics | wait | submit-script | monitor-logs
      experiment list
      folder attach
      projections rebuild | status
      export | import
      studio

Exit codes are the Azure CLI's: 0 ok, 1 error, 2 usage, 3 a run or experiment that does not
exist (see ``ledger.cli.boundary``).

The commands are loaded lazily: this module imports click and the small option modules only,
so ``runledger --help`` and ``--version`` start without importing the SDK, eventsourcing or
rich. A command's module is imported when the command is invoked or its own help is shown.
"""

from __future__ import annotations

import click

from ledger.cli.boundary import ErrorBoundary
from ledger.cli.lazy import LazyEntry, LazyGroup
from ledger.cli.options import common_options

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

DISTRIBUTION = "runledger-ml"

# The command tables: name -> ("module:attribute", short help). ADDING A COMMAND (or a group
# of commands defined in its own module, e.g. ``"audit": ("ledger.cli.audit:audit_group",
# "...")``) IS ONE LINE in the table of the group it belongs to. The short help is what the
# group's help lists without importing the module; it must be the first sentence of the
# command's own help (tests/cli/test_lazy_commands.py checks it, and that the module is not
# imported by `runledger --help`), and docs/cli.md is regenerated with `cog -r docs/cli.md`.
ROOT_COMMANDS: dict[str, LazyEntry] = {
    "convert": ("ledger.cli.convert:convert_group",
                "Bring the runs of another tracking system (MLflow) into this ledger."),
    "export": ("ledger.cli.maintenance:export_command",
               "Write the whole event log to FILE (msgpack, streamed), for backup or another "
               "store."),
    "folder": ("ledger.cli.folder:folder_group",
               "Attach a folder to a workspace: write the configuration file that "
               "`Workspace.from_config()` and the commands run there find."),
    "import": ("ledger.cli.maintenance:import_command",
               "Append the events of an export FILE to this ledger; events it already holds "
               "are skipped, so importing twice adds nothing and a newer export adds only "
               "what is new."),
    "studio": ("ledger.cli.studio:studio_command",
               "Browse the ledger in a web browser: experiments, runs, charts, compare, audit "
               "timeline."),
}
RUN_COMMANDS: dict[str, LazyEntry] = {
    "cancel": ("ledger.cli.run_actions:cancel_run",
               "Cancel a run (a submitted script's process is stopped)."),
    "download": ("ledger.cli.files:download",
                 "Download a run's files into a folder (each checked against its sha256)."),
    "download-logs": ("ledger.cli.files:download_logs",
                      "Download a run's log files (azureml-logs/..., logs/...) into a folder."),
    "files": ("ledger.cli.files:list_files",
              "List a run's files: name, size, sha256, when and by whom each was uploaded."),
    "history": ("ledger.cli.runs:run_history",
                "Show a run's audit trail: every recorded change, oldest first, with who made "
                "it."),
    "list": ("ledger.cli.runs:list_runs",
             "List runs, newest first, as run details (the keys of `run show`)."),
    "metrics": ("ledger.cli.runs:run_metrics",
                "Show a run's metrics (`Run.get_metrics()`): a value logged once is the "
                "value, several times a list; rows and tables are {column: values}."),
    "monitor-logs": ("ledger.cli.scripts:monitor_logs",
                     "Print a run's log files, following them until the run ends."),
    "show": ("ledger.cli.runs:show_run",
             "Show a run's details (`Run.get_details()`, plus its number)."),
    "submit-script": ("ledger.cli.scripts:submit_script",
                      "Submit SCRIPT (with ARGUMENTS) as a run, wait for it and show its "
                      "details."),
    "update": ("ledger.cli.run_actions:update_run",
               "Change a run's tags, properties, display name or description; show its "
               "details."),
    "wait": ("ledger.cli.run_actions:wait_run",
             "Wait until a run has ended, then show its details (exit status 1 if it Failed)."),
}
EXPERIMENT_COMMANDS: dict[str, LazyEntry] = {
    "list": ("ledger.cli.experiments:list_experiments",
             "List the experiments, by name, with their ids, creation and run counts."),
}
AUDIT_COMMANDS: dict[str, LazyEntry] = {
    "as-of": ("ledger.cli.audit_history:audit_as_of",
              "Show a run exactly as it was at a moment (the keys of `run show`, plus asOf, "
              "asOfPosition and archived)."),
    "check-proof": ("ledger.cli.audit:check_proof_command",
                    "Check a proof from `audit prove` against a digest, with no access to the "
                    "ledger."),
    "consistency": ("ledger.cli.audit:consistency_command",
                    "Prove that the log of digest NEW extends the log of digest OLD: nothing "
                    "before OLD's tree size was rewritten."),
    "diff": ("ledger.cli.audit_history:audit_diff",
             "Show what changed in a run between two moments: status, display name, "
             "description, archived, and properties, tags and metric counts, each old -> new."),
    "digest": ("ledger.cli.audit:digest_command",
               "Print the digest of the whole log (after catching up): its tree size and "
               "Merkle root."),
    "history": ("ledger.cli.audit_history:audit_history",
                "Show every recorded change of a run in log order: position, time, actor, what "
                "(tags, properties, status... old -> new), and the reason of corrections and "
                "archiving."),
    "keygen": ("ledger.cli.audit:keygen",
               "Write a new Ed25519 key pair for signing digests (needs the audit extra)."),
    "prove": ("ledger.cli.audit:prove_command",
              "Write inclusion proofs of every event of a run (and of its metrics) within a "
              "digest."),
    "replay": ("ledger.cli.audit_history:audit_replay",
               "Write a ledger as the source stood at a moment: its events up to then, "
               "unchanged, into an empty store (every run's state in the copy equals the "
               "source's as of T)."),
    "verify": ("ledger.cli.audit:verify_command",
               "Recompute the Merkle roots from the stored events and compare them with "
               "digests."),
}
PROJECTIONS_COMMANDS: dict[str, LazyEntry] = {
    "rebuild": ("ledger.cli.maintenance:rebuild_projections",
                "Drop the query index (the read models) and rebuild it from the event log."),
    "status": ("ledger.cli.maintenance:projections_status",
               "Catch the query index up, then show how complete it is: its position in the "
               "event log, how far behind the log's end it is, and the events it could not "
               "decode or project."),
}


class RootGroup(ErrorBoundary, LazyGroup):
    """The ``runledger`` group: lazy commands, inside the error boundary."""


def distribution_version() -> str:
    """The installed version of runledger, from the package metadata."""
    from importlib.metadata import PackageNotFoundError, version

    for name in (DISTRIBUTION, "runledger"):  # the distribution's name before the rename
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "unknown"


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"runledger, version {distribution_version()}")
        ctx.exit()


@click.group("runledger", cls=RootGroup, context_settings=CONTEXT_SETTINGS,
             lazy_commands=ROOT_COMMANDS)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Show the version and exit.")
@common_options
def cli() -> None:
    """runledger: an event-sourced ledger of machine-learning runs.

    The commands mirror the Azure ML CLI's `az ml run ...`. The store, workspace, output and
    logging options may be given here or on each command. Exit status: 0 ok, 1 error, 2 usage
    error, 3 the run or experiment does not exist.
    """


@cli.group("run", cls=LazyGroup, context_settings=CONTEXT_SETTINGS,
           lazy_commands=RUN_COMMANDS)
def run_group() -> None:
    """List, show, change, wait for, and submit runs."""


@cli.group("experiment", cls=LazyGroup, context_settings=CONTEXT_SETTINGS,
           lazy_commands=EXPERIMENT_COMMANDS)
def experiment_group() -> None:
    """List experiments."""


@cli.group("audit", cls=LazyGroup, context_settings=CONTEXT_SETTINGS,
           lazy_commands=AUDIT_COMMANDS)
def audit_group() -> None:
    """Audit the ledger: any run as it was at any moment, every change, and proofs that the
    log was not altered."""


@cli.group("projections", cls=LazyGroup, context_settings=CONTEXT_SETTINGS,
           lazy_commands=PROJECTIONS_COMMANDS)
def projections_group() -> None:
    """Maintain the query index (the read models built from the event log)."""


if __name__ == "__main__":  # pragma: no cover
    cli()
