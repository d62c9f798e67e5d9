"""Log lines: one JSON object per line, carrying the merchant and event being worked on.

Every process (gunicorn, the worker, the clock, the CLI) calls ``configure_logging`` once. What a
line is about travels in a context variable, not in each message: the web tier binds the merchant
as soon as it knows it and the provider's event id once the envelope is parsed; the drain binds
merchant, provider, event id and inbox id per event; an action binds its id and its decision's
merchant, event and request. ``log_context`` scopes fields to a block (and restores what was there
before, so nothing leaks into the next request or job a thread runs); ``bind`` adds fields to the
innermost scope. ``merchant`` and ``event_id`` are on every JSON line, null when there is none.

Secrets are never passed to a logger in the first place; as a second line of defence the
formatter blanks anything shaped like a Stripe secret, a signature header or a bearer token, and
any value a process names with ``redact_values`` (the web tier names every configured secret and
token), wherever it appears: in the message, the traceback, or a field given with ``extra=``.
Fields given with ``extra=`` are written beside the others, as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

from service.errors import ConfigError

# Fields a line may carry, in the order they are written; the first two are always written.
ALWAYS = ("merchant", "event_id")
OPTIONAL = ("provider", "inbox_id", "action_id", "decision_id", "request_id", "job")
_FIELDS = frozenset(ALWAYS + OPTIONAL)

_NOTHING: Mapping[str, Any] = MappingProxyType({})
_context: ContextVar[Mapping[str, Any]] = ContextVar("gateway_log_context", default=_NOTHING)

_SECRET_SHAPES = re.compile(
    r"(?P<keep>\b(?:whsec|sk_live|sk_test|rk_live|rk_test)_)[A-Za-z0-9_]+"
    r"|(?P<keep2>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+"
    r"|(?P<keep3>\bv[01]=)[0-9a-f]{16,}"
)
# Exact values to blank wherever they appear (see ``redact_values``); None: none named.
_values: re.Pattern[str] | None = None
_SHORTEST_VALUE = 8  # shorter values would blank ordinary words

# What every LogRecord carries; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime"}


def current_context() -> Mapping[str, Any]:
    """The fields bound for the code running now."""
    return _context.get()


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every line logged inside the block; restore the previous ones after."""
    token = _context.set({**_context.get(), **_checked(fields)})
    try:
        yield
    finally:
        _context.reset(token)


@contextmanager
def new_log_scope(**fields: Any) -> Iterator[None]:
    """Like ``log_context``, but nothing bound outside the block shows inside it (for jobs)."""
    token = _context.set(_checked(fields))
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> None:
    """Add ``fields`` to the innermost ``log_context`` (which drops them again when it ends)."""
    _context.set({**_context.get(), **_checked(fields)})


def start_request() -> None:
    """Begin a web request with nothing bound (a ``before_request`` hook).

    A pool thread serves one request after another; clearing at the start keeps one request's
    merchant off the next one's lines, and leaves it bound for gunicorn's access line.
    """
    _context.set({})


def _checked(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - _FIELDS
    if unknown:  # a typo here would silently drop the field from every line
        raise ValueError(f"unknown log context field(s): {sorted(unknown)}")
    return dict(fields)


def redact_values(values: Iterable[str]) -> None:
    """Blank these exact values (a process's configured secrets and tokens) in every line this
    process writes from now on, besides the shapes ``redact`` always blanks. Values shorter than
    8 characters are left out: they would blank ordinary words."""
    global _values
    kept = sorted({v for v in values if len(v) >= _SHORTEST_VALUE}, key=len, reverse=True)
    _values = re.compile("|".join(map(re.escape, kept))) if kept else None


def redact(text: str) -> str:
    """Blank the parts of ``text`` shaped like secrets, keeping their recognisable prefix, and
    the values named with ``redact_values``."""
    if _values is not None:
        text = _values.sub("[redacted]", text)
    return _SECRET_SHAPES.sub(
        lambda m: (m.group("keep") or m.group("keep2") or m.group("keep3")) + "[redacted]", text)


def _redacted(value: Any) -> Any:
    """A JSON value with every string in it (keys too) passed through ``redact``."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call gave with ``extra=``, as JSON values (``str`` of what JSON cannot hold),
    secrets blanked."""
    return {redact(k): _redacted(_jsonable(v)) for k, v in vars(record).items()
            if k not in _RECORD_ATTRS}


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str, ensure_ascii=False))
    except (TypeError, ValueError):  # keys JSON cannot hold, a cycle: its text, then
        return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the context."""

    def format(self, record: logging.LogRecord) -> str:
        context = current_context()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        line.update({name: context.get(name) for name in ALWAYS})
        line.update({name: context[name] for name in OPTIONAL if context.get(name) is not None})
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        for name, value in _extra_fields(record).items():
            # the line's own fields win; an extra of the same name is kept beside them
            line[name if line.get(name) is None else f"extra_{name}"] = value
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The readable form (``LOG_FORMAT=text``): the context follows the message as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        context = current_context()
        pairs = " ".join(f"{k}={context[k]}" for k in ALWAYS + OPTIONAL
                         if context.get(k) is not None)
        if not pairs:
            return text
        first, newline, rest = text.partition("\n")  # keep a traceback below the line
        return f"{first} [{pairs}]{newline}{rest}"


def formatter(log_format: str | None = None) -> logging.Formatter:
    """The formatter ``LOG_FORMAT`` asks for: ``json`` (the default) or ``text``."""
    chosen = (log_format or os.environ.get("LOG_FORMAT") or "json").lower()
    if chosen not in ("json", "text"):
        raise ConfigError(f"LOG_FORMAT must be 'json' or 'text', not {chosen!r}")
    return JsonFormatter() if chosen == "json" else TextFormatter()


def configure_logging(level: str | int | None = None, log_format: str | None = None,
                      stream: TextIO | None = None) -> None:
    """Send every logger's lines to standard error through one handler on the root logger.

    Called once per process. RQ's worker adds handlers of its own only when no ancestor logger
    has one, so its lines go through this handler too.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if level is not None else os.environ.get("LOG_LEVEL", "INFO").upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Its INFO and DEBUG lines print statement parameters: inbox bodies and signature headers.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    # stripe-python logs every request and response line at INFO (a report reads thousands);
    # our adapters log what matters of each call themselves.
    logging.getLogger("stripe").setLevel(logging.WARNING)
