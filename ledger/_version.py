"""The version of runledger, read from the installed distribution's metadata.

pyproject.toml holds the only version literal; this module reads it back, so a release changes
one line. A source tree that was never installed (no ``runledger-ml`` metadata) reports
``0+unknown`` rather than a number that may be wrong.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "runledger-ml"

try:
    __version__: str = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

VERSION = __version__

__all__ = ["DISTRIBUTION", "VERSION", "__version__"]
