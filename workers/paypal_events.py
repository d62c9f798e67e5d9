"""PayPal events into the ledger: subscriptions, v1 sales, v2 captures and their refunds."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.envelope import parse_time
from ledger.bounds import OutOfRange
from ledger.models import Dispute, DisputeState, Payment, Refund, Subscription
from ledger.objects import apply_snapshot, ensure_customer, find
from ledger.refundable import GONE
from policy.money import from_decimal_string
from workers.actions import confirm_refund
from workers.context import EventContext, applied_or_stale, dig

SUBSCRIPTION_RANK = {"APPROVAL_PENDING": 0, "APPROVED": 1, "ACTIVE": 2, "SUSPENDED": 3,
                     "CANCELLED": 9, "EXPIRED": 9}
SALE_RANK = {"pending": 0, "completed": 1, "denied": 1, "partially_refunded": 2, "refunded": 3,
             "reversed": 3}
CAPTURE_RANK = {"PENDING": 0, "COMPLETED": 1, "DECLINED": 1, "FAILED": 1,
                "PARTIALLY_REFUNDED": 2, "REFUNDED": 3}
DISPUTE_RANK = {"OPEN": 0, "WAITING_FOR_BUYER_RESPONSE": 1, "WAITING_FOR_SELLER_RESPONSE": 1,
                "UNDER_REVIEW": 2, "OTHER": 2, "RESOLVED": 3}
# How a resolved dispute ended, as where it stands; an unresolved one is open.
DISPUTE_OUTCOME = {"RESOLVED_SELLER_FAVOUR": DisputeState.WON,
                   "CANCELED_BY_BUYER": DisputeState.WON, "DENIED": DisputeState.WON,
                   "RESOLVED_BUYER_FAVOUR": DisputeState.LOST,
                   "RESOLVED_WITH_PAYOUT": DisputeState.LOST, "ACCEPTED": DisputeState.LOST}
REFUND_RANK = {"PENDING": 0, "pending": 0, "COMPLETED": 1, "completed": 1, "FAILED": 2,
               "failed": 2, "CANCELLED": 2, "cancelled": 2}


def _resource(ctx: EventContext) -> dict[str, Any]:
    resource: dict[str, Any] = ctx.payload["resource"]
    return resource


def _when(ctx: EventContext, resource: dict[str, Any]) -> Any:
    """The resource's own last-change time orders snapshots; the event time if it has none."""
    return parse_time(resource.get("update_time")) or ctx.created_at


def _money(amount: dict[str, Any] | None) -> tuple[int, str] | None:
    """PayPal's ``{"total"|"value": "12.34", "currency"|"currency_code": "USD"}``."""
    if not isinstance(amount, dict):
        return None
    value = amount.get("value", amount.get("total"))
    currency = amount.get("currency_code", amount.get("currency"))
    if value is None or currency is None:
        return None  # no amount at all: the handler says so, and the event is retried
    if not isinstance(value, str) or not isinstance(currency, str):
        raise OutOfRange(f"amount {value!r:.40} {currency!r:.20}: PayPal sends text")
    if len(value) > 32:  # PayPal's own limit on an amount's text
        raise OutOfRange(f"amount {value[:40]!r}...: longer than PayPal sends")
    try:
        return from_decimal_string("paypal", value, currency).amount, currency.upper()
    except (ArithmeticError, ValueError) as exc:  # "NaN", "1e99999", "12.345", "ZZ"
        raise OutOfRange(f"amount {value!r} {currency!r}: {exc}") from None


def subscription(session: Session, ctx: EventContext) -> str | None:
    sub = _resource(ctx)
    payer = sub.get("subscriber") or {}
    customer_ref = payer.get("payer_id") or payer.get("email_address")
    if customer_ref:
        name = " ".join(filter(None, [dig(payer, "name", "given_name"),
                                      dig(payer, "name", "surname")])) or None
        ensure_customer(session, ctx.ref(customer_ref), ctx.version(), ctx.livemode,
                        email=payer.get("email_address"), name=name)
    last = _money(dig(sub, "billing_info", "last_payment", "amount"))
    values = {
        "customer_ref": customer_ref,
        "plan_ref": sub.get("plan_id"),
        "status": sub["status"],
        "amount": last[0] if last else None,
        "currency": last[1] if last else None,
        "next_billing_at": parse_time(dig(sub, "billing_info", "next_billing_time")),
        "failed_payments": dig(sub, "billing_info", "failed_payments_count") or 0,
        "started_at": parse_time(sub.get("start_time")),
        # When it ended: PayPal's status time, or (a payload without one) the event's, by which
        # it had ended; a sale paid after it is an overpayment (workers/reactions).
        "canceled_at": (parse_time(sub.get("status_update_time")) or ctx.created_at
                        if sub["status"] in ("CANCELLED", "EXPIRED") else None),
    }
    version = ctx.version(SUBSCRIPTION_RANK.get(sub["status"], 0), _when(ctx, sub))
    return applied_or_stale(apply_snapshot(session, Subscription, ctx.ref(sub["id"]), version,
                                   ctx.livemode, values))


def sale(session: Session, ctx: EventContext) -> str | None:
    """A v1 sale (subscription payments); a REVERSED event may carry a refund-like resource."""
    res = _resource(ctx)
    if res.get("sale_id"):
        return _refund(session, ctx, res, res["sale_id"], "reversal")
    return _payment(session, ctx, res, "sale", res.get("state", ""), SALE_RANK,
                    subscription_ref=res.get("billing_agreement_id"))


def capture(session: Session, ctx: EventContext) -> str | None:
    res = _resource(ctx)
    up = _up_link(res, "/captures/")
    if up:  # PAYMENT.CAPTURE.REVERSED carries the reversal, linked up to its capture
        return _refund(session, ctx, res, up, "reversal")
    custom = res.get("custom_id")  # the merchant's own field; a subscription id only if shaped so
    return _payment(session, ctx, res, "capture", res.get("status", ""), CAPTURE_RANK,
                    subscription_ref=custom if isinstance(custom, str) and custom.startswith("I-")
                    else None)


def sale_refund(session: Session, ctx: EventContext) -> str | None:
    res = _resource(ctx)
    return _refund(session, ctx, res, res.get("sale_id"), "refund")


def capture_refund(session: Session, ctx: EventContext) -> str | None:
    res = _resource(ctx)
    return _refund(session, ctx, res, _up_link(res, "/captures/"), "refund")


def _payment(session: Session, ctx: EventContext, res: dict[str, Any], kind: str, status: str,
             ranks: dict[str, int], subscription_ref: str | None) -> str | None:
    money = _money(res.get("amount"))
    if money is None:
        raise ValueError(f"{kind} {res.get('id')} has no amount")
    values = {
        "kind": kind,
        "subscription_ref": subscription_ref,
        "status": status,
        "amount": money[0],
        "currency": money[1],
        "payment_method": "paypal",
        "paid_at": parse_time(res.get("create_time")),
    }
    version = ctx.version(ranks.get(status, 0), _when(ctx, res))
    return applied_or_stale(apply_snapshot(session, Payment, ctx.ref(res["id"]), version,
                                           ctx.livemode, values))


def refund_action_id(res: dict[str, Any]) -> Any:
    """The action id a refund carries: ours carry it in custom_id (v2 captures) or
    invoice_number (v1 sales). Whatever the body holds there, unchecked."""
    return res.get("custom_id") or res.get("invoice_number")


def _refund(session: Session, ctx: EventContext, res: dict[str, Any], payment_ref: str | None,
            kind: str) -> str | None:
    money = _money(res.get("amount"))
    if money is None:
        raise ValueError(f"refund {res.get('id')} has no amount")
    status = res.get("status") or res.get("state") or "completed"
    values = {
        "payment_ref": payment_ref,
        "kind": kind,
        "status": status.lower(),
        "amount": abs(money[0]),  # a v1 sale reversal reports its total as negative
        "currency": money[1],
        "reason": res.get("reason") or res.get("note_to_payer"),
        # Why a refund failed: PayPal's status_details.reason (also given for a pending one,
        # which is not a failure and is not kept).
        "failure_reason": (dig(res, "status_details", "reason")
                           if status.lower() in GONE else None),
        "refunded_at": parse_time(res.get("create_time")),
        "action_id": refund_action_id(res),
    }
    version = ctx.version(REFUND_RANK.get(status, 0), _when(ctx, res))
    applied = apply_snapshot(session, Refund, ctx.ref(res["id"]), version, ctx.livemode, values)
    if applied:
        refund = find(session, Refund, ctx.ref(res["id"]))
        assert refund is not None  # apply_snapshot has just written it in this session
        confirm_refund(session, refund)
    if kind == "reversal":  # a chargeback already returned the funds: a dispute lost
        apply_snapshot(session, Dispute, ctx.ref(res["id"]), version, ctx.livemode, {
            "payment_ref": payment_ref, "status": "REVERSED", "state": DisputeState.LOST,
            "reason": values["reason"], "amount": values["amount"], "currency": money[1],
            "opened_at": values["refunded_at"]})
    return applied_or_stale(applied)


def dispute(session: Session, ctx: EventContext) -> str | None:
    """CUSTOMER.DISPUTE.CREATED/UPDATED/RESOLVED: a dispute on each sale or capture it names
    (``disputed_transactions``), open until resolved, then won or lost by its outcome."""
    res = _resource(ctx)
    status = str(res.get("status") or "OPEN")
    outcome = dig(res, "dispute_outcome", "outcome_code")
    state = (DISPUTE_OUTCOME.get(str(outcome), DisputeState.LOST) if status == "RESOLVED"
             else DisputeState.OPEN)
    money = _money(res.get("dispute_amount"))
    version = ctx.version(DISPUTE_RANK.get(status, 0), _when(ctx, res))
    applied = False
    for i, txn in enumerate(res.get("disputed_transactions") or []):
        payment_ref = dig(txn, "seller_transaction_id")
        if not isinstance(payment_ref, str):
            continue
        ref = ctx.ref(res["dispute_id"] if i == 0 else f"{res['dispute_id']}:{payment_ref}")
        applied |= apply_snapshot(session, Dispute, ref, version, ctx.livemode, {
            "payment_ref": payment_ref, "status": status, "state": state,
            "reason": res.get("reason"), "amount": money[0] if money else 0,
            "currency": money[1] if money else "USD",
            "opened_at": parse_time(res.get("create_time"))})
    return applied_or_stale(applied)


def _up_link(res: dict[str, Any], marker: str) -> str | None:
    for link in res.get("links") or []:
        href = link.get("href", "") if isinstance(link, dict) else ""
        if link.get("rel") == "up" and marker in href:
            return href.rstrip("/").rsplit("/", 1)[-1]
    return None
