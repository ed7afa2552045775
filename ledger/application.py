"""The application layer: one eventsourcing ``Application`` holding every run of a ledger.

It loads and saves aggregates, retries commands that conflict with other writers, appends metric
batches, and translates the store's errors into runledger's own. It knows nothing of the SDK, the
CLI or the projections, which all build on it.
"""

from __future__ import annotations

import contextlib
import importlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    Notification,
    PersistenceError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import get_topic, resolve_topic

from ledger.domain.environment import EnvironmentAggregate, environment_stream_id
from ledger.domain.errors import (
    ConcurrencyError,
    LedgerError,
    RunNotFoundError,
    StoreConfigError,
    StoreError,
    ValidationError,
)
from ledger.domain.experiment import ExperimentAggregate
from ledger.domain.files import log_stream_id
from ledger.domain.ids import experiment_stream_id, metric_stream_id, run_stream_id
from ledger.domain.metrics import MetricsLogged
from ledger.domain.run import RunAggregate
from ledger.domain.values import Actor
from ledger.persistence.blobs import BlobStore, FsspecBlobStore, SQLBlobStore
from ledger.persistence.errors import store_errors
from ledger.persistence.heartbeats import HeartbeatStore
from ledger.persistence.positions import (
    StreamRow,
    select_log,
    select_stream_notifications,
    select_streams,
)
from ledger.persistence.retry import RETRY, is_transient
from ledger.persistence.sqlite import insert_sqlite_rows, is_plain_sqlite_recorder
from ledger.persistence.store import POSTGRES_INSTALL_HINT, StoreConfig
from ledger.persistence.transcoder import MsgpackTranscoder

T = TypeVar("T")


def _load_driver(store: StoreConfig, env: dict[str, str]) -> None:
    """Import the store's persistence module (and so its driver) before eventsourcing does, so
    that a missing or broken driver is a clear error rather than a chain of import errors.

    Raises:
        StoreConfigError: the module or its driver does not load.
    """
    module = env.get("PERSISTENCE_MODULE", "").partition(":")[0]
    if not module:
        return
    try:
        importlib.import_module(module)
    except Exception as error:  # a broken driver raises anything (ImportError, OSError...)
        hint = f"; install it with {POSTGRES_INSTALL_HINT}" if store.kind == "postgresql" else ""
        raise StoreConfigError(
            f"Cannot open the store {store.display_url}: its database driver does not load "
            f"({type(error).__name__}: {error}){hint}") from error


@contextlib.contextmanager
def decoding(what: str) -> Iterator[None]:
    """Raise a stored event that cannot be decoded (a damaged byte, a crafted import) as a
    ``StoreError`` naming what was read, instead of whatever the decoder raised.

    Raises:
        StoreError: an event in the block could not be decoded.
    """
    try:
        yield
    except (LedgerError, PersistenceError, AggregateNotFoundError, LookupError):
        raise
    except Exception as error:
        raise StoreError(f"{what}: a stored event cannot be decoded ({type(error).__name__}: "
                         f"{str(error)[:200]}); see `runledger projections status`") from error


class LedgerApplication(Application):  # type: ignore[type-arg]
    """The event-sourced application behind one ledger.

    Args:
        store: the store configuration (``ledger.persistence.store.parse_store_url``).

    Raises:
        StoreError: the store cannot be opened.
    """

    name = "runledger"

    def __init__(self, store: StoreConfig) -> None:
        self.store = store
        # Formatted once: reads and writes are hot paths.
        self._reading = f"Reading {store.display_url}"
        self._writing = f"Writing to {store.display_url}"
        env = dict(store.env)
        env.setdefault("CREATE_TABLE", "y")
        if store.path is not None:
            store.path.parent.mkdir(parents=True, exist_ok=True)
        _load_driver(store, env)
        # Several processes opening a fresh store at once may find it locked while another
        # creates its tables: SQLite's switch to WAL mode raises sqlite3's own "database is
        # locked" (eventsourcing does not translate it). Opening is retried, then translated.
        failure: BaseException | None = None
        for _attempt in RETRY.attempts():
            try:
                super().__init__(env=env)
                failure = None
                break
            except (PersistenceError, sqlite3.Error, OSError) as error:
                factory = getattr(self, "factory", None)
                if factory is not None:
                    with contextlib.suppress(Exception):
                        factory.close()
                failure = error
                if not is_transient(error):
                    break
        if failure is not None:
            raise StoreError(f"Cannot open the store {store.display_url}: {failure}") \
                from failure
        self._metric_versions: dict[str, int] = {}
        # Per event class: its topic and class version (see stored_events).
        self._event_classes: dict[type, tuple[str, int]] = {}
        self._metric_lock = threading.Lock()
        # Reentrant: a signal handler flushing at exit may read the token while the thread
        # it interrupted holds the lock.
        self._token_lock = threading.RLock()
        self._token_connection: sqlite3.Connection | None = None
        self._token_epoch = object()

    @property
    def blobs(self) -> BlobStore:
        """The ledger's file content store: its own database (tables created on first use), or
        the folder / object store of the store URL's ``files=`` option.

        Raises:
            StoreError: the tables cannot be created.
        """
        def make(factory: Any) -> BlobStore:
            if self.store.files:
                return FsspecBlobStore(self.store.files)
            return SQLBlobStore(factory.datastore, self.store.kind,
                                ddl_lock=getattr(factory, "ddl_lock", None),
                                what=self.store.display_url)

        blobs: BlobStore = self._side_store("_blobs", make)
        return blobs

    @property
    def heartbeats(self) -> HeartbeatStore:
        """The supervisors' heartbeat table (created on first use).

        Raises:
            StoreError: the table cannot be created.
        """
        def make(factory: Any) -> HeartbeatStore:
            return HeartbeatStore(factory.datastore, self.store.kind,
                                  ddl_lock=getattr(factory, "ddl_lock", None),
                                  what=self.store.display_url)

        beats: HeartbeatStore = self._side_store("_heartbeats", make)
        return beats

    def _side_store(self, attribute: str, make: Callable[[Any], Any]) -> Any:
        """Return the side store kept in ``attribute``, made once (``make(factory)``) under a
        lock, so two threads never create its tables twice."""
        store = self.__dict__.get(attribute)
        if store is None:
            with self._metric_lock:
                store = self.__dict__.get(attribute)
                if store is None:
                    store = self.__dict__[attribute] = make(self.factory)
        return store

    def construct_transcoder(self) -> Transcoder:
        """Events are stored as msgpack (see ``ledger.persistence.transcoder``)."""
        return MsgpackTranscoder()

    # ------------------------------------------------------------------ writing
    def save_all(self, *objs: Any) -> int:
        """Append the pending events of aggregates (and loose events) in one transaction.

        Returns:
            The notification id of the last event appended (0 if there was none): a query that
            has caught up to it sees this write.

        Raises:
            eventsourcing.persistence.IntegrityError: another writer appended first (the caller
                reloads and retries).
            StoreError: the store failed.
        """
        events: list[Any] = []
        for obj in objs:
            # Aggregates give their pending events; loose events (metric batches) go as they
            # are. Application.save() would check each object against runtime protocols, which
            # costs more than the insert on Python 3.11; runledger takes no snapshots and has no
            # followers to notify, so the event store's put() is all save() would do here.
            if isinstance(obj, Aggregate):
                events.extend(obj.collect_events())
            elif obj is not None:
                events.append(obj)
        if not events:
            return 0
        # The event store's put() would also build a Recording and a Notification per event,
        # which nothing here reads: the mapper and the recorder are what it calls.
        recorder = self.recorder
        if is_plain_sqlite_recorder(recorder):
            encoded = self._encoded(events)
            if encoded is not None:  # the rows eventsourcing's SQLite recorder would insert
                with store_errors(self._writing):
                    ids = insert_sqlite_rows(recorder, [
                        (originator_id.hex if isinstance(originator_id, UUID) else originator_id,
                         version, topic, state)
                        for originator_id, version, topic, state in encoded])
                return max(ids) if ids else 0
        stored = self.stored_events(events)
        with store_errors(self._writing):
            inserted = recorder.insert_events(stored)
        return max(inserted) if inserted else 0

    def stored_events(self, events: Sequence[Any]) -> list[StoredEvent]:
        """Return domain events as the mapper's ``to_stored_event`` maps them, the same bytes
        made with one msgpack packer for all of them (without a cipher or compressor).

        Raises:
            TypeError: an event holds a value msgpack cannot carry.
        """
        encoded = self._encoded(events)
        if encoded is None:
            return [self.mapper.to_stored_event(event) for event in events]
        return [StoredEvent(originator_id=originator_id, originator_version=version,
                            topic=topic, state=state)
                for originator_id, version, topic, state in encoded]

    def _encoded(self, events: Sequence[Any]) -> list[tuple[Any, int, str, bytes]] | None:
        """Return the ``(originator id, version, topic, state)`` of each event as
        ``Mapper.to_stored_event`` makes them, or ``None`` when the mapper is not a plain
        one with the msgpack transcoder (a cipher, a compressor, a subclass)."""
        mapper = self.mapper
        transcoder = mapper.transcoder
        if (mapper.cipher is not None or mapper.compressor is not None
                or not isinstance(transcoder, MsgpackTranscoder)
                or type(transcoder).encode is not MsgpackTranscoder.encode
                or type(mapper).to_stored_event is not Mapper.to_stored_event):
            return None
        pack = transcoder.packer().pack
        classes = self._event_classes
        encoded = []
        for event in events:
            cls = type(event)
            known = classes.get(cls)
            if known is None:
                known = classes[cls] = (get_topic(cls), getattr(cls, "class_version", 1))
            topic, class_version = known
            state = dict(vars(event))
            originator_id = state.pop("originator_id")
            originator_version = state.pop("originator_version")
            if class_version > 1:
                state["class_version"] = class_version
            encoded.append((originator_id, originator_version, topic, pack(state)))
        return encoded

    def run_command(self, run: RunAggregate | None, run_id: str,
                    command: Callable[[RunAggregate], T]) -> tuple[RunAggregate, T, int]:
        """Apply ``command`` to a run and append the events it triggers, all or nothing.

        If another writer changed the run first, the run is reloaded and the command applied again
        (as ``ledger.persistence.retry.RETRY`` allows). If the command raises, nothing is appended
        and the given aggregate must no longer be used (it is not returned).

        Args:
            run: the caller's copy of the aggregate, or ``None`` to load it.
            run_id: the run's id.
            command: mutates the aggregate (by its command methods) and returns a result.

        Returns:
            The up-to-date aggregate, the command's result, and the position of the write.

        Raises:
            RunNotFoundError: no such run.
            ConcurrencyError: the command conflicted on every attempt.
            StoreError: the store failed.
            Whatever ``command`` raises (nothing is written then).
        """
        # A caller's copy may be stale: catch it up first, so that a command judged a no-op
        # (a tag set to the value it had) is judged against what is stored now.
        aggregate = self.fast_forward(run) if run is not None else self.get_run(run_id)
        attempts = 0
        for attempts in RETRY.attempts():
            if attempts:
                aggregate = self.get_run(run_id)  # after the pause: what the winner wrote
            result = command(aggregate)
            if not aggregate.pending_events:
                return aggregate, result, 0
            try:
                position = self.save_all(aggregate)
            except IntegrityError:
                continue
            return aggregate, result, position
        raise ConcurrencyError(
            f"Run {run_id!r} kept changing under this command: gave up after "
            f"{attempts + 1} attempts")

    def ensure_experiment(self, name: str, actor: Actor) -> ExperimentAggregate:
        """Return the experiment with this name, creating it if it does not exist.

        Two processes creating the same experiment at once end with one: the ids are derived from
        the name, and the second save conflicts and loads the first's.

        Raises:
            ValidationError: the name is not a valid name.
            StoreError: the store failed.
        """
        try:
            return self.get_experiment(name)
        except LookupError:
            pass
        experiment = ExperimentAggregate.create(name, actor)
        try:
            self.save_all(experiment)
        except IntegrityError:
            return self.get_experiment(name)
        return experiment

    def experiment_command(self, name: str,
                           command: Callable[[ExperimentAggregate], T]) -> T:
        """Apply ``command`` to the experiment ``name`` and append its events, all or nothing,
        retried if another writer changed the experiment first.

        Raises:
            LookupError: no such experiment.
            ConcurrencyError: the command conflicted on every attempt.
            StoreError: the store failed.
            Whatever ``command`` raises (nothing is written then).
        """
        for _attempt in RETRY.attempts():
            experiment = self.get_experiment(name)
            result = command(experiment)
            if not experiment.pending_events:
                return result
            try:
                self.save_all(experiment)
            except IntegrityError:
                continue
            return result
        raise ConcurrencyError(
            f"Experiment {name!r} kept changing under this command: gave up retrying")

    def register_environment(self, name: str, definition: dict[str, Any],
                             actor: Actor) -> str:
        """Register an environment definition; return its version (the latest one when the
        definition is unchanged), retried if another writer registered first.

        Raises:
            ValidationError: a bad name or definition.
            ConcurrencyError: other writers kept registering first.
            StoreError: the store failed.
        """
        for _attempt in RETRY.attempts():
            try:
                environment = self.get_environment(name)
            except LookupError:
                environment = EnvironmentAggregate.create(name, actor)
            version = environment.register(definition, actor)
            if not environment.pending_events:
                return version
            try:
                self.save_all(environment)
            except IntegrityError:
                continue
            return version
        raise ConcurrencyError(
            f"Environment {name!r} kept changing under this registration: gave up retrying")

    def get_environment(self, name: str) -> EnvironmentAggregate:
        """Load an environment's registered versions by name.

        Raises:
            LookupError: no environment of this name was registered.
            StoreError: the store failed.
        """
        with store_errors(self._reading):
            try:
                environment: Any = self.repository.get(environment_stream_id(name))
            except AggregateNotFoundError:
                raise LookupError(name) from None
        if not isinstance(environment, EnvironmentAggregate):
            raise LookupError(name)
        return environment

    def environment_names(self) -> list[str]:
        """Return the names of every registered environment, sorted (a read of the log's
        ``Environment.Created`` events).

        Raises:
            StoreError: the store failed.
        """
        names: set[str] = set()
        position = 0
        while True:
            page = self.read_log(position, 1000, topics=[EnvironmentAggregate.Created.TOPIC])
            if not page:
                return sorted(names)
            for notification in page:
                event: Any = self.decode(notification)
                names.add(event.name)
            position = page[-1].id

    def append_metrics(self, run_id: str, series: list[list[Any]], actor: Actor) -> int:
        """Append one batch of metric series to the run's metric stream.

        Returns:
            The position of the write.

        Raises:
            StoreError: the store failed.
            ConcurrencyError: other writers of the same run's metrics kept appending first.
        """
        stream = metric_stream_id(run_id)
        actor_data = actor.as_dict()
        for _attempt in RETRY.attempts():  # pauses outside the lock: other runs' appends go on
            with self._metric_lock:
                version = self._metric_versions.get(run_id)
                if version is None:
                    version = self._last_version(stream)
                event = self.metrics_event(run_id, series, actor_data, version + 1)
                try:
                    position = self.save_all(event)
                except IntegrityError:
                    self._metric_versions.pop(run_id, None)
                else:
                    self._metric_versions[run_id] = version + 1
                    return position
        raise ConcurrencyError(f"Could not append metrics to run {run_id!r}: other writers of "
                               "its metrics kept appending first")

    @staticmethod
    def metrics_event(run_id: str, series: list[list[Any]], actor: dict[str, Any],
                      version: int, timestamp: datetime | None = None) -> MetricsLogged:
        """Return the event of one batch of metric series at ``version`` of the run's metric
        stream (the first batch of a run is version 1), made at ``timestamp`` (default:
        now)."""
        return MetricsLogged(  # type: ignore[call-arg]
            originator_id=metric_stream_id(run_id),
            originator_version=version,
            timestamp=timestamp or MetricsLogged.create_timestamp(),
            run_id=run_id,
            series=series,
            actor=actor,
        )

    def metrics_written(self, run_id: str, version: int) -> None:
        """Remember that a batch at ``version`` of a run's metric stream was appended by a
        write of its own (the next ``append_metrics`` then needs no query for the version)."""
        with self._metric_lock:
            self._metric_versions[run_id] = version

    def _last_version(self, stream: UUID) -> int:
        with store_errors(self._reading):
            last = self.recorder.select_events(stream, desc=True, limit=1)
        return last[0].originator_version if last else 0

    # ------------------------------------------------------------------ reading
    def read_token(self) -> tuple[object, int] | None:
        """Return a value that changes whenever anyone commits to the store, or ``None`` when
        this store cannot tell cheaply (memory and PostgreSQL stores).

        Take it *before* a read; if a later call returns an equal value, nothing was committed
        since, so what was read is still current (no catch-up query needed). On a SQLite file
        it is ``PRAGMA data_version`` of a connection of its own that never writes: that value
        changes when any other connection, of any process, commits.

        Raises:
            StoreError: the store failed.
        """
        if self.store.kind != "sqlite" or self.store.path is None:
            return None
        with self._token_lock:
            try:
                connection = self._token_connection
                if connection is None:
                    connection = sqlite3.connect(f"file:{self.store.path}?mode=ro", uri=True,
                                                 check_same_thread=False, isolation_level=None)
                    self._token_connection = connection
                return self._token_epoch, connection.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error as error:
                raise StoreError(f"{self._reading} failed: {error}") from error

    def close(self) -> None:
        """Close the store's connections."""
        with self._token_lock:
            if self._token_connection is not None:
                self._token_connection.close()
                self._token_connection = None
                self._token_epoch = object()  # tokens of the closed connection never match
        super().close()

    def get_run(self, run_id: str) -> RunAggregate:
        """Load a run from its events.

        Raises:
            RunNotFoundError: no run has this id.
            StoreError: the store failed.
        """
        stream = _run_stream(run_id)
        with store_errors(self._reading), decoding(f"Reading run {run_id!r}"):
            # What Repository.get does for an aggregate without snapshots, without its
            # per-event runtime-protocol checks (a third of a load on Python 3.11).
            stored = self.recorder.select_events(stream)
            aggregate: Any = None
            for event in self.decode_rows([(0, stream, s.originator_version, s.topic, s.state)
                                           for s in stored]):
                aggregate = event.mutate(aggregate)
        if not isinstance(aggregate, RunAggregate):
            raise RunNotFoundError(run_id)
        return aggregate

    def get_run_and_logs(self, run_id: str) -> tuple[RunAggregate, list[Any]]:
        """Load a run, and the events of its growing logs' stream, in one read transaction.

        ``Run.get`` reads both because ``get_details()`` lists the logs.

        Returns:
            The run's aggregate and its log stream's events, in order.

        Raises:
            RunNotFoundError: no run has this id.
            StoreError: the store failed.
        """
        stream = _run_stream(run_id)
        with store_errors(self._reading), decoding(f"Reading run {run_id!r}"):
            rows = select_stream_notifications(self.recorder, [stream, log_stream_id(run_id)])
            aggregate: Any = None
            logs: list[Any] = []
            for event in self.decode_rows(rows):
                if event.originator_id == stream:
                    aggregate = event.mutate(aggregate)
                else:
                    logs.append(event)
        if not isinstance(aggregate, RunAggregate):
            raise RunNotFoundError(run_id)
        return aggregate, logs

    def fast_forward(self, run: RunAggregate) -> RunAggregate:
        """Apply to ``run`` the events other writers appended since it was loaded.

        Raises:
            StoreError: the store failed.
        """
        with store_errors(self._reading), decoding(f"Reading run {run.run_id!r}"):
            for event in self.events.get(run.id, gt=run.version):
                event.mutate(run)  # type: ignore[attr-defined]
        return run

    def get_experiment(self, name: str) -> ExperimentAggregate:
        """Load an experiment by name.

        Raises:
            LookupError: no such experiment.
        """
        with store_errors(self._reading):
            try:
                experiment: Any = self.repository.get(experiment_stream_id(name))
            except AggregateNotFoundError:
                raise LookupError(name) from None
        assert isinstance(experiment, ExperimentAggregate)
        return experiment

    def metric_events(self, run_id: str) -> Iterator[MetricsLogged]:
        """Yield the stored metric batches of a run, in the order they were appended."""
        with store_errors(self._reading), decoding(f"Reading the metrics of run {run_id!r}"):
            events = list(self.events.get(metric_stream_id(run_id)))
        for event in events:
            assert isinstance(event, MetricsLogged)
            yield event

    def stream_events(self, stream_id: UUID) -> list[DomainEventProtocol[Any]]:
        """Return every event of one stream, in order."""
        with store_errors(self._reading), decoding(f"Reading stream {stream_id}"):
            return list(self.events.get(stream_id))

    def stream_notifications(self, streams: Sequence[UUID], *,
                             until: int | None = None) -> list[StreamRow]:
        """Return the stored events of some streams with their log positions, in log order.

        Args:
            streams: stream UUIDs (a run's stream, its metric stream...).
            until: only events at positions up to and including this one.

        Returns:
            ``(position, stream, version, topic, state)`` rows; read through the streams'
            primary key, so this costs O(their events), not O(the log).

        Raises:
            StoreError: the store failed.
        """
        with store_errors(self._reading):
            return select_stream_notifications(self.recorder, streams, until=until)

    def server_roles(self, stream_id: UUID) -> dict[int, str]:
        """Return, per version of a stream, the role the store's server authenticated for the
        write (PostgreSQL; empty for SQLite, which has no roles).

        Raises:
            StoreError: the store failed.
        """
        server_roles = getattr(self.recorder, "server_roles", None)
        if server_roles is None:
            return {}
        with store_errors(self._reading):
            roles: dict[int, str] = server_roles(stream_id)
        return roles

    def max_position(self) -> int:
        """Return the notification id of the newest event in the ledger (0 when empty)."""
        with store_errors(self._reading):
            return self.recorder.max_notification_id() or 0

    def read_log(self, after: int, limit: int,
                 topics: Sequence[str] = ()) -> Sequence[Notification]:
        """Return up to ``limit`` notifications with ids greater than ``after``, in order."""
        with store_errors(self._reading):
            return self.recorder.select_notifications(
                start=after, limit=limit, topics=topics, inclusive_of_start=False)

    def read_log_rows(self, after: int, limit: int) -> list[StreamRow]:
        """Return up to ``limit`` stored events after position ``after``, in log order, as
        ``(position, stream, version, topic, state)`` rows (``read_log`` without eventsourcing's
        ``Notification`` objects; see ``ledger.persistence.positions.select_log``).

        Raises:
            StoreError: the store failed.
        """
        with store_errors(self._reading):
            return select_log(self.recorder, after, limit)

    def stream_rows(self, streams: Sequence[UUID], *,
                    until: int | None = None) -> list[list[StreamRow]]:
        """Return the stored events of a few streams with their log positions, stream by
        stream (a run's stream and its metric stream: no merge into log order).

        Args:
            streams: a few stream UUIDs.
            until: only events at positions up to and including this one.

        Returns:
            Per stream, in the order of ``streams``, its ``(position, stream, version, topic,
            state)`` rows in version order.

        Raises:
            StoreError: the store failed.
        """
        with store_errors(self._reading):
            return select_streams(self.recorder, streams, until=until)

    def decode_rows(self, rows: Sequence[StreamRow]) -> list[Any]:
        """Decode stored events given as :data:`StreamRow` rows into domain events, as the
        mapper would (upcasting included), with one msgpack unpacker for all of them.

        Returns:
            The domain events, in the order of ``rows``.
        """
        return list(self.iter_decode_rows(rows))

    def iter_decode_rows(self, rows: Iterable[StreamRow]) -> Iterator[Any]:
        """Decode :data:`StreamRow` rows one at a time, as :meth:`decode_rows` does: a caller
        that stops early (a view as of a time stops at the first event after it) decodes no
        more than it reads.

        Returns:
            A generator of the domain events, in the order of ``rows``.
        """
        mapper = self.mapper
        if mapper.cipher is not None or mapper.compressor is not None or not isinstance(
                mapper.transcoder, MsgpackTranscoder):
            for row in rows:
                yield mapper.to_domain_event(StoredEvent(
                    originator_id=row[1], originator_version=row[2], topic=row[3],
                    state=row[4]))
            return
        unpacker = mapper.transcoder.unpacker()
        feed, unpack = unpacker.feed, unpacker.unpack
        classes: dict[str, tuple[Any, int]] = {}
        new, set_dict = object.__new__, object.__setattr__
        for _position, stream, version, topic, data in rows:
            known = classes.get(topic)
            if known is None:
                cls = resolve_topic(topic)
                known = classes[topic] = (cls, getattr(cls, "class_version", 1))
            cls, class_version = known
            feed(data)
            state = unpack()
            state["originator_id"] = stream
            state["originator_version"] = version
            if class_version != 1 or "class_version" in state:
                from_version = state.pop("class_version", 1)
                while from_version < class_version:
                    getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
                    from_version += 1
            event = new(cls)
            set_dict(event, "__dict__", state)
            yield event

    def decode(self, notification: Notification) -> DomainEventProtocol[Any]:
        """Decode a stored event or notification into its domain event."""
        return self.mapper.to_domain_event(notification)


def _run_stream(run_id: Any) -> UUID:
    """Return the stream id of a run.

    Raises:
        ValidationError: ``run_id`` is not a string.
    """
    if not isinstance(run_id, str):
        raise ValidationError(
            f"A run id must be a string, not {type(run_id).__name__}: {run_id!r}")
    return run_stream_id(run_id)
