"""The package's version, from its installed metadata (one source: ``pyproject.toml``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("runledger-ml")
except PackageNotFoundError:  # installed under the distribution's former name
    try:
        __version__ = version("runledger")
    except PackageNotFoundError:  # not installed (run from a source checkout)
        __version__ = "0+unknown"

VERSION = __version__
