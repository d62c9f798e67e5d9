"""Flows that events set in motion once the ledger holds them: decisions made without a request.

A reaction runs inside the event's own transaction (so it happens exactly once per event) and
returns the ids of the decisions it recorded; their actions are enqueued after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from adapters import ledger_credit
from gateway.envelope import parse_time
from ledger import audit, refundable
from ledger.db import current_rows, reading
from ledger.locks import LockName, serialize, serialize_all
from ledger.models import (
    DecisionStatus,
    Invoice,
    Payment,
    Subscription,
    SupportRequest,
)
from ledger.objects import Ref, find, peek, peek_all, transaction_memo
from policy import PolicyError
from policy.timing import DAY, add_months, months_started
from service.bootstrap import Container
from workers.cases import (
    MissingFacts,
    account_part,
    cancellation_case,
    iso,
    money,
    payment_by_ref,
    position_part,
    subscription_by_ref,
)
from workers.context import EventContext, dig
from workers.credits import (
    paypal_payment_takes_credit,
    stripe_balance_applied,
    stripe_balance_returned,
)
from workers.decide import decide_in, overpayment_decided
from workers.notices import confirm_cancellation

Reaction = Callable[[Session, Container, EventContext, int, datetime], list[str]]
_ENDED = ("CANCELLED", "EXPIRED", "canceled", "incomplete_expired")


def paypal_sale_overpayment(session: Session, container: Container, ctx: EventContext,
                            inbox_id: int, now: datetime) -> list[str]:
    """A sale for a subscription that had already ended is an overpayment (003 §1.7b): the
    classic PayPal subscription that was never cancelled on PayPal's side."""
    resource = ctx.payload["resource"]
    if resource.get("sale_id") or not resource.get("billing_agreement_id"):
        return []
    sale = payment_by_ref(session, ctx.merchant, resource["id"])
    # Locked: a cancellation applied at the same moment either commits first (and this sees
    # the subscription ended) or waits for this commit (and finds the sale): decided once.
    sub = find(session, Subscription, ctx.ref(resource["billing_agreement_id"]))
    return _overpaid_sale(session, container, ctx.merchant, sub, sale, inbox_id, now)


def paypal_sales_after_the_end(session: Session, container: Container, ctx: EventContext,
                               inbox_id: int, now: datetime) -> list[str]:
    """The sales of a subscription that ended before them, delivered before its cancellation:
    whichever of the sale and the cancellation is applied second decides the overpayment."""
    sub = subscription_by_ref(session, ctx.merchant, ctx.payload["resource"]["id"])
    if sub is None or sub.status not in _ENDED:
        return []
    sales = sorted(current_rows(session, Payment, merchant=ctx.merchant, kind="sale",
                                subscription_ref=sub.provider_id),
                   key=lambda sale: sale.provider_id)
    return [d for sale in sales
            for d in _overpaid_sale(session, container, ctx.merchant, sub, sale, inbox_id, now)]


def paypal_period_paid_twice(session: Session, container: Container, ctx: EventContext,
                            inbox_id: int, now: datetime) -> list[str]:
    """A second payment for a billing period already paid (a manual payment on the billing
    agreement beside the automatic one, say) is an overpayment (003 §1.7b-d).

    Run for a subscription's sales and for the subscription itself, whichever arrives last: the
    periods need the subscription's start. Sales of one subscription are applied by the workers
    of different partitions, so every run takes the subscription's lock first (see
    ``stripe_overpaid_invoice``); each duplicate is decided once."""
    resource = ctx.payload["resource"]
    lock = _period_lock(ctx.merchant, ctx.event_type, ctx.payload)
    if lock is None:
        return []
    serialize(session, *lock)
    sub_ref = lock[-1]
    sub = peek(session, Subscription, ctx.ref(sub_ref))
    if sub is None or sub.started_at is None:
        return []
    sale_ref = resource["id"] if ctx.event_type.startswith("PAYMENT.SALE.") else None
    if not _may_repeat(session, ctx.merchant, sub, sale_ref):
        return []  # the common case, told without flushing the batch's writes (see below)
    decided: list[str] = []
    for sale, first, period in _repeated_in_period(session, ctx.merchant, sub):
        if overpayment_decided(session, ctx.merchant, sale.provider_id):
            continue
        account = sub.customer_ref or sub.provider_id
        case = _overpayment_case(
            session, ctx.merchant, account, sale, sale.amount, now,
            f"second payment for the billing period of subscription {sub.provider_id} from "
            f"{iso(period)}, which sale {first.provider_id} had already paid",
            via_subscription=True)
        row = decide_in(session, container, ctx.merchant, case, payment=sale,
                        account_ref=account, now=now, source_event_id=inbox_id)
        decided.append(row.id)
    return decided


_PAID_SALE = ("completed", "partially_refunded")


def _may_repeat(session: Session, merchant: str, sub: Subscription, sale_ref: str | None
                ) -> bool:
    """Whether ``sub`` may hold a repeated payment: another sale in the period of the sale
    ``sale_ref`` (its own event), or at least two sales at all (the subscription's event).

    A superset of what ``_repeated_in_period`` finds, asked without the flush its exact query
    needs (this event's own sale is usually unflushed, and a flush per event undid the batch's
    grouped writes): rows already written, plus those this transaction holds, any status."""
    sales = _sales_of(session, merchant, sub.provider_id)
    if sale_ref is None:
        return len(sales) >= 2
    paid = sales.get(sale_ref)
    if paid is None or sub.started_at is None:
        return False
    start, end = _period_of(sub, paid)
    return any(ref != sale_ref and at is not None and start <= at < end
               for ref, at in sales.items())


def _sales_of(session: Session, merchant: str, sub_ref: str) -> dict[str, datetime | None]:
    """When each sale of subscription ``sub_ref`` was paid: as written (read by
    ``prepare_batch`` for the batch, else now), and as this transaction holds them (loaded or
    added, flushed or not), which wins. Asked under the subscription's lock, so a sale another
    worker is applying is committed before it is read."""
    written = transaction_memo(session).get(_SALES, {}).get((merchant, sub_ref))
    if written is None:
        with session.no_autoflush:
            written = dict(session.execute(
                select(Payment.provider_id, Payment.paid_at).where(
                    Payment.merchant == merchant, Payment.kind == "sale",
                    Payment.subscription_ref == sub_ref)).all())
    held = {o.provider_id: o.paid_at for o in (*session.new, *session.identity_map.values())
            if isinstance(o, Payment) and o.kind == "sale" and o.merchant == merchant
            and o.subscription_ref == sub_ref}
    return {**written, **held}


def _anchor(sub: Subscription) -> datetime:
    """Where ``sub``'s periods are counted from. PayPal bills later cycles on the billing date
    at a time of its own (its example: started 21:20:49, next billed 10:00:00Z that day a month
    on), and its date need not be the UTC one: a period begins at midnight UTC the day before
    the start's date a month (or term) on."""
    assert sub.started_at is not None
    return datetime.combine(sub.started_at.astimezone(UTC).date(), time(0), UTC) - DAY


def _step(sub: Subscription) -> int:
    """The subscription's billing period in months (monthly when the ledger does not know)."""
    return (sub.interval_count or 1) * (12 if sub.interval == "year" else 1)


def _period_index(sub: Subscription, paid_at: datetime) -> int:
    return max(months_started(_anchor(sub), paid_at) - 1, 0) // _step(sub)


def _period_of(sub: Subscription, paid_at: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the billing period ``paid_at`` falls in, as ``_repeated_in_period``
    counts them (a payment before the first period counts in it)."""
    index = _period_index(sub, paid_at)
    anchor, step = _anchor(sub), _step(sub)
    start = add_months(anchor, index * step) if index else datetime.min.replace(tzinfo=UTC)
    return start, add_months(anchor, (index + 1) * step)


def _repeated_in_period(session: Session, merchant: str, sub: Subscription
                        ) -> list[tuple[Payment, Payment, datetime]]:
    """(sale, the sale that paid its period first, the period's start) for every completed sale
    of ``sub`` that repeats an earlier one of the same amount in the same billing period (the
    one credit reduced, if any, counts as the first), and owed no earlier period: a payment
    that catches up on a period whose own payment failed is not a repeat.

    PayPal's subscription events do not carry the plan's frequency: periods are the
    subscription's interval when the ledger knows it, else calendar months (every seed bills
    monthly), counted from the date it started. A different amount (a setup fee) is not a
    repeat."""
    sales = sorted((sale for sale in current_rows(
        session, Payment, merchant=merchant, kind="sale", subscription_ref=sub.provider_id,
        status=_PAID_SALE) if sale.paid_at is not None),
        key=lambda sale: (sale.paid_at, sale.provider_id))
    if len(sales) < 2 or sub.started_at is None:
        return []
    # A payment that credit reduced pays its period (it was alone in it when the credit was
    # applied): a payment arriving later for that period is the repeat, whenever it was made.
    credited = ledger_credit.reduced(session, merchant, [s.provider_id for s in sales])
    sales = sorted(sales, key=lambda s: s.provider_id not in credited)  # stable: paid order
    step = _step(sub)
    first_of: dict[tuple[int, int, str], Payment] = {}  # (period, amount, currency): its payer
    repeats = []
    for sale in sales:
        assert sale.paid_at is not None  # selected so
        index = _period_index(sub, sale.paid_at)
        paid = {i for i, amount, currency in first_of
                if (amount, currency) == (sale.amount, sale.currency)}
        # A period left unpaid since the first payment (its payment failed) is owed: a second
        # payment in a later period is PayPal catching up on it (a retry that landed after the
        # period ended), not a repeat. The earliest period owed is the one it pays.
        owed = [i for i in range(min(paid, default=index), index) if i not in paid]
        pays = index if index not in paid else owed[0] if owed else None
        if pays is not None:
            first_of[(pays, sale.amount, sale.currency)] = sale
        else:
            repeats.append((sale, first_of[(index, sale.amount, sale.currency)],
                            add_months(sub.started_at, index * step)))
    return repeats


def _overpaid_sale(session: Session, container: Container, merchant: str,
                   sub: Subscription | None, sale: Payment | None, inbox_id: int,
                   now: datetime) -> list[str]:
    if sale is None or sub is None or sub.status not in _ENDED or sale.paid_at is None:
        return []
    # Without the time it ended, no sale is known to be after the end: none is refunded as
    # an overpayment (PayPal's always have one; the ledger falls back on the event's time).
    if sub.canceled_at is None or sale.paid_at <= sub.canceled_at:
        return []
    if overpayment_decided(session, merchant, sale.provider_id):
        return []  # decided when the other event of the pair arrived
    account = sub.customer_ref or sub.provider_id
    case = _overpayment_case(session, merchant, account, sale, sale.amount, now,
                             f"payment received for subscription {sub.provider_id}, which "
                             f"ended {iso(sub.canceled_at)}", via_subscription=True)
    row = decide_in(session, container, merchant, case, payment=sale, account_ref=account,
                    now=now, source_event_id=inbox_id)
    return [row.id]


def stripe_overpaid_invoice(session: Session, container: Container, ctx: EventContext,
                            inbox_id: int, now: datetime) -> list[str]:
    """A charge for more than its invoice owed is an overpayment of the difference.

    It needs both the invoice and its charge; whichever event arrives second decides, so an
    overpayment is decided once whatever the arrival order.
    """
    obj = ctx.payload["data"]["object"]
    charge_ref = obj.get("id") if obj.get("object") == "charge" else None
    lock = _overpayment_lock(ctx.merchant, ctx.event_type, ctx.payload)
    if lock is None:
        return []
    # The invoice and its charge are applied by the workers of two partitions, side by side on
    # PostgreSQL: each could commit without seeing the other's row, and the overpayment would be
    # decided by neither. Both events take this lock first, so the second waits for the first to
    # commit and then sees its row (read committed); the check below keeps it decided once.
    serialize(session, *lock)
    invoice_ref = lock[-1]
    # Neither is locked: the other belongs to another partition, and its worker may hold it.
    invoice = peek(session, Invoice, ctx.ref(invoice_ref))
    if invoice is None:
        return []
    charge = _invoice_charge(session, ctx, invoice, charge_ref or obj.get("charge"))
    if (charge is None or charge.kind != "charge" or charge.status != "succeeded"
            or charge.currency != invoice.currency or charge.amount <= invoice.amount_due):
        return []
    if overpayment_decided(session, ctx.merchant, charge.provider_id):
        return []  # decided when the other event of the pair arrived (or delivered again)
    over = charge.amount - invoice.amount_due
    account = charge.customer_ref or invoice.customer_ref or invoice.provider_id
    case = _overpayment_case(session, ctx.merchant, account, charge, over, now,
                             f"charge {charge.provider_id} paid {charge.amount} for invoice "
                             f"{invoice.provider_id}, which owed {invoice.amount_due}",
                             via_subscription=invoice.subscription_ref is not None)
    row = decide_in(session, container, ctx.merchant, case, payment=charge, account_ref=account,
                    now=now, source_event_id=inbox_id)
    return [row.id]


def _invoice_charge(session: Session, ctx: EventContext, invoice: Invoice,
                    charge_ref: Any) -> Payment | None:
    """The charge that paid ``invoice``: the one the event names, else the one the ledger links
    to it that succeeded (an earlier attempt may have failed; Stripe's newer invoices name no
    charge)."""
    if isinstance(charge_ref, str):
        return peek(session, Payment, ctx.ref(charge_ref))
    with reading(session, (Payment.invoice_ref, invoice.provider_id)):
        return session.scalars(select(Payment).where(
            Payment.merchant == ctx.merchant, Payment.kind == "charge",
            Payment.invoice_ref == invoice.provider_id, Payment.status == "succeeded")
            .order_by(Payment.id)).first()


def _overpayment_case(session: Session, merchant: str, account: str, payment: Payment,
                      over: int, now: datetime, reason: str, via_subscription: bool
                      ) -> dict[str, Any]:
    return {
        "request": {"kind": "overpayment", "received_at": iso(now), "identity": {},
                    "reason": reason},
        "account": account_part(session, merchant, account, payment.currency),
        "payment": {"amount": money(payment.amount, payment.currency),
                    "received_at": iso(payment.paid_at),
                    "overpaid_amount": money(over, payment.currency),
                    "provider": payment.provider, "via_subscription": via_subscription,
                    **position_part(refundable.remainder(session, payment))},
    }


def provider_cancellation(session: Session, container: Container, ctx: EventContext,
                          inbox_id: int, now: datetime) -> list[str]:
    """A subscription the customer cancelled at the provider (PayPal profile, Stripe portal or
    dashboard; 003 §1.14c allows it): decide it like any cancellation, for its effective date
    and the confirmation notice. The provider already stopped billing, so a period the policy
    says is still owed (a late cancellation) cannot be charged automatically: review says so."""
    obj = ctx.payload["data"]["object"] if ctx.provider == "stripe" else ctx.payload["resource"]
    sub = subscription_by_ref(session, ctx.merchant, obj["id"])
    if sub is None or sub.status not in _ENDED:
        return []  # an older snapshot, or not actually ended
    account = sub.customer_ref or sub.provider_id
    # A request-shaped value (never stored) so the Case is built exactly as for support: the
    # fields cancellation_case reads, and no others.
    request = SupportRequest(merchant=ctx.merchant, account_ref=account,
                             created_at=sub.canceled_at or ctx.created_at,
                             body={"subscription": sub.provider_id, "identity": {"verified": True},
                                   "reason": f"cancelled at {ctx.provider}"})
    try:
        case = cancellation_case(session, request)
        row = decide_in(session, container, ctx.merchant, case, payment=None,
                        account_ref=account, now=now, source_event_id=inbox_id)
    except (MissingFacts, PolicyError) as exc:  # recorded, never a reason to drop the event
        audit.record(session, merchant=ctx.merchant, actor=ctx.provider, at=now,
                     action="cancellation.undecided", subject=sub.provider_id, error=str(exc))
        return []
    charge = (row.decision.get("amounts") or {}).get("charge") or {}
    if row.outcome == "cancel_next_period" and charge.get("amount"):
        row.status = DecisionStatus.NEEDS_REVIEW
        row.status_reason = (f"cancelled at {ctx.provider} after the deadline: one more period "
                             f"({charge['amount']} {charge['currency']}) is owed and must be "
                             f"invoiced by hand")
    if row.outcome in ("cancel_at_period_end", "cancel_next_period", "cancel_immediately"):
        effective = parse_time((row.decision.get("dates") or {}).get("effective_at")) or now
        confirm_cancellation(session, ctx.merchant, account, sub.provider_id, effective, row.id,
                             now=now, actor=ctx.provider)
    return [row.id]


REACTIONS: dict[tuple[str, str], tuple[Reaction, ...]] = {
    # Overpayments first: a payment that is itself overpaid takes no credit.
    ("paypal", "PAYMENT.SALE.COMPLETED"): (paypal_sale_overpayment, paypal_period_paid_twice,
                                           paypal_payment_takes_credit),
    ("paypal", "BILLING.SUBSCRIPTION.CREATED"): (paypal_period_paid_twice,),
    ("paypal", "BILLING.SUBSCRIPTION.ACTIVATED"): (paypal_period_paid_twice,),
    ("paypal", "BILLING.SUBSCRIPTION.UPDATED"): (paypal_period_paid_twice,),
    ("paypal", "BILLING.SUBSCRIPTION.CANCELLED"): (provider_cancellation,
                                                   paypal_sales_after_the_end,
                                                   paypal_period_paid_twice),
    ("paypal", "BILLING.SUBSCRIPTION.EXPIRED"): (paypal_sales_after_the_end,
                                                 paypal_period_paid_twice),
    ("stripe", "customer.subscription.deleted"): (provider_cancellation,),
    ("stripe", "invoice.paid"): (stripe_overpaid_invoice, stripe_balance_applied),
    ("stripe", "invoice.finalized"): (stripe_balance_applied,),
    ("stripe", "invoice.voided"): (stripe_balance_returned,),
    ("stripe", "charge.succeeded"): (stripe_overpaid_invoice,),
}


def reactions_for(provider: str, event_type: str) -> tuple[Reaction, ...]:
    return REACTIONS.get((provider, event_type), ())


# -- what a batch's reactions will lock and read, asked for once per batch --------------------

def _period_lock(merchant: str, event_type: str, payload: dict[str, Any]) -> LockName | None:
    """The lock ``paypal_period_paid_twice`` takes: its subscription's (a sale names it as
    its billing agreement; a refund of a sale names none)."""
    resource = payload.get("resource")
    if not isinstance(resource, dict):
        return None
    if event_type.startswith("PAYMENT.SALE."):
        if resource.get("sale_id"):
            return None
        sub_ref = resource.get("billing_agreement_id")
    else:
        sub_ref = resource.get("id")
    return ("paypal-period", merchant, sub_ref) if isinstance(sub_ref, str) and sub_ref else None


def _overpayment_lock(merchant: str, event_type: str, payload: dict[str, Any]
                      ) -> LockName | None:
    """The lock ``stripe_overpaid_invoice`` takes: the invoice's, which its charge names."""
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return None
    invoice_ref = obj.get("invoice") if obj.get("object") == "charge" else obj.get("id")
    return ("stripe-overpayment", merchant, invoice_ref) if isinstance(invoice_ref, str) else None


_LOCKS: dict[Reaction, Callable[[str, str, dict[str, Any]], LockName | None]] = {
    paypal_period_paid_twice: _period_lock,
    stripe_overpaid_invoice: _overpayment_lock,
}
_SALES = "sales by subscription"  # in the transaction's memo (see ``_may_repeat``)


def prepare_batch(session: Session, events: list[tuple[str, str, str, dict[str, Any]]]
                  ) -> list[LockName]:
    """For a batch of (merchant, provider, event type, parsed body), before any is applied:
    take every lock the events' reactions will take, in one statement and in one order (see
    ``serialize_all``), then read under them, in one query, the sales of the subscriptions
    whose repeated payments the reactions will look for. Each reaction still takes its own
    lock (a lock held is not asked for again) and falls back to its own query where the
    batch's answer is missing. Returns the locks, for ``peek_batch``."""
    locks = [lock for merchant, provider, event_type, payload in events
             for react in reactions_for(provider, event_type)
             if react in _LOCKS and (lock := _LOCKS[react](merchant, event_type, payload))]
    serialize_all(session, locks)
    subs = {(m, sub) for kind, m, sub in locks if kind == "paypal-period"}
    if not subs:
        return locks
    sales: dict[tuple[str, str], dict[str, datetime | None]] = {key: {} for key in subs}
    query = select(Payment.merchant, Payment.subscription_ref, Payment.provider_id,
                   Payment.paid_at).where(
        Payment.kind == "sale",
        or_(*(and_(Payment.merchant == m, Payment.subscription_ref.in_(sorted(refs)))
              for m, refs in _by_merchant(subs).items())))
    with session.no_autoflush:
        for merchant, sub_ref, sale_ref, paid_at in session.execute(query):
            sales[(merchant, str(sub_ref))][sale_ref] = paid_at  # not null: selected so
    transaction_memo(session).setdefault(_SALES, {}).update(sales)
    return locks


def peek_batch(session: Session, events: list[tuple[str, str, str, dict[str, Any]]],
               locks: list[LockName]) -> None:
    """After ``prepare_batch`` and the drain's prefetch (every object the events name is locked
    by then, and the objects read here are ones no handler locks later): read at once what the
    events' reactions will look at without a lock (``peek_all``), one query per table instead
    of one per event; ``locks``: what ``prepare_batch`` took for them:
    - ``stripe_overpaid_invoice``: each pair's invoice, and the charge an invoice names (a
      charge's own event holds its charge already). The pair's lock, taken by
      ``prepare_batch``, keeps the other side as read here: its event waits for this commit.
    - ``paypal_period_paid_twice`` and ``paypal_payment_takes_credit``: a sale's subscription
      that the prefetch did not find (one it found is held already). One another worker
      inserts after this read is not seen, as if it had come a moment later: its own
      period-locked events look for repeated payments again, and a credit not applied to
      this sale waits for the next payment, as it does when a sale comes first."""
    invoices = {Ref(m, "stripe", ref) for kind, m, ref in locks if kind == "stripe-overpayment"}
    subs = {Ref(m, "paypal", ref) for kind, m, ref in locks if kind == "paypal-period"}
    charges = set()
    for merchant, provider, event_type, payload in events:
        obj = dig(payload, "data", "object")
        if (stripe_overpaid_invoice in reactions_for(provider, event_type)
                and isinstance(obj, dict) and obj.get("object") == "invoice"
                and isinstance(obj.get("charge"), str) and obj["charge"]):
            charges.add(Ref(merchant, "stripe", obj["charge"]))
    for model, refs in ((Invoice, invoices), (Payment, charges), (Subscription, subs)):
        if refs:
            peek_all(session, model, refs)


def _by_merchant(pairs: set[tuple[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for merchant, ref in pairs:
        out.setdefault(merchant, set()).add(ref)
    return out
