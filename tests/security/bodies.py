"""Admin request bodies for the hostile-input suite, and a walk over their JSON schemas.

``FULL`` holds, per admin POST route, a valid body with every optional field filled in, so that
each field in the schema has a place to put a wrong value. ``fields`` lists every field a schema
declares; ``wrong_values`` what breaks one; a field added to a schema but missing from the full
body fails the walk, so the suite grows with the schemas.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from gateway.validation import schemas
from policy.case_json import case_schema

T = "2025-03-04T09:00:00Z"
MONEY = {"amount": 1200, "currency": "USD"}
IDENTITY = {"username": "alice", "main_domain": "alice.example", "invoice_number": "INV-3",
            "date_of_birth": "1980-02-03", "order_number": "ORD-1", "paypal_subscription_id":
            "I-1", "client_name": "Alice", "telephone": "+1 555 0100", "contact_name": "Alice",
            "address": "1 Main St", "login_name": "alice", "verified": True}
UPTIME = {"measured_percent": 98.5, "incident_at": T, "cause": "network",
          "source": "merchant_monitoring"}

FULL_CASE: dict[str, Any] = {
    "time_zone": "Europe/London",
    "request": {"kind": "refund", "received_at": T, "reason": "does not suit me",
                "reason_code": "dissatisfied", "immediate": False, "invoice_number": "INV-3",
                "identity": IDENTITY},
    "account": {"prior_guarantee_refunds": 0, "suspended_for_breach": False, "violations": 0,
                "invoices": [{"number": "INV-3", "amount": MONEY, "due_at": T, "paid": True,
                              "notified_at": T}],
                "credit_balance": MONEY, "in_collection": False},
    "order": {"type": "new", "product_category": "web_hosting",
              "ordered_at": "2025-03-01T09:00:00Z",
              "amount": {"amount": 12000, "currency": "USD"}, "term_months": 1,
              "auto_renew": True, "next_billing_at": "2025-04-01T09:00:00Z",
              "payment_provider": "stripe", "payment_method": "card",
              "addons": ["ssl_certificate"], "service_state": "not_started",
              "service_date": T, "refundable": {"amount": 12000, "currency": "USD"},
              "dispute": "won"},
    "usage": {"bandwidth_bytes": 5, "sessions": 1, "used_since_renewal": False},
    "payment": {"amount": {"amount": 12000, "currency": "USD"}, "received_at": T,
                "overpaid_amount": {"amount": 0, "currency": "USD"}, "provider": "stripe",
                "via_subscription": True, "refundable": {"amount": 12000, "currency": "USD"},
                "dispute": "won"},
    "uptime": UPTIME,
}

# Per admin POST route: (schema name, a full valid body). None: the body is {"case", "at"}.
FULL: dict[str, tuple[str, dict[str, Any]]] = {
    "/v1/decisions/preview": ("Preview", {"case": FULL_CASE, "at": T}),
    "/v1/refund-requests": ("RefundRequest", {
        "account": "cus_1", "payment": "ch_1", "reason": "changed my mind",
        "reason_code": "dissatisfied", "identity": IDENTITY, "received_at": T,
        "product_category": "web_hosting", "addons": ["ssl_certificate"],
        "service_state": "not_started", "service_date": T}),
    "/v1/cancellations": ("CancellationRequest", {
        "account": "cus_1", "subscription": "sub_1", "reason": "moving on",
        "reason_code": "other", "identity": IDENTITY, "immediate": False, "received_at": T,
        "product_category": "web_hosting", "money_back_payment": "ch_1"}),
    "/v1/uptime-claims": ("UptimeClaim", {
        "account": "cus_1", "subscription": "sub_1", "reason": "down all day",
        "identity": IDENTITY, "received_at": T, "product_category": "web_hosting",
        "uptime": UPTIME}),
    "/v1/usage": ("UsageReport", {"account": "cus_1", "bandwidth_bytes": 10, "sessions": 2,
                                  "last_used_at": T}),
    "/v1/reviews/<decision_id>": ("ReviewAnswer", {
        "approve": True, "reviewer": "kim@finance", "refund": MONEY, "credit": MONEY,
        "note": "fine"}),
    "/v1/reports/reconciliation": ("ReconciliationRequest", {"from": "2025-01-01",
                                                            "to": "2025-02-01",
                                                            "sources": ["stripe"]}),
}


def schema_of(name: str) -> dict[str, Any]:
    if name == "Preview":  # the preview body wraps a Case; its fields are named case.<path>
        case = case_schema()
        at = {"type": "string", "pattern": "ISO 8601"}
        return {"type": "object", "properties": {"case": case, "at": at}, "$defs": case["$defs"]}
    return schemas()[name]


def resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def fields(node: dict[str, Any], root: dict[str, Any], prefix: tuple[str, ...] = ()
           ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (dotted path, schema) below ``node``; an array's items appear as ``path.0``."""
    node = resolve(node, root)
    for name, sub in node.get("properties", {}).items():
        path = (*prefix, name)
        yield ".".join(path), resolve(sub, root)
        yield from _below(resolve(sub, root), root, path)


def _below(node: dict[str, Any], root: dict[str, Any], path: tuple[str, ...]
           ) -> Iterator[tuple[str, dict[str, Any]]]:
    if node.get("type") == "object":
        yield from fields(node, root, path)
    items = node.get("items")
    if node.get("type") == "array" and isinstance(items, dict):
        yield ".".join((*path, "0")), resolve(items, root)
        yield from _below(resolve(items, root), root, (*path, "0"))


def wrong_values(node: dict[str, Any]) -> list[Any]:
    """Values the schema ``node`` refuses: a wrong type, and each bound overstepped."""
    if "enum" in node:
        return ["not-one-of-them", 7]
    if "oneOf" in node:
        return [True, "101", -1, {"x": 1}]
    if "anyOf" in node:  # a date-time or a date: refused by both
        return [12345, "2026-13-45", "tomorrow", "2026-01-01T10:00:00"]
    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    out: list[Any] = []
    if "string" in types:
        out += [12345, *(["!no match!"] if "pattern" in node else [])]
        out += ["x" * (node["maxLength"] + 1)] if "maxLength" in node else []
        out += [""] if node.get("minLength") else []
    if "integer" in types:
        out += ["12", 1.5, True]
        out += [node["minimum"] - 1] if "minimum" in node else []
        out += [node["maximum"] + 1] if "maximum" in node else []
    if "boolean" in types:
        out += ["true", 1]
    if "object" in types:
        out += [["not", "an", "object"], "x"]
    if "array" in types:
        out += ["not-an-array", {"0": 1}]
        out += [["a"] * (node["maxItems"] + 1)] if "maxItems" in node else []
    return out


def set_at(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with ``value`` at ``path``; the parent must already be there."""
    # not deepcopy: that keeps shared sub-objects shared
    out: dict[str, Any] = json.loads(json.dumps(body))
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        assert last in node, f"{path}: give the full body a value for this field"
        node[last] = value
    return out


def names_a_field_of(body: Any, field: str, known: set[str]) -> bool:
    """Whether ``field`` is a path into ``body`` (or a declared field missing from it)."""
    if field in known or field == "body":
        return True
    node = body
    parts = field.split(".")
    for at, part in enumerate(parts):
        if isinstance(node, dict) and ".".join(parts[at:]) in node:  # a key holding dots
            return True
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True
