"""Building blocks the rule families share: the evaluation context, the findings collector and
the one constructor of Decisions (which enforces the money invariants)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from zoneinfo import ZoneInfo

from policy.case import Case, Identity, Order
from policy.decision import Decision, LineItem, Outcome, Reason, new_decision, new_reason
from policy.errors import EvaluationError
from policy.frozen import builder
from policy.money import Money, exponent
from policy.pack import AmountTable, Clause, IdentityRule, Pack, Window
from policy.timing import calendar_days, local_date, zone


class Severity(IntEnum):
    """How bad a failed clause is for the request; the worst finding picks the outcome."""

    OK = 0
    PARTIAL = 1
    REVIEW = 2
    DENY = 3



class MissingFact(Exception):
    """A rule needs a fact the Case does not give; the decision becomes needs_review."""

    def __init__(self, field: str, clause: Clause) -> None:
        super().__init__(field)
        self.field = field
        self.clause = clause


@dataclass(frozen=True, slots=True)
class Context:
    pack: Pack
    case: Case
    now: datetime
    currency: str

    @property
    def zone(self) -> ZoneInfo:
        """The merchant's calendar (the Case's ``time_zone``)."""
        return zone(self.case.time_zone)

    def order(self, clause: Clause) -> Order:
        if self.case.order is None:
            raise MissingFact("order", clause)
        return self.case.order

    def money(self, amount: int) -> Money:
        return _m(self.currency, amount)

    def show(self, amount: int) -> str:
        """``amount`` minor units as text, the same as ``str(Money)`` (``12.34 USD``)."""
        return show_money(amount, self.currency)

    def fixed_amount(self, table: AmountTable) -> int | None:
        """The table's amount in the decision currency, or None when it has no entry."""
        return table.amounts.get(self.currency)


class Findings:
    """Reasons collected while a rule family runs, with the worst severity seen."""

    __slots__ = ("reasons", "worst")

    def __init__(self) -> None:
        self.reasons: list[Reason] = []
        self.worst = Severity.OK

    def check(self, clause: Clause, holds: bool, detail: str,
              severity: Severity = Severity.DENY) -> bool:
        self.reasons.append(new_reason(clause.citation, clause.text, holds, detail))
        if not holds and severity > self.worst:
            self.worst = severity
        return holds

    def note(self, clause: Clause, detail: str) -> None:
        self.reasons.append(new_reason(clause.citation, clause.text, True, detail))

    def add(self, reason: Reason, severity: Severity = Severity.DENY) -> bool:
        """Record a Reason the pack built at load time (its detail does not depend on the case)."""
        self.reasons.append(reason)
        if not reason.holds and severity > self.worst:
            self.worst = severity
        return reason.holds

    def window(self, window: Window, start: datetime, claim: datetime, what: str,
               tz: ZoneInfo) -> bool:
        """A window of calendar days on the merchant's calendar; the reason names both dates."""
        days = calendar_days(start, claim, tz)
        ok = days >= 0 and (days <= window.days if window.inclusive else days < window.days)
        return self.check(window.clause, ok, f"claimed on calendar day {days} after the {what} "
                          f"({window.limit}; {local_date(start, tz).isoformat()} to "
                          f"{local_date(claim, tz).isoformat()}, {tz.key} dates)")

    def identity(self, rule: IdentityRule, identity: Identity, reason: str,
                 severity: Severity = Severity.DENY) -> bool:
        missing = []
        for group in rule.groups:
            for key in group:
                value = getattr(identity, key)
                if value and not value.isspace():
                    break
            else:
                missing.append(" or ".join(group))
        if rule.reason_required and (not reason or reason.isspace()):
            missing.append("reason")
        if not missing:
            return self.add(rule.satisfied, severity)
        return self.check(rule.clause, False, "missing: " + ", ".join(missing), severity)


_ONE = Decimal(1)


def percent_of(amount: int, pct: Decimal, rounding: str) -> int:
    """``pct`` per cent of ``amount`` minor units, rounded to a whole minor unit with
    ``rounding``."""
    return int((Decimal(amount) * pct / 100).quantize(_ONE, rounding=rounding))


def divide(amount: int, parts: int, rounding: str) -> int:
    """``amount / parts`` rounded to a whole minor unit with ``rounding``."""
    return int((Decimal(amount) / parts).quantize(_ONE, rounding=rounding))


# Money from an int we computed and a currency already normalised by a Money in the Case: the
# builder skips ``Money.__post_init__``, whose validation those arguments have already passed.
_new_money: Callable[[int, str], Money] = builder(Money, skip_post_init=True)

_ZEROS: dict[str, Money] = {}
_EXPONENTS: dict[str, int] = {}


def show_money(amount: int, currency: str) -> str:
    """Minor units as ``str(Money)`` renders them, without building Decimals."""
    exp = _EXPONENTS.get(currency)
    if exp is None:
        exp = _EXPONENTS.setdefault(currency, exponent(currency))
    if exp == 0:
        return f"{amount} {currency}"
    whole, frac = divmod(abs(amount), 10**exp)
    # %-formatting on purpose, as in timing.describe: faster than format specs, same text.
    return "%s%d.%0*d %s" % ("-" if amount < 0 else "", whole, exp, frac, currency)  # noqa: UP031


def _zero(currency: str) -> Money:
    """The zero amount in ``currency``, shared: most amounts of most decisions are zero."""
    zero = _ZEROS.get(currency)
    if zero is None:
        zero = _ZEROS.setdefault(currency, _new_money(0, currency))
    return zero


def _m(currency: str, amount: int) -> Money:
    """Money for an amount a rule computed, in the decision currency."""
    return _new_money(amount, currency) if amount else _zero(currency)


def decide(ctx: Context, outcome: Outcome, findings: Findings | Iterable[Reason], *,
           at_stake: int | None = None, refund: int = 0, credit: int = 0, fee: int = 0,
           charge: int = 0, proposed_refund: int | None = None,
           line_items: tuple[LineItem, ...] = (), effective_at: datetime | None = None,
           access_until: datetime | None = None, balance_due_by: datetime | None = None,
           notice_by: datetime | None = None, flags: tuple[str, ...] = (),
           basis: Clause | None = None) -> Decision:
    """The one way to make a Decision: ``retained`` is derived so the invariants hold by design.

    ``basis`` is the clause the outcome rests on: a rule names it wherever money moves or a date
    is set; otherwise ``default_basis`` picks it from the reasons."""
    if refund < 0 or credit < 0 or fee < 0 or charge < 0:
        raise EvaluationError(f"negative amount in {outcome} decision: bug in a rule")
    c = ctx.currency
    zero = _zero(c)
    stake = None
    retained = zero
    if at_stake is not None:
        kept = at_stake - refund - credit
        if kept < 0 or (proposed_refund is not None and proposed_refund > at_stake):
            raise EvaluationError(f"{outcome} pays out more than is at stake: bug in a rule")
        stake = _new_money(at_stake, c) if at_stake else zero
        retained = _new_money(kept, c) if kept else zero
    reasons = tuple(findings.reasons if isinstance(findings, Findings) else findings)
    return new_decision(
        ctx.pack.name, ctx.case.request.kind, outcome, ctx.now, c, stake,
        _new_money(refund, c) if refund else zero, _new_money(credit, c) if credit else zero,
        _new_money(fee, c) if fee else zero, _new_money(charge, c) if charge else zero, retained,
        None if proposed_refund is None else _m(c, proposed_refund),
        line_items, effective_at, access_until, balance_due_by, notice_by, flags, reasons,
        basis.citation if basis is not None else default_basis(outcome, reasons))


_ADVERSE = frozenset({Outcome.DENY, Outcome.NEEDS_REVIEW, Outcome.CANCEL_BLOCKED})


def default_basis(outcome: Outcome, reasons: tuple[Reason, ...]) -> str | None:
    """The clause a decision rests on when its rule does not name one: for a denial, a review or
    a blocked cancellation the first one the case fails, for any other outcome the first one it
    satisfies; when there is no such clause, the first of the other kind; None without
    reasons."""
    adverse = outcome in _ADVERSE
    for r in reasons:
        if r.holds != adverse:
            return r.clause
    return reasons[0].clause if reasons else None
