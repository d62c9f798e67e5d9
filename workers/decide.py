"""Deciding a case and setting its actions in motion: evaluate, record, commit, enqueue.

The one path from a Case to executed side effects, used by support requests and event flows.
The decision and its pending actions are committed together before anything is enqueued, so a
crash after the commit is recovered by the sweeper and a crash before it leaves nothing behind.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import select

from ledger.models import Action, Payment
from policy import case_from_json, evaluate
from service.bootstrap import Container
from service.errors import UnknownMerchant
from workers.actions import enqueue, record_decision

log = logging.getLogger(__name__)


def decide(container: Container, merchant_name: str, case: dict[str, Any], *,
           payment_ref: str | None = None, account_ref: str | None = None,
           now: datetime | None = None, source_request_id: str | None = None) -> str:
    """Evaluate ``case`` under the merchant's pack, record it with its actions, enqueue them.

    Returns the decision id. A bad Case raises ``CaseError`` naming the field, before anything
    is stored.
    """
    merchant = container.settings.merchant(merchant_name)
    if merchant is None:
        raise UnknownMerchant(merchant_name)
    now = now or datetime.now(timezone.utc)
    decision = evaluate(container.policy_pack(merchant.policy_pack), case_from_json(case), now)
    with container.sessions() as session, session.begin():
        payment = None
        if payment_ref is not None:
            payment = session.scalars(select(Payment).where(
                Payment.merchant == merchant_name, Payment.provider_id == payment_ref)).one()
        row = record_decision(session, merchant=merchant_name, decision=decision, case=case,
                              account_ref=account_ref, payment=payment, now=now,
                              source_request_id=source_request_id)
        decision_id = row.id
        action_ids = list(session.scalars(select(Action.id).where(
            Action.decision_id == decision_id)))
    try:
        enqueue(container, action_ids)
    except RedisError:  # committed already: the sweeper hands the actions out later
        log.warning("could not enqueue actions of %s; the sweeper will", decision_id)
    return decision_id
