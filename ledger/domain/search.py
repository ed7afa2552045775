"""The search grammar of ``get_runs(filter=..., order_by=...)``: MLflow's, read into value objects.

A filter is comparisons joined by ``AND`` (MLflow's grammar has no ``OR``)::

    metrics.loss < 0.2 and params.lr = '0.01' and tags.quality = 'fantastic run'
    and attributes.status = 'Completed'

Keys are ``ENTITY.NAME``: ``metrics.`` (alias ``metric.``), ``params.``/``properties.`` (aliases
``param.``, ``parameters.``, ``property.``, ``prop.``), ``tags.`` (``tag.``) and ``attributes.``
(``attribute.``, ``attr.``, ``run.``). A name with characters other than letters, digits and
``_ - / : .`` is quoted with backticks or double quotes: ``tags.`my key```. A metric compares on
its last value; ``metrics.min.loss`` and ``metrics.max.loss`` compare its minimum and maximum
(``metrics.last.loss`` is ``metrics.loss``; a metric literally named ``min.loss`` is written
``metrics.`min.loss```).

Comparators: metrics and numeric attributes take ``= != < <= > >=`` and a number; properties,
tags and text attributes take ``= != LIKE ILIKE`` and a quoted string, or ``IN``/``NOT IN`` and a
parenthesised list of strings. Strings are quoted with ``'`` or ``"``; a quote inside is doubled
(``'it''s'``). ``LIKE`` patterns: ``%`` any characters, ``_`` one character, ``\\`` makes the next
character literal; ``LIKE`` is case-sensitive, ``ILIKE`` ignores the case of ASCII letters.
A comparison on a key the run does not have (or a tag without a value, or a metric whose value is
not a number) is false, whichever the comparator (``!=`` and ``NOT IN`` too).

Attributes: ``status`` (a run status, case-insensitive for ``=``/``!=``/``IN``), ``run_id``,
``run_name``/``display_name``, ``user_id``/``created_by``, ``run_type``, ``number``, and the times
``start_time``, ``end_time``, ``created_time``, compared with a number of milliseconds since the
Unix epoch (MLflow's unit) or an ISO-8601 string with a zone.

An ordering is ``KEY [ASC|DESC]`` (ascending by default); runs without a value for the key come
last whichever the direction, and ties are broken newest first.

Why a hand-written parser: the grammar is a flat conjunction of ~10 token kinds; MLflow's own
parser comes with MLflow (an optional extra here) and reports no positions; ``sqlparse`` (what
MLflow builds on) or a parser generator would be a new dependency and still need this module's
checks of each comparison. Errors name the offending token and its position
(:class:`SearchSyntaxError`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import attrs

from ledger.domain.errors import ValidationError
from ledger.domain.status import RunStatus

METRIC = "metric"
PROPERTY = "property"
TAG = "tag"
ATTRIBUTE = "attribute"

_ENTITIES = {
    "metric": METRIC, "metrics": METRIC,
    "param": PROPERTY, "params": PROPERTY, "parameter": PROPERTY, "parameters": PROPERTY,
    "property": PROPERTY, "properties": PROPERTY, "prop": PROPERTY, "props": PROPERTY,
    "tag": TAG, "tags": TAG,
    "attribute": ATTRIBUTE, "attributes": ATTRIBUTE, "attr": ATTRIBUTE, "run": ATTRIBUTE,
}
# Which summary of a metric a key compares: the last value, the minimum, the maximum.
FIELDS = ("last", "min", "max")

TEXT = "text"
NUMBER = "number"
TIME = "time"
STATUS = "status"
# Attribute name (and aliases) -> (canonical name, value type).
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "status": ("status", STATUS),
    "run_id": ("run_id", TEXT),
    "run_name": ("display_name", TEXT),
    "display_name": ("display_name", TEXT),
    "user_id": ("created_by", TEXT),
    "created_by": ("created_by", TEXT),
    "run_type": ("run_type", TEXT),
    "number": ("number", NUMBER),
    "start_time": ("start_time", TIME),
    "end_time": ("end_time", TIME),
    "created_time": ("created_time", TIME),
}

NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_STATUSES = {status.value.lower(): status.value for status in RunStatus}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<word>[A-Za-z_][A-Za-z_0-9]*)
""", re.VERBOSE)
_BARE = re.compile(r"[\w\-/:]+")
_KEYWORDS = ("AND", "OR", "LIKE", "ILIKE", "IN", "NOT", "ASC", "DESC")


class SearchSyntaxError(ValidationError):
    """A filter or ordering that the grammar does not accept.

    Attributes:
        text: the whole filter (or ordering) string.
        position: the 0-based index in ``text`` of the offending token.
        token: that token (``""`` at the end of the text).
    """

    def __init__(self, what: str, text: str, position: int, token: str, problem: str) -> None:
        self.text = text
        self.position = position
        self.token = token
        found = f"{token!r}" if token else "the end"
        super().__init__(f"Bad {what} at position {position} ({found}): {problem}\n"
                         f"    {text}\n    {' ' * position}^")


@attrs.frozen
class Token:
    """One token: its kind (``number``, ``string``, ``op``, ``lparen``, ``rparen``, ``comma``,
    ``key``, a keyword in capitals, or ``end``), its text, its value and its position."""

    kind: str
    text: str
    position: int
    value: object = None


@attrs.frozen
class Key:
    """What a comparison or an ordering reads.

    Attributes:
        entity: ``metric``, ``property``, ``tag`` or ``attribute``.
        name: the metric name, property or tag key, or the canonical attribute name.
        field: for a metric, ``last``, ``min`` or ``max`` (``last`` otherwise).
        kind: the value type: ``number`` (metrics), ``text`` (properties, tags), or the
            attribute's (``text``, ``number``, ``time``, ``status``).
    """

    entity: str
    name: str
    field: str = "last"
    kind: str = TEXT

    def __str__(self) -> str:
        prefix = {METRIC: "metrics", PROPERTY: "params", TAG: "tags", ATTRIBUTE: "attributes"}
        field = f"{self.field}." if self.entity == METRIC and self.field != "last" else ""
        bare = _BARE.fullmatch(self.name.replace(".", "_")) and not (
            self.entity == METRIC and "." in self.name)
        quote = "`" if "`" not in self.name else '"'
        name = self.name if bare else f"{quote}{self.name}{quote}"
        return f"{prefix[self.entity]}.{field}{name}"


# A comparison's value: a number (metrics, numbers), a string, a time, or a tuple of strings (IN).
Value = float | str | datetime | tuple[str, ...]


@attrs.frozen
class Comparison:
    """``key op value``; ``op`` is one of :data:`NUMERIC_OPS` or :data:`STRING_OPS`."""

    key: Key
    op: str
    value: Value


@attrs.frozen
class OrderKey:
    """One term of an ordering: a key, ascending unless ``descending``."""

    key: Key
    descending: bool = False


def tokenize(text: str, what: str = "filter") -> list[Token]:
    """Split a filter or ordering into tokens (the last one of kind ``end``).

    Args:
        text: the string.
        what: how errors call it (``filter``, ``order_by[0]``...).

    Returns:
        The tokens.

    Raises:
        SearchSyntaxError: a character no token starts with, or an unclosed quote.
    """
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        found = _TOKEN.match(text, position)
        char = text[position]
        if found is None:
            if char in "'\"":
                raise SearchSyntaxError(what, text, position, text[position:position + 20],
                                        "this string has no closing quote")
            if char == "`":
                raise SearchSyntaxError(what, text, position, char,
                                        "a backtick quotes the name after 'ENTITY.'")
            raise SearchSyntaxError(what, text, position, char, "no token starts here")
        kind = found.lastgroup
        assert kind is not None
        start, position = position, found.end()
        token_text = found.group()
        if kind == "space":
            continue
        if kind == "word":
            upper = token_text.upper()
            if upper in _KEYWORDS:
                tokens.append(Token(upper, token_text, start))
                continue
            if position < len(text) and text[position] == ".":
                key_text, position = _read_key(text, start, position + 1, what)
                tokens.append(Token("key", text[start:position], start, key_text))
                continue
            tokens.append(Token("word", token_text, start))
        elif kind == "number":
            tokens.append(Token(kind, token_text, start, float(token_text)))
        elif kind == "string":
            quote = token_text[0]
            tokens.append(Token(kind, token_text, start,
                                token_text[1:-1].replace(quote * 2, quote)))
        elif kind == "op":
            op = {"<>": "!=", "==": "="}.get(token_text, token_text)
            tokens.append(Token(kind, token_text, start, op))
        else:
            tokens.append(Token(kind, token_text, start))
    tokens.append(Token("end", "", len(text)))
    return tokens


def _read_key(text: str, start: int, position: int,
              what: str) -> tuple[tuple[str, list[tuple[str, bool]]], int]:
    """Read the segments after ``ENTITY.``: bare runs or quoted names, separated by dots.

    Returns:
        ((entity word, [(segment, quoted)]), the position after the key).
    """
    entity = text[start:position - 1]
    segments: list[tuple[str, bool]] = []
    while True:
        if position < len(text) and text[position] in "`\"":
            quote = text[position]
            end = text.find(quote, position + 1)
            if end < 0:
                raise SearchSyntaxError(what, text, position, text[position:position + 20],
                                        "this quoted name has no closing quote")
            segments.append((text[position + 1:end], True))
            position = end + 1
        else:
            bare = _BARE.match(text, position)
            if bare is None:
                token = text[position:position + 1]
                raise SearchSyntaxError(what, text, position, token,
                                        f"expected a name after {text[start:position]!r}")
            segments.append((bare.group(), False))
            position = bare.end()
        if position < len(text) and text[position] == ".":
            position += 1
            continue
        return (entity, segments), position


def _key(token: Token, text: str, what: str) -> Key:
    """The key a ``key`` token names."""
    if token.kind != "key":
        if token.kind == "word":
            raise SearchSyntaxError(
                what, text, token.position, token.text,
                "a key is ENTITY.NAME, ENTITY one of metrics, params, properties, tags, "
                "attributes (for example attributes." + token.text + ")")
        raise SearchSyntaxError(what, text, token.position, token.text,
                                "expected a key such as metrics.loss or params.lr")
    entity_word: str
    segments: list[tuple[str, bool]]
    entity_word, segments = token.value  # type: ignore[misc]
    entity = _ENTITIES.get(entity_word.lower())
    if entity is None:
        raise SearchSyntaxError(
            what, text, token.position, entity_word,
            "unknown entity: use metrics., params. (or properties.), tags. or attributes.")
    if entity == METRIC:
        field = "last"
        first, quoted = segments[0]
        if len(segments) > 1 and not quoted and first.lower() in FIELDS:
            field, segments = first.lower(), segments[1:]
        return Key(METRIC, ".".join(s for s, _q in segments), field, NUMBER)
    name = ".".join(s for s, _q in segments)
    if entity == ATTRIBUTE:
        known = ATTRIBUTES.get(name.lower())
        if known is None:
            raise SearchSyntaxError(what, text, token.position, token.text,
                                    "unknown attribute: one of " + ", ".join(ATTRIBUTES))
        return Key(ATTRIBUTE, known[0], "last", known[1])
    return Key(entity, name, "last", TEXT)


def parse_filter(text: str | None) -> tuple[Comparison, ...]:
    """Parse a filter string.

    Args:
        text: the filter (``None`` or blank: no filter).

    Returns:
        The comparisons, all of which a run must satisfy.

    Raises:
        SearchSyntaxError: the text is not a filter (the message names the token).
        ValidationError: ``text`` is not a string.
    """
    if text is None:
        return ()
    if not isinstance(text, str):
        raise ValidationError(f"filter must be a string, not {type(text).__name__}: {text!r}")
    tokens = tokenize(text)
    if tokens[0].kind == "end":
        return ()
    comparisons: list[Comparison] = []
    at = 0
    while True:
        comparison, at = _comparison(tokens, at, text)
        comparisons.append(comparison)
        token = tokens[at]
        if token.kind == "end":
            return tuple(comparisons)
        if token.kind == "OR":
            raise SearchSyntaxError("filter", text, token.position, token.text,
                                    "OR is not supported: comparisons are joined with AND "
                                    "(as in MLflow's grammar)")
        if token.kind != "AND":
            raise SearchSyntaxError("filter", text, token.position, token.text,
                                    "expected AND or the end of the filter")
        at += 1


def _comparison(tokens: Sequence[Token], at: int, text: str) -> tuple[Comparison, int]:
    what = "filter"
    key_token = tokens[at]
    key = _key(key_token, text, what)
    token = tokens[at + 1]
    if token.kind == "op":
        op = str(token.value)
    elif token.kind in ("LIKE", "ILIKE", "IN"):
        op = token.kind
    elif token.kind == "NOT" and tokens[at + 2].kind == "IN":
        op = "NOT IN"
        at += 1
    else:
        raise SearchSyntaxError(what, text, token.position, token.text,
                                f"expected a comparator after {key_token.text!r}")
    numeric = key.kind in (NUMBER, TIME)
    allowed = NUMERIC_OPS if numeric else STRING_OPS
    if op not in allowed:
        raise SearchSyntaxError(
            what, text, token.position, token.text,
            f"{key_token.text!r} takes one of {', '.join(allowed)}")
    at += 2
    if op in ("IN", "NOT IN"):
        return _in_list(key, op, tokens, at, text)
    value_token = tokens[at]
    return Comparison(key, op, _value(key, op, key_token, value_token, text)), at + 1


def _value(key: Key, op: str, key_token: Token, token: Token, text: str) -> Value:
    what = "filter"
    if key.kind == NUMBER:
        if token.kind != "number":
            raise SearchSyntaxError(what, text, token.position, token.text,
                                    f"{key_token.text!r} compares with a number")
        return float(str(token.value))
    if key.kind == TIME:
        if token.kind == "number":
            milliseconds = float(str(token.value))
            return _EPOCH + timedelta(milliseconds=milliseconds)
        if token.kind == "string":
            try:
                moment = datetime.fromisoformat(str(token.value).replace("Z", "+00:00"))
            except ValueError:
                moment = None
            if moment is not None and moment.tzinfo is not None:
                return moment
        raise SearchSyntaxError(
            what, text, token.position, token.text,
            f"{key_token.text!r} compares with milliseconds since the epoch or a quoted "
            "ISO-8601 time with a zone")
    if token.kind != "string":
        raise SearchSyntaxError(what, text, token.position, token.text,
                                f"{key_token.text!r} compares with a quoted string "
                                "('...' or \"...\")")
    value = str(token.value)
    if key.kind == STATUS and op in ("=", "!="):
        return _status(value, token, text)
    return value


def _status(value: str, token: Token, text: str) -> str:
    canonical = _STATUSES.get(value.lower())
    if canonical is None:
        raise SearchSyntaxError("filter", text, token.position, token.text,
                                "not a run status: one of " + ", ".join(_STATUSES.values()))
    return canonical


def _in_list(key: Key, op: str, tokens: Sequence[Token], at: int,
             text: str) -> tuple[Comparison, int]:
    what = "filter"
    if tokens[at].kind != "lparen":
        raise SearchSyntaxError(what, text, tokens[at].position, tokens[at].text,
                                f"{op} takes a parenthesised list of strings")
    at += 1
    values: list[str] = []
    while True:
        token = tokens[at]
        if token.kind != "string":
            raise SearchSyntaxError(what, text, token.position, token.text,
                                    f"{op} takes a list of quoted strings")
        values.append(_status(str(token.value), token, text) if key.kind == STATUS
                      else str(token.value))
        token = tokens[at + 1]
        at += 2
        if token.kind == "rparen":
            return Comparison(key, op, tuple(values)), at
        if token.kind != "comma":
            raise SearchSyntaxError(what, text, token.position, token.text,
                                    "expected ',' or ')' in the list")


def parse_order_by(items: str | Sequence[str] | None) -> tuple[OrderKey, ...]:
    """Parse an ordering: a list of ``KEY [ASC|DESC]`` strings (or one such string).

    Args:
        items: the terms, most significant first (``None``: newest first).

    Returns:
        The terms.

    Raises:
        SearchSyntaxError: a term is not ``KEY [ASC|DESC]`` (the message names the token).
        ValidationError: not a list of strings.
    """
    if items is None:
        return ()
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, Sequence):
        raise ValidationError(
            f"order_by must be a list of strings, not {type(items).__name__}: {items!r}")
    keys: list[OrderKey] = []
    for number, item in enumerate(items):
        what = f"order_by[{number}]"
        if not isinstance(item, str):
            raise ValidationError(
                f"{what} must be a string such as 'metrics.loss ASC', not "
                f"{type(item).__name__}: {item!r}")
        tokens = tokenize(item, what)
        key = _key(tokens[0], item, what)
        descending = False
        at = 1
        if tokens[at].kind in ("ASC", "DESC"):
            descending = tokens[at].kind == "DESC"
            at += 1
        if tokens[at].kind != "end":
            raise SearchSyntaxError(what, item, tokens[at].position, tokens[at].text,
                                    "expected ASC, DESC or the end")
        keys.append(OrderKey(key, descending))
    return tuple(keys)


def check_max_results(value: object) -> int | None:
    """Validate ``max_results``.

    Args:
        value: ``None`` (no limit) or a positive int.

    Returns:
        The limit.

    Raises:
        ValidationError: not ``None`` nor a positive int.
    """
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidationError(f"max_results must be a positive int, not {value!r}")
    return value


def refuse_with_as_of(filter: object, order_by: object, max_results: object) -> None:
    """Refuse search arguments in a query as of a moment (``as_of=``), which folds each run's
    events up to the moment and does not answer them.

    Raises:
        ValidationError: any of them is given.
    """
    if filter is not None or order_by is not None or max_results is not None:
        raise ValidationError("filter, order_by and max_results are not supported with as_of "
                              "(a query as of a moment)")


__all__ = [
    "ATTRIBUTE", "ATTRIBUTES", "FIELDS", "METRIC", "PROPERTY", "TAG", "Comparison", "Key",
    "OrderKey", "SearchSyntaxError", "check_max_results", "parse_filter", "parse_order_by",
    "refuse_with_as_of", "tokenize",
]
