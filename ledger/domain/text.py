"""The one validator for every text the ledger stores, and the limits on its size.

Every string that ends up in an event (run and experiment names, tag and property keys and
values, metric names, descriptions and string values, table column names, display names,
descriptions, failure messages and error codes) goes through :func:`check_text` when the call is
made, so a value accepted is a value every store can hold and every projection can read:

- it must be a ``str`` (other types are refused, or for tag and property values converted with
  ``str()`` first, as the seed SDK does);
- it must not contain NUL (``\\x00``: PostgreSQL's text columns cannot hold it) nor anything that
  cannot be encoded as UTF-8 (lone surrogates such as ``"\\ud800"``);
- it must not be longer than the field's limit (:data:`LIMITS`, documented in docs/limits.md).

A refusal is a :class:`ValidationError` naming the field and the run, quoting at most
:data:`QUOTE_PREFIX` characters of the refused text, and nothing is written.

Text the ledger records on the user's behalf (the last stderr line of a submitted script, the
message of an exception a run failed with) is never refused: :func:`safe_text` replaces what cannot
be stored and truncates it, and marks the result so (:data:`SANITISED_MARK`).
"""

from __future__ import annotations

from typing import Any

from ledger.domain.errors import ValidationError

#: Run, experiment and display names; run ids, run types and compute targets.
MAX_NAME_LENGTH = 256
#: Tag, property and metric names, table column names, error codes.
MAX_KEY_LENGTH = 256
#: Tag and property values (MLflow allows 8,000 characters for a tag value).
MAX_VALUE_LENGTH = 8_000
#: Run descriptions and metric descriptions.
MAX_DESCRIPTION_LENGTH = 8_000
#: A string value of a metric (``log``, ``log_list``, ``log_row``, ``log_table``).
MAX_METRIC_STRING_LENGTH = 8_000
#: A failure message (``run.fail("...")``; an exception's message is truncated to it instead).
MAX_MESSAGE_LENGTH = 64_000

#: The limit of each kind of field, by the name :func:`check_text` takes.
LIMITS: dict[str, int] = {
    "name": MAX_NAME_LENGTH,
    "key": MAX_KEY_LENGTH,
    "value": MAX_VALUE_LENGTH,
    "description": MAX_DESCRIPTION_LENGTH,
    "metric string": MAX_METRIC_STRING_LENGTH,
    "message": MAX_MESSAGE_LENGTH,
}

#: How many characters of a refused value an error message quotes.
QUOTE_PREFIX = 40

#: Appended to text made safe by :func:`safe_text`.
SANITISED_MARK = " [runledger: text made safe: characters that cannot be stored were replaced]"
TRUNCATED_MARK = " [runledger: truncated]"


def quote(value: Any, limit: int = QUOTE_PREFIX) -> str:
    """Return a short, printable ``repr`` of ``value`` for an error message.

    Never raises: an object whose ``__repr__`` fails is named by its type. At most ``limit``
    characters of a long value are quoted, followed by its total length.

    Args:
        value: anything.
        limit: the most characters of the value to quote.

    Returns:
        For example ``'aaaa'...(10000000 characters)``.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}...({len(value)} characters)"
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        return f"<{type(value).__name__} object>"
    if not isinstance(text, str):
        return f"<{type(value).__name__} object>"
    if len(text) > limit:
        return f"{text[:limit]}...({type(value).__name__})"
    return text


def where(run_id: str | None) -> str:
    """Return `` of run 'id'`` for an error message (empty without a run)."""
    return f" of run {quote(run_id)}" if run_id else ""


def unstorable(text: str) -> str | None:
    """Return why ``text`` cannot be stored (NUL, a character that cannot be encoded as UTF-8),
    or ``None`` when it can."""
    if "\x00" in text:
        return "must not contain NUL (\\x00)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return (f"holds a character that cannot be encoded as UTF-8 at position "
                f"{error.start} ({text[error.start]!a}, a lone surrogate)")
    return None


def is_plain_text(text: str, kind: str = "value", allow_empty: bool = True) -> bool:
    """Whether ``text`` is ASCII without NUL, within the limit of ``kind`` and, unless
    ``allow_empty``, not blank: text :func:`check_text` accepts as it is, told cheaply.

    ``False`` does not mean refused (non-ASCII text is checked in full by ``check_text``).
    """
    return (len(text) <= LIMITS[kind] and text.isascii() and "\x00" not in text
            and (allow_empty or (bool(text) and not text.isspace())))


def check_text(value: Any, field: str, run_id: str | None = None, *, kind: str = "value",
               allow_empty: bool = True) -> str:
    """Return ``value`` as a plain ``str`` if every store can hold it, else refuse it.

    Args:
        value: the text to check.
        field: what it is, for the message (``"tag 'lr'"``, ``"description"``...).
        run_id: the run it belongs to, for the message.
        kind: which limit of :data:`LIMITS` applies.
        allow_empty: whether an empty (or all-blank) string is allowed.

    Returns:
        The text (a ``str`` subclass becomes a plain ``str``).

    Raises:
        ValidationError: not a string, empty when it must not be, too long, holding NUL or a
            character that cannot be encoded (a lone surrogate).
    """
    if type(value) is str and is_plain_text(value, kind, allow_empty):
        return value  # the usual case, on every call of every run: no further check needed
    if not isinstance(value, str):
        raise ValidationError(
            f"{field}{where(run_id)} must be a string, not {type(value).__name__}: "
            f"{quote(value)}")
    text: str = value[:]  # a plain str, even of a str subclass
    limit = LIMITS[kind]
    if len(text) > limit:
        raise ValidationError(
            f"{field}{where(run_id)} is {len(text)} characters long; at most {limit} are "
            f"allowed: {quote(text)}")
    if not allow_empty and not text.strip():
        raise ValidationError(f"{field}{where(run_id)} must not be empty")
    problem = unstorable(text)
    if problem is not None:
        raise ValidationError(f"{field}{where(run_id)} {problem}: {quote(text)}")
    return text


def stringify(value: Any, field: str, run_id: str | None = None) -> str:
    """Return ``str(value)``, refusing an object whose ``__str__`` fails or returns no string.

    Raises:
        ValidationError: ``str(value)`` raised or did not return a string.
    """
    if isinstance(value, str):
        return value
    try:
        text = str(value)
    except Exception as error:
        raise ValidationError(
            f"{field}{where(run_id)}: str() of the {type(value).__name__} value failed: "
            f"{type(error).__name__}") from None
    if not isinstance(text, str):  # pragma: no cover - str() itself enforces this
        raise ValidationError(f"{field}{where(run_id)}: str() did not return a string")
    return text


def safe_text(value: Any, kind: str = "message") -> str:
    """Return text recorded on the user's behalf in a form every store holds, marked if changed.

    NUL becomes U+FFFD, characters that cannot be encoded (lone surrogates) become ``?``, and text
    longer than the limit of ``kind`` is cut (leaving room for the marks). Never raises.

    Args:
        value: the text (anything else is converted with ``str()``; if that fails, the type's
            name stands in).
        kind: which limit of :data:`LIMITS` applies.

    Returns:
        The text, with :data:`SANITISED_MARK` and/or :data:`TRUNCATED_MARK` appended when it was
        changed.
    """
    if not isinstance(value, str):
        try:
            value = str(value)
        except Exception:
            value = f"<{type(value).__name__} object>"
        if not isinstance(value, str):  # pragma: no cover
            value = "<unprintable>"
    text: str = value[:]
    marks = ""
    if unstorable(text) is not None:
        text = text.replace("\x00", "\ufffd").encode("utf-8", errors="replace").decode("utf-8")
        marks += SANITISED_MARK
    limit = LIMITS[kind]
    if len(text) + len(marks) > limit:
        marks += TRUNCATED_MARK
        text = text[:max(0, limit - len(marks))]
    return text + marks


def find_unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """Return where and why a (decoded) structure holds text that cannot be stored, or ``None``.

    Walks dicts (keys and values), lists and tuples.

    Returns:
        ``(path, reason)`` of the first such text, e.g. ``("message", "must not contain NUL")``.
    """
    if isinstance(value, str):
        problem = unstorable(value)
        return (path or "text", problem) if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_unstorable(key, path) or find_unstorable(
                item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = find_unstorable(item, f"{path}[{index}]")
            if found:
                return found
    return None
