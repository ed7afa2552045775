"""The run's web page: ``Run.get_portal_url()`` and the notebook summary ``_repr_html_``.

The Studio's base URL comes from ``RUNLEDGER_STUDIO_URL`` (default ``http://127.0.0.1:5000``,
where ``runledger studio`` listens).
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from ledger.sdk.experiment import Experiment

ENV_STUDIO_URL = "RUNLEDGER_STUDIO_URL"
DEFAULT_STUDIO_URL = "http://127.0.0.1:5000"


def studio_base_url() -> str:
    """The Studio's base URL, without a trailing slash."""
    return (os.environ.get(ENV_STUDIO_URL) or DEFAULT_STUDIO_URL).rstrip("/")


def run_portal_url(run_id: str) -> str:
    """The URL of a run's page in the Studio."""
    return f"{studio_base_url()}/runs/{quote(run_id, safe='')}"


def experiment_portal_url(name: str) -> str:
    """The URL of an experiment's runs table in the Studio."""
    return f"{studio_base_url()}/experiments/{quote(name, safe='')}"


def html_table(rows: Iterable[tuple[str, Any]], link: tuple[str, str] | None = None) -> str:
    """A two-column HTML table of (label, value) rows, every value escaped.

    Args:
        rows: the rows.
        link: an optional (label, URL) row rendered as a link.
    """
    cells = "".join(f"<tr><th style=\"text-align:left\">{html.escape(label)}</th>"
                    f"<td style=\"text-align:left\">{html.escape(str(value))}</td></tr>"
                    for label, value in rows)
    if link is not None:
        cells += (f"<tr><th style=\"text-align:left\">{html.escape(link[0])}</th><td>"
                  f"<a href=\"{html.escape(link[1], quote=True)}\" target=\"_blank\" "
                  f"rel=\"noopener\">Link to the Studio</a></td></tr>")
    return f"<table>{cells}</table>"


class PortalMixin:
    """``get_portal_url()`` and the notebook summary of a run."""

    if TYPE_CHECKING:
        _run_id: str
        _experiment: Experiment

        def get_status(self) -> str: ...

        @property
        def type(self) -> str: ...

    def get_portal_url(self) -> str:
        """Return the URL of the run's page in the Studio (``runledger studio``).

        Returns:
            ``$RUNLEDGER_STUDIO_URL/runs/<run id>`` (default base ``http://127.0.0.1:5000``).
        """
        return run_portal_url(self._run_id)

    def _repr_html_(self) -> str:
        """A notebook's summary table of the run: experiment, id, type, status, a link."""
        return html_table([("Experiment", self._experiment.name), ("Id", self._run_id),
                           ("Type", self.type), ("Status", self.get_status())],
                          link=("Details Page", self.get_portal_url()))
