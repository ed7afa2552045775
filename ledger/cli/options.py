"""Options shared by the commands, and the ``KEY=VALUE`` parameter type.

The workspace options (``--store``, ``-w``) and the output options (``-o``, ``--query``) are
accepted both on the root command (``runledger --store URL run list ...``) and on each command
that uses them (``runledger run list --store URL ...``), as the Azure CLI accepts its global
options anywhere. A value given on the command wins over one given on the root. The values are
kept in a :class:`CliState` on the click context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
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
QUERY_HELP = ("JMESPath query applied to the result before it is formatted "
              "(https://jmespath.org), e.g. \"[?status=='Completed'].runId\".")


@attrs.define
class CliState:
    """The shared option values of one invocation (``None``: not given)."""

    store: str | None = None
    workspace_name: str | None = None
    output: str | None = None
    query: str | None = None
    verbose: bool | None = None

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


def _shared(*decls: str, help: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(*decls, help=help, default=None, expose_value=False,
                         callback=_remember, is_eager=True, **kwargs)


def workspace_options(f: F) -> F:
    """Add ``--store``, ``-w/--workspace-name`` and ``--verbose``."""
    f = _shared("--verbose", "verbose", is_flag=True, flag_value=True,
                help="Name the configuration file used (found here or in a parent folder) on "
                     "standard error.")(f)
    f = _shared("--workspace-name", "-w", "workspace_name", metavar="NAME",
                help=WORKSPACE_HELP)(f)
    return _shared("--store", "store", metavar="URL", help=STORE_HELP)(f)


def output_options(f: F) -> F:
    """Add ``-o/--output`` and ``--query``."""
    f = _shared("--query", "query", metavar="JMESPATH", help=QUERY_HELP)(f)
    return _shared("--output", "-o", "output", type=click.Choice(FORMATS, case_sensitive=False),
                   help=OUTPUT_HELP)(f)


def common_options(f: F) -> F:
    """Add the workspace and the output options."""
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
