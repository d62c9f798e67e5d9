"""Account credit kept in our own ledger: granted with the clause behind it, never paid out.

Per 003 §1.8 ("Funds added as account credit are not refundable") credit only ever reduces a
later invoice; there is deliberately no way to turn a balance into a refund.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger.models import AccountCredit
from policy.money import Money


def grant(session: Session, *, merchant: str, account_ref: str, amount: Money, reason: str,
          clause: str | None, decision_id: str | None, action_id: str, now: datetime) -> bool:
    """Add a credit entry once per action (the action id is unique); False if already granted."""
    entry = AccountCredit(merchant=merchant, account_ref=account_ref, amount=amount.amount,
                          currency=amount.currency, reason=reason, clause=clause,
                          decision_id=decision_id, action_id=action_id, created_at=now)
    try:
        with session.begin_nested():
            session.add(entry)
    except IntegrityError:
        return False
    return True


def balance(session: Session, merchant: str, account_ref: str, currency: str) -> Money:
    """The account's credit balance in ``currency`` (grants less uses)."""
    total = session.scalar(balance_query(merchant, account_ref, currency))
    return Money(int(total or 0), currency)


def balance_query(merchant: str, account_ref: str, currency: str) -> Select[int]:
    """The balance as a query, for a caller that asks it together with other facts."""
    return (select(func.coalesce(func.sum(AccountCredit.amount), 0))
            .where(AccountCredit.merchant == merchant, AccountCredit.account_ref == account_ref)
            .where(AccountCredit.currency == currency.upper()))
