"""Account credit kept in our own ledger: granted with the clause behind it, never paid out.

Per 003 §1.8 ("Funds added as account credit are not refundable") credit only ever reduces a
later invoice; there is deliberately no way to turn a balance into a refund of anything but the
payment it is applied to. A use draws on the oldest grant first and names it and what it paid.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from ledger.db import reading
from ledger.models import AccountCredit, Action, ActionStatus, Refund
from ledger.refundable import GONE
from policy.money import Money
from policy.timing import LATEST

LEDGER = "ledger"  # used against the account's next payments (a partial refund of each)
STRIPE_BALANCE = "stripe_balance"  # Stripe applies it to the next invoice


def grant(session: Session, *, merchant: str, account_ref: str, amount: Money, reason: str,
          clause: str | None, decision_id: str | None, action_id: str, now: datetime,
          held_by: str = LEDGER) -> bool:
    """Add a credit entry once per action (the action id is unique); False if already granted."""
    entry = AccountCredit(merchant=merchant, account_ref=account_ref, amount=amount.amount,
                          currency=amount.currency, reason=reason, clause=clause,
                          decision_id=decision_id, action_id=action_id, created_at=now,
                          held_by=held_by)
    try:
        with session.begin_nested():
            session.add(entry)
    except IntegrityError:
        return False
    return True


def balance(session: Session, merchant: str, account_ref: str, currency: str) -> Money:
    """The account's credit balance in ``currency`` (grants less uses)."""
    total = session.scalar(balance_query(), balance_params(merchant, account_ref, currency))
    return Money(int(total or 0), currency)


def balance_query() -> Select[int]:
    """The balance as a query with the parameters ``merchant``, ``account`` and ``currency``
    (``balance_params``), for a caller that asks it together with other facts."""
    return _BALANCE


def balance_params(merchant: str, account_ref: str, currency: str) -> dict[str, str]:
    return {"merchant": merchant, "account": account_ref, "currency": currency.upper()}


def counts() -> ColumnElement[bool]:
    """Every grant counts, and every use except one whose refund failed (the credit is back)."""
    return _COUNTS


def _given_back(use: type[AccountCredit]) -> ColumnElement[bool]:
    """Whether the use ``use`` was given back: its refund action failed, and the provider
    reports no refund of it that stands (an attempt that timed out may have landed after all;
    then the credit left as that refund and is not back)."""
    failed = select(Action.id).where(Action.id == use.action_id,
                                     Action.status == ActionStatus.FAILED).exists()
    landed = select(Refund.id).where(Refund.action_id == use.action_id,
                                     func.lower(Refund.status).not_in(GONE)).exists()
    return and_(use.action_id.is_not(None), failed, ~landed)


# Built once, with bound parameters: building them per question cost more than asking it.
_COUNTS = or_(AccountCredit.amount > 0, ~_given_back(AccountCredit))
_BALANCE = (select(func.coalesce(func.sum(AccountCredit.amount), 0))
            .where(AccountCredit.merchant == bindparam("merchant"),
                   AccountCredit.account_ref == bindparam("account"),
                   AccountCredit.currency == bindparam("currency"), _COUNTS))
_EVER_GRANTED = (select(AccountCredit.id)
                 .where(AccountCredit.merchant == bindparam("merchant"),
                        AccountCredit.account_ref.in_(bindparam("accounts", expanding=True)),
                        AccountCredit.amount > 0, AccountCredit.applies_to.is_(None),
                        AccountCredit.held_by == bindparam("held_by"))
                 .limit(1))
_REDUCED = (select(AccountCredit.applied_to)
            .where(AccountCredit.merchant == bindparam("merchant"),
                   AccountCredit.applied_to.in_(bindparam("refs", expanding=True)), _COUNTS))


@dataclass(frozen=True, slots=True)
class OpenGrant:
    grant: AccountCredit
    left: int  # minor units of it not yet used


def open_grants(session: Session, merchant: str, account_ref: str, currency: str,
                held_by: str, granted_by: datetime | None = None) -> list[OpenGrant]:
    """The account's grants in ``currency`` held by ``held_by`` with something left, oldest
    first (the order they are used in); only those granted by ``granted_by`` when given (a
    credit applies to later invoices, not to a payment made before it existed)."""
    use = aliased(AccountCredit)
    used = (select(func.coalesce(func.sum(use.amount), 0))
            .where(use.applies_to == AccountCredit.id)
            .where(~_given_back(use))
            .scalar_subquery())
    with reading(session, AccountCredit):
        rows = session.execute(
            select(AccountCredit, AccountCredit.amount + used)
            .where(AccountCredit.merchant == merchant, AccountCredit.account_ref == account_ref,
                   AccountCredit.currency == currency.upper(), AccountCredit.amount > 0,
                   AccountCredit.applies_to.is_(None), AccountCredit.held_by == held_by,
                   AccountCredit.created_at <= (granted_by or LATEST))
            .order_by(AccountCredit.created_at, AccountCredit.id)).all()
    return [OpenGrant(grant, int(left)) for grant, left in rows if left > 0]


def ever_granted(session: Session, merchant: str, account_refs: Collection[str], held_by: str
                 ) -> bool:
    """Whether any of the accounts was ever granted credit held by ``held_by`` (used up or
    not): one indexed look."""
    with reading(session, AccountCredit):
        return session.scalars(_EVER_GRANTED, {
            "merchant": merchant, "accounts": sorted(account_refs), "held_by": held_by
        }).first() is not None


def applied(session: Session, merchant: str, applied_to: str) -> bool:
    """Whether credit was already applied to the invoice or payment ``applied_to``."""
    with reading(session, AccountCredit):
        return session.scalars(select(AccountCredit.id).where(
            AccountCredit.merchant == merchant,
            AccountCredit.applied_to == applied_to)).first() is not None


def reduced(session: Session, merchant: str, refs: list[str]) -> set[str]:
    """Those of the payments ``refs`` that credit reduced (a use of it stands against them)."""
    with reading(session, AccountCredit):
        return set(session.scalars(_REDUCED, {"merchant": merchant, "refs": refs}))


def give_back(session: Session, merchant: str, invoice_ref: str, reason: str,
              now: datetime) -> int:
    """Stripe voided the invoice ``invoice_ref`` and returned the customer balance it had
    applied: each use of credit against it is given back to its grant by a positive entry
    naming the grant and ``<invoice>:voided`` (once); returns the minor units given back."""
    returned = f"{invoice_ref}:voided"
    with reading(session, AccountCredit):
        uses = list(session.scalars(select(AccountCredit).where(
            AccountCredit.merchant == merchant, AccountCredit.applied_to == invoice_ref,
            AccountCredit.amount < 0, AccountCredit.held_by == STRIPE_BALANCE)))
        done = set(session.scalars(select(AccountCredit.applies_to).where(
            AccountCredit.merchant == merchant, AccountCredit.applied_to == returned)))
    total = 0
    for used in uses:
        if used.applies_to is None or used.applies_to in done:
            continue
        session.add(AccountCredit(
            merchant=used.merchant, account_ref=used.account_ref, amount=-used.amount,
            currency=used.currency, reason=reason, clause=used.clause, created_at=now,
            held_by=used.held_by, applies_to=used.applies_to, applied_to=returned))
        total -= used.amount
    return total


def kind(entry: AccountCredit) -> str:
    """``grant``, ``use`` (negative, names what it paid) or ``return`` (a use given back)."""
    if entry.applies_to is None:
        return "grant"
    return "use" if entry.amount < 0 else "return"


@dataclass(frozen=True)
class Statement:
    """An account's credit: every entry oldest first, which of them count (a use whose refund
    failed does not: the credit is back), and per currency what was granted, used and is
    available, in minor units."""

    entries: list[AccountCredit]
    counting: set[int]
    balances: list[dict[str, Any]]


def statement(session: Session, merchant: str, account: str) -> Statement:
    entries = list(session.scalars(select(AccountCredit).where(
        AccountCredit.merchant == merchant, AccountCredit.account_ref == account)
        .order_by(AccountCredit.created_at, AccountCredit.id)))
    counting = set(session.scalars(select(AccountCredit.id).where(
        AccountCredit.merchant == merchant, AccountCredit.account_ref == account, counts())))
    balances: dict[str, dict[str, Any]] = {}
    for e in entries:
        b = balances.setdefault(e.currency, {"currency": e.currency, "available": 0,
                                             "granted": 0, "used": 0})
        if e.id in counting:
            b["available"] += e.amount
            if kind(e) == "grant":
                b["granted"] += e.amount
            else:  # a use (negative) or a use given back (positive)
                b["used"] -= e.amount
    return Statement(entries, counting, list(balances.values()))


def use(session: Session, grant: AccountCredit, amount: int, *, applied_to: str, reason: str,
        decision_id: str | None, action_id: str | None, now: datetime) -> None:
    """Record ``amount`` of ``grant`` applied to ``applied_to`` (a negative entry naming both)."""
    session.add(AccountCredit(
        merchant=grant.merchant, account_ref=grant.account_ref, amount=-amount,
        currency=grant.currency, reason=reason, clause=grant.clause, decision_id=decision_id,
        action_id=action_id, created_at=now, held_by=grant.held_by, applies_to=grant.id,
        applied_to=applied_to))


def plan_uses(grants: list[OpenGrant], amount: int) -> list[tuple[AccountCredit, int]]:
    """``amount`` drawn from ``grants`` oldest first: (grant, how much of it) for each used."""
    plan = []
    for open_grant in grants:
        if amount <= 0:
            break
        take = min(open_grant.left, amount)
        plan.append((open_grant.grant, take))
        amount -= take
    return plan
