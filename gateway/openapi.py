"""The admin API's OpenAPI 3.1 document, built from the same schemas that validate requests."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from gateway.validation import schemas

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                   "field": {"type": "string", "description": "dotted path of the bad field"}}}}}


def _components() -> dict[str, Any]:
    """Request schemas with their shared definitions moved to components/schemas."""
    out: dict[str, Any] = {"Error": _ERROR}
    for name, schema in schemas().items():
        body = {k: v for k, v in schema.items() if k not in ("$schema", "$defs")}
        out[name] = body
        out.update(schema["$defs"])
    text = json.dumps(out).replace('"#/$defs/', '"#/components/schemas/')
    return dict(json.loads(text))


def _op(summary: str, *, body: str | None = None, ok: int = 200,
        params: list[str] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary, "security": [{"merchantToken": []}],
        "responses": {str(ok): {"description": "success", "content": {"application/json": {}}},
                      "400": _error("invalid input; error.field names the field"),
                      "401": _error("no valid merchant bearer token"),
                      "404": _error("not found for this merchant")},
    }
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True,
                             "schema": {"type": "string"}} for p in params]
    return op


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}


@cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Payment webhook gateway admin API", "version": "1"},
        "components": {
            "securitySchemes": {"merchantToken": {"type": "http", "scheme": "bearer",
                                                  "description": "the merchant's admin_token"}},
            "schemas": _components(),
        },
        "paths": {
            "/v1/decisions/preview": {"post": _op(
                "Decide a Case under the merchant's pack without recording it")},
            "/v1/decisions/{decision_id}": {"get": _op(
                "A recorded Decision with its case, cited reasons and actions",
                params=["decision_id"])},
            "/v1/refund-requests": {"post": _op(
                "File a customer's refund claim; decided and carried out by a worker",
                body="RefundRequest", ok=202)},
            "/v1/refund-requests/{request_id}": {"get": _op(
                "A refund request, its Decision and the state of its actions",
                params=["request_id"])},
            "/v1/cancellations": {"post": _op(
                "File a cancellation (and optionally a money-back claim beside it)",
                body="CancellationRequest", ok=202)},
            "/v1/cancellations/{request_id}": {"get": _op(
                "A cancellation, its Decision and the state of its actions",
                params=["request_id"])},
            "/v1/uptime-claims": {"post": _op(
                "File an uptime claim; a service credit follows the merchant's schedule",
                body="UptimeClaim", ok=202)},
            "/v1/uptime-claims/{request_id}": {"get": _op(
                "An uptime claim, its Decision and the credit granted",
                params=["request_id"])},
            "/v1/reports/reconciliation": {"post": _op(
                "Start reconciling the ledger against the providers' records for a period "
                "(a worker builds it; the answer's location fetches it)",
                body="ReconciliationRequest", ok=202)},
            "/v1/reports/reconciliation/{report_id}": {"get": {
                **_op("The report once ready (202 while it is being built; 502 if the "
                      "providers could not be read)", params=["report_id"]),
                "parameters": [
                    {"name": "report_id", "in": "path", "required": True,
                     "schema": {"type": "string"}},
                    {"name": "format", "in": "query",
                     "schema": {"enum": ["json", "csv", "html"], "default": "json"}}]}},
            "/v1/events/{event_id}": {"get": _op(
                "An inbox event as received (what report rows link to)", params=["event_id"])},
            "/v1/usage": {"post": _op("Report an account's usage", body="UsageReport", ok=201)},
            "/v1/reviews": {"get": _op("Decisions waiting for a person")},
            "/v1/reviews/{decision_id}": {"post": _op(
                "Approve (refund and/or credit) or deny a decision in review",
                body="ReviewAnswer", params=["decision_id"])},
        },
    }
