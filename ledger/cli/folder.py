"""``runledger folder attach``: ``az ml folder attach`` for a runledger ledger.

``az ml folder attach -w NAME -g RG`` writes ``.azureml/config.json`` so that
``Workspace.from_config()`` finds the workspace from that folder; ``runledger folder attach``
writes runledger's configuration file (``ledger.config``), which ``Workspace.from_config()`` and
every ``runledger`` command run in that folder (or below it) then use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import click

from ledger.cli.options import output_options, state, workspace_options_with
from ledger.cli.output import emit

CONFIG_FILE = ".runledger/config.json"
PLAIN_CONFIG_FILE = "runledger.json"  # found first by the search order, so updated if present

PATH_HELP = ("Folder to attach (the configuration file is written there). Default: the "
             "current folder.")


@click.group("folder")
def folder_group() -> None:
    """Attach a folder to a workspace: write the configuration file that
    `Workspace.from_config()` and the commands run there find."""


def config_file_of(folder: Path) -> Path:
    """The configuration file ``attach`` writes in a folder: ``runledger.json`` if the folder
    has one (the search order finds it first), else ``.runledger/config.json``."""
    plain = folder / PLAIN_CONFIG_FILE
    return plain if plain.is_file() else folder / CONFIG_FILE


def store_for_file(url: str, folder: Path) -> str:
    """The store URL as the configuration file in ``folder`` should hold it.

    A relative SQLite path on the command line is relative to the current folder, as for every
    ``--store``; in the file it is relative to the attached folder, so it is rewritten (and
    stays relative, so the folder can be moved with its ledger).

    Raises:
        StoreConfigError: the URL is not understood.
    """
    from ledger.persistence.store import parse_store_url

    parsed = parse_store_url(url)
    parts = urlsplit(url)
    raw = unquote(parts.path)
    if parsed.kind != "sqlite" or parsed.path is None or raw.startswith("//"):
        return url
    relative = Path(os.path.relpath(parsed.path, folder.resolve())).as_posix()
    return f"sqlite:///{relative}" + (f"?{parts.query}" if parts.query else "")


def _read(file: Path) -> dict[str, Any]:
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8") or "{}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise click.ClickException(f"Cannot update {str(file)!r}: {error}") from None
    if not isinstance(data, dict):
        raise click.ClickException(f"Cannot update {str(file)!r}: it does not hold a JSON object")
    return data


@folder_group.command("attach")
@workspace_options_with(path_help=PATH_HELP)
@output_options
def attach_folder() -> None:
    """Write the configuration file naming the workspace (-w) and its store (--store).

    The file is `.runledger/config.json` in the folder (`runledger.json` instead if the folder
    has one), as `az ml folder attach` writes `.azureml/config.json`. Without --store, the
    store the file already names is kept; a file naming none uses the embedded default
    `.runledger/ledger.db` of the folder. -g and --subscription-id are accepted and ignored.
    Shows what was written and where.

        runledger folder attach -w my-workspace -g my-resource-group
    """
    options = state()
    if not options.workspace_name:
        raise click.UsageError("Missing option '-w' / '--workspace-name'.")
    folder = Path(options.path) if options.path else Path.cwd()
    if not folder.is_dir():
        raise click.BadParameter(f"{str(folder)!r} is not a folder", param_hint="--path")
    file = config_file_of(folder)
    data = _read(file)
    data["name"] = options.workspace_name
    if options.store is not None:
        data["store"] = store_for_file(options.store, folder)
    file.parent.mkdir(exist_ok=True)
    partial = file.with_name(file.name + ".tmp")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, file)
    emit({**data, "configFile": str(file.resolve())}, options.output_format, options.query)
