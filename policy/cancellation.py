"""The cancellation family: identity and outstanding-invoice checks, then the notice rule that
decides when the cancellation takes effect and whether one more period is charged.

Notice kinds: ``day_of_month`` (000: before the 25th, else the next month is billed),
``before_due`` (003: at least N days before the invoice due date, else one more month) and
``before_billing`` (001, 002: before the next billing date, else the next period is charged)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from policy.case import Order
from policy.decision import (
    Decision,
    LineItem,
    Outcome,
    new_line_item,
)
from policy.pack import CancellationTerms, IdentityRule
from policy.timing import (
    add_days,
    add_months,
    calendar_days,
    describe,
    local_date,
    local_midnight,
    start_of_month,
)
from policy.verdict import (
    Context,
    Findings,
    MissingFact,
    Severity,
    decide,
    divide,
)

_NO_TIME: Final = timedelta(0)


def evaluate_cancellation(ctx: Context, t: CancellationTerms) -> Decision:
    """Decide a cancellation request."""
    order = ctx.order(t.notice_clause)
    f = Findings()
    identified = _identity(ctx, t.identity, f) if t.identity is not None else True
    if t.outstanding is not None:
        due = ctx.case.due_invoices(ctx.now)
        numbers = ", ".join(i.number for i in due)
        f.check(t.outstanding, not due,
                f"unpaid invoices due: {numbers}" if due else "no invoice is due or overdue")
    if f.worst == Severity.DENY:
        if not identified and t.identity is not None and t.identity.procedure_clause is not None:
            f.check(t.identity.procedure_clause, False,
                    "the cancellation procedure was not followed: the account stays open")
        return decide(ctx, Outcome.CANCEL_BLOCKED, f)
    if f.worst == Severity.REVIEW:
        return decide(ctx, Outcome.NEEDS_REVIEW, f)
    return _schedule(ctx, t, order, f)


_VERIFIED: Final[dict[bool | None, str]] = {
    True: "credentials verified", False: "credentials failed verification",
    None: "credentials not yet verified"}


def _identity(ctx: Context, rule: IdentityRule, f: Findings) -> bool:
    identity = ctx.case.request.identity
    ok = f.identity(rule, identity, ctx.case.request.reason) if rule.groups else True
    if rule.invoice_in_last and identity.has("invoice_number"):
        latest = ctx.case.last_invoice_numbers(rule.invoice_in_last)
        ok = f.check(rule.clause, identity.invoice_number in latest,
                     f"invoice {identity.invoice_number} "
                     f"{'is' if identity.invoice_number in latest else 'is not'} one of the last "
                     f"{rule.invoice_in_last} ({', '.join(latest) or 'none on file'})") and ok
    if rule.verified_required:
        verified = identity.verified
        ok = f.check(rule.clause, verified is True, _VERIFIED[verified],
                     Severity.REVIEW if verified is None else Severity.DENY) and ok
    return ok


def _next_billing(order: Order, t: CancellationTerms) -> datetime:
    if order.next_billing_at is None:
        raise MissingFact("order.next_billing_at", t.notice_clause)
    return order.next_billing_at


def _timing(ctx: Context, t: CancellationTerms, order: Order,
            f: Findings) -> tuple[bool, datetime, datetime]:
    """(on time, end of the current period, end of the following period)."""
    received = ctx.case.request.received_at
    tz = ctx.zone
    if t.notice_kind == "day_of_month":
        local = local_date(received, tz)
        on_time = local.day < t.notice_value
        f.check(t.notice_clause, on_time, f"received on day {local.day} of the month "
                f"({local.isoformat()}, {tz.key}; must be before day {t.notice_value})",
                Severity.OK)
        return on_time, start_of_month(received, 1, tz), start_of_month(received, 2, tz)
    due = _next_billing(order, t)
    if t.notice_value:
        # "At least N days before": calendar days on the merchant's calendar, so the time of
        # day of the request, or of a date-only due date, does not move the deadline.
        days = calendar_days(received, due, tz)
        on_time = days >= t.notice_value
        f.check(t.notice_clause, on_time, f"received {local_date(received, tz).isoformat()}, "
                f"{days} calendar day(s) before the {t.notice_what} "
                f"{local_date(due, tz).isoformat()} ({tz.key} dates; needs at least "
                f"{t.notice_value})", Severity.OK)
    else:
        margin = due - received
        on_time = margin > _NO_TIME
        f.check(t.notice_clause, on_time, f"received {describe(margin)} before the "
                f"{t.notice_what} {due.isoformat()} (needs {t.notice_needs})", Severity.OK)
    step = 1 if t.late_charge == "month" else order.term_months
    return on_time, due, _period_after(due, step, tz)


def _period_after(due: datetime, months: int, tz: ZoneInfo) -> datetime:
    """The end of the period after the one ending at ``due``. A date-only due date (local
    midnight) steps on the merchant's calendar; an instant (a provider's period end, anchored in
    UTC as Stripe and PayPal bill) steps in UTC, so 1 March 00:00 UTC is followed by 1 April, not
    by the 28th of the merchant's local February-end date a month on."""
    local = due.astimezone(tz)
    if local.time() == time(0):
        return local_midnight(add_months(local, months).date(), tz)
    return add_months(due.astimezone(UTC), months)


def _schedule(ctx: Context, t: CancellationTerms, order: Order, f: Findings) -> Decision:
    on_time, period_end, next_end = _timing(ctx, t, order, f)
    flags = _forfeit(t, order, f)
    if on_time and ctx.case.request.immediate and t.immediate is not None:
        f.note(t.immediate, "cancelled immediately: no refund of the unused part of the period")
        return decide(ctx, Outcome.CANCEL_IMMEDIATELY, f, effective_at=ctx.now,
                      access_until=ctx.now, flags=flags, basis=t.immediate)
    effective = period_end if on_time else next_end
    charge = 0
    items: tuple[LineItem, ...] = ()
    if not on_time:
        charge = (order.amount.amount if t.late_charge == "term"
                  else divide(order.amount.amount, order.term_months, ctx.pack.fee_rounding))
        items = (new_line_item("additional_period", "one more full billing period",
                               ctx.money(charge), t.late_clause.citation),)
        immediate = (" (an immediate cancellation was asked for)" if ctx.case.request.immediate
                     else "")
        takes_effect = local_date(effective, ctx.zone).isoformat()
        f.note(t.late_clause, f"notice too late: takes effect {takes_effect}, "
               f"one more period charged ({ctx.show(charge)}){immediate}")
    balance_due_by, more = _past_due(ctx, t, effective, f)
    _access_notes(t, order, effective, f)
    outcome = Outcome.CANCEL_AT_PERIOD_END if on_time else Outcome.CANCEL_NEXT_PERIOD
    return decide(ctx, outcome, f, charge=charge, line_items=items + more, effective_at=effective,
                  access_until=effective, balance_due_by=balance_due_by, flags=flags,
                  basis=t.notice_clause if on_time else t.late_clause)


def _forfeit(t: CancellationTerms, order: Order, f: Findings) -> tuple[str, ...]:
    if t.forfeit is None:
        return ()
    addons, flag, clause = t.forfeit
    hit = sorted(addons & set(order.addons))
    if not hit:
        return ()
    f.note(clause, f"{', '.join(hit)} suspended on cancellation; "
                   "funds and domains in it are forfeited")
    return (flag,)


def _past_due(ctx: Context, t: CancellationTerms, effective: datetime,
              f: Findings) -> tuple[datetime | None, tuple[LineItem, ...]]:
    if t.past_due is None:
        return None, ()
    due = [i for i in ctx.case.due_invoices(ctx.now) if i.amount.currency == ctx.currency]
    if not due:
        return None, ()
    total = sum(i.amount.amount for i in due)
    by = add_days(effective, t.past_due.value, ctx.zone)  # "within 30 days": calendar days
    f.note(t.past_due.clause, f"past-due balance {ctx.show(total)} must be paid by "
           f"{local_date(by, ctx.zone).isoformat()}, then collection begins")
    item = new_line_item("past_due_balance", "past-due balance at cancellation", ctx.money(total),
                         t.past_due.clause.citation)
    return by, (item,)


def _access_notes(t: CancellationTerms, order: Order, effective: datetime, f: Findings) -> None:
    if t.access is not None:
        f.note(t.access, f"access continues until {effective.isoformat()}")
    if t.auto_renew is not None:
        f.note(t.auto_renew, "automatic renewal turned off; the subscription is not extended"
               if order.auto_renew else "automatic renewal was not selected; nothing is extended")
