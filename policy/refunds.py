"""Refund families other than the money-back guarantee: categories that are never refundable
(003 §1.8), refunds of rendered services (seed 001) and refunds a person decides (seed 000)."""

from __future__ import annotations

from policy.case import ServiceState
from policy.decision import Decision, Outcome
from policy.pack import CategorySet, RefundReviewTerms, ServiceRefundTerms
from policy.verdict import Context, Findings, MissingFact, Severity, decide


def non_refundable(ctx: Context, sets: tuple[CategorySet, ...]) -> Decision | None:
    """A denial when the order's category is never refundable, else None."""
    order = ctx.order(sets[0].clause)
    for entry in sets:
        if order.product_category in entry.categories:
            f = Findings()
            f.check(entry.clause, False, f"{order.product_category} is not refundable")
            return decide(ctx, Outcome.DENY, f, at_stake=order.amount.amount)
    return None


def evaluate_service_refund(ctx: Context, t: ServiceRefundTerms) -> Decision:
    """Seed 001: issues reported within the window; faults reviewed; rendered services kept."""
    order = ctx.order(t.window.clause)
    request = ctx.case.request
    code = request.reason_code
    f = Findings()
    if code not in t.window_exempt:
        if order.service_date is None:
            raise MissingFact("order.service_date", t.window.clause)
        f.window(t.window, order.service_date, request.received_at, "service date",
                     ctx.zone)
    denied = t.deny_reasons.get(code)
    if denied is not None:
        f.check(denied, False, f"the request's reason is {code}, which is not refunded")
    review = t.review_reasons.get(code)
    if review is None:
        _rendered(t, order.service_state, f)
    paid = order.amount.amount
    if f.worst >= Severity.REVIEW:
        outcome = Outcome.DENY if f.worst == Severity.DENY else Outcome.NEEDS_REVIEW
        return decide(ctx, outcome, f, at_stake=paid)
    if review is not None:
        f.note(review, f"reason {code}: the merchant reviews the case and may offer a partial "
               "refund or credit at its discretion")
        return decide(ctx, Outcome.NEEDS_REVIEW, f, at_stake=paid)
    if t.before_initiation == "needs_review":
        return decide(ctx, Outcome.NEEDS_REVIEW, f, at_stake=paid)
    return decide(ctx, Outcome.FULL_REFUND, f, at_stake=paid, refund=paid, basis=t.window.clause)


def _rendered(t: ServiceRefundTerms, state: ServiceState | None, f: Findings) -> None:
    if state is None:
        f.check(t.state_clause, False, "the case does not say whether the service has started",
                Severity.REVIEW)
        return
    f.check(t.state_clause, state not in t.non_refundable_states,
            f"service is {state.replace('_', ' ')}")


def evaluate_refund_review(ctx: Context, t: RefundReviewTerms) -> Decision:
    """Seed 000: no automatic refund terms; deny listed reasons, send the rest to a person."""
    order = ctx.order(t.clause)
    code = ctx.case.request.reason_code
    f = Findings()
    denied = t.deny_reasons.get(code)
    if denied is not None:
        f.check(denied, False, f"the request's reason is {code}")
        return decide(ctx, Outcome.DENY, f, at_stake=order.amount.amount)
    f.note(t.clause, "the policy states no automatic refund terms; a person decides, and an "
           "approved credit is processed on verification back to the card")
    return decide(ctx, Outcome.NEEDS_REVIEW, f, at_stake=order.amount.amount, flags=t.flags)
