"""How a ``runledger`` command ends: the exit codes of the Azure CLI and one ``Error:`` line.

The exit codes (``EXIT_CODES``; docs/cli.md shows the same table): 0 ok, 1 error, 2 usage
error, 3 the run or experiment does not exist.

Every error is one ``Error: ...`` line on standard error (click adds the usage lines to a usage
error); a traceback is shown only with ``--debug``, before that line.
"""

from __future__ import annotations

import errno
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from ledger.domain.errors import (
    ExperimentNotFoundError,
    LedgerError,
    RunFailedError,
    RunNotFoundError,
)

logger = logging.getLogger("runledger.cli")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3

#: What each exit code means (the CLI reference, docs/cli.md, is generated from this table).
EXIT_CODES = {
    EXIT_OK: "The command succeeded.",
    EXIT_ERROR: (
        "An error: any `ledger.LedgerError` (a value the ledger refuses, a store that fails, a "
        "run that cannot do what was asked, a run that Failed for `run wait` and "
        "`run submit-script`...), and an `OSError`, `UnicodeError` or `ValueError` caused by "
        "the input (a file that cannot be written, a bad port in a store URL, a bad "
        "`RUNLEDGER_*` value...)."),
    EXIT_USAGE: (
        "A usage error: the command line cannot be parsed (an unknown command or option, a "
        "missing or bad option value, an invalid `--query`, an argument that is not UTF-8)."),
    EXIT_NOT_FOUND: (
        "The run or experiment named does not exist (`RunNotFoundError`, "
        "`ExperimentNotFoundError`), as the Azure CLI's `ResourceNotFoundError`."),
}

#: Errors caused by what the user gave (a path, a URL, an environment value): shown as one line.
USER_ERRORS = (LedgerError, OSError, UnicodeError, ValueError)


class CommandError(click.ClickException):
    """An error that ends the command: ``Error: message``, exit code 1."""

    exit_code = EXIT_ERROR


class NotFoundError(CommandError):
    """A run or experiment that does not exist: ``Error: message``, exit code 3."""

    exit_code = EXIT_NOT_FOUND


def failure_message(run_id: str, error: dict[str, str] | None) -> str:
    """One line telling that a run failed, and why."""
    error = error or {}
    why = ": ".join(v for v in (error.get("code"), error.get("message")) if v)
    return f"Run {run_id!r} failed" + (f": {why}" if why else "")


def one_line(text: str) -> str:
    """The text on one line, with anything that cannot be written as UTF-8 escaped."""
    flat = " ".join(text.split())
    return flat.encode("utf-8", "backslashreplace").decode("utf-8")


def error_line(error: BaseException) -> str:
    """The message of the ``Error:`` line that tells an error (without ``Error:``)."""
    if isinstance(error, RunFailedError):
        return one_line(failure_message(error.run_id, error.error))
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename!r}" if error.filename is not None else ""
        return one_line(f"{error.strerror}{where}")
    return one_line(str(error)) or type(error).__name__


def exit_code(error: BaseException) -> int:
    """The exit code an error ends the command with (the table of the module docstring)."""
    if isinstance(error, click.ClickException):
        return error.exit_code
    if isinstance(error, (RunNotFoundError, ExperimentNotFoundError)):
        return EXIT_NOT_FOUND
    return EXIT_ERROR


def is_broken_pipe(error: BaseException) -> bool:
    """True when standard output was closed by the reader (``runledger ... | head``)."""
    return isinstance(error, OSError) and error.errno == errno.EPIPE


def command_error(error: BaseException, debug: bool) -> CommandError:
    """The ``CommandError`` a user-caused error becomes (its traceback printed with debug)."""
    if debug:
        click.echo("".join(traceback.format_exception(type(error), error, error.__traceback__)),
                   err=True, nl=False)
    if exit_code(error) == EXIT_NOT_FOUND:
        return NotFoundError(error_line(error))
    return CommandError(error_line(error))


def non_utf8_argument(args: Sequence[str]) -> str | None:
    """The first argument holding bytes that are not UTF-8 (Python decodes them as lone
    surrogates), or ``None``."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return arg
    return None


class ErrorBoundary(click.Group):
    """A group that ends every command by the exit-code table, never with a traceback for an
    error the user caused (but with ``--debug``).

    Errors raised while the command runs are translated in :meth:`invoke`; the few that can
    escape click's own handling before it (while the command line is parsed) in :meth:`main`.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a user-caused error becomes a ``CommandError``."""
        if logger.isEnabledFor(logging.DEBUG):
            import platform
            import shlex

            argv = getattr(ctx.obj, "argv", None) or []
            logger.debug("command line: %s", shlex.join(["runledger", *argv]))
            logger.debug("Python %s on %s", platform.python_version(), platform.platform())
        try:
            return super().invoke(ctx)
        except USER_ERRORS as error:
            if is_broken_pipe(error):
                raise
            raise command_error(error, _debug(ctx)) from None

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        """Run the command line (``sys.argv[1:]`` by default) and exit with its code."""
        from ledger.cli.logs import invocation_logging
        from ledger.cli.options import CliState

        argv = list(sys.argv[1:] if args is None else args)
        bad = non_utf8_argument(argv)
        if bad is not None and standalone_mode:
            click.UsageError(one_line(f"argument {bad!r} is not valid UTF-8")).show()
            sys.exit(EXIT_USAGE)
        state = extra.setdefault("obj", CliState())
        if isinstance(state, CliState):
            state.argv = argv
        with invocation_logging():
            try:
                return super().main(argv, prog_name, complete_var, standalone_mode,
                                    windows_expand_args=windows_expand_args, **extra)
            except USER_ERRORS as error:
                if not standalone_mode or is_broken_pipe(error):
                    raise
                failure = command_error(error, "--debug" in argv)
                failure.show()
                sys.exit(failure.exit_code)


def _debug(ctx: click.Context) -> bool:
    obj = ctx.find_root().obj
    return bool(getattr(obj, "debug", False))
