"""The admin API (JSON, bearer token per merchant). Views translate HTTP to calls, nothing more."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from gateway.auth import require_merchant
from gateway.envelope import parse_time
from gateway.responses import error
from policy import CaseError, PolicyError, case_from_json, decision_to_json, evaluate

bp = Blueprint("admin", __name__, url_prefix="/v1")


@bp.post("/decisions/preview")
@require_merchant
def preview_decision() -> tuple[Response, int]:
    """Evaluate a Case under the merchant's pack, without recording or executing anything."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("case"), dict):
        return error(400, "invalid_request", "body must be {\"case\": {...}, \"at\": ISO time?}",
                     field="case")
    at = _at(body.get("at"))
    if at is None:
        return error(400, "invalid_request", "'at' must be an ISO 8601 time", field="at")
    try:
        case = case_from_json(body["case"])
        pack = current_app.extensions["gateway"].policy_pack(g.merchant.policy_pack)
        decision = evaluate(pack, case, at)
    except CaseError as exc:
        field = f"case.{exc.field}" if exc.field else "case"
        return error(400, "invalid_case", exc.message, field=field)
    except PolicyError as exc:
        return error(400, "invalid_case", str(exc), field="case")
    return jsonify(decision_to_json(decision)), 200


def _at(value: Any) -> datetime | None:
    if value is None:
        return datetime.now(timezone.utc)
    return parse_time(value) if isinstance(value, str) else None
