"""Flows that events set in motion once the ledger holds them: decisions made without a request.

A reaction runs inside the event's own transaction (so it happens exactly once per event) and
returns the ids of the decisions it recorded; their actions are enqueued after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.models import Payment, Subscription
from service.bootstrap import Container
from workers.cases import account_part, iso, money
from workers.context import EventContext
from workers.decide import decide_in

Reaction = Callable[[Session, Container, EventContext, int, datetime], list[str]]
_ENDED = ("CANCELLED", "EXPIRED", "canceled", "incomplete_expired")


def paypal_sale_overpayment(session: Session, container: Container, ctx: EventContext,
                            inbox_id: int, now: datetime) -> list[str]:
    """A sale for a subscription that had already ended is an overpayment (003 §1.7b): the
    classic PayPal subscription that was never cancelled on PayPal's side."""
    resource = ctx.payload["resource"]
    if resource.get("sale_id") or not resource.get("billing_agreement_id"):
        return []
    sale = session.scalars(select(Payment).where(
        Payment.merchant == ctx.merchant, Payment.provider_id == resource["id"])).first()
    sub = session.scalars(select(Subscription).where(
        Subscription.merchant == ctx.merchant,
        Subscription.provider_id == resource["billing_agreement_id"])).first()
    if sale is None or sub is None or sub.status not in _ENDED or sale.paid_at is None:
        return []
    if sub.canceled_at is not None and sale.paid_at <= sub.canceled_at:
        return []
    account = sub.customer_ref or sub.provider_id
    case = {
        "request": {"kind": "overpayment", "received_at": iso(now), "identity": {},
                    "reason": f"payment received for subscription {sub.provider_id}, "
                              f"which ended {iso(sub.canceled_at) or 'earlier'}"},
        "account": account_part(session, ctx.merchant, account, sale.currency),
        "payment": {"amount": money(sale.amount, sale.currency), "received_at": iso(sale.paid_at),
                    "overpaid_amount": money(sale.amount, sale.currency), "provider": "paypal",
                    "via_subscription": True},
    }
    row = decide_in(session, container, ctx.merchant, case, payment=sale, account_ref=account,
                    now=now, source_event_id=inbox_id)
    return [row.id]


REACTIONS: dict[tuple[str, str], tuple[Reaction, ...]] = {
    ("paypal", "PAYMENT.SALE.COMPLETED"): (paypal_sale_overpayment,),
}


def reactions_for(provider: str, event_type: str) -> tuple[Reaction, ...]:
    return REACTIONS.get((provider, event_type), ())
