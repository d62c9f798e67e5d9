"""Stripe events into the ledger: each handler applies the snapshot its event carries."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ledger.models import Dispute, DisputeState, Invoice, Payment, Refund, Subscription
from ledger.objects import apply_snapshot, ensure_customer, find
from workers.actions import confirm_refund
from workers.context import (
    EventContext,
    ObjectNotYetKnown,
    applied_or_stale,
    dig,
    timestamp,
    whole,
)

# State ranks break ties between events of the same second: a status never moves backwards.
SUBSCRIPTION_RANK = {"incomplete": 0, "trialing": 1, "active": 2, "past_due": 3, "unpaid": 4,
                     "paused": 4, "canceled": 9, "incomplete_expired": 9}
INVOICE_RANK = {"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}
CHARGE_RANK = {"pending": 0, "failed": 1, "succeeded": 1}
REFUND_RANK = {"pending": 0, "requires_action": 0, "succeeded": 1, "failed": 2, "canceled": 2}
DISPUTE_RANK = {"warning_needs_response": 0, "needs_response": 0, "warning_under_review": 1,
                "under_review": 1, "warning_closed": 2, "won": 2, "lost": 2}


def _object(ctx: EventContext) -> dict[str, Any]:
    obj: dict[str, Any] = ctx.payload["data"]["object"]
    return obj


def _customer(session: Session, ctx: EventContext, customer_id: Any) -> str | None:
    """Record the object's customer, with the e-mail and name an invoice copies from the
    customer (``customer_email``, ``customer_name``): what support finds an account by. Not a
    charge's billing details or receipt e-mail, which whoever pays types in: support searching
    someone's e-mail must not be led to a payer who typed it."""
    if not isinstance(customer_id, str):
        return None
    obj = _object(ctx)
    email, name = obj.get("customer_email"), obj.get("customer_name")
    ensure_customer(session, ctx.ref(customer_id), ctx.version(), ctx.livemode,
                    email=email if isinstance(email, str) else None,
                    name=name if isinstance(name, str) else None)
    return customer_id


def subscription(session: Session, ctx: EventContext) -> str | None:
    sub = _object(ctx)
    item = dig(sub, "items", "data", 0) or {}
    price = item.get("price") or sub.get("plan") or {}
    quantity = item.get("quantity") or 1
    unit = price.get("unit_amount", price.get("amount"))
    values = {
        "customer_ref": _customer(session, ctx, sub.get("customer")),
        "plan_ref": price.get("id"),
        "status": sub["status"],
        "amount": unit * quantity if isinstance(unit, int) else None,
        "currency": (price.get("currency") or sub.get("currency") or "").upper() or None,
        "interval": dig(price, "recurring", "interval") or price.get("interval"),
        "interval_count": dig(price, "recurring", "interval_count") or price.get("interval_count"),
        "current_period_start": timestamp(sub.get("current_period_start",
                                                  item.get("current_period_start"))),
        "current_period_end": timestamp(sub.get("current_period_end",
                                                item.get("current_period_end"))),
        "cancel_at_period_end": bool(sub.get("cancel_at_period_end")),
        "canceled_at": timestamp(sub.get("canceled_at")),
        "ended_at": timestamp(sub.get("ended_at")),
        "started_at": timestamp(sub.get("start_date")),
    }
    version = ctx.version(SUBSCRIPTION_RANK.get(sub["status"], 0))
    return applied_or_stale(apply_snapshot(session, Subscription, ctx.ref(sub["id"]), version,
                                   ctx.livemode, values))


def invoice(session: Session, ctx: EventContext) -> str | None:
    inv = _object(ctx)
    if not inv.get("id"):
        return upcoming_invoice(session, ctx)
    values = {
        "customer_ref": _customer(session, ctx, inv.get("customer")),
        "subscription_ref": _invoice_subscription(inv),
        "number": inv.get("number"),
        "status": inv["status"],
        "billing_reason": inv.get("billing_reason"),
        "amount_due": inv.get("amount_due") or 0,
        "amount_paid": inv.get("amount_paid") or 0,
        "currency": inv["currency"].upper(),
        "due_at": timestamp(inv.get("due_date")),
        "paid_at": timestamp(dig(inv, "status_transitions", "paid_at")),
        "period_start": timestamp(inv.get("period_start")),
        "period_end": timestamp(inv.get("period_end")),
        "attempt_count": inv.get("attempt_count") or 0,
    }
    version = ctx.version(INVOICE_RANK.get(inv["status"], 0))
    return applied_or_stale(apply_snapshot(session, Invoice, ctx.ref(inv["id"]), version,
                                           ctx.livemode, values))


def upcoming_invoice(session: Session, ctx: EventContext) -> str | None:
    """An upcoming invoice has no id yet: it tells us when the subscription bills next."""
    inv = _object(ctx)
    sub_id = _invoice_subscription(inv)
    sub = find(session, Subscription, ctx.ref(sub_id)) if sub_id else None
    if sub is None:
        # The notice is about a subscription whose own event has not arrived yet: wait for it
        # (retried with backoff) rather than drop a fact an orderly delivery would have kept.
        raise ObjectNotYetKnown(f"subscription {sub_id} is not in the ledger yet")
    when = timestamp(inv.get("next_payment_attempt")) or timestamp(inv.get("period_end"))
    if when is not None and (sub.next_billing_at is None or when > sub.next_billing_at):
        sub.next_billing_at = when
    return None


def _invoice_subscription(inv: dict[str, Any]) -> str | None:
    sub = inv.get("subscription") or dig(inv, "parent", "subscription_details", "subscription")
    return sub if isinstance(sub, str) else dig(sub, "id")


def charge(session: Session, ctx: EventContext) -> str | None:
    ch = _object(ctx)
    refunded = whole(ch.get("amount_refunded") or 0, "charge amount_refunded")
    values = {
        "kind": "charge",
        "customer_ref": _customer(session, ctx, ch.get("customer")),
        "subscription_ref": dig(ch, "metadata", "subscription"),
        "invoice_ref": ch.get("invoice") if isinstance(ch.get("invoice"), str) else None,
        "payment_intent_ref": ch.get("payment_intent"),
        "status": ch["status"],
        "amount": ch["amount"],
        "amount_refunded": refunded,
        "currency": ch["currency"].upper(),
        "payment_method": (dig(ch, "metadata", "payment_method")
                           or dig(ch, "payment_method_details", "type")),
        "paid_at": timestamp(ch.get("created")) if ch["status"] == "succeeded" else None,
    }
    # amount_refunded only grows, so it orders two snapshots of the same second.
    version = ctx.version(CHARGE_RANK.get(ch["status"], 0) * 10**15 + refunded)
    applied = apply_snapshot(session, Payment, ctx.ref(ch["id"]), version, ctx.livemode, values)
    for embedded in dig(ch, "refunds", "data") or []:
        _apply_refund(session, ctx, embedded)
    return applied_or_stale(applied)


def refund(session: Session, ctx: EventContext) -> str | None:
    return applied_or_stale(_apply_refund(session, ctx, _object(ctx)))


def refund_action_id(rf: Any) -> Any:
    """The action id a refund carries: ours carry it in their metadata. Unchecked."""
    return dig(rf, "metadata", "action_id")


def _apply_refund(session: Session, ctx: EventContext, rf: dict[str, Any]) -> bool:
    values = {
        "payment_ref": rf.get("charge"),
        "kind": "refund",
        "status": rf["status"],
        "amount": rf["amount"],
        "currency": rf["currency"].upper(),
        "reason": rf.get("reason"),
        "failure_reason": rf.get("failure_reason"),
        "refunded_at": timestamp(rf.get("created")),
        "action_id": refund_action_id(rf),
    }
    version = ctx.version(REFUND_RANK.get(rf["status"], 0))
    applied = apply_snapshot(session, Refund, ctx.ref(rf["id"]), version, ctx.livemode, values)
    if applied:
        refund = find(session, Refund, ctx.ref(rf["id"]))
        assert refund is not None  # apply_snapshot has just written it in this session
        confirm_refund(session, refund)
    return applied


# A dispute's status as where it stands: won (the payment stands), lost (the funds went back),
# open otherwise (inquiries included: the money may still go back through it).
DISPUTE_STATE = {"won": DisputeState.WON, "warning_closed": DisputeState.WON,
                 "prevented": DisputeState.WON, "lost": DisputeState.LOST}


def dispute(session: Session, ctx: EventContext) -> str | None:
    """charge.dispute.created/updated/closed/funds_withdrawn/funds_reinstated: the dispute's
    state on its charge, which holds back every refund while open or once lost."""
    dp = _object(ctx)
    values = {
        "payment_ref": dp.get("charge"),
        "status": dp["status"],
        "state": DISPUTE_STATE.get(dp["status"], DisputeState.OPEN),
        "reason": dp.get("reason"),
        "amount": dp["amount"],
        "currency": dp["currency"].upper(),
        "opened_at": timestamp(dp.get("created")),
    }
    version = ctx.version(DISPUTE_RANK.get(dp["status"], 0))
    return applied_or_stale(apply_snapshot(session, Dispute, ctx.ref(dp["id"]), version,
                                           ctx.livemode, values))
