"""Support requests, decided by a worker: build the Case from the ledger, decide, carry out."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from gateway.envelope import parse_time
from ledger import audit
from ledger.locks import serialize
from ledger.models import RequestStatus, SupportRequest
from policy import PolicyError
from service import metrics
from service.bootstrap import Container, current
from service.logs import bind, log_context
from workers.cases import (
    MissingFacts,
    cancellation_case,
    find_payment,
    find_subscription,
    refund_case,
    uptime_case,
)
from workers.decide import decide_in, enqueue_actions_of
from workers.notices import confirm_cancellation

log = logging.getLogger(__name__)
PROCESS_JOB = "workers.requests.process_request"
_CANCELLED = ("cancel_at_period_end", "cancel_next_period", "cancel_immediately")


def enqueue(container: Container, request_id: str) -> None:
    container.queue.enqueue(PROCESS_JOB, request_id, job_id=f"request-{request_id}",
                            result_ttl=0, failure_ttl=24 * 3600)


@metrics.observed_job("request")
def process_request(request_id: str) -> str:
    """The RQ job; safe to run again (a decided request is left as it is)."""
    return decide_request(current(), request_id)


def decide_request(container: Container, request_id: str, now: datetime | None = None) -> str:
    with log_context(request_id=request_id):
        return _decide_request(container, request_id, now)


def _decide_request(container: Container, request_id: str, now: datetime | None) -> str:
    now = now or datetime.now(UTC)
    with container.sessions() as session, session.begin():
        request = session.get(SupportRequest, request_id, with_for_update=True)
        if request is None or request.status != RequestStatus.RECEIVED:
            return request.status if request else "missing"
        bind(merchant=request.merchant)
        try:
            decision_id = _decide(session, container, request, now)
        except (MissingFacts, PolicyError) as exc:
            _fail(session, request, str(exc), now)
            return request.status
    enqueue_actions_of(container, decision_id)
    return RequestStatus.DECIDED


def _decide(session: Session, container: Container, request: SupportRequest,
            now: datetime) -> str:
    payment = subscription = None
    if request.kind in ("cancellation", "uptime_claim"):
        build = cancellation_case if request.kind == "cancellation" else uptime_case
        case = build(session, request)
        if request.kind == "cancellation":
            subscription = find_subscription(session, request.merchant,
                                             request.body["subscription"])
    else:
        # One refund decision per account at a time: its earlier guarantee refunds (decided,
        # in flight or done) are counted before this one is recorded (002 new.6, 003 §1.1c).
        serialize(session, "guarantee", request.merchant, request.account_ref)
        case = refund_case(session, request)
        payment = find_payment(session, request.merchant, request.payment_ref)
    row = decide_in(session, container, request.merchant, case, payment=payment,
                    account_ref=request.account_ref, now=now, source_request_id=request.id,
                    subscription=subscription)
    if subscription is not None and row.outcome in _CANCELLED and row.account_ref:
        effective = parse_time((row.decision.get("dates") or {}).get("effective_at")) or now
        confirm_cancellation(session, request.merchant, row.account_ref,
                             subscription.provider_id, effective, row.id, now=now)
    request.status, request.decision_id, request.decided_at = RequestStatus.DECIDED, row.id, now
    audit.record(session, merchant=request.merchant, actor="worker", action="request.decided",
                 subject=request.id, at=now, decision=row.id, outcome=row.outcome)
    return row.id


def _fail(session: Session, request: SupportRequest, why: str, now: datetime) -> None:
    request.status, request.error, request.decided_at = RequestStatus.FAILED, why, now
    audit.record(session, merchant=request.merchant, actor="worker", action="request.failed",
                 subject=request.id, at=now, error=why)
    log.warning("request %s could not be decided: %s", request.id, why)
