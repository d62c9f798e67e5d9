"""Admin request bodies, validated with JSON Schema: an error names the field, never a guess.

The schemas reuse the Case schema's own definitions (identity, reason codes, money, dates), so
that what support files is checked exactly as the policy engine will check it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match


class InvalidBody(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


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
            "bandwidth_bytes": {"type": "integer", "minimum": 0},
            "sessions": {"type": "integer", "minimum": 0},
            "last_used_at": _ref("datetime")}),
        "ReviewAnswer": _object(["approve", "reviewer"], {
            "approve": {"type": "boolean"}, "reviewer": _ids(),
            "refund": _ref("money"), "credit": _ref("money"),
            "note": {"type": "string", "maxLength": 4000}}),
    }


def validate(name: str, body: Any) -> dict[str, Any]:
    """``body`` if it matches schema ``name``; else InvalidBody naming the first bad field."""
    if not isinstance(body, dict):
        raise InvalidBody("", "the body must be a JSON object")
    validator = Draft202012Validator(schemas()[name], format_checker=FormatChecker())
    error = best_match(validator.iter_errors(body))
    if error is None:
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
