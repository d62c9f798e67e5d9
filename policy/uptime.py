"""The uptime-credit family (seed 003 §1.11-1.13): which services carry a guarantee, whether the
claim is valid, and the credit from the schedule, capped at the monthly payment."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from policy.case import Order, Uptime
from policy.decision import Decision, Outcome
from policy.pack import Schedule, UptimeTerms
from policy.timing import HOUR, describe
from policy.verdict import Context, Findings, MissingFact, Severity, decide, divide

_HUNDRED = Decimal(100)


def evaluate_uptime(ctx: Context, t: UptimeTerms) -> Decision:
    """Decide an uptime credit claim."""
    order = ctx.order(t.guarantee_clause)
    uptime = ctx.case.uptime
    if uptime is None:
        raise MissingFact("uptime", t.guarantee_clause)
    f = Findings()
    schedule = _schedule(t, order, f)
    _claim(ctx, t, uptime, f)
    met = uptime.measured_percent >= t.guarantee_percent
    f.check(t.guarantee_clause, not met, f"measured {uptime.measured_percent}% against the "
            f"{t.guarantee_percent}% guarantee")
    monthly = divide(order.amount.amount, order.term_months, ctx.pack.credit_rounding)
    if f.worst == Severity.DENY or schedule is None:
        return decide(ctx, Outcome.DENY, f, at_stake=monthly)
    if f.worst == Severity.REVIEW:
        return decide(ctx, Outcome.NEEDS_REVIEW, f, at_stake=monthly)
    credit = _credit(ctx, t, schedule, uptime.measured_percent, monthly, f)
    if t.credit_note is not None:
        f.note(t.credit_note, "applied as account credit; no cash value")
    return decide(ctx, Outcome.SERVICE_CREDIT, f, at_stake=monthly, credit=credit,
                  flags=("no_cash_value",))


def _schedule(t: UptimeTerms, order: Order, f: Findings) -> Schedule | None:
    category = order.product_category
    if t.excluded is not None and category in t.excluded.categories:
        f.check(t.excluded.clause, False, f"{category} is excluded from uptime credit")
        return None
    schedule = next((s for s in t.schedules if category in s.categories), None)
    if schedule is None:
        f.check(t.guarantee_clause, False, f"{category} carries no uptime guarantee")
    return schedule


def _claim(ctx: Context, t: UptimeTerms, uptime: Uptime, f: Findings) -> None:
    request = ctx.case.request
    late = request.received_at - uptime.incident_at
    f.check(t.claim_hours.clause, late <= t.claim_hours.value * HOUR,
            f"claimed {describe(late)} after the incident (at most {t.claim_hours.value}h)")
    if t.identity is not None:
        f.identity(t.identity, request.identity, request.reason)
    if t.excluded_causes is not None:
        excluded = uptime.cause in t.excluded_causes.categories
        f.check(t.excluded_causes.clause, not excluded, f"cause: {uptime.cause}")
    if t.accepted_sources is not None:
        accepted = uptime.source in t.accepted_sources.categories
        f.check(t.accepted_sources.clause, accepted,
                f"figure from {uptime.source}" + ("" if accepted else
                "; the merchant's own monitoring decides"), Severity.REVIEW)


def _credit(ctx: Context, t: UptimeTerms, s: Schedule, measured: Decimal, monthly: int,
            f: Findings) -> int:
    band = next((b for b in s.bands if measured >= b.from_percent), s.bands[-1])
    exact = Decimal(monthly) * band.credit_percent / _HUNDRED
    detail = f"measured {measured}%: band from {band.from_percent}% gives {band.credit_percent}%"
    lowest = s.bands[-1].from_percent
    if measured < lowest and s.daily_percent is not None:
        rounding = ROUND_CEILING if s.day_rounding == "ceiling" else ROUND_FLOOR
        days = ((lowest - measured) / _HUNDRED * t.days_per_month).quantize(Decimal(1), rounding)
        daily = Decimal(monthly) / t.days_per_month
        exact += daily * s.daily_percent / _HUNDRED * days
        detail += (f", plus {s.daily_percent}% of the daily equivalent for {days} further "
                   f"day(s) of downtime below {lowest}%")
    f.note(s.clause, detail)
    credit = int(exact.quantize(Decimal(1), rounding=ctx.pack.credit_rounding))
    cap = int((Decimal(monthly) * t.cap_percent / _HUNDRED).quantize(Decimal(1), ROUND_FLOOR))
    if credit > cap:
        f.note(t.cap_clause, f"credit capped at {t.cap_percent}% of the monthly payment")
    return min(credit, cap, monthly)
