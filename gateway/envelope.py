"""The few fields of a provider event the web tier needs to store it: pure parsing, no I/O.

The full payload is normalised later by a worker; here we only need the event id (for
idempotency), its type, the provider's timestamp and the object it is about (for ordering).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from policy.timing import EARLIEST, EARLIEST_UNIX, LATEST, LATEST_UNIX
from service.errors import VerificationError

# Real Stripe and PayPal events nest under ten levels. Deeper is refused before it is stored, so
# nothing downstream (workers, the admin API's event view) ever walks a pathological body.
MAX_NESTING = 64


@dataclass(frozen=True, slots=True)
class Envelope:
    event_id: str
    event_type: str
    created_at: datetime | None
    object_ref: str | None
    livemode: bool | None  # None: the payload does not say (PayPal)
    # Why the event is stored but never applied (a time no real event carries), or None.
    out_of_range: str | None = None


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a ``malformed_json`` error saying what is wrong."""
    too_deep = VerificationError("malformed_json", f"body nests deeper than {MAX_NESTING} levels")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:  # nested past the interpreter's own limit
        raise too_deep from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError("malformed_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise VerificationError("malformed_json", "body must be a JSON object")
    # Every object or array opens with its own "{" or "[" byte (in UTF-8, -16 and -32 alike), so
    # a body with no more of them than the limit cannot nest deeper: real events skip the walk.
    if raw.count(b"{") + raw.count(b"[") > MAX_NESTING and nesting(data) > MAX_NESTING:
        raise too_deep
    return data


def _no_constant(name: str) -> Any:
    """NaN, Infinity and -Infinity, which Python's json reads but JSON does not have."""
    raise ValueError(f"{name} is not a JSON number")


def nesting(value: Any) -> int:
    """How deeply objects and arrays nest in ``value`` (a scalar is 0), walked without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node)
    return deepest


def stripe_envelope(data: dict[str, Any]) -> Envelope:
    obj = _object(data.get("data"), "data")
    created = data.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        raise VerificationError("malformed_json", "field 'created' must be an integer timestamp")
    livemode = data.get("livemode")
    if not isinstance(livemode, bool):
        raise VerificationError("malformed_json", "field 'livemode' must be true or false")
    in_range = EARLIEST_UNIX <= created < LATEST_UNIX
    return Envelope(
        event_id=_text(data, "id"),
        event_type=_text(data, "type"),
        created_at=datetime.fromtimestamp(created, UTC) if in_range else None,
        object_ref=_stripe_object_ref(_object(obj.get("object"), "data.object")),
        livemode=livemode,
        out_of_range=None if in_range else f"created = {created}: not between 2000 and 2100",
    )


def _stripe_object_ref(obj: dict[str, Any]) -> str | None:
    """The object's id; an upcoming invoice has none and is ordered with its subscription."""
    parent = obj.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, dict) else None
    nested = details.get("subscription") if isinstance(details, dict) else None
    return _ref(obj.get("id")) or _ref(obj.get("subscription")) or _ref(nested)


def paypal_envelope(data: dict[str, Any]) -> Envelope:
    resource = _object(data.get("resource"), "resource")
    created = parse_time(data.get("create_time"))
    in_range = created is None or EARLIEST <= created < LATEST
    return Envelope(
        event_id=_text(data, "id"),
        event_type=_text(data, "event_type"),
        created_at=created if in_range else None,
        object_ref=_ref(resource.get("id")) or _ref(resource.get("dispute_id")),
        livemode=None,
        out_of_range=None if in_range else (f"create_time = {data.get('create_time')}: "
                                            "not between 2000 and 2100"),
    )


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as aware UTC; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None and parsed.year in (1, 9999):  # may not convert to UTC
        try:
            parsed.astimezone(UTC)
        except OverflowError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise VerificationError("malformed_json", f"field '{name}' must be an object")
    return value


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > 255 or not _unicode(value):
        raise VerificationError("malformed_json", f"field '{key}' must be a non-empty string "
                                "of at most 255 characters")
    return value


def _ref(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 255 and _unicode(value) \
        else None


def _unicode(value: str) -> bool:
    """Whether ``value`` can be stored: JSON's escapes can spell a lone surrogate, or a NUL
    (which no PostgreSQL text column holds)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
