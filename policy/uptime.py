"""The uptime-credit family (seed 003 §1.11-1.13): which services carry a guarantee, whether the
claim is valid, and the credit from the schedule, capped at the monthly payment."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from policy.case import Order, Uptime
from policy.decision import Decision, Outcome
from policy.pack import Band, Schedule, UptimeTerms
from policy.timing import describe
from policy.verdict import (
    Context,
    Findings,
    MissingFact,
    Severity,
    decide,
    divide,
)

# Decimals go into reason texts as {value!s}: the same text as Decimal.__format__ with an empty
# spec, in a quarter of the time.
_HUNDRED = Decimal(100)
_ONE = Decimal(1)


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
    # A met guarantee is not a wrong claim: nothing is owed (§1.12 compensates a failure only),
    # so it is "no action" rather than a denial, unless the claim itself is invalid.
    f.check(t.guarantee_clause, not met, f"measured {uptime.measured_percent!s}% against the "
            f"{t.guarantee_percent!s}% guarantee" + ("; the guarantee was met, so no credit is "
                                                     "owed" if met else ""), Severity.OK)
    monthly = divide(order.amount.amount, order.term_months, ctx.pack.credit_rounding)
    if f.worst == Severity.DENY or schedule is None:
        return decide(ctx, Outcome.DENY, f, at_stake=monthly)
    if met:
        return decide(ctx, Outcome.NO_ACTION, f, at_stake=monthly, basis=t.guarantee_clause)
    if f.worst == Severity.REVIEW:
        return decide(ctx, Outcome.NEEDS_REVIEW, f, at_stake=monthly)
    credit = _credit(ctx, t, schedule, uptime.measured_percent, monthly, f)
    if t.credit_note is not None:
        f.note(t.credit_note, "applied as account credit; no cash value")
    return decide(ctx, Outcome.SERVICE_CREDIT, f, at_stake=monthly, credit=credit,
                  flags=("no_cash_value",), basis=schedule.clause)


def _schedule(t: UptimeTerms, order: Order, f: Findings) -> Schedule | None:
    category = order.product_category
    if t.excluded is not None and category in t.excluded.categories:
        f.check(t.excluded.clause, False, f"{category} is excluded from uptime credit")
        return None
    for schedule in t.schedules:
        if category in schedule.categories:
            return schedule
    f.check(t.guarantee_clause, False, f"{category} carries no uptime guarantee")
    return None


def _claim(ctx: Context, t: UptimeTerms, uptime: Uptime, f: Findings) -> None:
    request = ctx.case.request
    late = request.received_at - uptime.incident_at
    f.check(t.claim_hours.clause, late <= t.claim_window,
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


def _band(s: Schedule, measured: Decimal) -> Band:
    """The highest band ``measured`` reaches (the lowest band when it reaches none)."""
    for band in s.bands:
        if measured >= band.from_percent:
            return band
    return s.bands[-1]


def _credit(ctx: Context, t: UptimeTerms, s: Schedule, measured: Decimal, monthly: int,
            f: Findings) -> int:
    band = _band(s, measured)
    exact = Decimal(monthly) * band.credit_percent / _HUNDRED
    detail = (f"measured {measured!s}%: band from {band.from_percent!s}% gives "
              f"{band.credit_percent!s}%")
    lowest = s.bands[-1].from_percent
    if measured < lowest and s.daily_percent is not None:
        rounding = ROUND_CEILING if s.day_rounding == "ceiling" else ROUND_FLOOR
        days = ((lowest - measured) / _HUNDRED * t.days_per_month).quantize(_ONE, rounding)
        daily = Decimal(monthly) / t.days_per_month
        exact += daily * s.daily_percent / _HUNDRED * days
        detail += (f", plus {s.daily_percent!s}% of the daily equivalent for {days!s} further "
                   f"day(s) of downtime below {lowest!s}%")
    f.note(s.clause, detail)
    credit = int(exact.quantize(_ONE, rounding=ctx.pack.credit_rounding))
    cap = int((Decimal(monthly) * t.cap_percent / _HUNDRED).quantize(_ONE, ROUND_FLOOR))
    if credit > cap:
        f.note(t.cap_clause, f"credit capped at {t.cap_percent!s}% of the monthly payment")
    return min(credit, cap, monthly)
