"""The money-back guarantee family: one set of terms per order type (new, renewal), each a list
of optional checks (window, suspension, violations, earlier use, identity, bandwidth, sessions,
use since renewal, excluded payment providers, product categories) and add-on deductions.
Used by seed 002 (CloudBehind VPN) and seed 003 (TheOpenHost 16-day guarantee)."""

from __future__ import annotations

from datetime import datetime

from policy.case import Order, OrderType
from policy.decision import (
    Decision,
    LineItem,
    Outcome,
    new_line_item,
)
from policy.pack import GuaranteeTerms
from policy.timing import add_days, local_date, months_started
from policy.verdict import (
    Context,
    Findings,
    Severity,
    decide,
    divide,
)


def evaluate_guarantee(ctx: Context, all_terms: tuple[GuaranteeTerms, ...]) -> Decision:
    """Decide a refund request under the pack's money-back guarantee."""
    order = ctx.order(all_terms[0].window.clause)
    terms = _terms_for(all_terms, order.type)
    if terms is None:
        return _not_covered(ctx, all_terms[0], order)
    f = Findings()
    _eligibility(terms, order, f)
    _conditions(ctx, terms, order, f)
    notice_by = _notes(ctx, terms, order, f)
    worst = f.worst
    if worst == Severity.DENY:
        return decide(ctx, Outcome.DENY, f, at_stake=order.amount.amount, notice_by=notice_by)
    if worst == Severity.REVIEW:
        return decide(ctx, Outcome.NEEDS_REVIEW, f, at_stake=order.amount.amount,
                      notice_by=notice_by)
    if worst == Severity.PARTIAL:
        return _partial_proposal(ctx, terms, order, f)
    return _refund(ctx, terms, order, f, notice_by)


def _terms_for(all_terms: tuple[GuaranteeTerms, ...], kind: OrderType) -> GuaranteeTerms | None:
    # A loop rather than next(generator): cheaper for these one- or two-item tuples.
    for terms in all_terms:
        if kind in terms.order_types:
            return terms
    return None


def _not_covered(ctx: Context, terms: GuaranteeTerms, order: Order) -> Decision:
    f = Findings()
    covered = " and ".join(sorted(terms.order_types))
    f.check(terms.window.clause, False,
            f"the guarantee covers {covered} orders; this is a {order.type} order")
    return decide(ctx, Outcome.DENY, f, at_stake=order.amount.amount)


def _eligibility(t: GuaranteeTerms, order: Order, f: Findings) -> None:
    category = order.product_category
    if t.excluded is not None and category in t.excluded.categories:
        f.check(t.excluded.clause, False, f"{category} is excluded from the guarantee")
    elif t.eligible is not None:
        known = category in t.eligible.categories
        f.check(t.eligible.clause, known,
                f"{category} is covered" if known else
                f"{category} is not a category this pack knows; a person must classify it",
                Severity.REVIEW)
    if t.excluded_providers is not None:
        excluded = t.excluded_providers.categories
        bad = order.payment_provider in excluded or order.payment_method in excluded
        f.check(t.excluded_providers.clause, not bad,
                f"paid via {order.payment_provider or 'unknown provider'}"
                f"/{order.payment_method or 'unknown method'}")
    if t.terms_offered is not None:
        months, clause = t.terms_offered
        f.check(clause, order.term_months in months,
                f"term is {order.term_months} months (offered: {t.offered})",
                Severity.REVIEW)


def _conditions(ctx: Context, t: GuaranteeTerms, order: Order, f: Findings) -> None:
    case = ctx.case
    what = "renewal date" if order.type is OrderType.RENEWAL else "order date"
    in_window = f.window(t.window, order.ordered_at, case.request.received_at, what,
                         ctx.zone)
    if not in_window and t.outside_window:
        f.check(t.outside_window, False,
                "outside the guarantee, unused prepaid periods are not refunded")
    account = case.account
    if t.not_suspended is not None:
        f.check(t.not_suspended, not account.suspended_for_breach,
                "account suspended for breach" if account.suspended_for_breach else "not suspended")
    if t.max_violations is not None:
        f.check(t.max_violations.clause, account.violations <= t.max_violations.value,
                f"{account.violations} recorded violations (allowed {t.max_violations.value})")
    if t.max_prior_refunds is not None:
        f.check(t.max_prior_refunds.clause,
                account.prior_guarantee_refunds <= t.max_prior_refunds.value,
                f"{account.prior_guarantee_refunds} earlier guarantee refunds "
                f"(allowed {t.max_prior_refunds.value})")
    if t.identity is not None:
        f.identity(t.identity, case.request.identity, case.request.reason)
    _usage(ctx, t, order, f)


def _usage(ctx: Context, t: GuaranteeTerms, order: Order, f: Findings) -> None:
    if t.bandwidth_below is None and t.max_sessions is None and t.unused_since_renewal is None:
        return
    usage = ctx.case.usage
    if usage is None:
        clause = (t.bandwidth_below or t.max_sessions)
        # Not None: the return above leaves at least one of the three usage terms set.
        f.check(clause.clause if clause else t.unused_since_renewal,  # type: ignore[arg-type]
                False, "the case gives no usage figures", Severity.REVIEW)
        return
    if t.bandwidth_below is not None:
        limit = t.bandwidth_below.value
        partial = (t.partial_over_bandwidth is not None
                   and order.term_months >= t.partial_over_bandwidth.value)
        f.check(t.bandwidth_below.clause, usage.bandwidth_bytes < limit,
                f"{usage.bandwidth_bytes} bytes used (must be below {limit})",
                Severity.PARTIAL if partial else Severity.DENY)
    if t.max_sessions is not None:
        f.check(t.max_sessions.clause, usage.sessions <= t.max_sessions.value,
                f"{usage.sessions} sessions (at most {t.max_sessions.value})")
    if t.unused_since_renewal is not None:
        f.check(t.unused_since_renewal, not usage.used_since_renewal,
                "used since renewal" if usage.used_since_renewal else "not used since renewal")


def _notes(ctx: Context, t: GuaranteeTerms, order: Order, f: Findings) -> datetime | None:
    """Notes on automatic renewal; returns when the renewal reminder was due, if one was."""
    if not order.auto_renew or order.type is not OrderType.RENEWAL:
        return None
    if t.auto_renew is not None:
        f.note(t.auto_renew, "automatic renewal: the renewal criteria apply")
    if t.reminder is None:
        return None
    due = add_days(order.ordered_at, -t.reminder.value, ctx.zone)
    f.note(t.reminder.clause, f"the renewal reminder was due by "
           f"{local_date(due, ctx.zone).isoformat()}")
    return due


def _deductions(ctx: Context, t: GuaranteeTerms, order: Order,
                f: Findings) -> tuple[tuple[LineItem, ...], int] | None:
    """The add-on deductions as line items and their total; None when one cannot be priced."""
    items: list[LineItem] = []
    listed: list[str] = []
    total = 0
    for addon in order.addons:
        table = t.deductions.get(addon)
        if table is None:
            continue
        amount = ctx.fixed_amount(table)
        if amount is None:
            f.check(table.clause, False, f"no {ctx.currency} amount is configured for the "
                    f"{table.label} deduction (stated in USD); not converting", Severity.REVIEW)
            return None
        items.append(new_line_item("deduction", table.label, ctx.money(amount),
                                   table.clause.citation))
        listed.append(f"{table.label} {ctx.show(amount)}")
        total += amount
    if items and t.deductions_note is not None:
        f.note(t.deductions_note, f"requested or used add-ons are chargeable: {', '.join(listed)}")
    return tuple(items), total


def _refund(ctx: Context, t: GuaranteeTerms, order: Order, f: Findings,
            notice_by: datetime | None) -> Decision:
    paid = order.amount.amount
    deductions = _deductions(ctx, t, order, f)
    if deductions is None:
        return decide(ctx, Outcome.NEEDS_REVIEW, f, at_stake=paid, notice_by=notice_by)
    items, total = deductions
    refund = max(0, paid - total)
    outcome = Outcome.FULL_REFUND if refund == paid else Outcome.PARTIAL_REFUND
    # Granted under the clause that grants it (002: "You are entitled to a full refund on a new
    # order if..."), else the one naming the products the guarantee covers (003 §1.1), else the
    # claim window.
    grant = t.grant or (t.eligible.clause if t.eligible is not None else t.window.clause)
    return decide(ctx, outcome, f, at_stake=paid, refund=refund, line_items=items,
                  notice_by=notice_by, basis=grant)


def _partial_proposal(ctx: Context, t: GuaranteeTerms, order: Order, f: Findings) -> Decision:
    """Over the bandwidth limit on a long order: propose charging the months begun, for review."""
    paid = order.amount.amount
    months = min(months_started(order.ordered_at.astimezone(ctx.zone),
                                ctx.case.request.received_at), order.term_months)
    monthly = divide(paid, order.term_months, ctx.pack.fee_rounding)
    charge = min(paid, monthly * months)
    # Set: Severity.PARTIAL, which leads here, is only found when it is (see _usage).
    clause = t.partial_over_bandwidth.clause  # type: ignore[union-attr]
    f.note(clause, f"partial refund at the merchant's discretion: proposed charge {months} "
           f"month(s) of {order.term_months} at {ctx.show(monthly)}")
    item = new_line_item("usage_charge", f"{months} month(s) of usage", ctx.money(charge),
                         clause.citation)
    return decide(ctx, Outcome.NEEDS_REVIEW, f, at_stake=paid, proposed_refund=paid - charge,
                  line_items=(item,))
