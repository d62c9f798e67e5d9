"""Building a Case from the ledger and a request: the facts the policy engine decides from.

What the providers told us (payments, subscriptions, invoices), what the merchant reported
(usage) and what we decided before (earlier guarantee refunds) become the Case's ``order``,
``usage`` and ``account``; what support filed becomes its ``request``. The result is plain JSON,
validated by ``policy.case_from_json`` and stored with the Decision, so an auditor sees exactly
the facts the decision was made on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ScalarSelect, bindparam, func, select
from sqlalchemy.orm import Session

from adapters import ledger_credit
from ledger import refundable
from ledger.db import Rows, current_rows, reading
from ledger.models import (
    AccountCredit,
    Decision,
    DecisionStatus,
    Invoice,
    Payment,
    Subscription,
    SupportRequest,
    UsageReport,
    _ProviderObject,
)
from ledger.objects import held
from ledger.schedule_models import Account
from policy.timing import EARLIEST

_Obj = TypeVar("_Obj", bound=_ProviderObject)

_MONTHS = {"day": 1 / 30, "week": 7 / 30, "month": 1, "year": 12}
_GUARANTEE_OUTCOMES = ("full_refund", "partial_refund")
# A guarantee refund counts from the moment it is decided, not when the provider confirms it:
# two requests decided one after the other must not both pass a once-per-customer rule.
_GUARANTEE_COUNTS = (DecisionStatus.RECORDED, DecisionStatus.EXECUTED)
_CASE_INVOICES = ("open", "paid", "uncollectible")  # a draft or void invoice is not the account's


class MissingFacts(LookupError):
    """The ledger does not hold what the request names (a payment, say)."""


class WrongAccount(MissingFacts):
    """The payment or subscription a request names is not the account's."""


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency.upper()}


def refund_case(session: Session, request: SupportRequest) -> dict[str, Any]:
    """The Case for a refund request about one payment, whose row it locks: what is left to
    refund of it stays as the Case says until the decision's actions are committed."""
    payment = refundable.lock(session, find_payment(session, request.merchant,
                                                    request.payment_ref))
    check_owner(session, payment, request.account_ref)
    body = request.body
    position = refundable.remainder(session, payment)
    case: dict[str, Any] = {
        "request": _request_part("refund", request),
        "account": account_part(session, request.merchant, request.account_ref,
                                payment.currency),
        "order": {**order_part(session, payment, body), **position_part(position)},
    }
    usage = usage_part(session, request.merchant, request.account_ref, payment)
    if usage is not None:
        case["usage"] = usage
    return case


def cancellation_case(session: Session, request: SupportRequest) -> dict[str, Any]:
    """The Case for cancelling a subscription: its latest payment is the order in force."""
    subscription = find_subscription(session, request.merchant, request.body["subscription"])
    if request.account_ref not in subscription_owners(subscription):
        raise WrongAccount(f"subscription {subscription.provider_id} belongs to "
                           f"{subscription.customer_ref or 'another account'}, not to "
                           f"{request.account_ref}")
    payments = current_rows(session, Payment, merchant=request.merchant,
                            subscription_ref=subscription.provider_id)
    payment = max(payments, key=_paid_order, default=None)
    currency = payment.currency if payment else (subscription.currency or "USD")
    part = _request_part("cancellation", request)
    if request.body.get("immediate"):
        part["immediate"] = True
    if payment is not None:
        order = order_part(session, payment, request.body, payments)
    else:
        order = _order_from_subscription(subscription, request.body)
    return {"request": part,
            "account": account_part(session, request.merchant, request.account_ref, currency),
            "order": order}


def uptime_case(session: Session, request: SupportRequest) -> dict[str, Any]:
    """The Case for an uptime claim: the subscription's order and the outage as measured."""
    case = cancellation_case(session, request)
    case["request"]["kind"] = "uptime_credit"
    case["request"].pop("immediate", None)
    case["uptime"] = request.body["uptime"]
    return case


def _order_from_subscription(sub: Subscription, body: dict[str, Any]) -> dict[str, Any]:
    order: dict[str, Any] = {
        "type": "new", "product_category": body.get("product_category", "other"),
        "ordered_at": iso(sub.started_at or sub.version_at),
        "amount": money(sub.amount or 0, sub.currency or "USD"),
        "term_months": _term_months(sub), "payment_provider": sub.provider,
        "auto_renew": not sub.cancel_at_period_end}
    next_billing = sub.current_period_end or sub.next_billing_at
    if next_billing is not None:
        order["next_billing_at"] = iso(next_billing)
    return order


def subscription_by_ref(session: Session, merchant: str, ref: str) -> Subscription | None:
    """The merchant's subscription with this provider id, if the ledger holds it."""
    return _by_ref(session, Subscription, merchant, ref)


def payment_by_ref(session: Session, merchant: str, ref: str) -> Payment | None:
    """The merchant's payment (charge, sale or capture) with this provider id, if held."""
    return _by_ref(session, Payment, merchant, ref)


def invoice_by_ref(session: Session, merchant: str, ref: str) -> Invoice | None:
    return _by_ref(session, Invoice, merchant, ref)


def _by_ref(session: Session, model: type[_Obj], merchant: str, ref: str) -> _Obj | None:
    """Answered from the objects the transaction holds when it can (a batch names the same
    ones again and again), else one query. No autoflush: a provider object is only ever
    inserted through ``ledger.objects``, which holds it from then on, and a lookup by key
    cannot be changed by any other pending write."""
    found = held(session, model, merchant, ref)
    if found is not None:
        return found
    with session.no_autoflush:
        return session.scalars(select(model).where(
            model.merchant == merchant, model.provider_id == ref)).first()


def find_subscription(session: Session, merchant: str, ref: str) -> Subscription:
    sub = subscription_by_ref(session, merchant, ref)
    if sub is None:
        raise MissingFacts(f"subscription {ref!r} is not in the ledger for {merchant}")
    return sub


def payment_owners(session: Session, payment: Payment) -> set[str]:
    """The account ids a payment may be claimed under: its customer, or its subscription's
    customer or id, or its invoice's customer. Empty when the ledger cannot tell."""
    owners = {payment.customer_ref}
    subscription = _subscription(session, payment)
    if subscription is not None:
        owners |= subscription_owners(subscription)
    if payment.invoice_ref:
        invoice = invoice_by_ref(session, payment.merchant, payment.invoice_ref)
        owners.add(invoice.customer_ref if invoice else None)
    return {owner for owner in owners if owner}


def subscription_owners(subscription: Subscription) -> set[str]:
    """A subscription is claimed under its customer's id or, for PayPal, its own id."""
    return {ref for ref in (subscription.customer_ref, subscription.provider_id) if ref}


def check_owner(session: Session, payment: Payment, account_ref: str) -> None:
    """Raise ``WrongAccount`` unless the payment is the account's."""
    owners = payment_owners(session, payment)
    if account_ref in owners:
        return
    whose = ", ".join(sorted(owners)) if owners else "an account the ledger cannot tell"
    raise WrongAccount(f"payment {payment.provider_id} belongs to {whose}, not to {account_ref}")


def position_part(position: refundable.Remainder) -> dict[str, Any]:
    """A payment's refund position as the Case states it (``order`` or ``payment``)."""
    part: dict[str, Any] = {"refundable": money(position.left.amount, position.left.currency)}
    if position.dispute is not None:
        part["dispute"] = position.dispute.state
    return part


def find_payment(session: Session, merchant: str, payment_ref: str | None) -> Payment:
    payment = payment_by_ref(session, merchant, payment_ref or "")
    if payment is None:
        raise MissingFacts(f"payment {payment_ref!r} is not in the ledger for {merchant}")
    return payment


def _request_part(kind: str, request: SupportRequest) -> dict[str, Any]:
    body = request.body
    part: dict[str, Any] = {"kind": kind,
                            "received_at": body.get("received_at") or iso(request.created_at),
                            "reason": body.get("reason", ""),
                            "identity": body.get("identity", {})}
    if body.get("reason_code"):
        part["reason_code"] = body["reason_code"]
    return part


def order_part(session: Session, payment: Payment, body: dict[str, Any],
               subscription_payments: list[Payment] | None = None) -> dict[str, Any]:
    """The Case's ``order``: ``payment`` and its subscription. ``subscription_payments``: the
    subscription's payments as the transaction sees them, when the caller has them."""
    subscription = _subscription(session, payment)
    order: dict[str, Any] = {
        "type": "renewal" if _is_renewal(session, payment, subscription_payments) else "new",
        "product_category": body.get("product_category", "other"),
        "ordered_at": iso(payment.paid_at or payment.version_at),
        "amount": money(payment.amount, payment.currency),
        "term_months": _term_months(subscription),
        "payment_provider": payment.provider,
        "payment_method": (payment.payment_method or payment.provider).lower(),
        "addons": body.get("addons", []),
    }
    if subscription is not None:
        order["auto_renew"] = (subscription.status.lower() in ("active", "trialing")
                               and not subscription.cancel_at_period_end)
        next_billing = subscription.current_period_end or subscription.next_billing_at
        if next_billing is not None:
            order["next_billing_at"] = iso(next_billing)
    for key in ("service_state", "service_date"):
        if body.get(key):
            order[key] = body[key]
    return order


def _paid_order(payment: Payment) -> tuple[bool, datetime, str]:
    """The order of a subscription's payments, the latest greatest: one without a date only if
    none has one; of two paid in the same second, the greater provider id."""
    return (payment.paid_at is not None, payment.paid_at or EARLIEST, payment.provider_id)


def _subscription(session: Session, payment: Payment) -> Subscription | None:
    ref = payment.subscription_ref
    if ref is None and payment.invoice_ref:
        invoice = invoice_by_ref(session, payment.merchant, payment.invoice_ref)
        ref = invoice.subscription_ref if invoice else None
    if ref is None:
        return None
    return subscription_by_ref(session, payment.merchant, ref)


def _is_renewal(session: Session, payment: Payment,
                subscription_payments: list[Payment] | None = None) -> bool:
    """A Stripe invoice says so (``subscription_cycle``); for PayPal, an earlier payment does."""
    if payment.invoice_ref:
        invoice = invoice_by_ref(session, payment.merchant, payment.invoice_ref)
        reason = invoice.billing_reason if invoice else None
        if reason is not None:
            return reason == "subscription_cycle"
    if payment.subscription_ref and payment.paid_at:
        paid_at = payment.paid_at
        if subscription_payments is None:
            subscription_payments = current_rows(session, Payment, merchant=payment.merchant,
                                                 subscription_ref=payment.subscription_ref)
        return any(other.paid_at is not None and other.paid_at < paid_at
                   for other in subscription_payments)
    return False


def _term_months(subscription: Subscription | None) -> int:
    if subscription is None or subscription.interval is None:
        return 1
    months = _MONTHS.get(subscription.interval.lower(), 1) * (subscription.interval_count or 1)
    return max(1, round(months))


def account_part(session: Session, merchant: str, account_ref: str, currency: str
                 ) -> dict[str, Any]:
    invoices = sorted(current_rows(session, Invoice, merchant=merchant, customer_ref=account_ref,
                                   status=_CASE_INVOICES), key=_due_order)
    with reading(session, Rows.where(Decision, account_ref=account_ref, request_kind="refund"),
                 (Account.account_ref, account_ref), (AccountCredit.account_ref, account_ref)):
        # One round trip for the counts and flags (four, one per fact, cost as much again).
        prior_refunds, credit, suspended, violations = session.execute(
            _ACCOUNT_FACTS, ledger_credit.balance_params(merchant, account_ref, currency)).one()
    part: dict[str, Any] = {"prior_guarantee_refunds": int(prior_refunds or 0),
                            "invoices": [_invoice(i) for i in invoices if i.number],
                            **_flags(suspended, violations)}
    if int(credit or 0) > 0:
        part["credit_balance"] = money(int(credit), currency)
    return part


def _due_order(invoice: Invoice) -> tuple[bool, datetime, str]:
    """Invoices by due date, those without one last (as PostgreSQL sorts NULLs)."""
    return (invoice.due_at is None, invoice.due_at or EARLIEST, invoice.provider_id)


def account_flags(session: Session, merchant: str, account_ref: str) -> dict[str, Any]:
    """The Case's ``account`` facts the merchant keeps: suspension for breach, violations."""
    with reading(session, (Account.account_ref, account_ref)):
        return _flags(*session.execute(_FLAG_FACTS,
                                       {"merchant": merchant, "account": account_ref}).one())


def _flag_facts() -> list[ScalarSelect[Any]]:
    account = select(Account).where(Account.merchant == bindparam("merchant"),
                                    Account.account_ref == bindparam("account"))
    return [account.with_only_columns(Account.suspended_for_breach).scalar_subquery(),
            account.with_only_columns(Account.violations).scalar_subquery()]


# Built once, with the parameters ``merchant``, ``account`` (and ``currency``, the credit
# balance's): building them for every Case cost more than asking them.
_FLAG_FACTS = select(*_flag_facts())
_PRIOR_GUARANTEE_REFUNDS = (select(func.count()).select_from(Decision).where(
    Decision.merchant == bindparam("merchant"), Decision.account_ref == bindparam("account"),
    Decision.request_kind == "refund", Decision.outcome.in_(_GUARANTEE_OUTCOMES),
    Decision.status.in_(_GUARANTEE_COUNTS)))
_ACCOUNT_FACTS = select(_PRIOR_GUARANTEE_REFUNDS.scalar_subquery(),
                        ledger_credit.balance_query().scalar_subquery(), *_flag_facts())


def _flags(suspended: bool | None, violations: int | None) -> dict[str, Any]:
    """No row for the account: never suspended, no violations."""
    return {"suspended_for_breach": bool(suspended), "violations": int(violations or 0)}


def _invoice(invoice: Invoice) -> dict[str, Any]:
    due = invoice.due_at or invoice.period_end or invoice.version_at
    return {"number": invoice.number, "amount": money(invoice.amount_due, invoice.currency),
            "due_at": iso(due), "paid": invoice.status == "paid"}


def usage_part(session: Session, merchant: str, account_ref: str, payment: Payment
               ) -> dict[str, Any] | None:
    report = session.scalars(select(UsageReport).where(
        UsageReport.merchant == merchant, UsageReport.account_ref == account_ref)
        .order_by(UsageReport.reported_at.desc(), UsageReport.id.desc())).first()
    if report is None:
        return None
    since = payment.paid_at
    used_since = bool(report.last_used_at and since and report.last_used_at > since)
    return {"bandwidth_bytes": report.bandwidth_bytes, "sessions": report.sessions,
            "used_since_renewal": used_since}
