"""Building blocks the rule families share: the evaluation context, the findings collector and
the one constructor of Decisions (which enforces the money invariants)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum

from policy.case import Case, Identity, Order
from policy.decision import Decision, LineItem, Outcome, Reason
from policy.errors import EvaluationError
from policy.frozen import fast_init
from policy.money import Money, exponent
from policy.pack import AmountTable, Clause, IdentityRule, Pack, Window
from policy.timing import calendar_days


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


@fast_init
@dataclass(frozen=True, slots=True)
class Context:
    pack: Pack
    case: Case
    now: datetime
    currency: str

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
        self.reasons.append(Reason(clause.citation, clause.text, holds, detail))
        if not holds and severity > self.worst:
            self.worst = severity
        return holds

    def note(self, clause: Clause, detail: str) -> None:
        self.reasons.append(Reason(clause.citation, clause.text, True, detail))

    def window(self, window: Window, start: datetime, claim: datetime, what: str) -> bool:
        days = calendar_days(start, claim)
        ok = 0 <= days and (days <= window.days if window.inclusive else days < window.days)
        limit = f"day {window.days} {'included' if window.inclusive else 'excluded'}"
        return self.check(window.clause, ok,
                          f"claimed on calendar day {days} after the {what} ({limit}, UTC dates)")

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
        detail = "missing: " + ", ".join(missing) if missing else "all required details given"
        return self.check(rule.clause, not missing, detail, severity)


def percent_of(amount: int, pct: Decimal, rounding: str) -> int:
    """``pct`` per cent of ``amount`` minor units, rounded to a whole minor unit with ``rounding``."""
    return int((Decimal(amount) * pct / 100).quantize(Decimal(1), rounding=rounding))


def divide(amount: int, parts: int, rounding: str) -> int:
    """``amount / parts`` rounded to a whole minor unit with ``rounding``."""
    return int((Decimal(amount) / parts).quantize(Decimal(1), rounding=rounding))


_new_money = object.__new__
_set_amount = Money.__dict__["amount"].__set__
_set_currency = Money.__dict__["currency"].__set__


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
    return f"{'-' if amount < 0 else ''}{whole}.{frac:0{exp}d} {currency}"


def _m(currency: str, amount: int) -> Money:
    """Money from an int we computed and a currency already normalised by a Money in the Case."""
    if not amount:
        zero = _ZEROS.get(currency)
        if zero is not None:
            return zero
    money: Money = _new_money(Money)
    _set_amount(money, amount)
    _set_currency(money, currency)
    if not amount:
        _ZEROS[currency] = money
    return money


def decide(ctx: Context, outcome: Outcome, findings: Findings | Iterable[Reason], *,
           at_stake: int | None = None, refund: int = 0, credit: int = 0, fee: int = 0,
           charge: int = 0, proposed_refund: int | None = None,
           line_items: tuple[LineItem, ...] = (), effective_at: datetime | None = None,
           access_until: datetime | None = None, balance_due_by: datetime | None = None,
           notice_by: datetime | None = None, flags: tuple[str, ...] = ()) -> Decision:
    """The one way to make a Decision: ``retained`` is derived so the invariants hold by design."""
    if refund < 0 or credit < 0 or fee < 0 or charge < 0:
        raise EvaluationError(f"negative amount in {outcome} decision: bug in a rule")
    c = ctx.currency
    zero = _ZEROS.get(c) or _m(c, 0)
    stake = None
    retained = zero
    if at_stake is not None:
        kept = at_stake - refund - credit
        if kept < 0 or (proposed_refund is not None and proposed_refund > at_stake):
            raise EvaluationError(f"{outcome} pays out more than is at stake: bug in a rule")
        stake = _m(c, at_stake) if at_stake else zero
        retained = _m(c, kept) if kept else zero
    reasons = findings.reasons if isinstance(findings, Findings) else findings
    return Decision(
        ctx.pack.name, ctx.case.request.kind, outcome, ctx.now, c, stake,
        _m(c, refund) if refund else zero, _m(c, credit) if credit else zero,
        _m(c, fee) if fee else zero, _m(c, charge) if charge else zero, retained,
        None if proposed_refund is None else _m(c, proposed_refund),
        line_items, effective_at, access_until, balance_due_by, notice_by, flags, tuple(reasons))
