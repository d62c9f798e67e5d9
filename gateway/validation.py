"""Admin request bodies, validated with JSON Schema: an error names the field, never a guess.

The schemas reuse the Case schema's own definitions (identity, reason codes, money, dates), so
that what support files is checked exactly as the policy engine will check it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from gateway.envelope import parse_time
from policy.timing import EARLIEST, LATEST

MAX_BYTES = 10**18  # an exabyte: more than any account moves; the ledger column holds 2^63
MAX_SESSIONS = 2**31 - 1  # the ledger's column
FUTURE_SKEW = timedelta(minutes=5)  # a support tool's clock may run a little ahead of ours
_TIMES = frozenset({"received_at", "last_used_at", "service_date", "incident_at"})  # datetimes


class InvalidBody(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def refuse_unknown(args: Iterable[str], known: Collection[str]) -> None:
    """``InvalidBody`` naming the first query parameter that is not one of ``known``."""
    for name in args:
        if name not in known:
            raise InvalidBody(name, f"unknown parameter; known: {', '.join(sorted(known))}")


def whole_number(name: str, text: str, top: int) -> int:
    """``text`` as a whole number from 1 to ``top``, or ``InvalidBody`` naming ``name``."""
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= top):
        raise InvalidBody(name, f"must be a whole number from 1 to {top}")
    return int(text)


@cache
def _case_schema() -> dict[str, Any]:
    text = resources.files("policy").joinpath("case_schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def _part(*path: str) -> dict[str, Any]:
    node: Any = _case_schema()
    for key in path:
        node = node[key]
    return dict(node)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "additionalProperties": False, "required": required, "properties": properties,
            "$defs": _case_schema()["$defs"]}


def _day(description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": "^(20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
            "description": description}


def _ids() -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": 255}


@cache
def schemas() -> dict[str, dict[str, Any]]:
    """Every admin request body's schema, by name (also published in the OpenAPI document)."""
    request = _part("properties", "request", "properties")
    order = _part("properties", "order", "properties")
    return {
        "RefundRequest": _object(["account", "payment", "reason"], {
            "account": _ids(), "payment": _ids(), "reason": request["reason"],
            "reason_code": request["reason_code"], "identity": request["identity"],
            "received_at": _ref("datetime"), "product_category": order["product_category"],
            "addons": order["addons"], "service_state": order["service_state"],
            "service_date": order["service_date"]}),
        "CancellationRequest": _object(["account", "subscription"], {
            "account": _ids(), "subscription": _ids(), "reason": request["reason"],
            "reason_code": request["reason_code"], "identity": request["identity"],
            "immediate": request["immediate"], "received_at": _ref("datetime"),
            "product_category": order["product_category"],
            "money_back_payment": {**_ids(), "description":
                                   "a payment to claim the money-back guarantee on as well"}}),
        "UptimeClaim": _object(["account", "subscription", "uptime"], {
            "account": _ids(), "subscription": _ids(), "reason": request["reason"],
            "identity": request["identity"], "received_at": _ref("datetime"),
            "product_category": order["product_category"],
            "uptime": _part("properties", "uptime")}),
        "UsageReport": _object(["account", "bandwidth_bytes", "sessions"], {
            "account": _ids(),
            "bandwidth_bytes": {"type": "integer", "minimum": 0, "maximum": MAX_BYTES},
            "sessions": {"type": "integer", "minimum": 0, "maximum": MAX_SESSIONS},
            "last_used_at": _ref("datetime")}),
        "ReconciliationRequest": _object(["from", "to"], {
            "from": _day("the period's first day"),
            "to": _day("the day after the period's last (exclusive)"),
            "sources": {"type": "array", "minItems": 1, "uniqueItems": True,
                        "items": {"enum": ["stripe", "paypal"]},
                        "description": "whose records to reconcile against (default: every "
                                       "provider the merchant has credentials for)"}}),
        "DecisionPreview": _preview(),
        "ReviewAnswer": _object(["approve", "reviewer"], {
            "approve": {"type": "boolean"}, "reviewer": _ids(),
            "refund": _ref("money"), "credit": _ref("money"),
            "note": {"type": "string", "maxLength": 4000}}),
        "ReplayRequest": _object(["status"], {
            "status": {"const": "dead", "description": "which events: every dead one"}}),
    }


def _preview() -> dict[str, Any]:
    """``{"case": Case, "at": time?}``: the Case is checked by the policy's own schema
    (policy/case_schema.json, through case_from_json, which names the field inside it)."""
    case = {k: v for k, v in _case_schema().items() if k not in ("$schema", "$id", "$defs")}
    schema = _object(["case"], {"case": _ref("Case"), "at": {
        **_ref("datetime"), "description": "decide as of this time (default: now)"}})
    return {**schema, "$defs": {**schema["$defs"], "Case": case}}


def validate(name: str, body: Any, now: datetime | None = None) -> dict[str, Any]:
    """``body`` if it matches schema ``name`` and every value in it is one a worker can decide
    (valid Unicode, times between 2000 and 2100, ``received_at`` not in the future); else
    InvalidBody naming the first bad field."""
    if not isinstance(body, dict):
        raise InvalidBody("", "the body must be a JSON object")
    validator = Draft202012Validator(schemas()[name], format_checker=FormatChecker())
    error = best_match(validator.iter_errors(body))
    if error is None:
        _check_values(body, "", now or datetime.now(UTC))
        return body
    field = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = str(error.message).split("'")[1]
        field = f"{field}.{missing}" if field else missing
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        # From the instance, not the message: the message quotes the key with repr().
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = min(k for k in error.instance if k not in allowed)
        field = f"{field}.{extra}" if field else extra
    return _raise(field, error.message)


def _raise(field: str, message: str) -> dict[str, Any]:
    raise InvalidBody(field, message)


def _check_values(node: Any, path: str, now: datetime) -> None:
    """What a schema cannot say: text a database can store, and times a worker can use."""
    if isinstance(node, dict):
        for key, value in node.items():
            _check_values(value, f"{path}.{key}" if path else str(key), now)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_values(value, f"{path}.{i}", now)
    elif isinstance(node, str):
        _check_text(node, path, now)


def _check_text(value: str, path: str, now: datetime) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidBody(path, "is not valid Unicode (a lone surrogate)") from None
    if path.split(".")[-1] not in _TIMES:
        return
    moment = parse_time(value)
    if moment is None or not EARLIEST <= moment < LATEST:
        raise InvalidBody(path, f"{value!r} is not a time between 2000 and 2100")
    if path.split(".")[-1] == "received_at" and moment > now + FUTURE_SKEW:
        raise InvalidBody(path, f"{value!r} is in the future (more than "
                          f"{int(FUTURE_SKEW.total_seconds())} s ahead of this server's clock)")
