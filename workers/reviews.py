"""The review queue: decisions the policy leaves to a person, and what that person decided."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ledger import audit, refundable
from ledger.models import Action, Decision, DecisionStatus, Payment, SupportRequest
from policy.money import Money, is_payable
from service.bootstrap import Container
from service.config import Merchant
from service.errors import GatewayError
from workers.actions import ActionRefused, plan_actions
from workers.cases import payment_by_ref
from workers.decide import enqueue_actions_of


class ReviewError(GatewayError):
    """A review answer that cannot be applied; ``field`` names what is wrong."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def pending(session: Session, merchant: str, limit: int = 100,
            after: Decision | None = None) -> list[Decision]:
    """Decisions waiting for a person, oldest first (of two decided in the same instant, by
    id), at most ``limit``; those after ``after`` in that order (the previous page's last)."""
    query = select(Decision).where(Decision.merchant == merchant,
                                   Decision.status == DecisionStatus.NEEDS_REVIEW)
    if after is not None:
        query = query.where(or_(Decision.evaluated_at > after.evaluated_at,
                                and_(Decision.evaluated_at == after.evaluated_at,
                                     Decision.id > after.id)))
    return list(session.scalars(query.order_by(Decision.evaluated_at, Decision.id).limit(limit)))


def answer_in(session: Session, merchant: Merchant, decision_id: str, body: dict[str, Any],
              now: datetime) -> str:
    """Approve (with a refund and/or credit) or deny a decision in review, in the caller's
    transaction; returns its status. The caller enqueues the new actions once committed.

    The payment's row is locked before the decision's (the order every path that counts a
    payment's refunds takes), so an approval and a new decision on one payment never both
    count what is left to refund of it."""
    found = session.get(Decision, decision_id)
    if found is None or found.merchant != merchant.name:
        raise ReviewError(404, "decision", f"no decision {decision_id} for {merchant.name}")
    payment = payment_of(session, found)
    if payment is not None:
        payment = refundable.lock(session, payment)
    decision = session.get(Decision, decision_id, with_for_update=True, populate_existing=True)
    assert decision is not None
    if decision.status != DecisionStatus.NEEDS_REVIEW:
        raise ReviewError(409, "decision", f"decision is {decision.status}, not in review")
    if body["approve"]:
        _approve(session, merchant, decision, payment, body, now)
    else:
        decision.status = DecisionStatus.CLOSED
    decision.reviewed_by, decision.reviewed_at = body["reviewer"], now
    decision.review_note = body.get("note")
    audit.record(session, merchant=merchant.name, actor=body["reviewer"], at=now,
                 action="review.approved" if body["approve"] else "review.denied",
                 subject=decision_id, refund=body.get("refund"), credit=body.get("credit"),
                 note=body.get("note"))
    return decision.status


def answer(container: Container, merchant: str, decision_id: str, body: dict[str, Any],
           now: datetime | None = None) -> str:
    """``answer_in`` in a transaction of its own, then the new actions enqueued."""
    found = container.settings.merchant(merchant)
    if found is None:
        raise ReviewError(404, "merchant", f"no merchant {merchant}")
    with container.sessions() as session, session.begin():
        status = answer_in(session, found, decision_id, body, now or datetime.now(UTC))
    enqueue_actions_of(container, decision_id)
    return status


def _approve(session: Session, merchant: Merchant, decision: Decision, payment: Payment | None,
             body: dict[str, Any], now: datetime) -> None:
    refund = _money(body.get("refund"), "refund")
    credit = _money(body.get("credit"), "credit")
    if refund is None and credit is None:
        raise ReviewError(400, "refund", "an approval needs a refund or a credit amount")
    if refund is not None and payment is None:
        raise ReviewError(400, "refund", "this decision concerns no payment to refund")
    reason = f"approved in review by {body['reviewer']}"
    try:  # the ledger's bound on the refund (the payment is locked: see ``answer_in``)
        actions = plan_actions(session, decision, refund=refund, credit=credit, payment=payment,
                               clause="review", reason=reason, now=now)
    except ActionRefused as refused:
        raise _refused(refused) from None
    if credit is not None:  # a refusal rolls back the actions just planned with the rest
        _check_credit(merchant, decision, payment, credit)
    decision.status = DecisionStatus.RECORDED if actions else DecisionStatus.CLOSED


def _money(value: dict[str, Any] | None, field: str) -> Money | None:
    """A positive amount in a currency money can be paid in, or a ``400`` naming the field."""
    if value is None:
        return None
    if not is_payable(value["currency"]):
        raise ReviewError(400, f"{field}.currency",
                          f"{value['currency']} is not an ISO 4217 currency money is paid in")
    if value["amount"] <= 0:
        raise ReviewError(400, f"{field}.amount", "must be more than zero")
    return Money(value["amount"], value["currency"])


def payment_of(session: Session, decision: Decision) -> Payment | None:
    """The payment the decision is about: its request's, or the one a failed refund targeted."""
    ref = decision.payment_ref
    if ref is None and decision.source_request_id:
        ref = session.scalar(select(SupportRequest.payment_ref).where(
            SupportRequest.id == decision.source_request_id))
    ref = ref or session.scalar(select(Action.payment_ref).where(
        Action.decision_id == decision.id, Action.kind == "refund"))
    return None if ref is None else payment_by_ref(session, decision.merchant, ref)


def _refused(refused: ActionRefused) -> ReviewError:
    """The ledger's refusal as the answer names it: what is left of the payment (400, naming
    the amount or the currency), or a dispute (409)."""
    field = {"currency_mismatch": "refund.currency", "disputed": "refund"}.get(
        refused.code, "refund.amount")
    return ReviewError(409 if refused.code == "disputed" else 400, field, str(refused))


def _check_credit(merchant: Merchant, decision: Decision, payment: Payment | None,
                  credit: Money) -> None:
    """A credit is in the currency of what the decision concerns and at most the merchant's
    share (``review_credit_limit_percent``, 100 by default) of its amount."""
    concerns = _concerned_amount(decision, payment)
    if concerns is None:
        raise ReviewError(400, "credit", "this decision concerns no amount to bound a credit by")
    if credit.currency != concerns.currency:
        raise ReviewError(400, "credit.currency",
                          f"the decision concerns {concerns.currency}, not {credit.currency}")
    limit = concerns.amount * merchant.review_credit_limit_percent // 100
    if credit.amount > limit:
        raise ReviewError(400, "credit.amount",
                          f"at most {Money(limit, concerns.currency)} "
                          f"({merchant.review_credit_limit_percent}% of {concerns}) may be "
                          "credited for this decision")


def _concerned_amount(decision: Decision, payment: Payment | None) -> Money | None:
    """The payment's amount, else the Case's order or overpaid payment, else what was at stake."""
    if payment is not None:
        return Money(payment.amount, payment.currency)
    case = decision.case or {}
    for found in ((case.get("order") or {}).get("amount"),
                  (case.get("payment") or {}).get("amount"),
                  ((decision.decision or {}).get("amounts") or {}).get("at_stake")):
        if isinstance(found, dict) and found.get("amount"):
            return Money(int(found["amount"]), str(found["currency"]))
    return None
