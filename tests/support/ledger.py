"""Reading the ledger back as plain data, to compare two runs; writing rows straight into it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.models import (
    Action,
    AuditEntry,
    Customer,
    Decision,
    Dispute,
    InboxEvent,
    Invoice,
    Payment,
    Refund,
    Subscription,
)
from service.bootstrap import Container

PROVIDER_OBJECTS = (Customer, Subscription, Invoice, Payment, Refund, Dispute)


def snapshot(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Every provider object's columns but the surrogate key, sorted by provider id."""
    result: dict[str, list[dict[str, Any]]] = {}
    for model in PROVIDER_OBJECTS:
        rows = session.scalars(select(model).order_by(model.provider_id)).all()
        columns = [c.key for c in model.__table__.columns if c.key != "id"]
        result[model.__tablename__] = [_comparable({c: getattr(r, c) for c in columns})
                                       for r in rows]
    return result


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A refund known only from our own call's answer is dated when this run made it: two runs
    agree on everything else about it."""
    if str(row.get("version_event", "")).startswith("api:") and "refunded_at" in row:
        return {**row, "refunded_at": None}
    return row


def add_in_order(container: Container, *rows: Any) -> None:
    """Write ``rows`` in one transaction, each flushed before the next, so that what a row
    refers to (a decision before its actions, a grant before its uses) is written first."""
    with container.sessions() as session, session.begin():
        for row in rows:
            session.add(row)
            session.flush()


def credit_refund_action(name: str, status: str, *, merchant: str, account: str, at: datetime
                         ) -> tuple[Decision, Action]:
    """A decision and its PayPal refund action of 1.00 USD, ``dec_<name>`` and
    ``act_<name>``: what a use of credit beside a refund names."""
    decision = Decision(id=f"dec_{name}", merchant=merchant, account_ref=account, pack="p",
                        request_kind="credit", outcome="partial_refund", case={}, decision={},
                        evaluated_at=at)
    return decision, Action(id=f"act_{name}", decision_id=decision.id, merchant=merchant,
                            kind="refund", provider="paypal", amount=100, currency="USD",
                            status=status, created_at=at, updated_at=at)


def provider_refund(action_id: str, status: str, *, merchant: str, at: datetime) -> Refund:
    """PayPal's refund of 1.00 USD made by the action ``action_id``, with its ``status``."""
    return Refund(merchant=merchant, provider="paypal", provider_id=f"re_{action_id}",
                  version_at=at, version_rank=0, version_event=f"evt_{action_id}",
                  livemode=False, payment_ref="PAY-1", status=status, amount=100,
                  currency="USD", refunded_at=at, action_id=action_id)


def paypal_payment(merchant: str, provider_id: str, subscription_ref: str, paid_at: datetime, *,
                   kind: str = "sale", status: str = "completed", amount: int = 2000) -> Payment:
    """A PayPal payment of ``subscription_ref`` in USD, written as if its event had been
    applied at ``paid_at``."""
    return Payment(merchant=merchant, provider="paypal", provider_id=provider_id,
                   version_at=paid_at, version_event=f"evt_{provider_id}", kind=kind,
                   status=status, amount=amount, currency="USD",
                   subscription_ref=subscription_ref, paid_at=paid_at)


def stored_action(container: Container, action_id: str) -> Action:
    """The action as stored now."""
    with container.sessions() as session:
        action = session.get(Action, action_id)
        assert action is not None
        return action


def stored_decision(container: Container, decision_id: str) -> Decision:
    """The decision as stored now."""
    with container.sessions() as session:
        decision = session.get(Decision, decision_id)
        assert decision is not None
        return decision


def audit_of(container: Container, subject: str) -> list[tuple[datetime, str, str]]:
    """The audit log's entries about ``subject``, oldest first: (at, action, actor)."""
    with container.sessions() as session:
        return [(e.at, e.action, e.actor) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.subject == subject).order_by(AuditEntry.id))]


def inbox_outcome(container: Container, event_id: str) -> tuple[str, str | None]:
    """The status of the inbox row of the provider's event ``event_id``, and its last error."""
    with container.sessions() as session:
        (row,) = session.scalars(select(InboxEvent).where(InboxEvent.event_id == event_id))
        return row.status, row.last_error
