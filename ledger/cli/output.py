"""Output formats (``-o``) and ``--query``, as the Azure CLI shapes them.

- ``json``: indented by 2, keys sorted; ``jsonc``: the same, colored on a terminal.
- ``yaml``: block style, keys sorted (needs PyYAML).
- ``table``: one row per item (a dict is one row); the columns are the top-level keys holding
  scalar values, in the order they first appear; nested values are left out (use ``--query`` to
  pick them). Drawn with ``rich`` on a terminal, as plain aligned text otherwise.
- ``tsv``: one line per item, its scalar values separated by tabs, no header; a dict's values in
  sorted-key order (the keys of every item of a list, an absent one empty), a list's in its
  order; nested values are left out. ``None`` is empty,
  booleans are ``true``/``false``, tabs and newlines inside values are written ``\\t``/``\\n``.
- ``none``: nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

import click

FORMATS = ("json", "jsonc", "table", "tsv", "yaml", "none")

_SCALARS = (str, int, float, bool, type(None))


class OutputError(click.ClickException):
    """An output option cannot be honoured (a bad query, a missing YAML library)."""


def apply_query(data: Any, query: str | None) -> Any:
    """Apply a JMESPath expression to the data (no expression: the data as it is).

    Raises:
        click.UsageError: the expression is not valid JMESPath.
    """
    if not query:
        return data
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.search(query, data)
    except JMESPathError as error:
        message = " ".join(str(error).split())
        raise click.UsageError(f"Invalid JMESPath query {query!r}: {message}") from None


def to_json(data: Any) -> str:
    """Format as JSON: indented by 2, keys sorted, non-ASCII kept."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def to_yaml(data: Any) -> str:
    """Format as YAML (block style, keys sorted).

    Raises:
        OutputError: PyYAML is not installed.
    """
    try:
        import yaml
    except ImportError:
        raise OutputError(
            "--output yaml needs PyYAML, which is not installed "
            "(pip install 'runledger-ml[yaml]'); "
            "use --output json instead") from None
    text: str = yaml.safe_dump(_plain(data), sort_keys=True, allow_unicode=True,
                               default_flow_style=False)
    return text.rstrip("\n")


def _plain(data: Any) -> Any:
    """The data with every value PyYAML cannot represent turned into a string."""
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    return data if isinstance(data, _SCALARS) else str(data)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, _SCALARS)


def table_rows(data: Any) -> tuple[list[str], list[list[str]]]:
    """Return the columns and rows of the table output of the data."""
    items: list[Any] = data if isinstance(data, list) else [data]
    if all(isinstance(item, dict) for item in items):
        columns: dict[str, None] = {}
        for item in items:
            columns.update((k, None) for k, v in item.items() if _is_scalar(v))
        names = list(columns)
        return names, [[_cell(item.get(name)) for name in names] for item in items]
    if all(isinstance(item, list) for item in items):
        width = max((len(item) for item in items), default=0)
        names = [f"Column{i + 1}" for i in range(width)]
        return names, [[_cell(v) if _is_scalar(v) else "" for v in item]
                       + [""] * (width - len(item)) for item in items]
    return ["Result"], [[_cell(item) if _is_scalar(item) else to_json_line(item)]
                        for item in items]


def to_json_line(data: Any) -> str:
    """Format as compact JSON on one line."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)


def to_plain_table(data: Any) -> str:
    """Format as a plain text table: aligned columns under a dashed rule."""
    columns, rows = table_rows(data)
    if not columns:
        return ""
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]

    def line(cells: Iterable[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(columns), rule, *(line(r) for r in rows)])


def to_tsv(data: Any) -> str:
    """Format as tab-separated values, one line per item, no header.

    The columns of a list of dicts are the keys holding a scalar value in any of them, sorted,
    so that every line has the same columns (a key missing from an item gives an empty cell).
    """
    items: list[Any] = data if isinstance(data, list) else [data]
    keys = sorted({k for item in items if isinstance(item, dict)
                   for k, v in item.items() if _is_scalar(v)}, key=str)
    lines = []
    for item in items:
        if isinstance(item, dict):
            values = [item.get(k) if _is_scalar(item.get(k)) else None for k in keys]
        elif isinstance(item, list):
            values = [v for v in item if _is_scalar(v)]
        else:
            values = [item] if _is_scalar(item) else []
        lines.append("\t".join(_tsv_cell(v) for v in values))
    return "\n".join(lines)


def _tsv_cell(value: Any) -> str:
    return _cell(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _stdout_is_terminal() -> bool:
    # sys.stdout rather than click.get_text_stream (deprecated since click 8.5, untyped there):
    # click's CliRunner swaps sys.stdout too, so tests see the runner's stream.
    stream = sys.stdout
    return stream is not None and stream.isatty()


def _print_rich_table(data: Any) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    columns, rows = table_rows(data)
    table = Table()
    for column in columns:  # Text: no name or value is read as rich markup
        table.add_column(Text(column, style="bold"))
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    Console(file=sys.stdout).print(table)


def _print_rich_json(data: Any) -> None:
    from rich.console import Console

    Console(file=sys.stdout).print_json(to_json(data), indent=2, sort_keys=True)


def render(data: Any, fmt: str) -> str | None:
    """Return the text of the data in a format; ``None`` for ``none``.

    ``jsonc`` and ``table`` give plain text here; :func:`emit` colors them on a terminal.

    Raises:
        OutputError: ``yaml`` without PyYAML.
    """
    fmt = fmt.lower()
    if fmt == "none":
        return None
    if fmt in ("json", "jsonc"):
        return to_json(data)
    if fmt == "yaml":
        return to_yaml(data)
    if fmt == "table":
        return to_plain_table(data)
    if fmt == "tsv":
        return to_tsv(data)
    raise click.BadParameter(f"unknown output format {fmt!r}", param_hint="--output")


def emit(data: Any, fmt: str = "json", query: str | None = None) -> None:
    """Apply the query, then print the data in the format on standard output.

    Raises:
        click.UsageError: the query is not valid JMESPath.
        OutputError: ``yaml`` without PyYAML.
    """
    data = apply_query(data, query)
    fmt = fmt.lower()
    if fmt in ("table", "jsonc") and _stdout_is_terminal():
        if fmt == "table":
            _print_rich_table(data)
        else:
            _print_rich_json(data)
        return
    text = render(data, fmt)
    if text:
        click.echo(text)
