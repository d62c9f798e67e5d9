"""Comparing a faulty run with an orderly one, and counting the money that moved.

The refunds our actions made carry ids chosen at run time (the action id, the fake provider's
refund id, in the order they were executed), so those are compared by what they refunded, not by
their ids. Everything else in the ledger must be equal to the column.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger.models import Action, Decision, InboxEvent
from sandbox.fake_providers import FakeProviders
from tests.support.ledger import snapshot

_RUN_TIME_IDS = ("provider_id", "action_id", "version_event")


def comparable_snapshot(session: Session) -> dict[str, list[dict[str, Any]]]:
    """``snapshot`` with the run-time ids of our own refunds blanked and those rows re-sorted."""
    result = snapshot(session)
    ours = [{**r, **dict.fromkeys(_RUN_TIME_IDS, "<ours>")} for r in result["refunds"]
            if r["action_id"]]
    theirs = [r for r in result["refunds"] if not r["action_id"]]
    result["refunds"] = theirs + sorted(ours, key=lambda r: (r["payment_ref"], r["amount"]))
    return result


def decisions(session: Session) -> Counter[tuple[Any, ...]]:
    """What was decided, about what: (merchant, kind, outcome, account, payment) with counts."""
    return Counter(tuple(r) for r in session.execute(select(
        Decision.merchant, Decision.request_kind, Decision.outcome, Decision.account_ref,
        Decision.payment_ref)).all())


def refund_actions(session: Session) -> list[tuple[str, str | None, int, str]]:
    """(action id, payment, amount, status) of every refund action."""
    query = select(Action.id, Action.payment_ref, Action.amount, Action.status).where(
        Action.kind == "refund")
    return [(r.id, r.payment_ref, r.amount, r.status) for r in session.execute(query)]


def refunds_paid(fake: FakeProviders) -> Counter[str]:
    """Refunds the fake provider made, per payment refunded: 2 would be money paid twice.

    A refund is one per idempotency key (the provider's promise); the payment is the Stripe
    charge, or the PayPal sale or capture named in the refund request's path.
    """
    paid: Counter[str] = Counter()
    targets: dict[str, str] = {}
    for r in fake.requests:
        key = r.headers.get("Idempotency-Key") or r.headers.get("PayPal-Request-Id")
        if r.method == "POST" and key in fake.refunds and "refund" in r.path:
            targets[key] = r.path.split("/")[-2] if "/payments/" in r.path else str(
                fake.refunds[key].get("charge"))
    for target in targets.values():
        paid[target] += 1
    return paid


def inbox_attempts(session: Session) -> dict[tuple[str, int], int]:
    """Inbox rows by (status, attempts): processed exactly once is ("processed", 1)."""
    query = (select(InboxEvent.status, InboxEvent.attempts, func.count())
             .group_by(InboxEvent.status, InboxEvent.attempts))
    return {(str(status), attempts): n for status, attempts, n in session.execute(query)}
