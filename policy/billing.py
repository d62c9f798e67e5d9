"""Billing families of seed 003: late fees on overdue invoices (§1.5, §1.6, §1.4, §1.3a,
§1.14b) and PayPal overpayments (§1.7b-d, §1.8)."""

from __future__ import annotations

from datetime import datetime

from policy.case import Invoice
from policy.decision import (
    Decision,
    Outcome,
    new_line_item,
)
from policy.pack import LateFeeTerms, OverpaymentTerms
from policy.timing import describe
from policy.verdict import (
    Context,
    Findings,
    MissingFact,
    Severity,
    decide,
    percent_of,
)


def find_invoice(ctx: Context) -> Invoice | None:
    return ctx.case.invoice(ctx.case.request.invoice_number)


def evaluate_late_fee(ctx: Context, t: LateFeeTerms) -> Decision:
    """Decide whether an invoice is overdue and what late fee it carries."""
    invoice = find_invoice(ctx)
    if invoice is None:
        raise MissingFact(f"account.invoices[number={ctx.case.request.invoice_number}]",
                          t.overdue_clause)
    f = Findings()
    overdue_from = invoice.due_at + t.grace
    if invoice.paid:
        f.check(t.overdue_clause, False, f"invoice {invoice.number} is paid", Severity.OK)
        return decide(ctx, Outcome.NO_ACTION, f)
    if invoice.amount.amount == 0:
        # Nothing is owed on a $0 invoice, so nothing can be late: the 35%-or-$5 fee of §1.5
        # presupposes an amount overdue.
        f.check(t.floor.clause, False, f"invoice {invoice.number} is for "
                f"{ctx.show(0)}: nothing is owed, so no late fee", Severity.OK)
        return decide(ctx, Outcome.NO_ACTION, f)
    overdue = ctx.now >= overdue_from
    f.check(t.overdue_clause, overdue, f"{describe(ctx.now - invoice.due_at)} since the due date "
            f"(overdue from {t.grace_hours}h)", Severity.OK)
    if not overdue:
        return decide(ctx, Outcome.NO_ACTION, f, effective_at=overdue_from)
    _notified(t, invoice, f)
    floor = ctx.fixed_amount(t.floor)
    if floor is None:
        f.check(t.floor.clause, False, f"no {ctx.currency} minimum late fee is configured "
                "(the policy states USD); not converting", Severity.REVIEW)
    if f.worst >= Severity.REVIEW:
        return decide(ctx, Outcome.NEEDS_REVIEW, f, effective_at=overdue_from)
    return _fee(ctx, t, invoice, floor or 0, overdue_from, f)


def _notified(t: LateFeeTerms, invoice: Invoice, f: Findings) -> None:
    if t.notice_days is None:
        return
    if invoice.notified_at is None:
        f.check(t.notice_days.clause, False, "the case does not say when the charge was notified",
                Severity.REVIEW)
        return
    lead = invoice.due_at - invoice.notified_at
    f.check(t.notice_days.clause, lead >= t.notice,
            f"notified {describe(lead)} before the due date (needs {t.notice_text})",
            Severity.REVIEW)


def _fee(ctx: Context, t: LateFeeTerms, invoice: Invoice, floor: int, overdue_from: datetime,
         f: Findings) -> Decision:
    share = percent_of(invoice.amount.amount, t.percent, ctx.pack.fee_rounding)
    fee = max(share, floor)
    # {Decimal!s}: the same text as Decimal.__format__ with an empty spec, in a quarter of the time.
    f.note(t.floor.clause, f"{t.percent!s}% of {ctx.show(invoice.amount.amount)} is "
           f"{ctx.show(share)}; minimum {ctx.show(floor)}; late fee {ctx.show(fee)}")
    items = (new_line_item("late_fee", f"late fee on invoice {invoice.number}", ctx.money(fee),
                           t.floor.clause.citation),)
    flags: tuple[str, ...] = ()
    if t.support is not None:
        f.note(t.support, "no support while the bill is overdue")
        flags += ("support_withheld",)
    if t.collection_cap is not None and ctx.case.account.in_collection:
        cap = ctx.fixed_amount(t.collection_cap)
        shown = ctx.money(cap) if cap is not None else f"(no {ctx.currency} cap configured)"
        f.note(t.collection_cap.clause, f"passed to debt collection: a fee of up to {shown} may "
               "be applied at the merchant's discretion (not charged here)")
        flags += ("debt_collection",)
    return decide(ctx, Outcome.LATE_FEE, f, fee=fee, line_items=items, effective_at=overdue_from,
                  flags=flags, basis=t.floor.clause)


def evaluate_overpayment(ctx: Context, t: OverpaymentTerms) -> Decision:
    """Refund a recent overpayment (less the fee) or turn an older one into account credit."""
    payment = ctx.case.payment
    if payment is None:
        raise MissingFact("payment", t.refund_clause)
    over = payment.overpaid_amount.amount
    f = Findings()
    f.check(t.providers.clause, payment.provider in t.providers.categories,
            f"paid via {payment.provider or 'unknown provider'} "
            f"(covered: {t.providers_listed})", Severity.REVIEW)
    if t.require_subscription:
        f.check(t.refund_clause, payment.via_subscription,
                "from a subscription not cancelled" if payment.via_subscription
                else "not from a subscription: no clause covers it", Severity.REVIEW)
    if f.worst >= Severity.REVIEW:
        return decide(ctx, Outcome.NEEDS_REVIEW, f, at_stake=over)
    age = ctx.case.request.received_at - payment.received_at
    fresh = age <= t.max_age
    f.check(t.refund_clause, fresh, f"payment is {describe(age)} old at the request "
            f"(refundable up to {t.max_age_days}d 00:00:00)", Severity.OK)
    fee = percent_of(over, t.fee_percent, ctx.pack.fee_rounding) if fresh or t.fee_on_credit else 0
    f.note(t.fee_clause, f"{t.fee_percent!s}% administration fee: {ctx.show(fee)}")
    items = (new_line_item("administration_fee", "overpayment administration fee",
                           ctx.money(fee), t.fee_clause.citation),) if fee else ()
    if fresh:
        outcome = Outcome.PARTIAL_REFUND if fee else Outcome.FULL_REFUND
        return decide(ctx, outcome, f, at_stake=over, refund=over - fee, fee=fee, line_items=items,
                      basis=t.refund_clause)
    f.note(t.credit_clause, "older than the refund window: added as account credit")
    if t.credit_note is not None:
        f.note(t.credit_note, "account credit is not refundable")
    return decide(ctx, Outcome.ACCOUNT_CREDIT, f, at_stake=over, credit=over - fee, fee=fee,
                  line_items=items, flags=("credit_not_refundable",), basis=t.credit_clause)
