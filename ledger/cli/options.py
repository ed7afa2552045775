"""Options shared by the commands, and the ``KEY=VALUE`` parameter type.

The workspace options (``--store``, ``-w``), the output options (``-o``, ``--query``) and the
global options of the Azure CLI (``--debug``, ``--verbose``, ``--only-show-errors``, and the
ignored ``-g/--resource-group``, ``--subscription-id``, ``--path``) are accepted both on the root
command (``runledger --store URL run list ...``) and on each command that uses them (``runledger
run list --store URL ...``), as the Azure CLI accepts its global options anywhere. A value given
on the command wins over one given on the root; a flag given anywhere is on. The values are kept
in a :class:`CliState` on the click context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ledger.cli.output import FORMATS

F = TypeVar("F", bound=Callable[..., Any])

STORE_HELP = (
    "Store URL of the ledger (sqlite:///path.db, memory://, postgresql://...). Default: "
    "$RUNLEDGER_STORE, then the configuration file (runledger.json or .runledger/config.json "
    "here or above), then ./.runledger/ledger.db.")
WORKSPACE_HELP = "Workspace name, for display (the store decides which ledger is used)."
OUTPUT_HELP = ("Output format: json (indented, sorted keys), jsonc (colored json), table, tsv "
               "(tab-separated values, no header), yaml (needs PyYAML) or none. Default: json.")
DEBUG_HELP = "Show a full traceback on error, and debug logging, on standard error."
VERBOSE_HELP = ("Log what the command does on standard error (which store and which "
                "configuration file are used...).")
ONLY_SHOW_ERRORS_HELP = "Show errors only: no warnings."
RESOURCE_GROUP_HELP = "Azure resource group: accepted for ported `az ml` command lines, ignored."
SUBSCRIPTION_HELP = "Azure subscription: accepted for ported `az ml` command lines, ignored."
PATH_HELP = "Project folder: accepted for ported `az ml` command lines, ignored."
QUERY_HELP = ("JMESPath query applied to the result before it is formatted "
              "(https://jmespath.org), e.g. \"[?status=='Completed'].runId\".")


class CliState:
    """The shared option values of one invocation (``None``: not given; flags: ``False``).

    A plain class rather than attrs: it is built to print ``--help``, which imports little.
    """

    def __init__(self) -> None:
        self.store: str | None = None
        self.workspace_name: str | None = None
        self.output: str | None = None
        self.query: str | None = None
        self.debug = False
        self.verbose = False
        self.only_show_errors = False
        self.resource_group: str | None = None
        self.subscription_id: str | None = None
        self.path: str | None = None
        self.argv: list[str] = []  # the command line, for --debug

    @property
    def output_format(self) -> str:
        """The chosen output format (``json`` unless one was given)."""
        return self.output or "json"


def state() -> CliState:
    """Return the shared option values of the current invocation."""
    return click.get_current_context().ensure_object(CliState)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Store a shared option's value in the invocation's ``CliState`` when it was given."""
    if value is not None and param.name is not None:
        setattr(ctx.ensure_object(CliState), param.name, value)
    return value


def _remember_flag(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Turn a shared logging flag on in the ``CliState`` and apply the logging it asks for."""
    if value and param.name is not None:
        options = ctx.ensure_object(CliState)
        setattr(options, param.name, True)
        from ledger.cli.logs import apply_flags

        apply_flags(debug=options.debug, verbose=options.verbose,
                    only_show_errors=options.only_show_errors)
    return value


def _shared(*decls: str, help: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(*decls, help=help, default=None, expose_value=False,
                         callback=_remember, is_eager=True, **kwargs)


def _shared_flag(*decls: str, help: str) -> Callable[[F], F]:
    return click.option(*decls, help=help, is_flag=True, default=False, expose_value=False,
                        callback=_remember_flag, is_eager=True)


def global_options(path_help: str = PATH_HELP) -> Callable[[F], F]:
    """Add the Azure CLI's global options: ``--debug``, ``--verbose``, ``--only-show-errors``,
    and ``-g/--resource-group``, ``--subscription-id``, ``--path`` (accepted and ignored, but by
    a command whose ``path_help`` says what it does with ``--path``)."""

    def decorate(f: F) -> F:
        f = _shared("--path", "path", metavar="DIR", help=path_help)(f)
        f = _shared("--subscription-id", "subscription_id", metavar="ID",
                    help=SUBSCRIPTION_HELP)(f)
        f = _shared("--resource-group", "-g", "resource_group", metavar="NAME",
                    help=RESOURCE_GROUP_HELP)(f)
        f = _shared_flag("--only-show-errors", "only_show_errors", help=ONLY_SHOW_ERRORS_HELP)(f)
        f = _shared_flag("--verbose", "verbose", help=VERBOSE_HELP)(f)
        return _shared_flag("--debug", "debug", help=DEBUG_HELP)(f)

    return decorate


def workspace_options_with(path_help: str = PATH_HELP) -> Callable[[F], F]:
    """Add ``--store``, ``-w/--workspace-name`` and the global options, with the help of
    ``--path`` given."""

    def decorate(f: F) -> F:
        f = global_options(path_help)(f)
        f = _shared("--workspace-name", "-w", "workspace_name", metavar="NAME",
                    help=WORKSPACE_HELP)(f)
        return _shared("--store", "store", metavar="URL", help=STORE_HELP)(f)

    return decorate


def workspace_options(f: F) -> F:
    """Add ``--store``, ``-w/--workspace-name`` and the global options."""
    return workspace_options_with()(f)


def output_options(f: F) -> F:
    """Add ``-o/--output`` and ``--query``."""
    f = _shared("--query", "query", metavar="JMESPATH", help=QUERY_HELP)(f)
    return _shared("--output", "-o", "output", type=click.Choice(FORMATS, case_sensitive=False),
                   help=OUTPUT_HELP)(f)


def common_options(f: F) -> F:
    """Add the workspace, the output and the global options."""
    return workspace_options(output_options(f))


def experiment_option(required: bool = False,
                      help: str = "Name of the experiment.") -> Callable[[F], F]:
    """Add ``-e/--experiment-name``."""
    return click.option("--experiment-name", "-e", "experiment_name", metavar="EXPERIMENT",
                        required=required, help=help)


def run_option(help: str = "Id of the run.") -> Callable[[F], F]:
    """Add the required ``-r/--run`` (the run id)."""
    return click.option("--run", "-r", "run_id", metavar="RUN_ID", required=True, help=help)


if TYPE_CHECKING:  # click >= 8.2 types ParamType by the value it gives
    _KeyValueBase = click.ParamType[tuple[str, str | None]]
else:
    _KeyValueBase = click.ParamType


class KeyValue(_KeyValueBase):
    """A ``KEY=VALUE`` argument, split at the first ``=``; ``(key, value)``.

    Args:
        value_required: reject a bare ``KEY``; otherwise it gives ``(key, None)``.
    """

    name = "key=value"

    def __init__(self, value_required: bool = False) -> None:
        self.value_required = value_required

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[str, str | None]:
        """Split the argument (already split pairs pass through)."""
        if isinstance(value, tuple):
            return value
        text = str(value)
        key, sep, rest = text.partition("=")
        if not key:
            self.fail(f"{text!r} has no key (expected KEY=VALUE)", param, ctx)
        if not sep and self.value_required:
            self.fail(f"{text!r} has no value (expected KEY=VALUE)", param, ctx)
        return key, (rest if sep else None)
