"""Value objects and the validation rules for names, keys and values.

Tags and properties follow the seed SDK: non-string values are stored as ``str(value)``, ``None``
stays ``None`` (a tag without a value).
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ledger.domain.errors import ValidationError
from ledger.domain.text import (
    MAX_DESCRIPTION_LENGTH,
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_VALUE_LENGTH,
    check_text,
    is_plain_text,
    quote,
    stringify,
    where,
)

__all__ = ["MAX_DESCRIPTION_LENGTH", "MAX_KEY_LENGTH", "MAX_NAME_LENGTH", "MAX_VALUE_LENGTH",
           "Actor", "check_description", "check_key", "check_metric_name", "check_name",
           "current_actor", "normalise_properties", "normalise_tag", "normalise_tag_keys",
           "normalise_tag_value_sets", "normalise_tags", "normalise_value"]


@attrs.frozen
class Actor:
    """Who made a change: the OS user, the host and the process id.

    Every event carries one, so the history of a run says who did what. ``user``, ``host`` and
    ``pid`` are declared by the writing process (``RUNLEDGER_USER=alice`` sets the user): they are
    claims, not proof. On PostgreSQL the server also records the role it authenticated for each
    write; a run's history shows it as ``server_role`` (``None`` elsewhere).
    """

    user: str
    host: str
    pid: int
    server_role: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the actor as stored in events (with ``server_role`` when the server gave one).
        """
        data: dict[str, Any] = {"user": self.user, "host": self.host, "pid": self.pid}
        if self.server_role is not None:
            data["server_role"] = self.server_role
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Actor:
        """Build an actor from its stored form."""
        return cls(user=str(data.get("user", "")), host=str(data.get("host", "")),
                   pid=int(data.get("pid", 0)))


_actor_cache: dict[tuple[int, str | None], Actor] = {}


def current_actor(user: str | None = None) -> Actor:
    """Return the actor of this process (cached per process id, so it is right after fork).

    Args:
        user: the user to record (the SDK passes ``LedgerSettings.user``, from
            ``RUNLEDGER_USER``); default: the OS user name.
    """
    pid = os.getpid()
    key = (pid, user)
    cached = _actor_cache.get(key)
    if cached is not None:
        return cached
    name = user
    if name is None:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (some containers)
            name = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    actor = Actor(user=name, host=socket.gethostname(), pid=pid)
    if any(known[0] != pid for known in _actor_cache):
        _actor_cache.clear()  # forked: the parent's actors name the wrong pid
    _actor_cache[key] = actor
    return actor


def _where(run_id: str | None) -> str:
    return where(run_id)


#: How many accepted names, and accepted keys, :func:`check_name` and :func:`check_key` remember.
ACCEPTED_CACHE_SIZE = 1024
# Strings (exactly ``str``) that check_name / check_key accepted. Whether a string is accepted
# depends on the string alone, so one accepted before is accepted again without a check: every
# run repeats the same few keys and names (``run_type``, ``target``, its tag and property keys).
# Bounded: emptied when full (a workload of more distinct keys only loses the speed-up). The
# limits it relies on (``ledger.domain.text``'s) are constants: nothing changes them at runtime.
_accepted_names: set[str] = set()
_accepted_keys: set[str] = set()


def _accept(accepted: set[str], text: str) -> None:
    if len(accepted) >= ACCEPTED_CACHE_SIZE:
        accepted.clear()
    accepted.add(text)


def check_name(value: Any, what: str, run_id: str | None = None) -> str:
    """Return ``value`` if it is a valid name: a non-empty string of at most 256 characters that
    every store can hold (see ``ledger.domain.text``).

    Raises:
        ValidationError: naming ``what`` and the run.
    """
    if type(value) is str and value in _accepted_names:
        return value
    text = check_text(value, what, run_id, kind="name", allow_empty=False)
    if type(value) is str:
        _accept(_accepted_names, text)
    return text


def check_description(value: Any, run_id: str | None = None) -> str:
    """Return ``value`` if it is a valid description (a string of at most 8,000 characters that
    every store can hold).

    Raises:
        ValidationError: naming the run.
    """
    return check_text(value, "description", run_id, kind="description")


def check_reason(value: Any, action: str, run_id: str | None = None) -> str:
    """Return ``value`` if it is a valid reason for a governed change (a correction, an
    archive): a string that is not blank, of at most 8,000 characters.

    Raises:
        ValidationError: naming the action and the run.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"{action}{where(run_id)} needs a reason: a non-empty string, not {quote(value)}")
    return check_text(value, f"the reason of {action}", run_id, kind="description")


def check_key(key: Any, what: str, run_id: str | None) -> str:
    """Return ``key`` if it is a valid tag, property or metric key (a non-empty string of at most
    256 characters that every store can hold).

    Raises:
        ValidationError: naming the key and the run.
    """
    if type(key) is str and key in _accepted_keys:
        return key
    if not isinstance(key, str):
        raise ValidationError(
            f"{what} key {quote(key)}{_where(run_id)} must be a string, not "
            f"{type(key).__name__}")
    text = check_text(key, f"{what} key", run_id, kind="key", allow_empty=False)
    if type(key) is str:
        _accept(_accepted_keys, text)
    return text


def normalise_value(value: Any, key: str, what: str, run_id: str | None) -> str | None:
    """Return the stored form of a tag or property value: ``None`` or a string (``str(value)``).

    Raises:
        ValidationError: ``str(value)`` fails, or the text is longer than 8,000 characters or
            cannot be stored (NUL, a lone surrogate).
    """
    if value is None:
        return None
    if type(value) is str and is_plain_text(value):
        return value  # the usual case: no field name to format for a message
    field = f"{what} {quote(key)}"
    return check_text(stringify(value, field, run_id), field, run_id, kind="value")


def _normalise_mapping(data: Any, what: str, run_id: str | None) -> dict[str, str | None]:
    if type(data) is not dict and not isinstance(data, Mapping):
        raise ValidationError(
            f"{what}s{_where(run_id)} must be given as a dict, not {type(data).__name__}: "
            f"{quote(data)}")
    return {check_key(k, what, run_id): normalise_value(v, k, what, run_id)
            for k, v in data.items()}


def normalise_tags(tags: Any, run_id: str | None) -> dict[str, str | None]:
    """Validate a dict of tags and return it with values in stored form.

    Raises:
        ValidationError: not a dict, or a key or value is invalid.
    """
    return _normalise_mapping(tags, "tag", run_id)


def normalise_properties(properties: Any, run_id: str | None) -> dict[str, str | None]:
    """Validate a dict of properties and return it with values in stored form.

    Raises:
        ValidationError: not a dict, or a key or value is invalid.
    """
    return _normalise_mapping(properties, "property", run_id)


def normalise_tag_keys(keys: Any, run_id: str | None) -> list[str]:
    """Validate a list of tag keys (a single string is taken as one key).

    Raises:
        ValidationError: not an iterable of valid keys.
    """
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, Iterable) or isinstance(keys, Mapping):
        raise ValidationError(
            f"tag keys{_where(run_id)} must be a list of strings, not {type(keys).__name__}")
    return [check_key(k, "tag", run_id) for k in keys]


def normalise_tag(key: Any, value: Any, run_id: str | None) -> dict[str, str | None]:
    """Validate one tag (``run.tag(key, value)``) and return it as a one-item dict of tags.

    The key is checked before the dict is built, so an unhashable key (a list, a dict) is a
    ``ValidationError`` rather than Python's ``TypeError``.

    Raises:
        ValidationError: the key or the value is invalid.
    """
    checked = check_key(key, "tag", run_id)
    return {checked: normalise_value(value, checked, "tag", run_id)}


def normalise_tag_value_sets(tag_key: Any, tag_values: Any,
                             run_id: str | None) -> list[dict[str, str | None]]:
    """Validate ``create_children(tag_key=..., tag_values=...)``: one tag set per value.

    Raises:
        ValidationError: ``tag_values`` is not a list (a string, a number, a dict...), or the
            key or a value is invalid.
    """
    if isinstance(tag_values, (str, bytes, Mapping)) or not isinstance(tag_values, Iterable):
        raise ValidationError(
            f"tag_values{_where(run_id)} must be a list of values, "
            f"not {type(tag_values).__name__}")
    checked = check_key(tag_key, "tag", run_id)
    return [{checked: normalise_value(value, checked, "tag", run_id)} for value in tag_values]


def check_metric_name(name: Any, run_id: str | None) -> str:
    """Return ``name`` if it is a valid metric name (as :func:`check_key` checks it).

    Raises:
        ValidationError: not a string (an unhashable list too), empty, too long or with NUL.
    """
    return check_key(name, "metric", run_id)
