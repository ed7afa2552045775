"""Notebook widgets, as ``azureml.widgets`` has them: ``RunDetails(run).show()``.

In a notebook (IPython with a display hook) it shows the run's status, its metrics' last values
and a link to its page in the Studio, as HTML with every value escaped; anywhere else it prints
the same as text.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.sdk.run import Run


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    get = getattr(shell, "get_ipython", None)
    instance = get() if get is not None else None
    return instance is not None and type(instance).__name__ == "ZMQInteractiveShell"


class RunDetails:
    """A run's status, metrics and Studio link, for a notebook or a terminal.

    Args:
        run_instance: the run to show.
    """

    def __init__(self, run_instance: Run) -> None:
        self.run = run_instance

    def _rows(self) -> list[tuple[str, Any]]:
        details = self.run.get_details()
        rows: list[tuple[str, Any]] = [
            ("Run", details["runId"]), ("Experiment", details["experimentName"]),
            ("Status", details["status"])]
        if self.run.display_name:
            rows.insert(1, ("Display name", self.run.display_name))
        for name, value in sorted(self.run.get_metrics().items()):
            last = value[-1] if isinstance(value, list) and value else value
            rows.append((f"metric {name}", last))
        return rows

    def _repr_html_(self) -> str:
        """The widget as an HTML table (values escaped), with a link to the run's page."""
        from ledger.sdk.portal import html_table

        return html_table(self._rows(), link=("Web View", self.run.get_portal_url()))

    def text(self) -> str:
        """The widget as plain text."""
        lines = [f"{label}: {value}" for label, value in self._rows()]
        lines.append(f"Web View: {self.run.get_portal_url()}")
        return "\n".join(lines)

    def show(self) -> None:
        """Display the widget: as HTML in a notebook, else printed as text."""
        if _in_notebook():
            from IPython.display import HTML, display

            display(HTML(self._repr_html_()))
        else:
            print(self.text())
