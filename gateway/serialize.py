"""Ledger rows as the admin API's JSON."""

from __future__ import annotations

from typing import Any

from ledger.models import Action, Decision, SupportRequest


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def action_json(a: Action) -> dict[str, Any]:
    return {"id": a.id, "kind": a.kind, "status": a.status, "provider": a.provider,
            "payment": a.payment_ref, "account": a.account_ref,
            "amount": {"amount": a.amount, "currency": a.currency}, "clause": a.clause,
            "provider_ref": a.provider_ref, "attempts": a.attempts,
            "failure_code": a.failure_code, "error": a.last_error}


def decision_json(d: Decision, actions: list[Action]) -> dict[str, Any]:
    return {"id": d.id, "status": d.status, "status_reason": d.status_reason,
            "account": d.account_ref, "evaluated_at": _iso(d.evaluated_at),
            "source_request": d.source_request_id, "source_event": d.source_event_id,
            "reviewed_by": d.reviewed_by, "reviewed_at": _iso(d.reviewed_at),
            "review_note": d.review_note, "decision": d.decision, "case": d.case,
            "actions": [action_json(a) for a in actions]}


def request_json(r: SupportRequest, decision: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": r.id, "kind": r.kind, "status": r.status, "account": r.account_ref,
            "payment": r.payment_ref, "filed_by": r.filed_by, "created_at": _iso(r.created_at),
            "decided_at": _iso(r.decided_at), "error": r.error, "request": r.body,
            "decision": decision}
