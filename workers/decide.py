"""Deciding a case and setting its actions in motion: evaluate, record, commit, enqueue.

The one path from a Case to executed side effects, used by support requests and event flows.
The decision and its pending actions are committed together before anything is enqueued, so a
crash after the commit is recovered by the sweeper and a crash before it leaves nothing behind.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.models import Action, ActionStatus, Decision, Payment, Subscription
from policy import case_from_json, evaluate
from service.bootstrap import Container
from service.errors import UnknownMerchant
from workers.actions import enqueue, record_decision
from workers.cases import find_payment

log = logging.getLogger(__name__)


def decide(container: Container, merchant_name: str, case: dict[str, Any], *,
           payment_ref: str | None = None, account_ref: str | None = None,
           now: datetime | None = None, source_request_id: str | None = None) -> str:
    """Evaluate ``case`` under the merchant's pack, record it with its actions, enqueue them.

    Returns the decision id. A bad Case raises ``CaseError`` naming the field, before anything
    is stored.
    """
    now = now or datetime.now(UTC)
    with container.sessions() as session, session.begin():
        payment = find_payment(session, merchant_name, payment_ref) if payment_ref else None
        row = decide_in(session, container, merchant_name, case, payment=payment,
                        account_ref=account_ref, now=now, source_request_id=source_request_id)
        decision_id = row.id
    enqueue_actions_of(container, decision_id)
    return decision_id


def decide_in(session: Session, container: Container, merchant_name: str,
              case: dict[str, Any], *, payment: Payment | None, account_ref: str | None,
              now: datetime, source_request_id: str | None = None,
              source_event_id: int | None = None,
              subscription: Subscription | None = None) -> Decision:
    """Evaluate and record inside the caller's transaction (enqueue after it commits)."""
    merchant = container.settings.merchant(merchant_name)
    if merchant is None:
        raise UnknownMerchant(merchant_name)
    case.setdefault("time_zone", merchant.time_zone)  # the merchant's calendar, kept with it
    decision = evaluate(container.policy_pack(merchant.policy_pack), case_from_json(case), now)
    return record_decision(session, merchant=merchant_name, decision=decision, case=case,
                           account_ref=account_ref, payment=payment, now=now,
                           source_request_id=source_request_id,
                           source_event_id=source_event_id, subscription=subscription)


def enqueue_actions_of(container: Container, *decision_ids: str) -> None:
    """Enqueue committed decisions' pending actions (the sweeper covers a Redis outage)."""
    if not decision_ids:
        return
    with container.sessions() as session:
        action_ids = list(session.scalars(select(Action.id).where(
            Action.decision_id.in_(decision_ids), Action.status == ActionStatus.PENDING)
            .order_by(Action.created_at, Action.id)))
    try:
        enqueue(container, action_ids)
    except RedisError:  # committed already: the sweeper hands the actions out later
        log.warning("could not enqueue the actions of %s; the sweeper will",
                    ", ".join(decision_ids))
