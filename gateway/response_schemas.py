"""The JSON Schemas of what the web tier answers, by name: the other half of the OpenAPI
document (gateway.openapi), beside the request schemas of gateway.validation. Each describes
what a view's serializer writes (gateway.serialize, policy.decision_to_json, the views'
literal bodies); tests/integration/test_openapi.py validates real answers against them."""

from __future__ import annotations

from functools import cache
from typing import Any

from ledger.models import ActionStatus, DecisionStatus, InboxStatus, RequestStatus
from policy.decision import Outcome


def _obj(properties: dict[str, Any], required: list[str] | None = None,
         description: str = "") -> dict[str, Any]:
    """An object with exactly these keys (all of them, unless ``required`` says otherwise)."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "required": list(properties) if required is None else required,
                              "properties": properties}
    if description:
        schema["description"] = description
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _enum(values: Any) -> dict[str, Any]:
    return {"type": "string", "enum": [v.value for v in values]}


_TEXT: dict[str, Any] = {"type": "string"}
_TIME: dict[str, Any] = {"type": "string", "description": "ISO 8601, UTC"}
_MONEY = _ref("Money")


@cache
def schemas() -> dict[str, dict[str, Any]]:
    """Every answer's schema, by name; references point at ``#/components/schemas/``."""
    return {
        "Error": _obj({"error": _obj({
            "code": {**_TEXT, "description": "stable, machine-readable"},
            "message": {**_TEXT, "description": "what was wrong, for a person"},
            "field": {**_TEXT, "description": "dotted path of the bad field (or header)"},
            "existing": {**_TEXT, "description": "the open request a duplicate repeats"},
        }, required=["code", "message"])}),
        "Money": _obj({"amount": {"type": "integer", "description": "minor units"},
                       "currency": {**_TEXT, "description": "ISO 4217"}}),
        "Decision": _decision(),
        "Action": _obj({
            "id": _TEXT, "kind": {"enum": ["refund", "credit"]},
            "status": _enum(ActionStatus), "provider": _null(_TEXT),
            "payment": _null(_TEXT), "account": _null(_TEXT), "amount": _MONEY,
            "clause": _null(_TEXT), "provider_ref": _null(_TEXT),
            "attempts": {"type": "integer"}, "failure_code": _null(_TEXT),
            "error": _null(_TEXT)}),
        "RecordedDecision": _obj({
            "id": _TEXT, "status": _enum(DecisionStatus), "status_reason": _null(_TEXT),
            "account": _null(_TEXT), "evaluated_at": _TIME,
            "source_request": _null(_TEXT),
            "source_event": _null({"type": "integer", "description": "the inbox row"}),
            "reviewed_by": _null(_TEXT), "reviewed_at": _null(_TIME),
            "review_note": _null(_TEXT), "decision": _ref("Decision"),
            "case": _ref("Case"),
            "actions": {"type": "array", "items": _ref("Action")}},
            description="a Decision as recorded, with the Case it was made on and its actions"),
        "SupportRequest": _support_request(),
        "FiledCancellation": {"allOf": [
            {**_support_request(), "additionalProperties": True},
            {"type": "object", "required": ["money_back_request"], "properties": {
                "money_back_request": _null({**_TEXT, "description":
                                             "the refund claim filed beside it"})}}],
            "unevaluatedProperties": False},
        "UsageRecorded": _obj({"recorded": {"const": True}, "account": _TEXT}),
        "Reviews": _obj({"reviews": {"type": "array", "items": _ref("RecordedDecision")},
                         "has_more": {"type": "boolean"}}),
        "ReviewAnswered": _obj({"status": _enum(DecisionStatus),
                                "decision": _ref("RecordedDecision")}),
        "Events": _obj({"events": {"type": "array", "minItems": 1, "items": _ref("Event")}},
                       description="one per provider that sent an event with this id"),
        "Event": _obj({
            "event_id": _TEXT, "provider": {"enum": ["stripe", "paypal"]}, "type": _TEXT,
            "status": _enum(InboxStatus), "status_reason": _null(_TEXT),
            "received_at": _TIME, "deliveries": {"type": "integer"},
            "attempts": {"type": "integer"}, "last_error": _null(_TEXT),
            "payload": {"type": "object", "description": "the body as the provider sent it"}}),
        "EventPage": _obj({
            "events": {"type": "array", "items": _ref("EventSummary"),
                       "description": "newest first"},
            "has_more": {"type": "boolean", "description":
                         "more match: ask again with starting_after= the last id"}}),
        "EventSummary": _obj({
            "id": {"type": "integer", "description": "the inbox row (starting_after= pages)"},
            "event_id": _TEXT, "provider": {"enum": ["stripe", "paypal"]}, "type": _TEXT,
            "status": _enum(InboxStatus), "status_reason": _null(_TEXT),
            "received_at": _TIME, "deliveries": {"type": "integer"},
            "attempts": {"type": "integer"}, "last_error": _null(_TEXT)}),
        "EventsReplayed": _obj({
            "replayed": {"type": "integer"},
            "events": {"type": "array", "items": _ref("EventSummary"),
                       "description": "as they are now: pending, or already taken up"}}),
        "AccountCredit": _obj({
            "account": _TEXT,
            "balances": {"type": "array", "items": _obj({
                "currency": _TEXT,
                "available": {"type": "integer", "description": "minor units not yet used"},
                "granted": {"type": "integer"}, "used": {"type": "integer"}})},
            "entries": {"type": "array", "description": "oldest first", "items": _obj({
                "id": {"type": "integer"},
                "kind": {"enum": ["grant", "use", "return"],
                         "description": "return: a use given back (a voided Stripe invoice)"},
                "amount": {**_MONEY, "description": "a use is negative"},
                "held_by": {"enum": ["ledger", "stripe_balance"]},
                "reason": _TEXT, "clause": _null(_TEXT), "decision": _null(_TEXT),
                "action": _null(_TEXT),
                "applies_to": _null({"type": "integer",
                                     "description": "a use or return: its grant"}),
                "applied_to": _null({**_TEXT, "description":
                                     "a use: the invoice or payment it paid"}),
                "counts": {"type": "boolean", "description":
                           "false for a use whose refund failed (the credit is back)"},
                "created_at": _TIME})}},
            description="an account's credit: granted, used and available, per currency"),
        "ReportQueued": _obj({"id": _TEXT, "status": {"const": "queued"},
                              "location": {**_TEXT, "description": "where to fetch it"}}),
        "ReportPending": _obj({"id": _TEXT, "status": _TEXT}),
        "Report": {"type": "object", "required": [
            "merchant", "from", "to", "generated_at", "currencies", "daily", "discrepancies"],
            "properties": {"merchant": _TEXT, "from": _TEXT, "to": _TEXT,
                           "generated_at": _TIME,
                           "currencies": {"type": "object",
                                          "description": "the totals, per currency"},
                           "daily": {"type": "array"},
                           "discrepancies": {"type": "array",
                                             "items": {"type": "object"}}},
            "description": "the reconciliation as JSON (README: Reconciliation reports)"},
        "Received": _obj({"received": {"const": True}, "event_id": _TEXT,
                          "duplicate": {"type": "boolean"}, "status": _enum(InboxStatus)}),
        "Health": _obj({"status": {"const": "ok"}}),
        "Ready": _obj({"status": {"enum": ["ready", "unavailable"]},
                       "checks": _obj({"database": _TEXT, "redis": _TEXT})}),
        "OpenApiDocument": {"type": "object", "required": ["openapi", "paths"]},
    }


def _decision() -> dict[str, Any]:
    optional = _null(_MONEY)
    properties = {
        "pack": _TEXT, "request_kind": _TEXT, "outcome": _enum(Outcome),
        "basis": {**_null(_TEXT), "description": "the clause the outcome rests on, cited on "
                  "the actions carrying it out (absent from decisions recorded before it was)"},
        "decided_at": _TIME, "currency": _TEXT,
        "amounts": _obj({"at_stake": optional, "refund": _MONEY, "credit": _MONEY,
                         "fee": _MONEY, "charge": _MONEY, "retained": _MONEY,
                         "proposed_refund": optional}),
        "line_items": {"type": "array", "items": _obj({
            "kind": _TEXT, "label": _TEXT, "amount": _MONEY, "clause": _null(_TEXT)})},
        "dates": _obj({"effective_at": _null(_TIME), "access_until": _null(_TIME),
                       "balance_due_by": _null(_TIME), "notice_by": _null(_TIME)}),
        "flags": {"type": "array", "items": _TEXT},
        "reasons": {"type": "array", "items": _obj({
            "clause": _TEXT, "holds": {"type": "boolean"}, "detail": _TEXT, "text": _TEXT})},
    }
    return _obj(properties, [k for k in properties if k != "basis"],
                description="what the policy decided, each amount and date with the clauses "
                "it cites")


def _support_request() -> dict[str, Any]:
    return _obj({
        "id": _TEXT, "kind": {"enum": ["refund", "cancellation", "uptime_claim"]},
        "status": _enum(RequestStatus), "account": _TEXT, "payment": _null(_TEXT),
        "filed_by": _TEXT, "created_at": _TIME, "decided_at": _null(_TIME),
        "error": _null(_TEXT), "request": {"type": "object", "description": "the body filed"},
        "decision": _null(_ref("RecordedDecision"))},
        description="a support request and, once decided, its Decision")

