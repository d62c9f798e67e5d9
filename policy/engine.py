"""``evaluate``: route a Case to the rule family its pack configures for the request kind.

Pure: everything comes in as arguments (the pack, the case, the time); nothing is read, written or
fetched. Facts a rule needs but the case lacks turn the decision into needs_review.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from policy.billing import evaluate_late_fee, evaluate_overpayment
from policy.cancellation import evaluate_cancellation
from policy.case import Case, RequestKind
from policy.decision import Decision, Outcome, Reason
from policy.errors import EvaluationError
from policy.frozen import builder
from policy.guarantee import evaluate_guarantee
from policy.pack import Pack
from policy.payout import bounded
from policy.refunds import evaluate_refund_review, evaluate_service_refund, non_refundable
from policy.uptime import evaluate_uptime
from policy.verdict import Context, MissingFact, decide

NO_CURRENCY = "XXX"  # ISO 4217 "no currency involved"

new_context: Callable[[Pack, Case, datetime, str], Context] = builder(Context)


def evaluate(pack: Pack, case: Case, now: datetime) -> Decision:
    """Decide ``case`` under ``pack`` as of ``now`` (timezone-aware; normalised to UTC)."""
    if not isinstance(now, datetime) or now.tzinfo is not UTC:
        now = _as_utc(now)
    ctx = new_context(pack, case, now, _currency(case))
    if case.request.received_at > now:
        return _review(ctx, f"{pack.seed} (no clause)", "",
                       "the request is dated after the evaluation time; check the clocks")
    try:
        return bounded(ctx, _ROUTES[case.request.kind](ctx))
    except MissingFact as missing:
        return _review(ctx, missing.clause.citation, missing.clause.text,
                       f"the case does not give {missing.field}, which this clause needs")


def _as_utc(now: datetime) -> datetime:
    """``now`` in UTC; refuses anything but a timezone-aware datetime."""
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise EvaluationError(f"now must be a timezone-aware datetime, got {now!r}")
    return now if now.tzinfo is UTC else now.astimezone(UTC)




def _currency(case: Case) -> str:
    kind = case.request.kind
    if kind is RequestKind.OVERPAYMENT and case.payment is not None:
        return case.payment.amount.currency
    if kind is RequestKind.OVERDUE_INVOICE:
        invoice = case.invoice(case.request.invoice_number)
        if invoice is not None:
            return invoice.amount.currency
    if case.order is not None:
        return case.order.amount.currency
    return NO_CURRENCY


def _review(ctx: Context, clause: str, text: str, detail: str) -> Decision:
    return decide(ctx, Outcome.NEEDS_REVIEW, [Reason(clause, text, False, detail)])


def _unruled(ctx: Context) -> Decision:
    kind = ctx.case.request.kind.value
    return _review(ctx, f"{ctx.pack.seed} (no clause)", "",
                   f"pack {ctx.pack.name} has no rule for {kind} requests; a person decides")


def _refund(ctx: Context) -> Decision:
    pack = ctx.pack
    if pack.non_refundable:
        denied = non_refundable(ctx, pack.non_refundable)
        if denied is not None:
            return denied
    if pack.guarantee:
        return evaluate_guarantee(ctx, pack.guarantee)
    if pack.service_refund is not None:
        return evaluate_service_refund(ctx, pack.service_refund)
    if pack.refund_review is not None:
        return evaluate_refund_review(ctx, pack.refund_review)
    return _unruled(ctx)


def _cancellation(ctx: Context) -> Decision:
    t = ctx.pack.cancellation
    return _unruled(ctx) if t is None else evaluate_cancellation(ctx, t)


def _overpayment(ctx: Context) -> Decision:
    t = ctx.pack.overpayment
    return _unruled(ctx) if t is None else evaluate_overpayment(ctx, t)


def _uptime(ctx: Context) -> Decision:
    t = ctx.pack.uptime
    return _unruled(ctx) if t is None else evaluate_uptime(ctx, t)


def _overdue(ctx: Context) -> Decision:
    t = ctx.pack.late_fee
    return _unruled(ctx) if t is None else evaluate_late_fee(ctx, t)


_ROUTES: dict[RequestKind, Callable[[Context], Decision]] = {
    RequestKind.REFUND: _refund,
    RequestKind.CANCELLATION: _cancellation,
    RequestKind.OVERPAYMENT: _overpayment,
    RequestKind.UPTIME_CREDIT: _uptime,
    RequestKind.OVERDUE_INVOICE: _overdue,
}
assert set(_ROUTES) == set(RequestKind), "every request kind needs a route"
