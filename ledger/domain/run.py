"""The ``Run`` aggregate: every change to a run is one of the events defined here.

A command method validates everything first and raises a typed error before it triggers any
event, so a rejected call leaves the aggregate (and the store) untouched. Event classes carry an
explicit ``TOPIC`` (stable across renames and moves) and may grow ``class_version`` upcasters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from ledger.domain.errors import (
    FileExistsInRunError,
    InvalidTransitionError,
    PropertyImmutableError,
    PropertyNotFoundError,
    RunFinishedError,
    ValidationError,
)
from ledger.domain.status import TRANSITIONS, RunStatus
from ledger.domain.tags import T, TagsMixin, TagsRemovedFields, TagsSetFields
from ledger.domain.text import check_text
from ledger.domain.triggering import LeanEventsMixin
from ledger.domain.values import (
    Actor,
    check_description,
    check_name,
    check_reason,
    normalise_properties,
)


class RunAggregate(TagsMixin, LeanEventsMixin, Aggregate):
    """The event-sourced state of one run.

    Attributes (all rebuilt from events): ``run_id`` (the user-visible id string),
    ``experiment_id``, ``experiment_name``, ``parent_run_id``, ``root_run_id``, ``name``,
    ``display_name``, ``description``, ``run_type``, ``target``, ``status``, ``created_at``,
    ``started_at``, ``ended_at``, ``properties``, ``tags``, ``error``, ``created_by``,
    ``archived`` (hidden from queries by default; see :meth:`archive`).
    """

    TOPIC = "runledger:Run"

    class Event(Aggregate.Event):
        TOPIC = "runledger:Run.Event"
        actor: dict[str, Any]

    class Created(Event, Aggregate.Created):
        """A run was created (status NotStarted)."""

        TOPIC = "runledger:Run.Created"
        run_id: str
        experiment_id: UUID
        experiment_name: str
        parent_run_id: str | None
        root_run_id: str
        name: str
        display_name: str | None
        description: str | None
        run_type: str
        target: str

        def apply(self, aggregate: Any) -> None:
            run: RunAggregate = aggregate
            run.run_id = self.run_id
            run.experiment_id = self.experiment_id
            run.experiment_name = self.experiment_name
            run.parent_run_id = self.parent_run_id
            run.root_run_id = self.root_run_id
            run.name = self.name
            run.display_name = self.display_name
            run.description = self.description
            run.run_type = self.run_type
            run.target = self.target
            run.status = RunStatus.NOT_STARTED
            run.created_at = self.timestamp
            run.started_at = None
            run.ended_at = None
            run.properties = {}
            run.tags = {}
            run.error = None
            run.created_by = dict(self.actor)
            run.files = {}
            run.archived = False
            run.imported = None

    class StatusChanged(Event):
        """The run moved to a non-terminal status (Running, Queued, Finalizing...)."""

        TOPIC = "runledger:Run.StatusChanged"
        status: str

        def apply(self, aggregate: Any) -> None:
            run: RunAggregate = aggregate
            run.status = RunStatus(self.status)
            if run.status is RunStatus.RUNNING and run.started_at is None:
                run.started_at = self.timestamp

    class Completed(Event):
        """The run completed successfully."""

        TOPIC = "runledger:Run.Completed"

        def apply(self, aggregate: Any) -> None:
            run: RunAggregate = aggregate
            run.status = RunStatus.COMPLETED
            run.ended_at = self.timestamp

    class Failed(Event):
        """The run failed; the error is recorded with it."""

        TOPIC = "runledger:Run.Failed"
        error_code: str
        message: str
        exception_type: str | None

        def apply(self, aggregate: Any) -> None:
            run: RunAggregate = aggregate
            run.status = RunStatus.FAILED
            run.ended_at = self.timestamp
            run.error = {"code": self.error_code, "message": self.message}
            if self.exception_type:
                run.error["exceptionType"] = self.exception_type

    class CancelRequested(Event):
        """Somebody asked for the run to stop; whatever runs it must now stop it."""

        TOPIC = "runledger:Run.CancelRequested"

        def apply(self, aggregate: Any) -> None:
            aggregate.status = RunStatus.CANCEL_REQUESTED

    class Canceled(Event):
        """The run was canceled (and, for a script, its process stopped)."""

        TOPIC = "runledger:Run.Canceled"

        def apply(self, aggregate: Any) -> None:
            run: RunAggregate = aggregate
            run.status = RunStatus.CANCELED
            run.ended_at = self.timestamp

    class PropertiesAdded(Event):
        """New immutable properties were recorded (only keys the run did not have)."""

        TOPIC = "runledger:Run.PropertiesAdded"
        properties: dict[str, str | None]

        def apply(self, aggregate: Any) -> None:
            aggregate.properties.update(self.properties)

    class TagsSet(TagsSetFields, Event):
        """Tags were set or changed (a ``None`` value is a tag without a value)."""

        TOPIC = "runledger:Run.TagsSet"

    class TagsRemoved(TagsRemovedFields, Event):
        """Tags were removed."""

        TOPIC = "runledger:Run.TagsRemoved"

    class DisplayNameChanged(Event):
        """The run's display name was changed."""

        TOPIC = "runledger:Run.DisplayNameChanged"
        display_name: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.display_name = self.display_name

    class DescriptionChanged(Event):
        """The run's description was changed."""

        TOPIC = "runledger:Run.DescriptionChanged"
        description: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.description = self.description

    class FileUploaded(Event):
        """A file was added to the run: its content (stored before this event, by SHA-256)
        becomes visible under ``name`` with this event."""

        TOPIC = "runledger:Run.FileUploaded"
        name: str
        size: int
        sha256: str
        media_type: str

        def apply(self, aggregate: Any) -> None:
            files = getattr(aggregate, "files", None)
            if files is None:
                files = aggregate.files = {}
            files[self.name] = {"size": self.size, "sha256": self.sha256,
                                "media_type": self.media_type, "uploaded_at": self.timestamp,
                                "uploaded_by": dict(self.actor)}
    class PropertyCorrected(Event):
        """A recorded property was corrected: the governed way to change an immutable value.

        ``old`` is the value it had, ``new`` the value it has from now on, ``reason`` why.
        """

        TOPIC = "runledger:Run.PropertyCorrected"
        key: str
        old: str | None
        new: str | None
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.properties[self.key] = self.new

    class Archived(Event):
        """The run was archived: queries hide it unless asked to include archived runs."""

        TOPIC = "runledger:Run.Archived"
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.archived = True

    class Restored(Event):
        """An archived run was restored: queries show it again."""

        TOPIC = "runledger:Run.Restored"

        def apply(self, aggregate: Any) -> None:
            aggregate.archived = False

    class Imported(Event):
        """Facts about the run were imported from another tracking system (MLflow...).

        The event's own ``timestamp`` is when the import was recorded, its ``actor`` who ran it;
        ``started_at``, ``ended_at`` and ``submitted_by`` are the source's business facts, which
        replace the recorded times and author in the run's details (``created_at`` becomes the
        source's creation time). One is appended at the end of every import that changed the
        run, after the events it brought, so the audit trail tells imported facts from live ones.
        """

        TOPIC = "runledger:Run.Imported"
        source: str  # the kind of source: "mlflow"
        source_uri: str  # where it was read (password masked)
        source_run_id: str  # the run's id in the source
        created_at: datetime | None
        started_at: datetime | None
        ended_at: datetime | None
        submitted_by: str | None
        metric_values: int  # how many metric values this import appended
        artifacts: list[str]  # the run's artifact paths in the source, as seen by this import

        def apply(self, aggregate: Any) -> None:
            run: RunAggregate = aggregate
            if self.created_at is not None:
                run.created_at = self.created_at
            if self.started_at is not None:
                run.started_at = self.started_at
            if self.ended_at is not None:
                run.ended_at = self.ended_at
            if self.submitted_by:
                run.created_by = {"user": self.submitted_by, "host": "", "pid": 0}
            run.imported = {
                "source": self.source, "source_uri": self.source_uri,
                "source_run_id": self.source_run_id, "created_at": self.created_at,
                "started_at": self.started_at, "ended_at": self.ended_at,
                "submitted_by": self.submitted_by, "artifacts": list(self.artifacts),
            }

    if TYPE_CHECKING:  # Declared for type checkers only: a class annotation would make
        # eventsourcing turn the aggregate into a dataclass. Created.apply sets them.
        run_id: str
        experiment_id: UUID
        experiment_name: str
        parent_run_id: str | None
        root_run_id: str
        name: str
        display_name: str | None
        description: str | None
        run_type: str
        target: str
        status: RunStatus
        created_at: datetime
        started_at: datetime | None
        ended_at: datetime | None
        properties: dict[str, str | None]
        tags: dict[str, str | None]
        error: dict[str, str] | None
        created_by: dict[str, Any]
        files: dict[str, dict[str, Any]]
        archived: bool
        imported: dict[str, Any] | None

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(
        cls,
        *,
        aggregate_id: UUID,
        run_id: str,
        experiment_id: UUID,
        experiment_name: str,
        actor: Actor,
        parent: RunAggregate | None = None,
        name: str | None = None,
        display_name: str | None = None,
        description: str | None = None,
        run_type: str = "experiment_run",
        target: str = "local",
        timestamp: datetime | None = None,
    ) -> RunAggregate:
        """Create a new run in status NotStarted.

        Args:
            aggregate_id: the UUID of the run's event stream (see ``ledger.domain.ids``).
            run_id: the id users see and pass around.
            parent: the parent run, for a child run.
            name: the run's name (default ``run_<id>``; a child's default chains its parent's:
                ``<parent name>>run_<id>``).

        Raises:
            ValidationError: a name, display name or description is not a valid string.
        """
        if name is not None:
            name = check_name(name, "name", run_id)
        elif parent is not None:
            # The seed's default name of a child chains its parent's: run_<p>>run_<c>. Built
            # from validated ids, so it is not held to the length limit of a given name.
            name = f"{parent.name}>run_{run_id}"
        else:
            name = f"run_{run_id}"
        run_type = check_name(run_type, "run_type", run_id)
        target = check_name(target, "target", run_id)
        if display_name is not None:
            display_name = check_name(display_name, "display_name", run_id)
        if description is not None:
            description = check_description(description, run_id)
        return cls._create(
            cls.Created,
            id=aggregate_id,
            timestamp=timestamp,
            actor=actor.as_dict(),
            run_id=run_id,
            experiment_id=experiment_id,
            experiment_name=experiment_name,
            parent_run_id=parent.run_id if parent is not None else None,
            root_run_id=parent.root_run_id if parent is not None else run_id,
            name=name,
            display_name=display_name,
            description=description,
            run_type=run_type,
            target=target,
        )

    # ------------------------------------------------------------------ lifecycle
    def _check_transition(self, new: RunStatus, action: str) -> None:
        if new not in TRANSITIONS[self.status]:
            raise InvalidTransitionError(self.run_id, self.status.value, new.value, action)

    def set_status(self, status: RunStatus | str, actor: Actor) -> None:
        """Move to a non-terminal status (use complete/fail/cancel for the terminal ones).

        Raises:
            ValueError: ``status`` is not a RunStatus.
            InvalidTransitionError: the transition table does not allow the change.
        """
        try:
            new = RunStatus(status)
        except ValueError:
            raise ValidationError(
                f"set_status of run {self.run_id!r}: {status!r} is not a run status (one of "
                f"{', '.join(s.value for s in RunStatus)})") from None
        if new is self.status:
            return
        if new.is_terminal or new is RunStatus.CANCEL_REQUESTED:
            raise InvalidTransitionError(
                self.run_id, self.status.value, new.value,
                "set_status (use complete(), fail() or cancel())",
            )
        self._check_transition(new, "set_status")
        self.trigger_event(self.StatusChanged, status=new.value, actor=actor.as_dict())

    def start(self, actor: Actor) -> None:
        """Move to Running.

        Raises:
            InvalidTransitionError: the run is not in a status that may start.
        """
        self._check_transition(RunStatus.RUNNING, "start")
        self.trigger_event(self.StatusChanged, status=RunStatus.RUNNING.value,
                           actor=actor.as_dict())

    def complete(self, actor: Actor) -> None:
        """Mark the run Completed.

        Raises:
            InvalidTransitionError: the run has ended, is being canceled, or never started.
        """
        self._check_transition(RunStatus.COMPLETED, "complete")
        self.trigger_event(self.Completed, actor=actor.as_dict())

    def fail(self, error_code: str, message: str, exception_type: str | None,
             actor: Actor) -> None:
        """Mark the run Failed with an error.

        Raises:
            ValidationError: the code, message or exception type cannot be stored (see
                ``ledger.domain.text``: NUL, a lone surrogate, too long).
            InvalidTransitionError: the run has already ended.
        """
        error_code = check_text(error_code, "error_code", self.run_id, kind="key",
                                allow_empty=False)
        message = check_text(message, "error message", self.run_id, kind="message")
        if exception_type is not None:
            exception_type = check_text(exception_type, "exception type", self.run_id,
                                        kind="name")
        self._check_transition(RunStatus.FAILED, "fail")
        self.trigger_event(self.Failed, error_code=error_code, message=message,
                           exception_type=exception_type, actor=actor.as_dict())

    def request_cancel(self, actor: Actor) -> None:
        """Mark the run CancelRequested (whatever executes it must stop it and call cancel()).

        A run that is already CancelRequested is left as it is.

        Raises:
            InvalidTransitionError: the run has already ended.
        """
        if self.status is RunStatus.CANCEL_REQUESTED:
            return
        self._check_transition(RunStatus.CANCEL_REQUESTED, "cancel")
        self.trigger_event(self.CancelRequested, actor=actor.as_dict())

    def cancel(self, actor: Actor) -> None:
        """Mark the run Canceled.

        Raises:
            InvalidTransitionError: the run has already ended.
        """
        self._check_transition(RunStatus.CANCELED, "cancel")
        self.trigger_event(self.Canceled, actor=actor.as_dict())

    def check_active(self, action: str) -> None:
        """Raise unless the run may still do ``action`` (log metrics, create children...).

        Raises:
            RunFinishedError: the run has ended or is being canceled.
        """
        if not self.status.is_active:
            raise RunFinishedError(self.run_id, self.status.value, action)

    # ------------------------------------------------------------------ properties and tags
    def add_properties(self, properties: Any, actor: Actor) -> None:
        """Record new immutable properties. Allowed on ended runs too.

        Keys already recorded with the same value are skipped; if no key is new, nothing is
        recorded.

        Raises:
            ValidationError: ``properties`` is not a dict of valid keys and values.
            PropertyImmutableError: a key is already recorded with another value (nothing of the
                call is recorded, not even its other keys).
        """
        normalised = normalise_properties(properties, self.run_id)
        new: dict[str, str | None] = {}
        for key, value in normalised.items():
            if key in self.properties:
                if self.properties[key] != value:
                    raise PropertyImmutableError(self.run_id, key, self.properties[key], value)
            else:
                new[key] = value
        if new:
            self.trigger_event(self.PropertiesAdded, properties=new, actor=actor.as_dict())

    def correct_property(self, key: Any, value: Any, reason: Any, actor: Actor) -> None:
        """Correct a recorded property: the new value replaces the old one in
        ``properties``, and the correction (old, new, reason, actor) stays in the history.

        Correcting a property to the value it has records nothing.

        Raises:
            ValidationError: the key or value is not valid, or ``reason`` is not a non-empty
                string.
            PropertyNotFoundError: the run has no property ``key`` (add it with
                ``add_properties``).
        """
        new = normalise_properties({key: value}, self.run_id)[key]
        check_reason(reason, f"correct_property of property {key!r}", self.run_id)
        if key not in self.properties:
            raise PropertyNotFoundError(self.run_id, key)
        old = self.properties[key]
        if old != new:
            self.trigger_event(self.PropertyCorrected, key=key, old=old, new=new,
                               reason=reason, actor=actor.as_dict())

    def archive(self, reason: Any, actor: Actor) -> None:
        """Archive the run: queries hide it unless they include archived runs. Nothing is
        deleted; an archived run can be restored. Archiving an archived run records nothing.

        Raises:
            ValidationError: ``reason`` is not a non-empty string.
        """
        check_reason(reason, "archive", self.run_id)
        if not self.archived:
            self.trigger_event(self.Archived, reason=reason, actor=actor.as_dict())

    def restore(self, actor: Actor) -> None:
        """Restore an archived run (queries show it again). A run that is not archived is left
        as it is."""
        if self.archived:
            self.trigger_event(self.Restored, actor=actor.as_dict())

    def _tag_check(self, check: Callable[[Any, str | None], T], value: Any) -> T:
        return check(value, self.run_id)

    def set_display_name(self, display_name: str | None, actor: Actor) -> None:
        """Change the display name (``None`` clears it).

        Raises:
            ValidationError: not a valid name.
        """
        if display_name is not None:
            display_name = check_name(display_name, "display_name", self.run_id)
        if display_name != self.display_name:
            self.trigger_event(self.DisplayNameChanged, display_name=display_name,
                               actor=actor.as_dict())

    def set_description(self, description: str | None, actor: Actor) -> None:
        """Change the description (``None`` clears it).

        Raises:
            ValidationError: not a valid description.
        """
        if description is not None:
            description = check_description(description, self.run_id)
        if description != self.description:
            self.trigger_event(self.DescriptionChanged, description=description,
                               actor=actor.as_dict())

    # ------------------------------------------------------------------ files
    def add_files(self, files: Sequence[tuple[str, int, str, str]], actor: Actor) -> None:
        """Record uploaded files, all or none. Allowed on ended runs too (a script's outputs
        are uploaded as it ends).

        Args:
            files: ``(name, size, sha256, media type)`` per file; names already checked by
                ``ledger.domain.files.check_file_name``, content already stored.

        Raises:
            FileExistsInRunError: a name the run already has, or given twice (nothing of the
                call is recorded).
            ValidationError: a bad size or digest.
        """
        seen: set[str] = set()
        for name, size, sha256, _media in files:
            if name in self.files or name in seen:
                raise FileExistsInRunError(self.run_id, name)
            seen.add(name)
            if not isinstance(size, int) or size < 0:
                raise ValidationError(f"file {name!r} of run {self.run_id!r}: bad size {size!r}")
            if not (isinstance(sha256, str) and len(sha256) == 64):
                raise ValidationError(
                    f"file {name!r} of run {self.run_id!r}: bad sha256 {sha256!r}")
        for name, size, sha256, media in files:
            self.trigger_event(self.FileUploaded, name=name, size=size, sha256=sha256,
                               media_type=media, actor=actor.as_dict())
    # ------------------------------------------------------------------ importing
    def record_import(self, *, source: str, source_uri: str, source_run_id: str,
                      created_at: datetime | None, started_at: datetime | None,
                      ended_at: datetime | None, submitted_by: str | None,
                      metric_values: int, artifacts: list[str], actor: Actor) -> bool:
        """Record that the run's facts were imported (see ``Imported``).

        Nothing is recorded when this import changed nothing: no other event is pending on the
        run, no metric value was appended, and the source's times, author and artifacts are
        those of the last import. So importing the same source again adds no event.

        Returns:
            Whether an ``Imported`` event was triggered.

        Raises:
            ValidationError: ``metric_values`` is negative or ``source_run_id`` is not a name.
        """
        check_name(source_run_id, "source_run_id", self.run_id)
        if metric_values < 0:
            raise ValidationError(
                f"record_import of run {self.run_id!r}: metric_values must be >= 0")
        facts = {
            "source": source, "source_uri": source_uri, "source_run_id": source_run_id,
            "created_at": created_at, "started_at": started_at, "ended_at": ended_at,
            "submitted_by": submitted_by, "artifacts": list(artifacts),
        }
        last = getattr(self, "imported", None)
        if not self.pending_events and not metric_values and last is not None and all(
                last.get(k) == v for k, v in facts.items() if k != "source_uri"):
            return False
        self.trigger_event(self.Imported, metric_values=metric_values, actor=actor.as_dict(),
                           **facts)
        return True


RUN_EVENT_CLASSES: tuple[type[RunAggregate.Event], ...] = (
    RunAggregate.Created,
    RunAggregate.StatusChanged,
    RunAggregate.Completed,
    RunAggregate.Failed,
    RunAggregate.CancelRequested,
    RunAggregate.Canceled,
    RunAggregate.PropertiesAdded,
    RunAggregate.TagsSet,
    RunAggregate.TagsRemoved,
    RunAggregate.DisplayNameChanged,
    RunAggregate.DescriptionChanged,
    RunAggregate.FileUploaded,
    RunAggregate.PropertyCorrected,
    RunAggregate.Archived,
    RunAggregate.Restored,
    RunAggregate.Imported,
)

register_topic(RunAggregate.TOPIC, RunAggregate)
register_topic(RunAggregate.Event.TOPIC, RunAggregate.Event)
for _cls in RUN_EVENT_CLASSES:
    register_topic(_cls.TOPIC, _cls)
