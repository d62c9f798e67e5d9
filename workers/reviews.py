"""The review queue: decisions the policy leaves to a person, and what that person decided."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger import audit
from ledger.models import (
    Action,
    ActionStatus,
    Decision,
    DecisionStatus,
    Payment,
    Refund,
    SupportRequest,
)
from policy.money import Money
from service.bootstrap import Container
from service.errors import GatewayError
from workers.actions import plan_actions
from workers.cases import payment_by_ref
from workers.decide import enqueue_actions_of


class ReviewError(GatewayError):
    """A review answer that cannot be applied; ``field`` names what is wrong."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def pending(session: Session, merchant: str, limit: int = 100) -> list[Decision]:
    return list(session.scalars(select(Decision).where(
        Decision.merchant == merchant, Decision.status == DecisionStatus.NEEDS_REVIEW)
        .order_by(Decision.evaluated_at).limit(limit)))


def answer(container: Container, merchant: str, decision_id: str, body: dict[str, Any],
           now: datetime | None = None) -> str:
    """Approve (with a refund and/or credit) or deny a decision in review; returns its status."""
    now = now or datetime.now(timezone.utc)
    with container.sessions() as session, session.begin():
        decision = session.get(Decision, decision_id, with_for_update=True)
        if decision is None or decision.merchant != merchant:
            raise ReviewError(404, "decision", f"no decision {decision_id} for {merchant}")
        if decision.status != DecisionStatus.NEEDS_REVIEW:
            raise ReviewError(409, "decision", f"decision is {decision.status}, not in review")
        if body["approve"]:
            _approve(session, decision, body, now)
        else:
            decision.status = DecisionStatus.CLOSED
        decision.reviewed_by, decision.reviewed_at = body["reviewer"], now
        decision.review_note = body.get("note")
        audit.record(session, merchant=merchant, actor=body["reviewer"], at=now,
                     action="review.approved" if body["approve"] else "review.denied",
                     subject=decision_id, refund=body.get("refund"), credit=body.get("credit"),
                     note=body.get("note"))
        status = decision.status
    enqueue_actions_of(container, decision_id)
    return status


def _approve(session: Session, decision: Decision, body: dict[str, Any], now: datetime) -> None:
    refund = _money(body.get("refund"))
    credit = _money(body.get("credit"))
    if refund is None and credit is None:
        raise ReviewError(400, "refund", "an approval needs a refund or a credit amount")
    payment = _payment_of(session, decision) if refund is not None else None
    if refund is not None:
        if payment is None:
            raise ReviewError(400, "refund", "this decision concerns no payment to refund")
        _check_refundable(session, payment, refund)
    reason = f"approved in review by {body['reviewer']}"
    actions = plan_actions(session, decision, refund=refund, credit=credit, payment=payment,
                           clause="review", reason=reason, now=now)
    decision.status = DecisionStatus.RECORDED if actions else DecisionStatus.CLOSED


def _money(value: dict[str, Any] | None) -> Money | None:
    return None if value is None else Money(value["amount"], value["currency"])


def _payment_of(session: Session, decision: Decision) -> Payment | None:
    """The payment the decision is about: its request's, or the one a failed refund targeted."""
    ref = decision.payment_ref
    if ref is None and decision.source_request_id:
        ref = session.scalar(select(SupportRequest.payment_ref).where(
            SupportRequest.id == decision.source_request_id))
    ref = ref or session.scalar(select(Action.payment_ref).where(
        Action.decision_id == decision.id, Action.kind == "refund"))
    return None if ref is None else payment_by_ref(session, decision.merchant, ref)


def _check_refundable(session: Session, payment: Payment, refund: Money) -> None:
    """Never more than what is left of the payment after refunds already made or under way."""
    if refund.currency != payment.currency:
        raise ReviewError(400, "refund.currency", f"the payment is in {payment.currency}")
    refunded = session.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(
        Refund.merchant == payment.merchant, Refund.payment_ref == payment.provider_id,
        Refund.status.notin_(("failed", "canceled", "cancelled"))))
    in_flight = session.scalar(select(func.coalesce(func.sum(Action.amount), 0)).where(
        Action.kind == "refund", Action.payment_ref == payment.provider_id,
        Action.status.in_((ActionStatus.PENDING, ActionStatus.EXECUTING))))
    left = payment.amount - int(refunded or 0) - int(in_flight or 0)
    if refund.amount > left:
        raise ReviewError(400, "refund.amount",
                          f"at most {Money(max(left, 0), payment.currency)} is left to refund")
