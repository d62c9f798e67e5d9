"""Carrying out Decisions exactly once: record, then execute each action with its own key.

1. ``record_decision`` commits the Decision and its actions (``pending``) in one transaction,
   before any provider is called.
2. ``execute_action`` (an RQ job) marks the action ``executing`` and commits, calls the provider
   with the action id as idempotency key, then records the result. A crash at any point leaves
   the action ``pending`` or ``executing``; the sweeper hands it out again, and the retry first
   asks the provider whether the earlier attempt landed (Stripe) or repeats it under the same key
   (PayPal, which answers a repeated PayPal-Request-Id with the original refund).
3. The provider's refund webhooks confirm the action; a refund that fails later reopens the
   decision for review and says why.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, event, or_, select
from sqlalchemy.orm import Session, SessionTransaction

from adapters import ledger_credit
from adapters.base import PaymentTarget, ProviderResult
from gateway.envelope import parse_time
from ledger import audit, refundable
from ledger.db import is_postgres, one_of, reading
from ledger.models import (
    Action,
    ActionStatus,
    Decision,
    DecisionStatus,
    InboxEvent,
    Payment,
    Refund,
    Subscription,
)
from ledger.objects import Ref, Version, apply_snapshot, transaction_memo
from policy import Decision as PolicyDecision
from policy import decision_to_json
from policy.money import Money, is_payable
from service import metrics
from service.bootstrap import Container, current
from service.errors import GatewayError, ProviderError
from service.faults import crash_point
from service.logs import bind, log_context
from workers.cases import payment_by_ref

log = logging.getLogger(__name__)
EXECUTE_JOB = "workers.actions.execute_action"
_DONE = (ActionStatus.SUBMITTED, ActionStatus.SUCCEEDED, ActionStatus.FAILED)
# The API's answer is the weakest version of a refund: any webhook about it supersedes it.
_API_VERSION_AT = datetime(1970, 1, 1, tzinfo=UTC)
_CANCELS = ("cancel_at_period_end", "cancel_next_period", "cancel_immediately")
CREDIT_APPLICATION = "credit_application"  # a refund carrying account credit (workers/credits)


class ActionRefused(GatewayError):
    """A refund or credit the ledger will not create: it says which bound it would break."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def record_decision(session: Session, *, merchant: str, decision: PolicyDecision,
                    case: dict[str, Any], account_ref: str | None, payment: Payment | None,
                    now: datetime, source_event_id: int | None = None,
                    source_request_id: str | None = None,
                    subscription: Subscription | None = None) -> Decision:
    """Store the Decision and the actions that carry it out; the caller commits."""
    row = Decision(id=new_id("dec"), merchant=merchant, account_ref=account_ref,
                   payment_ref=payment.provider_id if payment else None, pack=decision.pack,
                   request_kind=decision.request_kind,
                   outcome=decision.outcome.value, case=case,
                   decision=decision_to_json(decision), evaluated_at=now,
                   source_event_id=source_event_id, source_request_id=source_request_id)
    session.add(row)  # inserted before its actions: Action.decision tells the flush so
    clause = decision.basis
    try:
        actions = plan_actions(session, row, refund=decision.refund, credit=decision.credit,
                               payment=payment, clause=clause,
                               reason=f"{decision.outcome.value} under {clause or 'the policy'}",
                               now=now)
    except ActionRefused as refused:  # the ledger's bound, whatever the Case said
        actions, row.status_reason = [], f"held back: {refused}"
    if subscription is not None and decision.outcome.value in _CANCELS:
        actions.append(_cancel_action(session, row, subscription, decision, clause, now))
    row.status = DecisionStatus.RECORDED if actions else _resting_status(decision)
    if row.status_reason is not None:
        row.status = DecisionStatus.NEEDS_REVIEW
    audit.record(session, merchant=merchant, actor="policy", at=now, action="decision.recorded",
                 subject=row.id, outcome=row.outcome, status=row.status,
                 request=source_request_id, event=source_event_id,
                 actions=[a.id for a in actions])
    _count_when_committed(session, merchant, row.outcome)
    return row


def _count_when_committed(session: Session, merchant: str, outcome: str) -> None:
    """Count the decision in the metric once its transaction commits: a drain batch that is
    rolled back and redone event by event decides again, and must not count twice."""
    here = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_UNCOUNTED, []).append((here, merchant, outcome))


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: its decisions count when the transaction commits
    for _, merchant, outcome in session.info.pop(_UNCOUNTED, ()):
        metrics.DECISIONS.labels(merchant, outcome).inc()


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """Decisions made inside the rolled-back transaction (or a savepoint within it) never were."""
    kept = [entry for entry in session.info.get(_UNCOUNTED, ())
            if not _within(entry[0], previous_transaction)]
    session.info[_UNCOUNTED] = kept


def _within(transaction: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False


_UNCOUNTED = "workers.actions.uncounted_decisions"


def _cancel_action(session: Session, row: Decision, subscription: Subscription,
                   decision: PolicyDecision, clause: str | None, now: datetime) -> Action:
    """End the subscription at the provider on the decided date.

    Stripe takes a ``cancel_at`` date at once; PayPal can only cancel now, so its action waits
    (``next_attempt_at``) until the effective date comes, and the sweeper hands it out then.
    """
    effective = decision.effective_at
    wait = subscription.provider == "paypal" and effective is not None and effective > now
    action = Action(id=new_id("act"), decision_id=row.id, merchant=row.merchant, kind="cancel",
                    provider=subscription.provider, target_kind="subscription",
                    payment_ref=subscription.provider_id, account_ref=row.account_ref,
                    amount=0, currency=decision.currency, clause=clause,
                    reason=f"{decision.outcome.value} under {clause or 'the policy'}",
                    next_attempt_at=effective if wait else None, created_at=now, updated_at=now)
    session.add(action)
    return action


def _resting_status(decision: PolicyDecision) -> DecisionStatus:
    return (DecisionStatus.NEEDS_REVIEW if decision.outcome.value == "needs_review"
            else DecisionStatus.CLOSED)


def plan_actions(session: Session, row: Decision, *, refund: Money | None,
                 credit: Money | None, payment: Payment | None, clause: str | None,
                 reason: str, now: datetime) -> list[Action]:
    """Add the pending actions that pay ``refund`` back and grant ``credit``; returns them.

    Raises ``ActionRefused``, adding nothing, when the refund does not fit what is left of the
    payment (taken under the payment's lock, so the actions count before anyone else looks) or
    the payment is disputed, or the credit is in no currency money can be paid in."""
    common = {"decision_id": row.id, "merchant": row.merchant, "clause": clause,
              "reason": reason, "account_ref": row.account_ref, "created_at": now,
              "updated_at": now}
    actions = []
    if credit is not None and credit.amount > 0 and not is_payable(credit.currency):
        raise ActionRefused("unknown_currency",
                            f"{credit.currency} is not a currency a credit can be granted in")
    if refund is not None and refund.amount > 0:
        if payment is None:
            raise ValueError("a refund needs the payment to refund")
        payment = refundable.lock(session, payment)
        refusal = refundable.remainder(session, payment).refusal(refund)
        if refusal is not None:
            raise ActionRefused(refusal.code, refusal.message)
        actions.append(Action(id=new_id("act"), kind="refund", provider=payment.provider,
                              target_kind=payment.kind,  # charge, sale or capture
                              payment_ref=payment.provider_id, amount=refund.amount,
                              currency=refund.currency, **common))
    if credit is not None and credit.amount > 0:
        if row.account_ref is None:
            raise ValueError("a credit needs the account to credit")
        actions.append(Action(id=new_id("act"), kind="credit", amount=credit.amount,
                              currency=credit.currency, **common))
    session.add_all(actions)
    return actions


def enqueue(container: Container, action_ids: list[str]) -> None:
    for action_id in action_ids:
        container.queue.enqueue(EXECUTE_JOB, action_id, job_id=f"action-{action_id}",
                                result_ttl=0, failure_ttl=24 * 3600,
                                description=f"execute action {action_id}")


@metrics.observed_job("action")
def execute_action(action_id: str) -> str:
    """The RQ job: carry out one action; returns its status. Safe to run any number of times."""
    return run_action(current(), action_id)


def run_action(container: Container, action_id: str, now: datetime | None = None) -> str:
    with log_context(action_id=action_id):
        return _run_action(container, action_id, now)


def _run_action(container: Container, action_id: str, now: datetime | None) -> str:
    now = now or datetime.now(UTC)
    with container.sessions() as session, session.begin():
        action, payment = _locked_action(session, action_id)
        if action is None or action.status in _DONE:
            return action.status if action else "missing"
        _bind_decision(session, action)
        if action.next_attempt_at is not None and action.next_attempt_at > now:
            return "scheduled"  # a retry's backoff, or a cancellation's effective date
        if action.kind == "credit" and not _to_stripe_balance(container, action):
            _grant(session, action, now)
            return action.status
        refusal = _first_attempt_refusal(session, action, payment)
        if refusal is not None:
            _refuse(session, action, refusal, now)
            return action.status
        resumed = action.status == ActionStatus.EXECUTING
        action.status, action.attempts, action.updated_at = ActionStatus.EXECUTING, \
            action.attempts + 1, now
        snapshot = _Snapshot.of(action, session.get(Decision, action.decision_id))
    crash_point("before_provider_call")
    try:
        result = _call_provider(container, snapshot, resumed, now)
    except ProviderError as exc:
        return _record_failure(container, action_id, exc, now)
    crash_point("after_provider_call")
    status = _record_result(container, action_id, result, now)
    crash_point("after_ledger_write")
    return status


def _locked_action(session: Session, action_id: str) -> tuple[Action | None, Payment | None]:
    """The action, locked, and a refund's payment, locked before it: the order every path
    that counts a payment's refunds takes (decisions, reviews, the drain's refund events)."""
    action = session.get(Action, action_id)
    payment = None
    if action is not None and action.kind == "refund":
        payment = payment_by_ref(session, action.merchant, action.payment_ref or "")
        if payment is not None:
            payment = refundable.lock(session, payment)
    locked = session.get(Action, action_id, with_for_update=True, populate_existing=True)
    return locked, payment


def _first_attempt_refusal(session: Session, action: Action, payment: Payment | None
                           ) -> refundable.Refusal | None:
    """Why a refund may no longer be made, checked before its first provider call: a refund
    made elsewhere since it was decided (a dashboard refund), or a dispute, may have taken what
    it was to pay back. A later attempt continues a checked one, whose amount has counted as in
    flight ever since, and which may already have landed: it is not checked again."""
    if action.kind != "refund" or action.attempts or action.status != ActionStatus.PENDING:
        return None
    if payment is None:
        return refundable.Refusal("unknown_payment", f"payment {action.payment_ref} is not in "
                                  "the ledger")
    return refundable.remainder(session, payment, excluding=action).refusal(
        Money(action.amount, action.currency))


def _refuse(session: Session, action: Action, why: refundable.Refusal, now: datetime) -> None:
    """Fail the action without calling the provider, and put its decision back in review."""
    action.status, action.updated_at = ActionStatus.FAILED, now
    action.failure_code, action.last_error = why.code, why.message
    _reopen(session, action, f"refund not made: {why.message}")
    _audit(session, action)


def _bind_decision(session: Session, action: Action) -> None:
    """Name the merchant, and the event or request the decision came from, on the lines."""
    decision = session.get(Decision, action.decision_id)
    inbox_id = decision.source_event_id if decision else None
    event_id = session.scalar(select(InboxEvent.event_id).where(InboxEvent.id == inbox_id)
                              ) if inbox_id is not None else None
    bind(merchant=action.merchant, decision_id=action.decision_id, inbox_id=inbox_id,
         event_id=event_id, request_id=decision.source_request_id if decision else None)


@dataclass(frozen=True)
class _Snapshot:
    """What the provider call needs, read inside the transaction and used after it."""

    id: str
    kind: str
    decision_id: str
    merchant: str
    clause: str
    reason: str
    account_ref: str
    target: PaymentTarget
    amount: Money
    effective_at: datetime | None  # a cancellation's date; None for at once

    @classmethod
    def of(cls, action: Action, decision: Decision | None) -> _Snapshot:
        target = PaymentTarget(action.provider or "", action.target_kind or "",
                               action.payment_ref or "")
        dates = (decision.decision if decision else {}).get("dates") or {}
        effective = parse_time(dates.get("effective_at"))
        return cls(action.id, action.kind, action.decision_id, action.merchant,
                   action.clause or "", action.reason, action.account_ref or "", target,
                   Money(action.amount, action.currency), effective)


def _to_stripe_balance(container: Container, action: Action) -> bool:
    """Credit goes to the Stripe customer balance when the merchant asks and it is a customer."""
    merchant = container.settings.merchant(action.merchant)
    return bool(merchant and merchant.stripe.credit_to_customer_balance
                and (action.account_ref or "").startswith("cus_"))


def _call_provider(container: Container, a: _Snapshot, resumed: bool, now: datetime
                   ) -> ProviderResult:
    if a.kind == "credit":  # the same key again on a resumed attempt: Stripe replays its answer
        return container.refund_adapter(a.merchant, "stripe").credit_customer_balance(
            a.account_ref, a.amount, a.reason, a.id)
    if a.kind == "cancel":  # a date still to come goes with the call; one passed, now
        at = a.effective_at if a.effective_at and a.effective_at > now else None
        return container.refund_adapter(a.merchant, a.target.provider).cancel_subscription(
            a.target.provider_id, at, a.reason, a.id)
    adapter = container.refund_adapter(a.merchant, a.target.provider)
    if resumed:  # an earlier attempt may have reached the provider before we died
        found = adapter.find_refund(a.target, a.id)
        if found is not None:
            return found
    metadata = {"decision_id": a.decision_id, "clause": a.clause}
    return adapter.refund(a.target, a.amount, a.reason, a.id, metadata)


def _record_result(container: Container, action_id: str, result: ProviderResult,
                   now: datetime) -> str:
    with container.sessions() as session, session.begin():
        action = session.get(Action, action_id, with_for_update=True)
        assert action is not None
        action.provider_ref = result.provider_ref
        if action.kind == "credit":  # on the Stripe balance; the ledger keeps the grant too
            _grant(session, action, now)
            return action.status
        if action.kind == "cancel":
            action.status, action.updated_at = ActionStatus.SUCCEEDED, now
            _settle(session, action.decision_id)
            _audit(session, action)
            return action.status
        _record_refund(session, action, result, now)
        if action.status in (ActionStatus.SUCCEEDED, ActionStatus.FAILED):
            # Its webhook got here first and already settled it, dated then: this answer,
            # read before it, changes nothing (not even the time of the last change).
            return action.status
        action.updated_at = now
        if result.failed:  # as its webhook would say it
            why = _refund_failed(action, result.provider_ref, result.raw_status,
                                 result.failure_reason)
            _reopen(session, action, f"the provider reported {why}")
        else:
            action.status = ActionStatus.SUCCEEDED if result.settled else ActionStatus.SUBMITTED
            _settle(session, action.decision_id)
        _audit(session, action)
        return action.status


def _record_refund(session: Session, action: Action, result: ProviderResult,
                   now: datetime) -> None:
    """The refund as the provider's answer describes it, dated now, so that it counts in the
    reports' period even if its webhook never comes (a webhook's snapshot supersedes it)."""
    values = {"payment_ref": action.payment_ref, "kind": "refund", "status": result.status,
              "amount": result.amount.amount, "currency": result.amount.currency,
              "reason": action.reason, "failure_reason": result.failure_reason,
              "refunded_at": now,
              "action_id": action.id, "unsolicited": False}
    ref = Ref(action.merchant, action.provider or "", result.provider_ref)
    apply_snapshot(session, Refund, ref, Version(_API_VERSION_AT, 0, f"api:{action.id}"),
                   livemode=False, values=values)


def _record_failure(container: Container, action_id: str, exc: ProviderError,
                    now: datetime) -> str:
    settings = container.settings
    with container.sessions() as session, session.begin():
        action = session.get(Action, action_id, with_for_update=True)
        assert action is not None
        if action.status in _DONE:
            # Its webhook got here first and settled it: the provider acted and only its
            # answer to us was lost (a timeout). What the provider reported stands; failing
            # the action now would put a refund that was made in front of a reviewer.
            log.warning("action %s: %s; kept %s, as its webhook reported", action_id, exc,
                        action.status)
            return action.status
        action.failure_code, action.last_error, action.updated_at = exc.code, str(exc), now
        if action.provider_ref is not None:
            # A webhook has linked the refund this call made, not settled yet: it exists at
            # the provider, so no retry and no review may pay it again. Its final webhook
            # settles the action, as for any refund the provider accepted.
            action.status, action.next_attempt_at = ActionStatus.SUBMITTED, None
            log.warning("action %s: %s; refund %s exists, waiting for its outcome", action_id,
                        exc, action.provider_ref)
            _settle(session, action.decision_id)
        elif exc.retryable and action.attempts < settings.max_attempts:
            delay = timedelta(seconds=settings.retry_base_seconds * 2 ** (action.attempts - 1))
            action.status, action.next_attempt_at = ActionStatus.PENDING, now + delay
            log.warning("action %s: %s; retrying at %s", action_id, exc, action.next_attempt_at)
        else:
            action.status = ActionStatus.FAILED
            _reopen(session, action, f"{action.kind} failed at {exc.provider}: {exc.code}: {exc}")
        _audit(session, action)
        return action.status


def _grant(session: Session, action: Action, now: datetime) -> None:
    reason = action.reason
    if action.provider_ref:
        reason += f"; held on the Stripe customer balance as {action.provider_ref}"
    ledger_credit.grant(session, merchant=action.merchant, account_ref=action.account_ref or "",
                        amount=Money(action.amount, action.currency), reason=reason,
                        clause=action.clause, decision_id=action.decision_id,
                        action_id=action.id, now=now,
                        held_by=(ledger_credit.STRIPE_BALANCE if action.provider_ref
                                 else ledger_credit.LEDGER))
    action.status, action.updated_at = ActionStatus.SUCCEEDED, now
    _settle(session, action.decision_id)
    _audit(session, action)


def _audit(session: Session, action: Action, actor: str = "worker") -> None:
    """Every change of an action's state goes to the audit log with what the provider said."""
    audit.record(session, merchant=action.merchant, actor=actor, at=action.updated_at,
                 action=f"action.{action.status}", subject=action.id, kind=action.kind,
                 decision=action.decision_id, provider_ref=action.provider_ref,
                 failure=action.failure_code)


def _settle(session: Session, decision_id: str) -> None:
    """A decision is executed once every one of its actions is done and none failed, except a
    failure a reviewer has since answered (the actions they approved then carry it out)."""
    decision = session.get(Decision, decision_id)
    if decision is None or decision.status != DecisionStatus.RECORDED:
        return
    with reading(session, (Action.decision_id, decision_id)):
        actions = session.execute(select(Action.status, Action.updated_at)
                                  .where(Action.decision_id == decision_id)).all()
    answered = decision.reviewed_at
    statuses = {status for status, updated_at in actions
                if not (status == ActionStatus.FAILED and answered is not None
                        and updated_at <= answered)}
    if statuses <= {ActionStatus.SUBMITTED, ActionStatus.SUCCEEDED}:
        decision.status = DecisionStatus.EXECUTED


def _reopen(session: Session, action: Action, why: str) -> None:
    """A failed action puts its decision back in front of a person, saying what happened."""
    decision = session.get(Decision, action.decision_id)
    if decision is not None and decision.request_kind == CREDIT_APPLICATION:
        # The failed action's use of credit no longer counts (adapters/ledger_credit.counts):
        # the credit is back and applies to the next payment. A reviewer's refund or credit
        # here would pay it a second time.
        decision.status = DecisionStatus.CLOSED
        decision.status_reason = (f"refund not made: {why}; the credit is back on the account "
                                  "for its next payment")
        log.error("decision %s closed, its credit given back: %s", action.decision_id, why)
        return
    if decision is not None:
        decision.status = DecisionStatus.NEEDS_REVIEW
        decision.status_reason = f"reopened: {why}; grant account credit or retry the refund"
    log.error("decision %s reopened: %s", action.decision_id, why)


# The refund action a provider's refund answers: the one it names (Stripe's metadata), else
# the one that recorded its id. Built once; "" names no action (ids are never empty).
_REFUND_ACTION = select(Action).where(
    Action.kind == "refund", Action.merchant == bindparam("merchant"),
    or_(Action.id == bindparam("action"), Action.provider_ref == bindparam("refund")),
).with_for_update()


_LOCKED_REFUND_ACTIONS = "refund actions locked"  # in the transaction's memo: what was asked


def lock_refund_actions(session: Session, reported: Iterable[tuple[str, str | None, str]]
                        ) -> None:
    """For the refunds a batch's events report, as (merchant, the action id they carry or None,
    the refund's id): lock every refund action ``confirm_refund`` would look for, in one
    statement and in id order, before any event is applied, and remember what was asked, so
    that ``confirm_refund`` answers from the session (one locking query per refund event, and
    the flush it forced, were a large share of a batch).

    An action that matched none of them now and matches later in the transaction is one this
    transaction changed (it is in the session then) or one whose provider id another worker's
    record of the refund wrote meanwhile, which the query would have seen only by being later;
    a refund we asked for carries its action's id, which never changes."""
    keys = {(merchant, "id", action) for merchant, action, _ in reported if action}
    keys |= {(merchant, "ref", refund) for merchant, _, refund in reported}
    if not keys:
        return
    by_merchant: dict[str, tuple[list[str], list[str]]] = {}
    for merchant, kind, value in keys:
        ids, refs = by_merchant.setdefault(merchant, ([], []))
        (ids if kind == "id" else refs).append(value)
    postgres = is_postgres(session.get_bind())
    params: dict[str, Any] = {}
    for i, (merchant, (ids, refs)) in enumerate(sorted(by_merchant.items())):
        params.update({f"merchant_{i}": merchant, f"ids_{i}": sorted(ids),
                       f"refs_{i}": sorted(refs)})
    query = select(Action).where(Action.kind == "refund", or_(*(
        (Action.merchant == bindparam(f"merchant_{i}"))
        & or_(one_of(Action.id, f"ids_{i}", postgres),
              one_of(Action.provider_ref, f"refs_{i}", postgres))
        for i in range(len(by_merchant))))).order_by(Action.id).with_for_update()
    with session.no_autoflush:
        found = session.scalars(query, params).all()
    memo = transaction_memo(session)
    memo.setdefault(_LOCKED_REFUND_ACTIONS, set()).update(keys)
    # The session holds unchanged objects weakly: kept here, they stay in it until the end.
    memo.setdefault(_LOCKED_REFUND_ACTIONS + " (rows)", []).extend(found)


def _refund_action(session: Session, refund: Refund) -> Action | None:
    """The action ``refund`` answers (``_REFUND_ACTION``): from the session when
    ``lock_refund_actions`` asked for it, else by a locking query."""
    asked = transaction_memo(session).get(_LOCKED_REFUND_ACTIONS, set())
    keys = {(refund.merchant, "ref", refund.provider_id)}
    if refund.action_id:
        keys.add((refund.merchant, "id", refund.action_id))
    if not keys <= asked:
        with reading(session, (Action.id, refund.action_id),
                     (Action.provider_ref, refund.provider_id)):
            return session.scalars(_REFUND_ACTION, {
                "merchant": refund.merchant, "action": refund.action_id or "",
                "refund": refund.provider_id}).first()
    held = [a for a in (*session.new, *session.identity_map.values())
            if isinstance(a, Action) and a.kind == "refund" and a.merchant == refund.merchant]
    return next((a for a in held if refund.action_id and a.id == refund.action_id),
                next((a for a in held if a.provider_ref == refund.provider_id), None))


def confirm_refund(session: Session, refund: Refund) -> None:
    """Link a refund the provider reported to the action that asked for it, or flag it.

    Called by the refund webhook handlers after they apply the refund's snapshot.
    """
    action = _refund_action(session, refund)
    if action is None:
        refund.unsolicited = True
        return
    refund.action_id, refund.unsolicited = action.id, False
    action.provider_ref = action.provider_ref or refund.provider_id
    # A change the webhook makes is dated when the ledger learns it, as the worker's are: the
    # audit entry and a reviewer's "answered since" (``_settle``) read this time.
    if refund.status in ("succeeded", "completed") and action.status != ActionStatus.FAILED:
        if action.status != ActionStatus.SUCCEEDED:
            action.status, action.updated_at = ActionStatus.SUCCEEDED, datetime.now(UTC)
            _audit(session, action, actor=f"{refund.provider} webhook")
        _settle(session, action.decision_id)
    elif (refund.status in refundable.GONE
          and action.status != ActionStatus.FAILED):
        action.updated_at = datetime.now(UTC)
        _reopen(session, action, _refund_failed(action, refund.provider_id, refund.status,
                                                refund.failure_reason))
        _audit(session, action, actor=f"{refund.provider} webhook")


def _refund_failed(action: Action, refund_id: str, status: str, reason: str | None) -> str:
    """Fail ``action`` because the provider said its refund failed (its webhook, or its answer
    to our call: the same words either way); returns the error written."""
    action.status, action.failure_code = ActionStatus.FAILED, "refund_failed"
    action.last_error = f"refund {refund_id} {status}: {reason or 'no reason given'}"
    return action.last_error


def due_actions(session: Session, now: datetime, stale_after: timedelta) -> list[str]:
    """Actions to hand out again: retries that are due, and attempts a dead worker left; at
    most 1,000 a sweep, those left alone longest first, so a backlog cannot keep any waiting."""
    query = select(Action.id).where(or_(
        (Action.status == ActionStatus.PENDING)
        & or_(Action.next_attempt_at.is_(None), Action.next_attempt_at <= now)
        & (Action.updated_at <= now - stale_after),
        (Action.status == ActionStatus.EXECUTING) & (Action.updated_at <= now - stale_after),
    )).order_by(Action.updated_at, Action.id).limit(1000)
    return list(session.scalars(query))
