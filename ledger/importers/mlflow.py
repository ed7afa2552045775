"""Import an MLflow tracking store into a ledger: ``runledger convert mlflow``.

The store is read with MLflow's own client (``mlflow.tracking.MlflowClient``, the optional
``mlflow`` extra: ``pip install 'runledger-ml[mlflow]'``), so every store MLflow reads is
accepted: ``sqlite:///mlflow.db``, ``postgresql://...``, an ``mlruns`` folder or ``file:`` URI.
Runs are streamed page by page (``search_runs``) and each metric's history page by page, so
memory holds one run at a time, however big the store. The ledger is written through the SDK
(``ledger.sdk.importing.sync_run``): the mapping is ``docs/importing-mlflow.md``.

Idempotent and incremental: an MLflow run always maps to the same ledger run id
(``uuid5`` of its MLflow id), and each import appends only what the ledger lacks (properties it
does not have, changed tags, a newer status, metric values compared by (key, step, timestamp,
value)). Importing the same store twice appends no event.

With ``artifacts=True`` (``--artifacts``) each run's artifacts are copied into the run's files,
under their MLflow paths (``model/MLmodel``), downloaded one at a time with MLflow's client;
files the run already has are not downloaded again.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from ledger.domain.errors import ImportSourceError
from ledger.domain.ids import LEDGER_NAMESPACE
from ledger.domain.status import RunStatus
from ledger.sdk.importing import (
    MetricPoint,
    SourceFile,
    SourceRun,
    ledger_metric_points,
    metric_point,
    sync_run,
)

if TYPE_CHECKING:
    from ledger.sdk.workspace import Workspace

INSTALL_HINT = "pip install 'runledger-ml[mlflow]'"
SOURCE = "mlflow"

# MLflow's run statuses and the ledger's.
STATUSES = {
    "RUNNING": RunStatus.RUNNING,
    "SCHEDULED": RunStatus.QUEUED,
    "FINISHED": RunStatus.COMPLETED,
    "FAILED": RunStatus.FAILED,
    "KILLED": RunStatus.CANCELED,
}
# MLflow's system tags that have a place of their own in a ledger run (not kept as tags).
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
NOTE_TAG = "mlflow.note.content"
# Facts about the code a run ran: immutable, so properties (keys kept as MLflow spells them).
PROPERTY_TAG_PREFIXES = ("mlflow.source.", "mlflow.git.", "mlflow.project.")
# Properties the import adds, so the ledger's runs can be found by their MLflow ids.
PROP_SOURCE = "runledger.import.source"
PROP_RUN_ID = "runledger.import.mlflow_run_id"
PROP_EXPERIMENT_ID = "runledger.import.mlflow_experiment_id"
# A tag: the artifact store of a run may move (a migrated store), a property could not follow.
TAG_ARTIFACT_URI = "runledger.import.mlflow_artifact_uri"

RUNS_PAGE = 1000  # search_runs' own maximum per page on every store
HISTORY_PAGE = 100_000  # metric values read per call
MAX_ARTIFACTS = 1000  # artifact paths listed per run in its Imported event (all are copied)


@attrs.define
class ConvertSummary:
    """What one ``convert_mlflow`` call did.

    Attributes:
        source: the tracking URI read (password masked).
        experiments: the MLflow experiments read.
        runs: the MLflow runs read.
        created: runs new to the ledger.
        updated: known runs that changed.
        metric_values: metric values appended.
        read_values: metric values read from MLflow.
        artifacts: artifact files copied into runs' files (``artifacts=True``).
        artifacts_differing: artifacts a run already holds under the same name with another
            size (MLflow's was overwritten after an import): not replaced, as run file names
            are write-once.
    """

    source: str
    experiments: int = 0
    runs: int = 0
    created: int = 0
    updated: int = 0
    metric_values: int = 0
    read_values: int = 0
    artifacts: int = 0
    artifacts_differing: int = 0


def ledger_run_id(mlflow_run_id: str) -> str:
    """The ledger's id of an MLflow run: the same for every import of it, from any copy of the
    store (the MLflow run id alone decides: MLflow's ids are random UUIDs)."""
    return str(uuid.uuid5(LEDGER_NAMESPACE, "mlflow-run:" + mlflow_run_id))


def mask_uri(uri: str) -> str:
    """The tracking URI with any password replaced by ``***``."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def normalise_tracking_uri(uri: str) -> str:
    """A URI MLflow reads: a folder path (``./mlruns``) becomes its absolute ``file:`` URI.

    Raises:
        ImportSourceError: a folder path or ``file:`` URI that does not exist.
    """
    parts = urlsplit(uri)
    if parts.scheme in ("", "file") or (len(parts.scheme) == 1 and os.name == "nt"):
        path = Path(parts.path if parts.scheme == "file" else uri).expanduser()
        if not path.is_dir():
            raise ImportSourceError(f"MLflow tracking store {uri!r}: no such folder")
        return path.resolve().as_uri()
    return uri


def client_uri(tracking_uri: str) -> str:
    """The URI handed to MLflow's client: ``postgresql://`` names psycopg 3's driver when
    psycopg2 (SQLAlchemy's default for it) is not installed and psycopg is (runledger's own
    PostgreSQL store uses psycopg 3, so a ledger on PostgreSQL has it)."""
    scheme, sep, rest = tracking_uri.partition("://")
    if (sep and scheme == "postgresql" and importlib.util.find_spec("psycopg2") is None
            and importlib.util.find_spec("psycopg") is not None):
        return f"postgresql+psycopg://{rest}"
    return tracking_uri


def mlflow_client(tracking_uri: str) -> Any:
    """Return MLflow's client on a tracking store, importing MLflow only now.

    Raises:
        ImportSourceError: MLflow (or what its SQL store needs) is not installed.
    """
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as error:
        raise ImportSourceError(
            f"Reading an MLflow store needs MLflow's client ({error}); install it with "
            f"{INSTALL_HINT}") from error
    if tracking_uri.startswith("file:"):
        # MLflow 3 refuses its file store unless told to: the import only reads it.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=client_uri(tracking_uri))


def _ms_to_datetime(ms: int | None) -> datetime | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _experiments(client: Any, names: Sequence[str]) -> list[Any]:
    if names:
        found = []
        for name in names:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise ImportSourceError(f"MLflow tracking store has no experiment {name!r}")
            found.append(experiment)
        return found
    experiments: list[Any] = []
    token = None
    while True:
        page = client.search_experiments(max_results=RUNS_PAGE, page_token=token)
        experiments.extend(page)
        token = page.token
        if not token:
            return experiments


def _runs(client: Any, experiment_id: str) -> Iterator[Any]:
    """The experiment's active runs, oldest first, a page at a time."""
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=RUNS_PAGE,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def metric_history(client: Any, run_id: str, key: str) -> Iterator[Any]:
    """The history of one metric, a page at a time where the store pages it.

    ``MlflowClient.get_metric_history`` returns the whole history at once; the stores under it
    (SQL and file) take ``max_results``/``page_token``, used when present.
    """
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    if store is None:
        yield from client.get_metric_history(run_id, key)
        return
    token = None
    while True:
        try:
            page = store.get_metric_history(run_id, key, max_results=HISTORY_PAGE,
                                            page_token=token)
        except TypeError:  # an older store without paging
            yield from client.get_metric_history(run_id, key)
            return
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def _walk_artifacts(client: Any, run_id: str) -> Iterator[SourceFile]:
    """The run's artifact files, breadth first, nested folders included."""
    folders: list[str | None] = [None]
    while folders:
        for info in client.list_artifacts(run_id, folders.pop(0)):
            if info.is_dir:
                folders.append(info.path)
            else:
                size = info.file_size
                yield SourceFile(name=info.path, size=int(size) if size is not None else None)


def _artifacts(client: Any, run: Any, copy: bool) -> list[SourceFile]:
    """The run's artifact files: all of them to copy, else the first ``MAX_ARTIFACTS``.

    Raises:
        ImportSourceError: ``copy`` and the artifact store cannot be listed (without ``copy``
            the files seen until then are listed: the import does not need the artifacts).
    """
    found: list[SourceFile] = []
    try:
        for file in _walk_artifacts(client, run.info.run_id):
            found.append(file)
            if not copy and len(found) >= MAX_ARTIFACTS:
                break
    except Exception as error:
        if copy:
            raise ImportSourceError(
                f"Cannot list the artifacts of MLflow run {run.info.run_id!r} at "
                f"{run.info.artifact_uri}: {type(error).__name__}: {error}") from error
    return found


def _fetcher(client: Any, run: Any) -> Callable[[str, Path], Path]:
    """Download one artifact of ``run`` into a folder, with MLflow's client."""
    run_id = run.info.run_id

    def fetch(path: str, folder: Path) -> Path:
        try:
            return Path(client.download_artifacts(run_id, path, str(folder)))
        except Exception as error:
            raise ImportSourceError(
                f"Cannot download artifact {path!r} of MLflow run {run_id!r} from "
                f"{run.info.artifact_uri}: {type(error).__name__}: {error}") from error

    return fetch


def source_run(run: Any, experiment_name: str, source_uri: str,
               parent_run_id: str | None, artifacts: tuple[str, ...]) -> SourceRun:
    """Map an MLflow run to the ledger's terms (see ``docs/importing-mlflow.md``)."""
    info, data = run.info, run.data
    tags: dict[str, str | None] = {}
    properties: dict[str, str | None] = dict(data.params)
    for key, value in data.tags.items():
        if key in (PARENT_TAG, RUN_NAME_TAG, USER_TAG, NOTE_TAG):
            continue
        if key.startswith(PROPERTY_TAG_PREFIXES):
            properties[key] = value
        else:
            tags[key] = value
    if data.tags.get(PARENT_TAG) and parent_run_id is None:
        tags[PARENT_TAG] = data.tags[PARENT_TAG]  # a parent MLflow no longer has: kept as said
    properties[PROP_SOURCE] = SOURCE
    properties[PROP_RUN_ID] = info.run_id
    properties[PROP_EXPERIMENT_ID] = str(info.experiment_id)
    if info.artifact_uri:
        tags[TAG_ARTIFACT_URI] = info.artifact_uri
    status = STATUSES.get(info.status, RunStatus.RUNNING)
    start = _ms_to_datetime(info.start_time)
    return SourceRun(
        source=SOURCE, source_uri=source_uri, source_run_id=info.run_id,
        run_id=ledger_run_id(info.run_id), experiment_name=experiment_name,
        parent_run_id=parent_run_id,
        display_name=data.tags.get(RUN_NAME_TAG) or info.run_name or None,
        description=data.tags.get(NOTE_TAG) or None,
        submitted_by=data.tags.get(USER_TAG) or info.user_id or None,
        status=status, created_at=start,
        started_at=start if status is not RunStatus.QUEUED else None,
        ended_at=_ms_to_datetime(info.end_time) if status.is_terminal else None,
        properties=properties, tags=tags, artifacts=artifacts)


class _Converter:
    def __init__(self, workspace: Workspace, client: Any, source_uri: str,
                 summary: ConvertSummary, progress: Callable[[ConvertSummary], None],
                 copy_artifacts: bool) -> None:
        self.workspace = workspace
        self.client = client
        self.source_uri = source_uri
        self.summary = summary
        self.progress = progress
        self.copy_artifacts = copy_artifacts
        self.done: set[str] = set()  # MLflow run ids synced by this call

    def sync(self, run: Any, experiment_name: str) -> None:
        run_id = run.info.run_id
        if run_id in self.done:
            return
        self.done.add(run_id)
        parent_id = None
        parent_mlflow_id = run.data.tags.get(PARENT_TAG)
        if parent_mlflow_id:
            parent_id = self._ensure_parent(parent_mlflow_id)
        files = _artifacts(self.client, run, self.copy_artifacts)
        # The same listing with or without copying (walk order, then sorted): switching
        # --artifacts on does not by itself change what the Imported event lists.
        listed = tuple(sorted(f.name for f in files[:MAX_ARTIFACTS]))
        source = source_run(run, experiment_name, self.source_uri, parent_id, listed)
        new_metrics = self._new_metrics(run, source.run_id)
        if self.copy_artifacts:
            result = sync_run(self.workspace, source, new_metrics, files=files,
                              fetch=_fetcher(self.client, run))
        else:
            result = sync_run(self.workspace, source, new_metrics)
        summary = self.summary
        summary.runs += 1
        summary.metric_values += result.metric_values
        summary.artifacts += result.files
        summary.artifacts_differing += len(result.differing)
        if result.created:
            summary.created += 1
        elif result.changed:
            summary.updated += 1
        self.progress(summary)

    def _ensure_parent(self, parent_mlflow_id: str) -> str | None:
        """Import the parent first (it may sort after its child); ``None`` if MLflow lost it."""
        if parent_mlflow_id not in self.done:
            try:
                parent = self.client.get_run(parent_mlflow_id)
            except Exception:  # deleted for good: the child is imported on its own
                return None
            experiment = self.client.get_experiment(parent.info.experiment_id)
            self.sync(parent, experiment.name)
        return ledger_run_id(parent_mlflow_id)

    def _new_metrics(self, run: Any, ledger_id: str
                     ) -> list[tuple[str, list[float], list[int], list[float]]]:
        keys = sorted(run.data.metrics)
        if not keys:
            return []
        known: Counter[MetricPoint] = ledger_metric_points(self.workspace, ledger_id)
        new: list[tuple[str, list[float], list[int], list[float]]] = []
        for key in keys:
            values: list[float] = []
            steps: list[int] = []
            times: list[float] = []
            for metric in metric_history(self.client, run.info.run_id, key):
                self.summary.read_values += 1
                seconds = metric.timestamp / 1000
                if known:
                    point = metric_point(key, metric.step, seconds, metric.value)
                    if known[point] > 0:
                        known[point] -= 1
                        continue
                values.append(metric.value)
                steps.append(metric.step)
                times.append(seconds)
            if values:
                new.append((key, values, steps, times))
        return new


def convert_mlflow(workspace: Workspace, tracking_uri: str, experiments: Sequence[str] = (),
                   *, artifacts: bool = False,
                   progress: Callable[[ConvertSummary], None] | None = None) -> ConvertSummary:
    """Import the runs of an MLflow tracking store into a ledger (only what it lacks).

    Args:
        workspace: the ledger to write.
        tracking_uri: the MLflow store (``sqlite:///mlflow.db``, ``postgresql://...``, an
            ``mlruns`` folder or ``file:`` URI).
        experiments: the MLflow experiments to import, by name (default: every active one).
        artifacts: also copy each run's artifacts into its files (those it lacks, by name).
        progress: called after each run with the summary so far.

    Returns:
        What was read and written.

    Raises:
        ImportSourceError: MLflow is not installed, the store cannot be read, or an experiment
            named is not in it; with ``artifacts``, a run's artifacts cannot be listed or
            downloaded (that run is not written; the runs before it are).
        LedgerError: a run the ledger refuses (a property recorded with another value, a value
            too long...): that run is not written; the runs before it are.
        StoreError: the ledger's store failed.
    """
    uri = normalise_tracking_uri(tracking_uri)
    client = mlflow_client(uri)
    summary = ConvertSummary(source=mask_uri(uri))
    converter = _Converter(workspace, client, summary.source, summary,
                           progress or (lambda s: None), artifacts)
    try:
        chosen = _experiments(client, experiments)
    except ImportSourceError:
        raise
    except Exception as error:  # MLflow's own errors: an unreachable or unknown store
        raise ImportSourceError(
            f"Cannot read the MLflow tracking store {summary.source}: "
            f"{type(error).__name__}: {error}") from error
    for experiment in chosen:
        summary.experiments += 1
        for run in _runs(client, experiment.experiment_id):
            converter.sync(run, experiment.name)
    return summary
