"""Logging of one ``runledger`` invocation, as the Azure CLI's ``--verbose``/``--debug`` do.

Log records go to standard error as ``LEVEL: message`` lines (``DEBUG: logger: message`` with
``--debug``). By default warnings and errors are shown; ``--verbose`` adds runledger's own
information (which store and configuration file are used...); ``--debug`` adds every library's
debug logging (and the error boundary then shows tracebacks); ``--only-show-errors`` hides
warnings, Python's ``warnings`` included.

:func:`invocation_logging` installs the handler for one invocation and puts the logging and
warnings configuration back afterwards (tests invoke the CLI many times in one process).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import click

#: The loggers whose INFO records ``--verbose`` shows (the SDK logs as ``runledger``).
OWN_LOGGERS = ("runledger", "ledger", "projections")

logger = logging.getLogger("runledger.cli")


class _StderrHandler(logging.Handler):
    """Writes records to the standard error of the moment (click's, so tests capture it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # a failing log line must not end the command
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno <= logging.DEBUG:
            return f"DEBUG: {record.name}: {message}"
        return f"{record.levelname}: {message}"


_handler: _StderrHandler | None = None


def apply_flags(*, debug: bool, verbose: bool, only_show_errors: bool) -> None:
    """Set the levels the logging flags ask for (called as each flag is parsed)."""
    if _handler is None:
        return
    if debug:
        logging.getLogger().setLevel(logging.DEBUG)
    own = logging.DEBUG if debug else logging.INFO if verbose else None
    if own is not None:
        for name in OWN_LOGGERS:
            logging.getLogger(name).setLevel(own)
    if only_show_errors and not (debug or verbose):
        _handler.setLevel(logging.ERROR)
        warnings.simplefilter("ignore")
    else:
        _handler.setLevel(logging.NOTSET)


@contextmanager
def invocation_logging() -> Iterator[None]:
    """Install the standard-error handler for one invocation; restore everything after."""
    global _handler
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in ("", *OWN_LOGGERS)}
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    previous, _handler = _handler, handler
    root.addHandler(handler)
    try:
        with warnings.catch_warnings():
            yield
    finally:
        root.removeHandler(handler)
        _handler = previous
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def log_workspace(store_url: str, workspace_name: str, store_option: str | None,
                  config_file: object | None) -> None:
    """Log (INFO, shown by ``--verbose``) which store is used and where it was configured.

    Args:
        store_url: the store's URL (password masked).
        workspace_name: the workspace's name.
        store_option: the ``--store`` value, if given.
        config_file: the configuration file the workspace found (``Workspace.config_file``).
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    import os

    from ledger.domain.names import CONFIG_ENV, STORE_ENV

    if store_option is not None:
        source = "from --store"
    elif os.environ.get(STORE_ENV):
        source = f"from ${STORE_ENV}"
    elif config_file is not None:
        source = f"from the configuration file {str(config_file)!r}"
    else:
        source = "the embedded default: no configuration file found"
    logger.info("Store %s (%s), workspace %r", store_url, source, workspace_name)
    if config_file is not None and store_option is None:
        via = f" (named by ${CONFIG_ENV})" if os.environ.get(CONFIG_ENV) else ""
        logger.info("Configuration file: %s%s", config_file, via)
