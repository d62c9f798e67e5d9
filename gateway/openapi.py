"""The HTTP interface's OpenAPI 3.1 document, generated from one table (``ROUTES``): each route
with the JSON Schema its body is validated against (gateway.validation), the Case schema the
policy validates a Case against (policy/case_schema.json), and the schemas of its answers,
errors included (gateway.response_schemas). tests/integration/test_openapi.py holds the table to
``app.url_map`` (every route documented, nothing documented that does not exist) and validates
real answers against it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from gateway import response_schemas
from gateway.validation import schemas as request_schemas
from ledger.models import InboxStatus

JSON = "application/json"


@dataclass(frozen=True)
class Route:
    """One operation: ``answers`` maps each status to a schema name (answered as JSON) or to
    ``{media type: schema name or None}``; ``body`` names the request body's schema."""

    method: str
    path: str  # OpenAPI's template: /v1/decisions/{decision_id}
    summary: str
    answers: dict[int, str | dict[str, str | None]]
    body: str | None = None
    merchant: bool = True  # needs the merchant's bearer token
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


# What every admin call can be answered besides its own statuses.
_AUTH = {401: "Error"}
_POST = {400: "Error", 401: "Error", 422: "Error", 503: "Error"}
_GET_ONE = {401: "Error", 404: "Error", 503: "Error"}
_IDEMPOTENCY = {"Idempotency-Key": "1-255 printable ASCII characters: a repeat with the same "
                                   "body answers the first answer, another body 422",
                "X-Gateway-Actor": "the support agent acting, for the audit log"}
_FILED = {**_POST, 409: "Error"}

ROUTES: tuple[Route, ...] = (
    Route("post", "/v1/decisions/preview",
          "Decide a Case under the merchant's pack, recording nothing",
          {200: "Decision", **_POST}, body="DecisionPreview", headers=_IDEMPOTENCY),
    Route("get", "/v1/decisions/{decision_id}",
          "A recorded Decision with its Case, cited reasons and actions",
          {200: "RecordedDecision", **_GET_ONE}),
    Route("post", "/v1/refund-requests",
          "File a customer's refund claim; a worker decides it and carries it out",
          {202: "SupportRequest", **_FILED}, body="RefundRequest", headers=_IDEMPOTENCY),
    Route("get", "/v1/refund-requests/{request_id}",
          "A refund request, its Decision and the state of its actions",
          {200: "SupportRequest", **_GET_ONE}),
    Route("post", "/v1/cancellations",
          "File a cancellation (and, with money_back_payment, a refund claim beside it)",
          {202: "FiledCancellation", **_FILED}, body="CancellationRequest",
          headers=_IDEMPOTENCY),
    Route("get", "/v1/cancellations/{request_id}",
          "A cancellation, its Decision and the state of its actions",
          {200: "SupportRequest", **_GET_ONE}),
    Route("post", "/v1/uptime-claims",
          "File an uptime claim; the merchant's schedule gives a service credit",
          {202: "SupportRequest", **_POST}, body="UptimeClaim", headers=_IDEMPOTENCY),
    Route("get", "/v1/uptime-claims/{request_id}",
          "An uptime claim, its Decision and the credit granted",
          {200: "SupportRequest", **_GET_ONE}),
    Route("post", "/v1/usage", "Report an account's usage (bandwidth, sessions, last use)",
          {201: "UsageRecorded", **_POST}, body="UsageReport", headers=_IDEMPOTENCY),
    Route("get", "/v1/reviews", "Decisions waiting for a person, oldest first, a page at a time",
          {200: "Reviews", 400: "Error", **_AUTH, 503: "Error"},
          query={"limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 100},
                 "starting_after": {"type": "string", "maxLength": 64, "description":
                                    "the id of the last decision of the previous page"}}),
    Route("post", "/v1/reviews/{decision_id}",
          "Approve (a refund and/or a credit, carried out at once) or deny a decision in review",
          {200: "ReviewAnswered", **_POST, 404: "Error", 409: "Error"}, body="ReviewAnswer",
          headers=_IDEMPOTENCY),
    Route("get", "/v1/events",
          "Search the inbox, newest first, a page at a time: by status, provider, type and the "
          "time received",
          {200: "EventPage", 400: "Error", 401: "Error", 503: "Error"},
          query={"status": {"enum": [status.value for status in InboxStatus]},
                 "provider": {"enum": ["stripe", "paypal"]},
                 "type": {"type": "string", "maxLength": 128},
                 "received_from": {"type": "string", "description":
                                   "ISO 8601 date or time, inclusive"},
                 "received_to": {"type": "string", "description":
                                 "ISO 8601 date or time, exclusive"},
                 "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                 "starting_after": {"type": "integer", "minimum": 1, "description":
                                    "the id of the last event of the previous page"}}),
    Route("post", "/v1/events/replay",
          "Hand every dead event to the workers again",
          {202: "EventsReplayed", **_POST}, body="ReplayRequest",
          headers={"X-Gateway-Actor": _IDEMPOTENCY["X-Gateway-Actor"]}),
    Route("post", "/v1/events/{event_id}/replay",
          "Hand one failed event (dead, or waiting for a retry) to the workers again now",
          {202: "EventsReplayed", 401: "Error", 404: "Error", 409: "Error", 503: "Error"},
          headers={"X-Gateway-Actor": _IDEMPOTENCY["X-Gateway-Actor"]}),
    Route("get", "/v1/events/{event_id}",
          "An inbox event as received, with its status (what a report row links to; the way "
          "to find a payment's id from the event that carried it)",
          {200: "Events", **_GET_ONE}),
    Route("get", "/v1/accounts/{account}/credit",
          "An account's credit: each grant and each use (what it paid, which grant it drew on), "
          "and per currency what was granted, used and is available",
          {200: "AccountCredit", **_GET_ONE}),
    Route("post", "/v1/reports/reconciliation",
          "Start reconciling the ledger against the providers' records for a period; the "
          "answer's Location fetches it",
          {202: "ReportQueued", **_POST}, body="ReconciliationRequest", headers=_IDEMPOTENCY),
    Route("get", "/v1/reports/reconciliation/{report_id}",
          "The report once ready (202 while a worker builds it; 502 when the providers could "
          "not be read; kept a day)",
          {200: {JSON: "Report", "text/csv": None, "text/html": None}, 202: "ReportPending",
           400: "Error", 401: "Error", 404: "Error", 502: "Error", 503: "Error"},
          query={"format": {"enum": ["json", "csv", "html"], "default": "json"}}),
    Route("get", "/v1/openapi.json", "This document", {200: "OpenApiDocument"},
          merchant=False),
    Route("post", "/webhooks/{merchant_name}/{provider}",
          "A provider's webhook: verified on the raw bytes, stored, acknowledged",
          {200: "Received", 400: "Error", 404: "Error", 413: "Error", 429: "Error",
           503: "Error"},
          body="ProviderEvent", merchant=False,
          headers={"Stripe-Signature": "Stripe's signature (Stripe)",
                   "PAYPAL-TRANSMISSION-SIG": "PayPal's signature and its PAYPAL-* companions "
                                              "(PayPal)"}),
    Route("get", "/healthz", "200 while the process is up", {200: "Health"}, merchant=False),
    Route("get", "/readyz", "Whether the database and Redis answer",
          {200: "Ready", 503: "Ready"}, merchant=False),
    Route("get", "/metrics", "Prometheus metrics (behind GATEWAY_METRICS_TOKEN when set)",
          {200: {"text/plain": None}, 401: "Error"}, merchant=False),
)

_PROVIDER_EVENT = {"type": "object", "description": "the provider's event exactly as it sends "
                   "it; the signature covers the raw bytes"}


def _without_defs(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in ("$schema", "$id", "$defs")}


@cache
def _case_schema() -> dict[str, Any]:
    text = resources.files("policy").joinpath("case_schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def components() -> dict[str, Any]:
    """Every schema the document names: request bodies (with their shared definitions), the
    Case, and the answers; ``#/$defs/`` references pointed at ``#/components/schemas/``."""
    out: dict[str, Any] = {}
    for name, schema in request_schemas().items():
        out[name] = _without_defs(schema)
        out.update(schema["$defs"])
    out["Case"] = _without_defs(_case_schema())
    out.update(_case_schema()["$defs"])
    out["ProviderEvent"] = _PROVIDER_EVENT
    out.update(response_schemas.schemas())
    text = json.dumps(out).replace('"#/$defs/', '"#/components/schemas/')
    return dict(json.loads(text))


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary,
                          "responses": {str(status): _answer(status, what)
                                        for status, what in route.answers.items()}}
    if route.merchant:
        op["security"] = [{"merchantToken": []}]
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"enum": ["stripe", "paypal"]} if name == "provider"
               else {"type": "string"}} for name in _path_names(route.path)]
    params += [{"name": name, "in": "query", "schema": schema}
               for name, schema in route.query.items()]
    params += [{"name": name, "in": "header", "description": text, "schema": {"type": "string"}}
               for name, text in route.headers.items()]
    if params:
        op["parameters"] = params
    if route.body:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(route.body)}}}
    return op


def _answer(status: int, what: str | dict[str, str | None]) -> dict[str, Any]:
    media = {JSON: what} if isinstance(what, str) else what
    return {"description": _DESCRIPTIONS.get(status, "see the summary"),
            "content": {kind: {"schema": _ref(name)} if name else {}
                        for kind, name in media.items()}}


_DESCRIPTIONS = {
    200: "success", 201: "recorded", 202: "accepted; a worker carries it out",
    400: "invalid input: error.code names the kind (invalid_json, invalid_request, "
         "invalid_case, review_refused, a webhook's verification code), error.field the field",
    401: "no valid bearer token", 404: "not found (for this merchant)",
    409: "refused: would repeat an open request (error.existing names it), or a refund on a "
         "disputed payment",
    413: "body over the limit", 422: "Idempotency-Key reused with another body",
    429: "too many failed signature checks (Retry-After)",
    502: "the providers could not be read",
    503: "storage or queue unavailable: nothing was changed, retry",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


@cache
def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Payment webhook gateway", "version": "1",
                 "description": "The admin API (bearer token per merchant), the webhook "
                                "endpoints and the health checks."},
        "components": {
            "securitySchemes": {"merchantToken": {"type": "http", "scheme": "bearer",
                                                  "description": "the merchant's admin_token"}},
            "schemas": components(),
        },
        "paths": paths,
    }
